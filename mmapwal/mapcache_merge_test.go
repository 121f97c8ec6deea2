package mmapwal

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mmapwal/wal/format"
)

// lazyLog writes n records of size bytes over several segments, closes, and
// reopens with one mapped sealed segment allowed: every sealed segment is
// then known but not mapped (lazy) until read.
func lazyLog(t *testing.T, dir string, p SyncPolicy, n, size int) (*WAL, *model, *Options) {
	t.Helper()
	o := &Options{SegmentSize: MinSegmentSize, Sync: p, MaxMappedSegments: 1}
	w := mustOpen(t, dir, o)
	m := newModel(1)
	m.fill(t, w, n, size)
	w = reopen(t, w, o)
	segs := w.segs.Load().segs
	require.GreaterOrEqual(t, len(segs), 4)
	for _, s := range segs[:len(segs)-1] {
		require.Negative(t, s.mc.pins.Load(), "sealed segment %s is lazy after Open", s.path)
	}
	return w, m, o
}

// A segment is checked for its log's identity when it is mapped, not only
// at Open: a segment whose header was rewritten to another log's ID after
// Open (same name, segment ID and first seq, so every frame still checks)
// is refused with ErrCorrupt naming it when a read maps it.
func TestMappedSegmentRefusesAnotherLogsFile(t *testing.T) {
	dir := t.TempDir()
	w, m, _ := lazyLog(t, dir, SyncAlways, 1500, 100)
	defer w.Close()
	s := w.segs.Load().segs[1]
	path, first := s.path, s.firstSeq

	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	b := make([]byte, format.SegmentHeaderSize)
	_, err = f.ReadAt(b, 0)
	require.NoError(t, err)
	h, err := format.DecodeSegmentHeader(b)
	require.NoError(t, err)
	require.Equal(t, w.logID, h.LogID)
	h.LogID = w.logID + 1
	h.Encode(b)
	_, err = f.WriteAt(b, 0)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	_, err = w.Read(first)
	require.ErrorIs(t, err, ErrCorrupt)
	var ce *CorruptError
	require.True(t, errors.As(err, &ce), "%v", err)
	assert.Equal(t, path, ce.File, "the error names the foreign file")
	assert.Contains(t, err.Error(), "another log")

	got, err := w.Read(1) // the log's own segments still read
	require.NoError(t, err)
	require.Equal(t, m.recs[1], got)
}

// TruncateFront and retention drop segments that were never mapped since
// Open: the reaper deletes their files without touching a mapping or an
// index that does not exist.
func TestReaperDropsLazySegments(t *testing.T) {
	dir := t.TempDir()
	w, m, o := lazyLog(t, dir, SyncAlways, 1500, 100)
	segs := w.segs.Load().segs
	cut := segs[len(segs)-2].firstSeq
	require.NoError(t, w.TruncateFront(cut))
	m.truncateFront(cut)
	w = reopen(t, w, o) // Close waits for the reaper
	for _, s := range segs[:len(segs)-2] {
		assert.NoFileExists(t, s.path)
		assert.NoFileExists(t, filepath.Join(dir, format.IndexName(s.firstSeq)))
	}
	m.check(t, w)
	require.NoError(t, w.Close())
}

// TruncateBack syncs and checkpoints every kept dirty segment first. Under
// SyncNone those are sealed, written and never synced, and the mapping cache
// may have unmapped them: TruncateBack maps them again for that.
func TestTruncateBackSyncsEvictedSegments(t *testing.T) {
	dir := t.TempDir()
	o := &Options{SegmentSize: MinSegmentSize, Sync: SyncNone, MaxMappedSegments: 1}
	w := mustOpen(t, dir, o)
	m := newModel(1)
	m.fill(t, w, 1500, 100)
	segs := w.segs.Load().segs
	require.GreaterOrEqual(t, len(segs), 4)
	w.manageSealed() // as the flusher does after a rotation
	evicted := 0
	for _, s := range segs[:len(segs)-1] {
		if s.mc.pins.Load() < 0 {
			evicted++
		}
	}
	require.Positive(t, evicted, "unsynced sealed segments were unmapped")
	last := segs[len(segs)-1]
	seq := last.firstSeq + 2
	require.NoError(t, w.TruncateBack(seq))
	m.truncateBack(seq)
	m.check(t, w)
	w = reopen(t, w, o)
	m.check(t, w)
	require.NoError(t, w.Close())
}
