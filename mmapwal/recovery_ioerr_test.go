package mmapwal_test

// I/O errors during recovery never delete data, shown on the real OS (the
// recovery package's own tests inject every kind of failure through a
// seam). A log whose second segment is damaged is a torn tail unless a
// later segment proves the log went on; when that later segment cannot be
// read, Open must fail naming it, and change nothing.

import (
	"errors"
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/mmapwal"
	"github.com/mmapwal/wal/recovery"
)

// damagedSecondSegment writes a cleanly closed SyncNone log in dir, removes
// the second segment's index (so Open scans it) and damages a record in it.
func damagedSecondSegment(t *testing.T, dir string) []string {
	t.Helper()
	segs := closedLog(t, dir, mmapwal.SyncNone, 1000)
	require.GreaterOrEqual(t, len(segs), 4)
	require.NoError(t, os.Remove(segs[1][:len(segs[1])-len(format.SegmentExt)]+format.IndexExt))
	f, err := os.OpenFile(segs[1], os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("!!"), format.SegmentHeaderSize+3000)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	return segs
}

func assertOpenFailsNaming(t *testing.T, dir, file string) {
	t.Helper()
	before := treeHash(t, dir)
	_, err := mmapwal.Open(dir, &mmapwal.Options{SegmentSize: mmapwal.MinSegmentSize, Sync: mmapwal.SyncNone})
	require.Error(t, err)
	assert.NotErrorIs(t, err, format.ErrCorrupt, "could not look: not a verdict on the data")
	assert.Contains(t, err.Error(), file)
	_, err = recovery.Repair(dir, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), file)
	assert.Equal(t, before, treeHash(t, dir), "nothing changed")
}

// The last segment's index, which holds the clean-close mark, cannot be
// read: its name is taken by a directory (EISDIR).
func TestRecoveryUnreadableIndexIsAnErrorNotMissingProof(t *testing.T) {
	dir := t.TempDir()
	segs := damagedSecondSegment(t, dir)
	last := segs[len(segs)-1]
	idx := last[:len(last)-len(format.SegmentExt)] + format.IndexExt
	require.NoError(t, os.Remove(idx))
	require.NoError(t, os.Mkdir(idx, 0o755))
	assertOpenFailsNaming(t, dir, idx)
}

// A later segment cannot be mapped (a sparse file far larger than the
// address space, on tmpfs): recovery must not skip it as "no proof" and
// delete it.
func TestRecoveryUnmappableLaterSegmentIsAnError(t *testing.T) {
	if fi, err := os.Stat("/dev/shm"); err != nil || !fi.IsDir() {
		t.Skip("needs /dev/shm (tmpfs) for a sparse file beyond the address space")
	}
	dir, err := os.MkdirTemp("/dev/shm", "mmapwal-recovery-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	segs := damagedSecondSegment(t, dir)
	huge := segs[2]
	if err := os.Truncate(huge, 1<<50); err != nil {
		if errorsIsAny(err, syscall.EFBIG, syscall.EINVAL) {
			t.Skipf("cannot make a 1 PiB sparse file here: %v", err)
		}
		require.NoError(t, err)
	}
	assertOpenFailsNaming(t, dir, huge)
	_, err = os.Stat(huge)
	require.NoError(t, err, "the later segment is still there")
}

func errorsIsAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}
