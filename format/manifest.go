package format

import (
	"encoding/binary"
	"errors"
	"fmt"
)

const (
	manifestMagic      = "MMWALCLN"
	manifestHeaderSize = 32
	// ManifestEntrySize is the size of one segment's entry in wal.clean.
	ManifestEntrySize = 104
)

// FileStamp identifies one version of a file: any write, rename, chmod or
// truncation changes its ctime, and a file renamed in from elsewhere has
// another inode.
type FileStamp struct {
	Dev, Ino uint64
	Ctime    int64 // ns since the epoch
	Size     int64
}

// ManifestSegment is one segment as a clean Close left it.
type ManifestSegment struct {
	FirstSeq, ID uint64
	Size         int64
	Count        uint64
	End          int64
	Seg, Index   FileStamp // the last segment's Index is zero (checked by content)
}

// Manifest is the decoded wal.clean.
type Manifest struct {
	LogID     uint64
	MetaFirst uint64 // wal.meta's first seq at Close (0: none)
	Segments  []ManifestSegment
}

// EncodeManifest encodes m.
func EncodeManifest(m *Manifest) []byte {
	b := make([]byte, manifestHeaderSize+len(m.Segments)*ManifestEntrySize+4)
	copy(b, manifestMagic)
	le := binary.LittleEndian
	le.PutUint32(b[8:], Version)
	le.PutUint32(b[12:], uint32(len(m.Segments)))
	le.PutUint64(b[16:], m.LogID)
	le.PutUint64(b[24:], m.MetaFirst)
	p := b[manifestHeaderSize:]
	for _, s := range m.Segments {
		for i, v := range []uint64{s.FirstSeq, s.ID, uint64(s.Size), s.Count, uint64(s.End),
			s.Seg.Dev, s.Seg.Ino, uint64(s.Seg.Ctime), uint64(s.Seg.Size),
			s.Index.Dev, s.Index.Ino, uint64(s.Index.Ctime), uint64(s.Index.Size)} {
			le.PutUint64(p[8*i:], v)
		}
		p = p[ManifestEntrySize:]
	}
	le.PutUint32(p, CRC(b[:len(b)-4]))
	return b
}

// DecodeManifest checks and decodes wal.clean.
func DecodeManifest(b []byte) (*Manifest, error) {
	if len(b) < manifestHeaderSize+4 || string(b[:8]) != manifestMagic {
		return nil, errors.New("clean manifest: bad size or magic")
	}
	le := binary.LittleEndian
	if v := le.Uint32(b[8:]); v != Version {
		return nil, fmt.Errorf("clean manifest: unsupported version %d", v)
	}
	n := int64(le.Uint32(b[12:]))
	if int64(len(b)) != manifestHeaderSize+n*ManifestEntrySize+4 {
		return nil, fmt.Errorf("clean manifest: %d bytes do not hold %d segments", len(b), n)
	}
	if le.Uint32(b[len(b)-4:]) != CRC(b[:len(b)-4]) {
		return nil, errors.New("clean manifest: checksum mismatch")
	}
	m := &Manifest{LogID: le.Uint64(b[16:]), MetaFirst: le.Uint64(b[24:]), Segments: make([]ManifestSegment, n)}
	p := b[manifestHeaderSize:]
	for i := range m.Segments {
		var v [13]uint64
		for j := range v {
			v[j] = le.Uint64(p[8*j:])
		}
		m.Segments[i] = ManifestSegment{FirstSeq: v[0], ID: v[1], Size: int64(v[2]), Count: v[3], End: int64(v[4]),
			Seg:   FileStamp{Dev: v[5], Ino: v[6], Ctime: int64(v[7]), Size: int64(v[8])},
			Index: FileStamp{Dev: v[9], Ino: v[10], Ctime: int64(v[11]), Size: int64(v[12])}}
		p = p[ManifestEntrySize:]
	}
	return m, nil
}
