package format

import "encoding/binary"

// Frame layout constants (part of the on-disk format).
const (
	FrameHeaderSize = 32
	FrameAlign      = 8

	KindFull   = 1 // a record on its own
	KindFirst  = 2 // first record of an atomic batch
	KindMiddle = 3 // inside an atomic batch
	KindLast   = 4 // last record of an atomic batch; the batch is complete
)

// FrameSize is the space a payload of n bytes takes in a segment.
func FrameSize(n int) int64 {
	return (int64(FrameHeaderSize) + int64(n) + FrameAlign - 1) &^ (FrameAlign - 1)
}

// FrameHeader is a decoded frame header.
type FrameHeader struct {
	CRC     uint32
	Kind    byte
	Length  uint64
	Seq     uint64
	Durable uint64
}

// putHeaderFields writes everything but the CRC into h[4:32].
func putHeaderFields(h []byte, kind byte, length, seq, durable uint64) {
	_ = h[31]
	binary.LittleEndian.PutUint32(h[4:], uint32(kind)) // kind, then three reserved zero bytes
	binary.LittleEndian.PutUint64(h[8:], length)
	binary.LittleEndian.PutUint64(h[16:], seq)
	binary.LittleEndian.PutUint64(h[24:], durable)
}

// EncodeFrame writes the frame of payload into dst, which must hold at least
// FrameSize(len(payload)) bytes, and returns that size. seed is the
// segment's SegmentSeed. The CRC is stored last, so a frame cut short by a
// crash fails its check. The CRC is computed over the bytes as stored in
// dst (a local header array would escape to the heap through hash/crc32).
func EncodeFrame(dst []byte, seed uint32, kind byte, seq, durable uint64, payload []byte) int64 {
	n := FrameSize(len(payload))
	dst = dst[:n]
	// The padding (under 8 bytes) is zeroed by one store of the frame's
	// last 8 bytes, made first: the header and the payload are then written
	// over whatever part of them it covered. No call to clear a few bytes.
	binary.LittleEndian.PutUint64(dst[n-8:], 0)
	putHeaderFields(dst, kind, uint64(len(payload)), seq, durable)
	end := FrameHeaderSize + copy(dst[FrameHeaderSize:], payload)
	// Header fields and payload are contiguous in dst: one CRC pass.
	binary.LittleEndian.PutUint32(dst[:4], UpdateCRC(seed, dst[4:end]))
	return n
}

// ParseFrameHeader decodes b[:FrameHeaderSize] without checking it.
func ParseFrameHeader(b []byte) FrameHeader {
	_ = b[FrameHeaderSize-1]
	return FrameHeader{
		CRC:     binary.LittleEndian.Uint32(b[0:]),
		Kind:    b[4],
		Length:  binary.LittleEndian.Uint64(b[8:]),
		Seq:     binary.LittleEndian.Uint64(b[16:]),
		Durable: binary.LittleEndian.Uint64(b[24:]),
	}
}

// FrameStatus says why a frame did or did not decode.
type FrameStatus int

const (
	FrameOK        FrameStatus = iota
	FrameZero                  // all-zero header: preallocated space, the end of the log
	FrameBadHeader             // kind or reserved bytes invalid
	FrameTooLarge              // length above the maximum record size
	FrameTruncated             // the frame would run past the end of the segment
	FrameBadCRC                // checksum mismatch
)

var frameStatusText = [...]string{
	FrameOK:        "ok",
	FrameZero:      "zero header (end of log)",
	FrameBadHeader: "invalid frame header",
	FrameTooLarge:  "record length above maximum",
	FrameTruncated: "frame runs past end of segment",
	FrameBadCRC:    "checksum mismatch",
}

func (s FrameStatus) String() string {
	if int(s) < len(frameStatusText) {
		return frameStatusText[s]
	}
	return "unknown"
}

// CheckFrameHeader validates the header at seg[off:] without touching the
// payload. maxLen bounds Length so that no caller ever allocates or reads
// beyond what a valid record can be.
func CheckFrameHeader(seg []byte, off int64, maxLen uint64) (FrameHeader, FrameStatus) {
	if off < 0 || off+FrameHeaderSize > int64(len(seg)) {
		return FrameHeader{}, FrameTruncated
	}
	b := seg[off : off+FrameHeaderSize]
	h := ParseFrameHeader(b)
	if h.Kind == 0 {
		if isZero(b) {
			return h, FrameZero
		}
		return h, FrameBadHeader
	}
	if h.Kind > KindLast || b[5] != 0 || b[6] != 0 || b[7] != 0 {
		return h, FrameBadHeader
	}
	if h.Length > maxLen {
		return h, FrameTooLarge
	}
	if uint64(int64(len(seg))-off-FrameHeaderSize) < h.Length {
		return h, FrameTruncated
	}
	return h, FrameOK
}

// FrameCRC computes the checksum a frame with header bytes hdr and payload
// must carry.
func FrameCRC(seed uint32, hdr, payload []byte) uint32 {
	return UpdateCRC(UpdateCRC(seed, hdr[4:FrameHeaderSize]), payload)
}

// DecodeFrame validates the frame at seg[off:] completely and returns its
// header and payload (a sub-slice of seg).
func DecodeFrame(seg []byte, off int64, seed uint32, maxLen uint64) (FrameHeader, []byte, FrameStatus) {
	h, st := CheckFrameHeader(seg, off, maxLen)
	if st != FrameOK {
		return h, nil, st
	}
	p := seg[off+FrameHeaderSize : off+FrameHeaderSize+int64(h.Length)]
	if FrameCRC(seed, seg[off:off+FrameHeaderSize], p) != h.CRC {
		return h, nil, FrameBadCRC
	}
	return h, p, FrameOK
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
