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
	l, err := lockPath(path)
	require.NoError(t, err)
	_, err = lockPath(path)
	require.ErrorIs(t, err, ErrLockHeld)
	require.NoError(t, l.Unlock())
	l2, err := lockPath(path)
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

func TestLockDirIsExclusiveUntilUnlock(t *testing.T) {
	dir := t.TempDir()
	l, err := LockDir(dir, "LOCK", 0o600)
	require.NoError(t, err)
	_, err = LockDir(dir, "LOCK", 0o600)
	require.ErrorIs(t, err, ErrLockHeld)
	_, err = lockPath(filepath.Join(dir, "LOCK"))
	require.ErrorIs(t, err, ErrLockHeld, "tools locking only the file are excluded too")
	require.NoError(t, l.Unlock())
	l2, err := LockDir(dir, "LOCK", 0o600)
	require.NoError(t, err)
	require.NoError(t, l2.Unlock())
}

func TestLockDirSurvivesDeletingThelockPath(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("on Windows the held lock file cannot be deleted")
	}
	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" && runtime.GOOS != "freebsd" {
		t.Skip("directory locks need flock")
	}
	dir := t.TempDir()
	l, err := LockDir(dir, "LOCK", 0o600)
	require.NoError(t, err)
	defer l.Unlock()
	require.NoError(t, os.Remove(filepath.Join(dir, "LOCK")))
	_, err = LockDir(dir, "LOCK", 0o600)
	require.ErrorIs(t, err, ErrLockHeld, "the directory itself is locked")
}

func TestReadFileAt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(path, []byte("0123456789"), 0o600))
	b := make([]byte, 4)
	n, err := ReadFileAt(path, b, 2)
	require.NoError(t, err)
	assert.Equal(t, "2345", string(b[:n]))
	n, err = ReadFileAt(path, b, 8)
	require.NoError(t, err, "a short read at the end is not an error")
	assert.Equal(t, "89", string(b[:n]))
	_, err = ReadFileAt(path+"x", b, 0)
	assert.ErrorIs(t, err, os.ErrNotExist)
}

// lockPath locks only the file at path, as a tool that knows nothing of
// directory locks would.
func lockPath(path string) (*Lock, error) {
	f, err := lockFile(path, 0o600)
	if err != nil {
		return nil, err
	}
	return &Lock{files: []*os.File{f}}, nil
}
