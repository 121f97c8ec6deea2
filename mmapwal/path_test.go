package mmapwal

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mmapwal/wal/format"
)

// A log opened by a relative path keeps using the directory it opened after
// the working directory changes: rotation, TruncateFront's wal.meta,
// deletion and directory syncs never touch another log that happens to live
// at the same relative path from the new working directory.
// (t.Chdir: not parallel, and the working directory is restored.)
func TestRelativeDirSurvivesChdir(t *testing.T) {
	base := t.TempDir()
	dirA, dirB := filepath.Join(base, "a"), filepath.Join(base, "b")
	require.NoError(t, os.MkdirAll(dirA, 0o700))
	require.NoError(t, os.MkdirAll(dirB, 0o700))

	o := smallOpts(SyncNone)
	mb := newModel(1)
	wb := mustOpen(t, filepath.Join(dirB, "wal"), o)
	mb.fill(t, wb, 20, 100)
	require.NoError(t, wb.Close())

	t.Chdir(dirA)
	ma := newModel(1)
	wa := mustOpen(t, "wal", o)
	assert.Equal(t, filepath.Join(dirA, "wal"), wa.Dir(), "Dir is the absolute path resolved at Open")
	ma.fill(t, wa, 10, 1000)

	t.Chdir(dirB)             // dirB/wal is another log
	ma.fill(t, wa, 300, 1000) // several rotations
	require.Greater(t, len(wa.segs.Load().segs), 3)
	cut := ma.next - 50
	require.NoError(t, wa.TruncateFront(cut))
	ma.truncateFront(cut)
	ma.check(t, wa)
	require.NoError(t, wa.Close())

	_, err := os.Stat(filepath.Join(dirB, "wal", format.MetaName))
	assert.ErrorIs(t, err, os.ErrNotExist, "no wal.meta written into the other log's directory")

	wa = mustOpen(t, filepath.Join(dirA, "wal"), o)
	ma.check(t, wa)
	require.NoError(t, wa.Close())
	wb = mustOpen(t, filepath.Join(dirB, "wal"), o)
	mb.check(t, wb)
	require.NoError(t, wb.Close())
}
