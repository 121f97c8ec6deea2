package mmapwal

import "testing"

// A log of several sealed segments, closed, opened read-only: every record
// is visible from the first segment on (the view used to start at the last
// segment, its initial first seq being the next seq to append).
func TestReadOnly_ClosedMultiSegmentFirstSeq(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(dir, &Options{SegmentSize: 64 << 10, Sync: SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	for range 3000 {
		if _, err := w.Append(make([]byte, 20)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := Open(dir, &Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.FirstSeq() != 1 || r.LastSeq() != 3000 {
		t.Fatalf("read-only bounds [%d, %d], want [1, 3000]", r.FirstSeq(), r.LastSeq())
	}
	if st := r.Stats(); st.Segments < 3 {
		t.Fatalf("read-only view has %d segments, want >= 3", st.Segments)
	}
	if _, err := r.Read(1); err != nil {
		t.Fatal(err)
	}
}
