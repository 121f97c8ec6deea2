package mmapwal

import (
	"testing"
	"time"
)

func TestHistBuckets(t *testing.T) {
	var h hist
	for _, v := range []uint64{0, 1, 2, 3, 4, 5, 65536, 65537, 1 << 40} {
		h.observe(&countBounds, v)
	}
	s := h.snapshot(&countBounds, 1)
	want := map[int]uint64{0: 2, 1: 1, 2: 2, 3: 1, 15: 1, 16: 2} // <=1: 0,1; <=2: 2; <=4: 3,4; <=8: 5; <=65536; above
	for i, c := range s.Counts {
		if c != want[i] {
			t.Fatalf("bucket %d (<= %v): %d, want %d; counts %v", i, bucketBound(s, i), c, want[i], s.Counts)
		}
	}
	if s.Count != 9 || s.Sum != float64(0+1+2+3+4+5+65536+65537+1<<40) {
		t.Fatalf("count %d sum %v", s.Count, s.Sum)
	}

	var l hist
	for _, d := range []time.Duration{5 * time.Microsecond, 10 * time.Microsecond, 11 * time.Microsecond, 3 * time.Millisecond, 2 * time.Second} {
		l.observe(&syncBoundsNs, uint64(d))
	}
	ls := l.snapshot(&syncBoundsNs, 1e9)
	if ls.Bounds[0] != 10e-6 || ls.Bounds[15] != 1 {
		t.Fatalf("bounds in seconds: %v", ls.Bounds)
	}
	want = map[int]uint64{0: 2, 1: 1, 8: 1, 16: 1} // <=10µs: 5µs,10µs; <=25µs; <=5ms; above 1 s
	for i, c := range ls.Counts {
		if c != want[i] {
			t.Fatalf("sync bucket %d: %d, want %d; counts %v", i, c, want[i], ls.Counts)
		}
	}
}

func bucketBound(h Histogram, i int) any {
	if i < len(h.Bounds) {
		return h.Bounds[i]
	}
	return "+Inf"
}

func TestStatsHistograms(t *testing.T) {
	w, err := Open(t.TempDir(), &Options{SegmentSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for range 10 {
		if _, err := w.Append([]byte("one")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.AppendBatch([][]byte{{1}, {2}, {3}, {4}, {5}}); err != nil {
		t.Fatal(err)
	}
	st := w.Stats()
	if st.BatchRecords.Counts[0] != 10 || st.BatchRecords.Counts[3] != 1 || st.BatchRecords.Count != 11 || st.BatchRecords.Sum != 15 {
		t.Fatalf("BatchRecords %+v", st.BatchRecords)
	}
	// SyncAlways, one appender: every call is durable on return, so the
	// rounds made exactly the 15 records durable, the batch in one round.
	if st.RecordsPerSync.Sum != 15 || st.RecordsPerSync.Counts[3] != 1 || st.RecordsPerSync.Counts[0] != 10 {
		t.Fatalf("RecordsPerSync %+v", st.RecordsPerSync)
	}
	if st.DiskBytes != int64(st.Segments)*64<<10 {
		t.Fatalf("DiskBytes %d for %d segments of 64 KiB", st.DiskBytes, st.Segments)
	}
	if st.SyncSeconds.Count != st.Syncs || st.Syncs == 0 || st.SyncSeconds.Sum <= 0 {
		t.Fatalf("SyncSeconds %+v, Syncs %d", st.SyncSeconds, st.Syncs)
	}
	if err := w.TruncateBack(12); err != nil {
		t.Fatal(err)
	}
	if err := w.TruncateFront(3); err != nil {
		t.Fatal(err)
	}
	if err := w.TruncateFront(2); err != nil { // drops nothing
		t.Fatal(err)
	}
	if st := w.Stats(); st.Truncations != 2 {
		t.Fatalf("Truncations %d, want 2", st.Truncations)
	}
}

// Recording the histograms adds no allocation to Append.
func TestAppendAllocsWithHistograms(t *testing.T) {
	w, err := Open(t.TempDir(), &Options{Sync: SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rec := make([]byte, 100)
	w.Append(rec)
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := w.Append(rec); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("Append: %v allocs, want 0", n)
	}
	batch := [][]byte{rec, rec, rec}
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := w.AppendBatch(batch); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("AppendBatch: %v allocs, want 0", n)
	}
	if st := w.Stats(); st.BatchRecords.Count < 2002 {
		t.Fatalf("BatchRecords.Count %d", st.BatchRecords.Count)
	}
}
