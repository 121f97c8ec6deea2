package format

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzDecodeFrame: any bytes at any offset decode without panicking, never
// yield a payload above maxLen or outside the buffer, and a frame reported
// OK really carries its checksum (re-encoding it gives the same bytes).
func FuzzDecodeFrame(f *testing.F) {
	const seed = 0x1234abcd
	valid := make([]byte, FrameSize(11))
	EncodeFrame(valid, seed, KindFull, 7, 6, []byte("hello world"))
	f.Add(valid, uint32(seed), uint64(1<<20), 0)
	f.Add(valid[:20], uint32(seed), uint64(1<<20), 0)       // torn header
	f.Add(valid[:40], uint32(seed), uint64(1<<20), 0)       // torn payload
	f.Add(make([]byte, 64), uint32(seed), uint64(1<<20), 0) // zero: end of log
	huge := append([]byte(nil), valid...)
	binary.LittleEndian.PutUint64(huge[8:], 1<<62)
	f.Add(huge, uint32(seed), uint64(1<<20), 0)
	f.Fuzz(func(t *testing.T, data []byte, seed uint32, maxLen uint64, off int) {
		maxLen %= 1 << 30
		h, p, st := DecodeFrame(data, int64(off), seed, maxLen)
		if st != FrameOK {
			if p != nil {
				t.Fatalf("status %v with a payload", st)
			}
			return
		}
		if h.Length > maxLen || uint64(len(p)) != h.Length {
			t.Fatalf("payload of %d bytes, header says %d, max %d", len(p), h.Length, maxLen)
		}
		if h.Kind < KindFull || h.Kind > KindLast {
			t.Fatalf("accepted kind %d", h.Kind)
		}
		if FrameCRC(seed, data[off:off+FrameHeaderSize], p) != h.CRC {
			t.Fatal("accepted a frame whose checksum fails")
		}
		re := make([]byte, FrameSize(len(p)))
		EncodeFrame(re, seed, h.Kind, h.Seq, h.Durable, p)
		if !bytes.Equal(re[:FrameHeaderSize], data[off:off+FrameHeaderSize]) {
			t.Fatal("re-encoded header differs")
		}
	})
}

// FuzzHeaders: segment, index and meta headers decode without panicking, and
// whatever decodes re-encodes to the same bytes.
func FuzzHeaders(f *testing.F) {
	seg := make([]byte, SegmentHeaderSize)
	SegmentHeader{FirstSeq: 1, ID: 42}.Encode(seg)
	idx := make([]byte, IndexHeaderSize)
	IndexHeader{SegmentID: 42, FirstSeq: 1, Count: 3, EndOffset: 200}.Encode(idx)
	f.Add(seg)
	f.Add(idx)
	f.Add(EncodeMeta(17))
	f.Add(make([]byte, 64))
	f.Add(seg[:30])
	f.Fuzz(func(t *testing.T, b []byte) {
		if h, err := DecodeSegmentHeader(b); err == nil {
			re := make([]byte, SegmentHeaderSize)
			h.Encode(re)
			if !bytes.Equal(re, b[:SegmentHeaderSize]) {
				t.Fatal("segment header does not round-trip")
			}
		}
		if h, err := DecodeIndexHeader(b); err == nil {
			re := make([]byte, IndexHeaderSize)
			h.Encode(re)
			if !bytes.Equal(re[:48], b[:48]) { // bytes past 48 may be flags or reserved
				t.Fatal("index header does not round-trip")
			}
		}
		if first, err := DecodeMeta(b); err == nil && !bytes.Equal(EncodeMeta(first), b) {
			t.Fatal("meta does not round-trip")
		}
	})
}
