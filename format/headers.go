package format

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Header sizes and identifiers (part of the on-disk format).
const (
	Version           = 1
	SegmentHeaderSize = 64
	IndexHeaderSize   = 64
	IndexEntrySize    = 4
	MetaSize          = 32
	IdentitySize      = 32

	segmentMagic  = "MMWALSEG"
	indexMagic    = "MMWALIDX"
	metaMagic     = "MMWALMET"
	identityMagic = "MMWALLID"
)

// IndexCapacity is the number of entries the index of a segment of segSize
// bytes holds: every frame takes at least FrameHeaderSize bytes.
func IndexCapacity(segSize int64) int {
	return int((segSize - SegmentHeaderSize) / FrameHeaderSize)
}

// IndexFileSize is the size of an index file with capacity entries.
func IndexFileSize(capacity int) int64 {
	return IndexHeaderSize + int64(capacity)*IndexEntrySize
}

// SegmentHeader is the first 64 bytes of a segment file.
type SegmentHeader struct {
	FirstSeq uint64
	ID       uint64
	// LogID is the identity of the log the segment belongs to (see the
	// identity file). Zero in segments written before identities existed:
	// such a segment is accepted unchecked.
	LogID uint64
}

// ErrZeroHeader means a header area holds only zeros: a file whose header
// was never written (or never reached the disk).
var ErrZeroHeader = errors.New("header is all zeros")

// Encode writes the header into b[:SegmentHeaderSize].
func (h SegmentHeader) Encode(b []byte) {
	b = b[:SegmentHeaderSize]
	clear(b)
	copy(b, segmentMagic)
	binary.LittleEndian.PutUint32(b[8:], Version)
	binary.LittleEndian.PutUint64(b[16:], h.FirstSeq)
	binary.LittleEndian.PutUint64(b[24:], h.ID)
	binary.LittleEndian.PutUint64(b[32:], h.LogID)
	binary.LittleEndian.PutUint32(b[60:], CRC(b[:60]))
}

// DecodeSegmentHeader checks and decodes a segment header.
func DecodeSegmentHeader(b []byte) (SegmentHeader, error) {
	if len(b) < SegmentHeaderSize {
		return SegmentHeader{}, fmt.Errorf("segment header: file shorter than %d bytes", SegmentHeaderSize)
	}
	b = b[:SegmentHeaderSize]
	if isZero(b) {
		return SegmentHeader{}, ErrZeroHeader
	}
	if string(b[:8]) != segmentMagic {
		return SegmentHeader{}, errors.New("segment header: bad magic")
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != Version {
		return SegmentHeader{}, fmt.Errorf("segment header: unsupported version %d", v)
	}
	if binary.LittleEndian.Uint32(b[60:]) != CRC(b[:60]) {
		return SegmentHeader{}, errors.New("segment header: checksum mismatch")
	}
	h := SegmentHeader{FirstSeq: binary.LittleEndian.Uint64(b[16:]), ID: binary.LittleEndian.Uint64(b[24:]),
		LogID: binary.LittleEndian.Uint64(b[32:])}
	if h.ID == 0 || h.FirstSeq == 0 {
		return SegmentHeader{}, errors.New("segment header: zero first seq or id")
	}
	return h, nil
}

// IndexHeader is the first 64 bytes of an index file.
type IndexHeader struct {
	SegmentID uint64
	FirstSeq  uint64
	Count     uint64 // checkpoint: records known complete and durable
	EndOffset uint64 // checkpoint: segment offset just after record Count-1
	Flags     uint32 // IndexClosed
}

// IndexClosed in IndexHeader.Flags: the WAL was closed cleanly with this
// segment last, so it holds only zeros after EndOffset. Without it, recovery
// zeroes whatever lies after the end of the valid frames, so that no stale
// frame (from an interrupted TruncateBack, or an append that was in flight at
// a crash) can ever be read as a record once new appends reach it.
const IndexClosed = 1

// IndexTruncating in IndexHeader.Flags: a TruncateBack to EndOffset is
// zeroing what lies after it. Written and synced before the zeroing starts
// and cleared (synced) after it finished, so recovery that finds it completes
// the truncation: everything after EndOffset is discarded, whatever it holds.
const IndexTruncating = 2

// Encode writes the header into b[:IndexHeaderSize], in place (a local
// array would escape to the heap through hash/crc32: this runs once per
// flush). A header torn by a crash fails its CRC, and the index is rebuilt.
func (h IndexHeader) Encode(b []byte) {
	b = b[:IndexHeaderSize]
	copy(b, indexMagic)
	binary.LittleEndian.PutUint32(b[8:], Version)
	binary.LittleEndian.PutUint32(b[12:], IndexEntrySize)
	binary.LittleEndian.PutUint64(b[16:], h.SegmentID)
	binary.LittleEndian.PutUint64(b[24:], h.FirstSeq)
	binary.LittleEndian.PutUint64(b[32:], h.Count)
	binary.LittleEndian.PutUint64(b[40:], h.EndOffset)
	binary.LittleEndian.PutUint32(b[48:], h.Flags)
	clear(b[52:60])
	binary.LittleEndian.PutUint32(b[60:], CRC(b[:60]))
}

// DecodeIndexHeader checks and decodes an index header.
func DecodeIndexHeader(b []byte) (IndexHeader, error) {
	if len(b) < IndexHeaderSize {
		return IndexHeader{}, fmt.Errorf("index header: file shorter than %d bytes", IndexHeaderSize)
	}
	b = b[:IndexHeaderSize]
	if string(b[:8]) != indexMagic {
		return IndexHeader{}, errors.New("index header: bad magic")
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != Version {
		return IndexHeader{}, fmt.Errorf("index header: unsupported version %d", v)
	}
	if w := binary.LittleEndian.Uint32(b[12:]); w != IndexEntrySize {
		return IndexHeader{}, fmt.Errorf("index header: entry width %d", w)
	}
	if binary.LittleEndian.Uint32(b[60:]) != CRC(b[:60]) {
		return IndexHeader{}, errors.New("index header: checksum mismatch")
	}
	return IndexHeader{
		SegmentID: binary.LittleEndian.Uint64(b[16:]),
		FirstSeq:  binary.LittleEndian.Uint64(b[24:]),
		Count:     binary.LittleEndian.Uint64(b[32:]),
		EndOffset: binary.LittleEndian.Uint64(b[40:]),
		Flags:     binary.LittleEndian.Uint32(b[48:]),
	}, nil
}

// EncodeMeta returns the meta file contents for a logical first seq.
func EncodeMeta(firstSeq uint64) []byte {
	b := make([]byte, MetaSize)
	copy(b, metaMagic)
	binary.LittleEndian.PutUint32(b[8:], Version)
	binary.LittleEndian.PutUint64(b[16:], firstSeq)
	binary.LittleEndian.PutUint32(b[28:], CRC(b[:28]))
	return b
}

// DecodeMeta checks and decodes a meta file.
func DecodeMeta(b []byte) (firstSeq uint64, err error) {
	if len(b) != MetaSize || string(b[:8]) != metaMagic {
		return 0, errors.New("meta: bad size or magic")
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != Version {
		return 0, fmt.Errorf("meta: unsupported version %d", v)
	}
	if binary.LittleEndian.Uint32(b[28:]) != CRC(b[:28]) {
		return 0, errors.New("meta: checksum mismatch")
	}
	return binary.LittleEndian.Uint64(b[16:]), nil
}

// EncodeIdentity returns the identity file contents for a log ID.
func EncodeIdentity(logID uint64) []byte {
	b := make([]byte, IdentitySize)
	copy(b, identityMagic)
	binary.LittleEndian.PutUint32(b[8:], Version)
	binary.LittleEndian.PutUint64(b[16:], logID)
	binary.LittleEndian.PutUint32(b[28:], CRC(b[:28]))
	return b
}

// DecodeIdentity checks and decodes an identity file. A zero log ID is
// invalid: zero means "no identity" in segment headers.
func DecodeIdentity(b []byte) (logID uint64, err error) {
	if len(b) != IdentitySize || string(b[:8]) != identityMagic {
		return 0, errors.New("identity: bad size or magic")
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != Version {
		return 0, fmt.Errorf("identity: unsupported version %d", v)
	}
	if binary.LittleEndian.Uint32(b[28:]) != CRC(b[:28]) {
		return 0, errors.New("identity: checksum mismatch")
	}
	if !isZero(b[12:16]) || !isZero(b[24:28]) {
		return 0, errors.New("identity: reserved bytes not zero")
	}
	id := binary.LittleEndian.Uint64(b[16:])
	if id == 0 {
		return 0, errors.New("identity: zero log ID")
	}
	return id, nil
}
