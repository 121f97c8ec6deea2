package recovery_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/mmapwal"
	"github.com/mmapwal/wal/recovery"
)

const fuzzMaxRecord = 4096

// fuzzSegment builds a segment of size bytes holding records 1..n.
func fuzzSegment(size int, n int, id uint64) []byte {
	b := make([]byte, size)
	format.SegmentHeader{FirstSeq: 1, ID: id}.Encode(b)
	off := int64(format.SegmentHeaderSize)
	for i := 1; i <= n; i++ {
		p := bytes.Repeat([]byte{byte(i)}, 10*i)
		off += format.EncodeFrame(b[off:], format.SegmentSeed(id), format.KindFull, uint64(i), uint64(i-1), p)
	}
	return b
}

// validPayloads lists, in order, the payloads of the frames of seg that
// decode with their checksum from the header on (what any recovery may
// return at most).
func validPayloads(seg []byte) [][]byte {
	h, err := format.DecodeSegmentHeader(seg)
	if err != nil {
		return nil
	}
	var out [][]byte
	seed := format.SegmentSeed(h.ID)
	for off := int64(format.SegmentHeaderSize); ; {
		fh, p, st := format.DecodeFrame(seg, off, seed, fuzzMaxRecord)
		if st != format.FrameOK || fh.Seq != h.FirstSeq+uint64(len(out)) {
			return out
		}
		out = append(out, p)
		off += format.FrameSize(int(fh.Length))
	}
}

// FuzzRecover: arbitrary bytes as segment 1 and its index. Recover and Open
// must not panic or allocate beyond the record bound, and Open must return
// only records that are, in order, frames of the segment whose checksums
// hold.
func FuzzRecover(f *testing.F) {
	const id = 0xfeedface
	seg := fuzzSegment(64<<10, 5, id)
	f.Add(seg, []byte(nil))
	torn := append([]byte(nil), seg...)
	torn[64+4*format.FrameSize(40)+40] ^= 1 // damage record 5
	f.Add(torn, []byte(nil))
	f.Add(make([]byte, 64<<10), []byte(nil)) // zero segment
	f.Add(seg[:30], []byte(nil))             // shorter than its header
	huge := append([]byte(nil), seg...)
	huge[64+8+7] = 0x40 // record 1 claims 2^62 bytes
	f.Add(huge, []byte(nil))
	idx := make([]byte, format.IndexHeaderSize+4*2046)
	format.IndexHeader{SegmentID: id, FirstSeq: 1, Count: 9, EndOffset: 1 << 20}.Encode(idx) // stale: past the data
	f.Add(seg, idx)
	f.Fuzz(func(t *testing.T, segData, idxData []byte) {
		if len(segData) > 1<<20 || len(idxData) > 1<<20 {
			return
		}
		dir := t.TempDir()
		segPath := filepath.Join(dir, format.SegmentName(1))
		if err := os.WriteFile(segPath, segData, 0o644); err != nil {
			t.Fatal(err)
		}
		if idxData != nil {
			if err := os.WriteFile(filepath.Join(dir, format.IndexName(1)), idxData, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want := validPayloads(segData)
		if _, err := recovery.Recover(dir, &recovery.Options{ReadOnly: true}); err != nil && !errors.Is(err, format.ErrCorrupt) {
			t.Logf("Recover: %v", err)
		}
		w, err := mmapwal.Open(dir, &mmapwal.Options{MaxRecordSize: fuzzMaxRecord, SegmentSize: mmapwal.MinSegmentSize})
		if err != nil {
			return // refusing is always allowed; returning bad records is not
		}
		defer w.Close()
		if w.LastSeq() == 0 {
			return
		}
		if w.FirstSeq() != 1 {
			t.Fatalf("FirstSeq %d", w.FirstSeq())
		}
		err = w.Replay(0, func(seq uint64, data []byte) error {
			if seq > uint64(len(want)) {
				t.Fatalf("record %d returned; the segment holds only %d valid frames", seq, len(want))
			}
			if !bytes.Equal(data, want[seq-1]) {
				t.Fatalf("record %d: %d bytes that are not the valid frame's payload", seq, len(data))
			}
			return nil
		})
		if err != nil && !errors.Is(err, format.ErrCorrupt) {
			t.Fatalf("Replay: %v", err)
		}
	})
}
