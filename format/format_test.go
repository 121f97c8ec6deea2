package format

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files in ../testdata/golden from the current encoder")

const (
	goldenSegID = 0x0123456789abcdef
	goldenLogID = 0x0fedcba987654321
)

// goldenSegment is a small segment with one frame of every kind, encoded
// with a fixed segment ID.
func goldenSegment() []byte { return goldenSegmentOf(0) }

// goldenSegmentOf is goldenSegment with a log ID in its header (0: the
// layout written before identities).
func goldenSegmentOf(logID uint64) []byte {
	seg := make([]byte, 512)
	SegmentHeader{FirstSeq: 7, ID: goldenSegID, LogID: logID}.Encode(seg)
	seed := SegmentSeed(goldenSegID)
	off := int64(SegmentHeaderSize)
	off += EncodeFrame(seg[off:], seed, KindFull, 7, 0, []byte("hello, wal"))
	off += EncodeFrame(seg[off:], seed, KindFull, 8, 7, nil)
	off += EncodeFrame(seg[off:], seed, KindFirst, 9, 8, []byte("batch-a"))
	off += EncodeFrame(seg[off:], seed, KindMiddle, 10, 8, []byte("batch-b"))
	EncodeFrame(seg[off:], seed, KindLast, 11, 8, []byte("batch-c, the last one"))
	return seg
}

func goldenIndex() []byte {
	b := make([]byte, IndexHeaderSize+5*IndexEntrySize)
	IndexHeader{SegmentID: goldenSegID, FirstSeq: 7, Count: 5, EndOffset: 280}.Encode(b)
	for i, off := range []uint32{64, 112, 144, 184, 224} {
		b[IndexHeaderSize+4*i] = byte(off / FrameAlign)
	}
	return b
}

func TestGoldenFilesPinTheFormat(t *testing.T) {
	for _, g := range []struct {
		name string
		data []byte
	}{
		{"segment-v1.bin", goldenSegment()},
		{"index-v1.bin", goldenIndex()},
		{"meta-v1.bin", EncodeMeta(42)},
		{"segment-v1-logid.bin", goldenSegmentOf(goldenLogID)},
		{"identity-v1.bin", EncodeIdentity(goldenLogID)},
		{"clean-v1.bin", EncodeManifest(goldenManifest())},
	} {
		t.Run(g.name, func(t *testing.T) {
			path := filepath.Join("..", "testdata", "golden", g.name)
			if *update {
				require.NoError(t, os.WriteFile(path, g.data, 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "golden file missing: run go test ./format -update once, and review the diff")
			require.True(t, bytes.Equal(want, g.data),
				"the encoder's bytes changed: that is an on-disk format change (bump Version; regenerate with -update only on purpose)")
		})
	}
}

func TestGoldenSegmentDecodes(t *testing.T) {
	for _, g := range []struct {
		file  string
		logID uint64
	}{
		{"segment-v1.bin", 0}, // written before identities: log ID zero
		{"segment-v1-logid.bin", goldenLogID},
	} {
		t.Run(g.file, func(t *testing.T) {
			seg, err := os.ReadFile(filepath.Join("..", "testdata", "golden", g.file))
			require.NoError(t, err)
			h, err := DecodeSegmentHeader(seg)
			require.NoError(t, err)
			assert.Equal(t, SegmentHeader{FirstSeq: 7, ID: goldenSegID, LogID: g.logID}, h)
			checkGoldenFrames(t, seg, SegmentSeed(h.ID))
		})
	}
}

func TestGoldenIdentityDecodes(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "testdata", "golden", "identity-v1.bin"))
	require.NoError(t, err)
	id, err := DecodeIdentity(b)
	require.NoError(t, err)
	assert.Equal(t, uint64(goldenLogID), id)
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x20
		_, err := DecodeIdentity(c)
		assert.Error(t, err, "identity byte %d", i)
	}
	_, err = DecodeIdentity(EncodeIdentity(0))
	assert.Error(t, err, "a zero log ID means no identity and is never written")
	_, err = DecodeIdentity(b[:16])
	assert.Error(t, err)
}

func goldenManifest() *Manifest {
	return &Manifest{LogID: goldenLogID, MetaFirst: 5, Segments: []ManifestSegment{
		{FirstSeq: 1, ID: goldenSegID, Size: 65536, Count: 6, End: 4096,
			Seg:   FileStamp{Dev: 0x801, Ino: 1001, Ctime: 1700000000123456789, Size: 65536},
			Index: FileStamp{Dev: 0x801, Ino: 1002, Ctime: 1700000000223456789, Size: 8256}},
		{FirstSeq: 7, ID: goldenSegID + 1, Size: 65536, Count: 5, End: 280,
			Seg: FileStamp{Dev: 0x801, Ino: 1003, Ctime: 1700000000323456789, Size: 65536}},
	}}
}

func TestGoldenManifestDecodes(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "testdata", "golden", "clean-v1.bin"))
	require.NoError(t, err)
	require.Len(t, b, 32+2*ManifestEntrySize+4)
	m, err := DecodeManifest(b)
	require.NoError(t, err)
	assert.Equal(t, goldenManifest(), m)
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x20
		_, err := DecodeManifest(c)
		assert.Error(t, err, "manifest byte %d", i)
	}
	for _, n := range []int{0, 8, 35, 36, len(b) - 1} {
		_, err := DecodeManifest(b[:n])
		assert.Error(t, err, "%d bytes", n)
	}
	_, err = DecodeManifest(append(bytes.Clone(b), 0))
	assert.Error(t, err)
	empty, err := DecodeManifest(EncodeManifest(&Manifest{LogID: 1}))
	require.NoError(t, err)
	assert.Empty(t, empty.Segments)
	assert.True(t, IsTemp(CleanName+TempExt))
	assert.False(t, IsTemp(CleanName))
}

func checkGoldenFrames(t *testing.T, seg []byte, seed uint32) {
	t.Helper()
	want := []struct {
		kind    byte
		seq     uint64
		payload string
	}{{KindFull, 7, "hello, wal"}, {KindFull, 8, ""}, {KindFirst, 9, "batch-a"}, {KindMiddle, 10, "batch-b"}, {KindLast, 11, "batch-c, the last one"}}
	off := int64(SegmentHeaderSize)
	for _, w := range want {
		fh, p, st := DecodeFrame(seg, off, seed, 1<<20)
		require.Equal(t, FrameOK, st, "seq %d", w.seq)
		assert.Equal(t, w.kind, fh.Kind)
		assert.Equal(t, w.seq, fh.Seq)
		assert.Equal(t, w.payload, string(p))
		assert.Zero(t, off%FrameAlign, "frames are 8-byte aligned")
		off += FrameSize(int(fh.Length))
	}
	_, _, st := DecodeFrame(seg, off, seed, 1<<20)
	assert.Equal(t, FrameZero, st, "zero-filled space ends the log")
}

func TestFrameChecks(t *testing.T) {
	seed := SegmentSeed(99)
	good := func() []byte {
		b := make([]byte, 128)
		EncodeFrame(b, seed, KindFull, 5, 4, []byte("payload"))
		return b
	}
	for _, tc := range []struct {
		name   string
		mutate func(b []byte)
		maxLen uint64
		want   FrameStatus
	}{
		{"valid frame", func([]byte) {}, 100, FrameOK},
		{"all-zero header is the end", func(b []byte) { clear(b) }, 100, FrameZero},
		{"kind zero with other bytes set", func(b []byte) { b[4] = 0 }, 100, FrameBadHeader},
		{"unknown kind", func(b []byte) { b[4] = 9 }, 100, FrameBadHeader},
		{"reserved byte set", func(b []byte) { b[6] = 1 }, 100, FrameBadHeader},
		{"length above maximum", func([]byte) {}, 6, FrameTooLarge},
		{"length 2^62", func(b []byte) { b[15] = 0x40 }, 1 << 63, FrameTruncated},
		{"flipped payload byte", func(b []byte) { b[FrameHeaderSize+2] ^= 1 }, 100, FrameBadCRC},
		{"flipped seq byte", func(b []byte) { b[16] ^= 1 }, 100, FrameBadCRC},
		{"flipped durable byte", func(b []byte) { b[24] ^= 1 }, 100, FrameBadCRC},
		{"flipped crc byte", func(b []byte) { b[0] ^= 1 }, 100, FrameBadCRC},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := good()
			tc.mutate(b)
			_, p, st := DecodeFrame(b, 0, seed, tc.maxLen)
			assert.Equal(t, tc.want, st, st.String())
			if st != FrameOK {
				assert.Nil(t, p, "a failing frame never yields a payload")
			}
		})
	}
	t.Run("another segment's seed never validates", func(t *testing.T) {
		_, _, st := DecodeFrame(good(), 0, SegmentSeed(100), 100)
		assert.Equal(t, FrameBadCRC, st)
	})
	t.Run("header past the end", func(t *testing.T) {
		_, _, st := DecodeFrame(good()[:20], 0, seed, 100)
		assert.Equal(t, FrameTruncated, st)
	})
}

func TestFrameSizeIsAligned(t *testing.T) {
	for n := 0; n < 64; n++ {
		s := FrameSize(n)
		assert.Zero(t, s%FrameAlign)
		assert.GreaterOrEqual(t, s, int64(FrameHeaderSize+n))
		assert.Less(t, s, int64(FrameHeaderSize+n+FrameAlign))
	}
}

func TestHeaderDecodersRejectDamage(t *testing.T) {
	seg := goldenSegment()
	for i := 0; i < SegmentHeaderSize; i++ {
		b := bytes.Clone(seg[:SegmentHeaderSize])
		b[i] ^= 0x20
		_, err := DecodeSegmentHeader(b)
		assert.Error(t, err, "segment header byte %d", i)
	}
	_, err := DecodeSegmentHeader(make([]byte, SegmentHeaderSize))
	assert.True(t, errors.Is(err, ErrZeroHeader))
	_, err = DecodeSegmentHeader(seg[:10])
	assert.Error(t, err)

	idx := goldenIndex()
	for i := 0; i < IndexHeaderSize; i++ {
		b := bytes.Clone(idx[:IndexHeaderSize])
		b[i] ^= 0x20
		_, err := DecodeIndexHeader(b)
		assert.Error(t, err, "index header byte %d", i)
	}
	meta := EncodeMeta(42)
	first, err := DecodeMeta(meta)
	require.NoError(t, err)
	assert.Equal(t, uint64(42), first)
	for i := range meta {
		b := bytes.Clone(meta)
		b[i] ^= 0x20
		_, err := DecodeMeta(b)
		assert.Error(t, err, "meta byte %d", i)
	}
}

func TestNames(t *testing.T) {
	assert.Equal(t, "00000000000000000042.seg", SegmentName(42))
	assert.Equal(t, "00000000000000000042.idx", IndexName(42))
	seq, ok := ParseSegmentName("00000000000000000042.seg")
	assert.True(t, ok)
	assert.Equal(t, uint64(42), seq)
	for _, bad := range []string{"42.seg", "00000000000000000042.idx", "0000000000000000004x.seg", "00000000000000000000.seg", "x"} {
		_, ok := ParseSegmentName(bad)
		assert.False(t, ok, bad)
	}
	assert.True(t, IsTemp("prepared-1-2.seg.tmp"))
	assert.True(t, IsTemp("wal.meta.tmp"))
	assert.False(t, IsTemp("notes.tmp"))
}

func TestCorruptErrorIsErrCorrupt(t *testing.T) {
	var err error = &CorruptError{File: "/x/1.seg", Offset: 64, Seq: 3, Reason: "checksum mismatch"}
	assert.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "/x/1.seg")
	assert.Contains(t, err.Error(), "offset 64")
	assert.Contains(t, err.Error(), "seq 3")
}

// EncodeFrame writes every byte of the frame, padding included, whatever
// dst held, for every payload length around the header and alignment
// boundaries (the padding is zeroed by a store that may overlap the header).
func TestEncodeFrameEveryLength(t *testing.T) {
	for n := 0; n <= 48; n++ {
		payload := make([]byte, n)
		for i := range payload {
			payload[i] = byte(i + 1)
		}
		size := FrameSize(n)
		dst := make([]byte, size+8)
		for i := range dst {
			dst[i] = 0xFF
		}
		require.Equal(t, size, EncodeFrame(dst, 7, KindFull, 42, 41, payload))
		h, p, st := DecodeFrame(dst[:size], 0, 7, 1<<20)
		require.Equal(t, FrameOK, st, "length %d", n)
		require.Equal(t, FrameHeader{CRC: h.CRC, Kind: KindFull, Length: uint64(n), Seq: 42, Durable: 41}, h)
		require.Equal(t, payload, append([]byte{}, p...))
		for i := FrameHeaderSize + n; i < int(size); i++ {
			require.Zero(t, dst[i], "length %d: padding byte %d", n, i)
		}
		require.Equal(t, byte(0xFF), dst[size], "length %d: wrote past the frame", n)
	}
}
