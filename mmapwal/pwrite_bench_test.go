//go:build linux

package mmapwal

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestComparePwrite compares, interleaved, the two ways a SyncAlways batch
// can be written: copied into the mapping, or with one pwrite on the
// segment's descriptor (the default on Linux; see Options.batchPwrite).
// The machine it runs on is shared and noisy, so only interleaved numbers
// mean anything: each round does the same operation on every variant in
// turn, the first one rotating. Run with MMAPWAL_COMPARE_PWRITE=1 (-v); it
// asserts nothing. (Pwriting single appends too was measured with this test
// at commit f47f25c: single appends 2-5% faster, 64 concurrent appenders
// 20-30% slower; not kept.)
func TestComparePwrite(t *testing.T) {
	if os.Getenv("MMAPWAL_COMPARE_PWRITE") == "" {
		t.Skip("set MMAPWAL_COMPARE_PWRITE=1 to compare the write paths (MMAPWAL_COMPARE_VARIANTS=n: the first n variants only; MMAPWAL_COMPARE_ROUNDS=n)")
	}
	if !pwriteCapable {
		t.Skip("no pwrite path on this platform")
	}
	variants := []struct {
		name string
		opts func(*Options)
	}{
		{"mapped", func(o *Options) { o.mappedBatches = true }},
		{"batch-pwrite", func(o *Options) {}}, // the default
	}
	if n, err := strconv.Atoi(os.Getenv("MMAPWAL_COMPARE_VARIANTS")); err == nil && n >= 2 && n <= len(variants) {
		variants = variants[:n]
	}
	rounds := 400
	if n, err := strconv.Atoi(os.Getenv("MMAPWAL_COMPARE_ROUNDS")); err == nil && n >= 300 {
		rounds = n
	}
	reps := 3
	open := func(t *testing.T) []*WAL {
		ws := make([]*WAL, len(variants))
		for i, v := range variants {
			o := &Options{Sync: SyncAlways}
			v.opts(o)
			w, err := Open(t.TempDir(), o)
			if err != nil {
				t.Fatal(err)
			}
			if w.opts.batchPwrite == o.mappedBatches {
				t.Fatalf("%s: batchPwrite %v", v.name, w.opts.batchPwrite)
			}
			ws[i] = w
		}
		return ws
	}
	closeAll := func(ws []*WAL) {
		for _, w := range ws {
			w.Close()
		}
	}
	// interleave runs op on each WAL once per round, the first rotating,
	// and returns the durations per variant.
	interleave := func(ws []*WAL, rounds int, op func(*WAL) error) [][]time.Duration {
		d := make([][]time.Duration, len(ws))
		for r := 0; r < rounds; r++ {
			for k := range ws {
				i := (r + k) % len(ws)
				t0 := time.Now()
				if err := op(ws[i]); err != nil {
					t.Fatal(err)
				}
				d[i] = append(d[i], time.Since(t0))
			}
		}
		return d
	}
	p50 := func(d []time.Duration) time.Duration {
		s := slices.Clone(d)
		slices.Sort(s)
		return s[len(s)/2]
	}
	sum := func(d []time.Duration) time.Duration {
		var t time.Duration
		for _, x := range d {
			t += x
		}
		return t
	}
	rec100 := make([]byte, 100)
	batch64 := make([][]byte, 64)
	for i := range batch64 {
		batch64[i] = make([]byte, 1024)
	}
	batch1000 := make([][]byte, 1000)
	for i := range batch1000 {
		batch1000[i] = rec100
	}
	warm := func(ws []*WAL) {
		interleave(ws, 50, func(w *WAL) error { _, err := w.Append(rec100); return err })
	}
	report := func(title string, vals []float64, unit string) {
		s := title + ":"
		for i, v := range variants {
			s += fmt.Sprintf("  %s %.1f%s", v.name, vals[i], unit)
			if i > 0 {
				s += fmt.Sprintf(" (%+.1f%%)", 100*(vals[i]-vals[0])/vals[0])
			}
		}
		t.Log(s)
	}
	for rep := 1; rep <= reps; rep++ {
		t.Logf("repetition %d", rep)
		ws := open(t)
		warm(ws)
		d := interleave(ws, rounds*2, func(w *WAL) error { _, err := w.Append(rec100); return err })
		vals := make([]float64, len(ws))
		for i := range ws {
			vals[i] = float64(p50(d[i]).Microseconds())
		}
		report("  Append 100 B p50", vals, "µs")

		d = interleave(ws, rounds, func(w *WAL) error { _, err := w.AppendBatch(batch64); return err })
		for i := range ws {
			vals[i] = float64(p50(d[i]).Microseconds())
		}
		report("  AppendBatch 64x1KiB p50", vals, "µs")

		d = interleave(ws, rounds, func(w *WAL) error { _, err := w.AppendBatch(batch1000); return err })
		for i := range ws {
			vals[i] = float64(len(d[i])*len(batch1000)) / sum(d[i]).Seconds() / 1e3
		}
		report("  AppendBatch 1000x100B", vals, "k rec/s")
		for i := range ws {
			vals[i] = float64(p50(d[i]).Microseconds())
		}
		report("  AppendBatch 1000x100B p50", vals, "µs")

		// 64 writers: each variant runs for 8 slices of 250 ms, the order
		// of the variants reversed every slice, so that drift over the
		// run evens out.
		recs := make([]float64, len(ws))
		for slice := range 8 {
			for k := range ws {
				i := k
				if slice%2 == 1 {
					i = len(ws) - 1 - k
				}
				recs[i] += writers(t, ws[i], 64, 250*time.Millisecond, rec100)
			}
		}
		for i := range ws {
			vals[i] = recs[i] / 8 / 1e3
		}
		report("  64 writers Append 100 B", vals, "k rec/s")
		closeAll(ws)
	}
}

// writers runs n goroutines appending rec durably for d and returns records/s.
func writers(t *testing.T, w *WAL, n int, d time.Duration, rec []byte) float64 {
	var count atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	t0 := time.Now()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if _, err := w.Append(rec); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				count.Add(1)
			}
		}()
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	el := time.Since(t0)
	if p := firstErr.Load(); p != nil {
		t.Fatal(*p)
	}
	return float64(count.Load()) / el.Seconds()
}
