package recovery

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mmapwal/wal/format"
)

const segSize = 64 << 10

type frameSpec struct {
	kind    byte
	seq     uint64
	durable uint64
	payload string
}

// writeSegment writes a segment file with frames and returns its path and
// the frame offsets.
func writeSegment(t *testing.T, dir string, first, id uint64, frames []frameSpec) (string, []int64) {
	t.Helper()
	b := make([]byte, segSize)
	format.SegmentHeader{FirstSeq: first, ID: id}.Encode(b)
	seed := format.SegmentSeed(id)
	off := int64(format.SegmentHeaderSize)
	var offs []int64
	for _, f := range frames {
		offs = append(offs, off)
		off += format.EncodeFrame(b[off:], seed, f.kind, f.seq, f.durable, []byte(f.payload))
	}
	path := filepath.Join(dir, format.SegmentName(first))
	require.NoError(t, os.WriteFile(path, b, 0o644))
	return path, offs
}

func full(seq, durable uint64) frameSpec {
	return frameSpec{format.KindFull, seq, durable, "record"}
}

func fulls(from, to, durable uint64) []frameSpec {
	var out []frameSpec
	for s := from; s <= to; s++ {
		out = append(out, full(s, durable))
	}
	return out
}

func patch(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt(b, off)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

func dirState(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		out[e.Name()] = b
	}
	return out
}

func TestCleanLogNeedsNoChange(t *testing.T) {
	dir := t.TempDir()
	writeSegment(t, dir, 1, 11, fulls(1, 10, 0))
	writeSegment(t, dir, 11, 12, fulls(11, 15, 10))
	before := dirState(t, dir)
	rep, err := Recover(dir, nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(16), rep.NextSeq)
	require.Len(t, rep.Segments, 2)
	assert.Equal(t, uint64(10), rep.Segments[0].Count)
	assert.Empty(t, rep.TornFile)
	assert.Equal(t, before, dirState(t, dir))
	assert.Equal(t, 2, rep.IndexesInvalid, "no index files: both are reported for rebuild")
}

func TestTornTailIsCutAndZeroed(t *testing.T) {
	for _, tc := range []struct {
		name    string
		garbage func(path string, end int64)
	}{
		{"half-written frame", func(p string, end int64) {
			b := make([]byte, 200)
			format.EncodeFrame(b, format.SegmentSeed(11), format.KindFull, 6, 5, bytes.Repeat([]byte("x"), 100))
			patch(t, p, end, b[:70]) // torn inside the payload
		}},
		{"partial frame header", func(p string, end int64) {
			b := make([]byte, 64)
			format.EncodeFrame(b, format.SegmentSeed(11), format.KindFull, 6, 5, nil)
			patch(t, p, end, b[:12])
		}},
		{"random bytes", func(p string, end int64) { patch(t, p, end, []byte("\x01\x02\x03garbage that is not a frame")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path, offs := writeSegment(t, dir, 1, 11, fulls(1, 5, 4))
			end := offs[4] + format.FrameSize(len("record"))
			tc.garbage(path, end)
			rep, err := Recover(dir, nil)
			require.NoError(t, err)
			assert.Equal(t, uint64(6), rep.NextSeq)
			assert.Equal(t, path, rep.TornFile)
			assert.Equal(t, end, rep.TornOffset)
			assert.Positive(t, rep.BytesZeroed)
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.True(t, bytes.Equal(make([]byte, segSize-end), b[end:]), "everything after the end is zero")
			rep2, err := Recover(dir, nil)
			require.NoError(t, err)
			assert.Empty(t, rep2.TornFile, "second recovery finds a clean log")
		})
	}
}

func TestDamagedSyncedRecordIsCorruptionNotTornTail(t *testing.T) {
	dir := t.TempDir()
	// Record 6's frame is later overwritten; record 8 says 7 was durable
	// when it was written, which proves 6 had been synced.
	path, offs := writeSegment(t, dir, 1, 11, append(fulls(1, 7, 4), full(8, 7), full(9, 8)))
	patch(t, path, offs[5]+format.FrameHeaderSize, []byte("XX")) // flip payload of seq 6
	before := dirState(t, dir)
	_, err := Recover(dir, nil)
	require.ErrorIs(t, err, format.ErrCorrupt)
	var ce *format.CorruptError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, path, ce.File)
	assert.Equal(t, offs[5], ce.Offset)
	assert.Equal(t, uint64(6), ce.Seq)
	assert.Equal(t, before, dirState(t, dir), "nothing is changed on corruption")
}

func TestBadFrameWithoutProofIsTornAndReportsDrops(t *testing.T) {
	dir := t.TempDir()
	// After a power cut: page with record 6 lost, later records (never
	// synced: durable hint 4) survived.
	path, offs := writeSegment(t, dir, 1, 11, fulls(1, 9, 4))
	patch(t, path, offs[5], make([]byte, 16)) // header of 6 partly zero
	rep, err := Recover(dir, nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(6), rep.NextSeq)
	assert.Equal(t, 3, rep.RecordsDropped, "records 7..9 were valid but unsynced")
}

func TestUnfinishedBatchIsDroppedWhole(t *testing.T) {
	dir := t.TempDir()
	frames := append(fulls(1, 3, 0),
		frameSpec{format.KindFirst, 4, 0, "a"}, frameSpec{format.KindMiddle, 5, 0, "b"}) // no KindLast
	writeSegment(t, dir, 1, 11, frames)
	rep, err := Recover(dir, nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(4), rep.NextSeq)
	assert.Equal(t, 2, rep.RecordsDropped)

	dir2 := t.TempDir()
	writeSegment(t, dir2, 1, 11, append(frames, frameSpec{format.KindLast, 6, 0, "c"}))
	rep, err = Recover(dir2, nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(7), rep.NextSeq, "a complete batch counts")
}

func TestLaterSegmentsBeyondTornTailAreRemoved(t *testing.T) {
	dir := t.TempDir()
	p1, offs := writeSegment(t, dir, 1, 11, fulls(1, 5, 0))
	p2, _ := writeSegment(t, dir, 6, 12, fulls(6, 8, 2)) // hints never cover 5
	patch(t, p1, offs[4]+format.FrameHeaderSize, []byte("!!"))
	rep, err := Recover(dir, nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(5), rep.NextSeq)
	assert.Contains(t, rep.FilesRemoved, p2)
	assert.NoFileExists(t, p2)
	assert.Equal(t, 3, rep.RecordsDropped)
}

func TestMissingMiddleSegmentIsCorruption(t *testing.T) {
	dir := t.TempDir()
	writeSegment(t, dir, 1, 11, fulls(1, 5, 0))
	writeSegment(t, dir, 11, 13, fulls(11, 15, 10)) // 6..10 missing, hint says 10 was durable
	before := dirState(t, dir)
	_, err := Recover(dir, nil)
	var ce *format.CorruptError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, uint64(6), ce.Seq)
	assert.Equal(t, before, dirState(t, dir))
}

func TestSegmentHeaderProblems(t *testing.T) {
	t.Run("header seq disagrees with name", func(t *testing.T) {
		dir := t.TempDir()
		p, _ := writeSegment(t, dir, 1, 11, fulls(1, 3, 0))
		require.NoError(t, os.Rename(p, filepath.Join(dir, format.SegmentName(2))))
		_, err := Recover(dir, nil)
		var ce *format.CorruptError
		require.ErrorAs(t, err, &ce)
		assert.Contains(t, ce.Reason, "file name")
	})
	t.Run("segment shorter than header", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, format.SegmentName(1)), []byte("short"), 0o644))
		_, err := Recover(dir, nil)
		require.ErrorIs(t, err, format.ErrCorrupt)
	})
	t.Run("zero header in last segment is an unfinished rotation", func(t *testing.T) {
		dir := t.TempDir()
		writeSegment(t, dir, 1, 11, fulls(1, 3, 0))
		p2 := filepath.Join(dir, format.SegmentName(4))
		require.NoError(t, os.WriteFile(p2, make([]byte, segSize), 0o644))
		rep, err := Recover(dir, nil)
		require.NoError(t, err)
		assert.Equal(t, uint64(4), rep.NextSeq)
		assert.NoFileExists(t, p2)
	})
	t.Run("damaged header of a sealed segment", func(t *testing.T) {
		dir := t.TempDir()
		p1, _ := writeSegment(t, dir, 1, 11, fulls(1, 3, 0))
		writeSegment(t, dir, 4, 12, fulls(4, 5, 3))
		patch(t, p1, 20, []byte{0xff})
		_, err := Recover(dir, nil)
		var ce *format.CorruptError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, p1, ce.File)
	})
}

func TestTempFilesRemovedUnknownFilesKept(t *testing.T) {
	dir := t.TempDir()
	writeSegment(t, dir, 1, 11, fulls(1, 3, 0))
	for _, n := range []string{"prepared-9-9.seg.tmp", "x.idx.tmp", "wal.meta.tmp", "mine.txt"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), []byte("?"), 0o644))
	}
	rep, err := Recover(dir, nil)
	require.NoError(t, err)
	assert.Len(t, rep.TempRemoved, 3)
	assert.FileExists(t, filepath.Join(dir, "mine.txt"))
}

func TestMetaFirstSeq(t *testing.T) {
	t.Run("segments wholly before it are removed", func(t *testing.T) {
		dir := t.TempDir()
		p1, _ := writeSegment(t, dir, 1, 11, fulls(1, 5, 0))
		writeSegment(t, dir, 6, 12, fulls(6, 9, 5))
		require.NoError(t, os.WriteFile(filepath.Join(dir, format.MetaName), format.EncodeMeta(7), 0o644))
		rep, err := Recover(dir, nil)
		require.NoError(t, err)
		assert.NoFileExists(t, p1)
		assert.Equal(t, uint64(7), rep.MetaFirst)
		assert.Equal(t, uint64(10), rep.NextSeq)
	})
	t.Run("beyond the log empties it", func(t *testing.T) {
		dir := t.TempDir()
		writeSegment(t, dir, 1, 11, fulls(1, 5, 0))
		require.NoError(t, os.WriteFile(filepath.Join(dir, format.MetaName), format.EncodeMeta(100), 0o644))
		rep, err := Recover(dir, nil)
		require.NoError(t, err)
		assert.Empty(t, rep.Segments)
		assert.Equal(t, uint64(100), rep.NextSeq)
	})
	t.Run("damaged meta is corruption", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, format.MetaName), []byte("nope"), 0o644))
		_, err := Recover(dir, nil)
		require.ErrorIs(t, err, format.ErrCorrupt)
	})
}

func TestReadOnlyChangesNothing(t *testing.T) {
	dir := t.TempDir()
	path, offs := writeSegment(t, dir, 1, 11, fulls(1, 5, 0))
	patch(t, path, offs[4]+format.FrameHeaderSize, []byte("??"))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.seg.tmp"), nil, 0o644))
	before := dirState(t, dir)
	rep, err := Recover(dir, &Options{ReadOnly: true})
	require.NoError(t, err)
	assert.Equal(t, uint64(5), rep.NextSeq)
	assert.Len(t, rep.TempRemoved, 1, "reported, not removed")
	assert.Equal(t, before, dirState(t, dir))
}

func TestLastNonZero(t *testing.T) {
	b := make([]byte, 200<<10)
	assert.Equal(t, int64(10), lastNonZero(b, 10))
	for _, pos := range []int{10, 65535, 65536, 131071, 200<<10 - 1} {
		clear(b)
		b[pos] = 1
		assert.Equal(t, int64(pos+1), lastNonZero(b, 0), "non-zero at %d", pos)
		assert.Equal(t, int64(pos+1), lastNonZero(b, int64(pos)))
		assert.Equal(t, int64(pos+1), lastNonZero(b, int64(pos+1)), "from just after it")
	}
}
