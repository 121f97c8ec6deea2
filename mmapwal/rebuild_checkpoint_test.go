package mmapwal

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mmapwal/wal/format"
)

// An index rebuilt at Open must not claim records that recovery found only
// by scanning: after a process crash they may exist only in the page cache,
// and a checkpoint claims its records (and, for recovery's proof rule,
// every earlier segment) durable. A power cut before the flusher synced
// them would leave a checkpoint pointing at zeros.
func TestRebuiltIndexCheckpointsOnlyDurableRecords(t *testing.T) {
	dir := t.TempDir()
	o := &Options{SegmentSize: MinSegmentSize, Sync: SyncNone}
	w := mustOpen(t, dir, o)
	const n = 50
	for i := uint64(1); i <= n; i++ {
		_, err := w.Append(rec(i, 100))
		require.NoError(t, err)
	}
	// A process crash: the files as the page cache holds them, never synced.
	img := filepath.Join(t.TempDir(), "img")
	require.NoError(t, os.MkdirAll(img, 0o700))
	for name, b := range copyLogFiles(t, dir) {
		require.NoError(t, os.WriteFile(filepath.Join(img, name), b, 0o600))
	}
	require.NoError(t, w.Close())
	idxPath := filepath.Join(img, format.IndexName(1))
	require.NoError(t, os.Remove(idxPath)) // lost: Open rebuilds it

	checkpoint := func() uint64 {
		b, err := os.ReadFile(idxPath)
		require.NoError(t, err)
		h, err := format.DecodeIndexHeader(b)
		require.NoError(t, err)
		return h.Count
	}
	w = mustOpen(t, img, o) // SyncNone: nothing is synced until Sync or Close
	require.Equal(t, uint64(n), w.LastSeq())
	require.Less(t, w.Stats().SyncedSeq, w.LastSeq())
	assert.Zero(t, checkpoint(), "the rebuilt index claims records that were never synced")
	for i := uint64(1); i <= n; i++ {
		got, err := w.Read(i)
		require.NoError(t, err)
		require.Equal(t, rec(i, 100), got)
	}
	require.NoError(t, w.Sync())
	assert.Equal(t, uint64(n), checkpoint(), "after Sync the checkpoint covers every record")
	require.NoError(t, w.Close())
}
