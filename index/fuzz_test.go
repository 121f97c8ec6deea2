package index

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/mmapwal/wal/format"
)

// FuzzOpen: any file as an index opens or fails cleanly; an opened index
// answers Get for every entry (and refuses those beyond) without panicking.
func FuzzOpen(f *testing.F) {
	valid := make([]byte, format.IndexFileSize(8))
	format.IndexHeader{SegmentID: 9, FirstSeq: 1, Count: 2, EndOffset: 128}.Encode(valid)
	f.Add(valid, uint16(8))
	f.Add(valid[:50], uint16(8))                            // truncated
	f.Add(make([]byte, format.IndexFileSize(8)), uint16(8)) // zero
	f.Add([]byte("MMWALIDXgarbage"), uint16(1))
	f.Fuzz(func(t *testing.T, data []byte, capacity uint16) {
		if len(data) > 1<<20 {
			return
		}
		path := filepath.Join(t.TempDir(), "x.idx")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		x, err := Open(path, int(capacity))
		if err != nil {
			return
		}
		defer x.Close()
		_ = x.Header()
		for i := uint64(0); i <= uint64(capacity); i++ {
			off, ok := x.Get(i)
			if ok != (i < uint64(capacity)) {
				t.Fatalf("Get(%d) ok=%v with capacity %d", i, ok, capacity)
			}
			if off < 0 {
				t.Fatalf("negative offset %d", off)
			}
		}
	})
}
