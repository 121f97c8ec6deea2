package main

import (
	"bytes"
	"strings"
	"testing"
)

// A few lines as `go test -bench` prints them, two runs each.
const sample = `goos: linux
goarch: amd64
pkg: github.com/mmapwal/wal/bench/compare
BenchmarkRandomRead/peer=mmapwal-2         	  589593	       300 ns/op	       300 ns/read	       0 B/op	       0 allocs/op
BenchmarkRandomRead/peer=mmapwal-2         	  589593	       320 ns/op	       320 ns/read	       0 B/op	       0 allocs/op
BenchmarkRandomRead/peer=tidwall-2         	  393372	      2871 ns/op	      2871 ns/read	     112 B/op	       1 allocs/op
BenchmarkRandomRead/peer=tidwall-cached-2  	  607954	       450 ns/op	       450 ns/read	     112 B/op	       1 allocs/op
BenchmarkDurableAppend/peer=mmapwal-2      	     434	    959978 ns/op	    100000 p50-ns	   7053177 p99-ns
BenchmarkDurableAppend/peer=raft-wal-2     	     259	    821234 ns/op	     99000 p50-ns	   3626845 p99-ns
BenchmarkDurableAppend/peer=raw-pwrite-2   	     222	    716208 ns/op	     89000 p50-ns	   3472946 p99-ns
BenchmarkAppendNoSync/peer=mmapwal-2       	  167806	      1104 ns/op	   8000000 rec/s	      16 B/op	       0 allocs/op
BenchmarkAppendNoSync/peer=raw-2           	  650446	       195.1 ns/op	  10000000 rec/s	       0 B/op	       0 allocs/op
PASS
`

func TestTargets(t *testing.T) {
	res, err := parseResults(strings.NewReader(sample), "sample")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := res.median("RandomRead", "mmapwal", "ns/read"); got != 310 {
		t.Errorf("median ns/read = %v, want 310", got)
	}
	if peer, v, _ := res.fastestPeer("RandomRead", "ns/read", true); peer != "tidwall-cached" || v != 450 {
		t.Errorf("fastest peer %s %v, want tidwall-cached 450", peer, v)
	}
	var out bytes.Buffer
	writeTargets(&out, res)
	report := strings.Join(strings.Fields(out.String()), " ")
	for _, want := range []string{
		"310 ns vs tidwall-cached 450 ns: 0.69x met",
		"100.0 µs vs raft-wal 99.0 µs: 1.01x MISSED",
		"100.0 µs vs raw-pwrite 89.0 µs: 1.12x MISSED",
		"8M rec/s vs raw 10M rec/s: 80% met",
		"0 allocs/op",
		"Durable64Writers",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	// 5 targets and 4 context rows have no data in the sample.
	if strings.Count(out.String(), "not measured") != 9 {
		t.Errorf("want 9 rows not measured (no data for them):\n%s", out.String())
	}
}
