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
BenchmarkDurableAppendInterleaved-2        	     100	    900000 ns/op	    100000 p50-ns@mmapwal	    120000 p50-ns@raft-wal	     95000 p50-ns@raw-pwrite	   7000000 p99-ns@mmapwal
BenchmarkDurableAppendInterleaved-2        	     100	    900000 ns/op	    100000 p50-ns@mmapwal	    130000 p50-ns@raft-wal	     95000 p50-ns@raw-pwrite	   7000000 p99-ns@mmapwal
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
		// interleaved: each peer's figures parsed from "<unit>@<peer>"
		"100.0 µs vs raft-wal 125.0 µs: 0.80x met",
		"100.0 µs vs raw-pwrite 95.0 µs: 1.05x met",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	// 6 targets and 5 context rows have no data in the sample.
	if strings.Count(out.String(), "not measured") != 11 {
		t.Errorf("want 11 rows not measured (no data for them):\n%s", out.String())
	}
	if _, ok := res.median("DurableAppendInterleaved", "mmapwal", "p99-ns"); !ok {
		t.Errorf("interleaved p99 of mmapwal not parsed")
	}
}

func TestSplitInterleaved(t *testing.T) {
	in := "goos: linux\n" +
		"BenchmarkX/peer=a-2 \t 10 \t 5 ns/op \t 7 p50-ns\n" +
		"BenchmarkDurableAppendInterleaved-2 \t 100 \t 900 ns/op \t 100 p50-ns@mmapwal \t 120 p50-ns@raft-wal \t 7000 p99-ns@mmapwal\n" +
		"PASS\n"
	want := "goos: linux\n" +
		"BenchmarkX/peer=a-2 \t 10 \t 5 ns/op \t 7 p50-ns\n" +
		"BenchmarkDurableAppendInterleaved/peer=mmapwal-2\t100\t100 p50-ns 7000 p99-ns\n" +
		"BenchmarkDurableAppendInterleaved/peer=raft-wal-2\t100\t120 p50-ns\n" +
		"PASS\n"
	if got := string(splitInterleaved([]byte(in))); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	// What it writes parses as the per-peer sub-benchmarks do.
	res, err := parseResults(strings.NewReader(string(splitInterleaved([]byte(in)))), "split")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := res.median("DurableAppendInterleaved", "raft-wal", "p50-ns"); v != 120 {
		t.Errorf("raft-wal p50 = %v, want 120", v)
	}
}
