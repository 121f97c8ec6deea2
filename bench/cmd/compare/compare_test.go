package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestQuick runs every workload in -quick mode on each WAL built in, so
// `go test ./...` in bench/ is a smoke test of the comparison program.
func TestQuick(t *testing.T) {
	if len(peers) == 0 {
		t.Fatal("no peers registered")
	}
	for _, p := range peers {
		t.Run(sanitize(p.Name), func(t *testing.T) {
			cfg := quickConfig()
			if testing.Short() {
				cfg.n, cfg.reads, cfg.durableN = 1000, 500, 10
			}
			cfg.dir = t.TempDir()
			cfg.peers = []string{p.Name}
			res, err := run(cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range reportRows(cfg) {
				m := x.metric
				if p.Name != mmapwalName && x.peerKey != "" {
					m = x.peerKey
				}
				if s := res.stat(x.w, m, p.Name); !s.ok || s.med <= 0 {
					t.Errorf("workload %d %s: no result", x.w, x.unit)
				}
			}
			var out bytes.Buffer
			writeReport(&out, res, cfg, describeMachine(cfg.dir))
			if !strings.Contains(out.String(), "| 7 | full replay") {
				t.Errorf("report lacks workload 7 row:\n%s", out.String())
			}
		})
	}
}

func TestRecordsVerify(t *testing.T) {
	recs := genRecords(7, 3, 100)
	for i, r := range recs {
		if err := verify(r, uint64(7+i), 100); err != nil {
			t.Fatal(err)
		}
	}
	if err := verify(recs[0], 8, 100); err == nil {
		t.Error("record under the wrong seq not caught")
	}
	bad := append([]byte(nil), recs[1]...)
	bad[50] ^= 1
	if err := verify(bad, 8, 100); err == nil {
		t.Error("flipped bit not caught")
	}
	if err := verify(recs[2][:99], 9, 100); err == nil {
		t.Error("short record not caught")
	}
}

func TestPercentile(t *testing.T) {
	d := []int{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
	var v []time.Duration
	for _, x := range d {
		v = append(v, time.Duration(x))
	}
	if got := percentile(v, 50); got != 5 {
		t.Errorf("p50 = %v, want 5", got)
	}
	if got := percentile(v, 99); got != 10 {
		t.Errorf("p99 = %v, want 10", got)
	}
}
