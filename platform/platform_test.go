package platform

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPreallocateMapSyncUnmap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	f, err := OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	require.NoError(t, err)
	defer f.Close()
	const size = 1 << 20
	require.NoError(t, Preallocate(f, size))
	fi, err := f.Stat()
	require.NoError(t, err)
	assert.Equal(t, int64(size), fi.Size())
	if st, ok := statBlocks(fi); ok {
		assert.GreaterOrEqual(t, st*512, int64(size), "preallocation must not be sparse")
	}
	m, err := Map(f, size)
	require.NoError(t, err)
	require.NoError(t, Prefault(m))
	copy(m[5000:], "durable")
	require.NoError(t, SyncRange(m, f, 5000, 7))
	assert.Error(t, SyncRange(m, f, size-1, 7), "range outside the mapping")
	require.NoError(t, Unmap(m))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "durable", string(b[5000:5007]))
	require.NoError(t, SyncFile(f))
	require.NoError(t, SyncDir(filepath.Dir(path)))
}

func TestLockIsExclusiveUntilUnlock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "LOCK")
	l, err := LockFile(path)
	require.NoError(t, err)
	_, err = LockFile(path)
	require.ErrorIs(t, err, ErrLockHeld)
	require.NoError(t, l.Unlock())
	l2, err := LockFile(path)
	require.NoError(t, err)
	require.NoError(t, l2.Unlock())
}

func TestCatchFaultTurnsSIGBUSIntoError(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SIGBUS on a shrunk file is Linux behaviour")
	}
	path := filepath.Join(t.TempDir(), "f")
	f, err := OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, Preallocate(f, 64<<10))
	m, err := Map(f, 64<<10)
	require.NoError(t, err)
	defer Unmap(m)
	require.NoError(t, f.Truncate(4096)) // the file shrinks under the mapping
	err = CatchFault(func() { m[32<<10] = 1 })
	require.ErrorIs(t, err, ErrFault)
	assert.NoError(t, CatchFault(func() { m[10] = 1 }), "pages still backed by the file work")
	assert.Panics(t, func() { _ = CatchFault(func() { panic("not a fault") }) }, "other panics propagate")
}
