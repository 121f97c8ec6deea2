//go:build windows

package platform

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The core renames a prepared segment and its index while they are open and
// mapped (mmapwal/segment.go activate): that needs FILE_SHARE_DELETE on
// every handle, which os.OpenFile does not give.
func TestOpenFileAllowsRenameWhileOpenAndMapped(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "prepared.tmp"), filepath.Join(dir, "final")
	f, err := OpenFile(src, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	require.NoError(t, err)
	require.NoError(t, Preallocate(f, 64<<10))
	m, err := Map(f, 64<<10)
	require.NoError(t, err)
	require.NoError(t, os.Rename(src, dst))
	copy(m[100:], "after rename")
	require.NoError(t, SyncRange(m, f, 100, 12))
	require.NoError(t, Unmap(m))
	require.NoError(t, f.Close())
	b, err := os.ReadFile(dst)
	require.NoError(t, err)
	assert.Equal(t, "after rename", string(b[100:112]))
	require.NoError(t, os.Remove(dst), "unmapped and closed: deletable")
}

func TestOpenFileFlagsFollowOSOpenFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	_, err := OpenFile(path, os.O_RDWR, 0)
	require.ErrorIs(t, err, os.ErrNotExist)
	var pe *os.PathError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, path, pe.Path)

	f, err := OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	require.NoError(t, err)
	_, err = f.Write([]byte("hello"))
	require.NoError(t, err)
	require.NoError(t, SyncFile(f))
	require.NoError(t, f.Close())
	_, err = OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	require.ErrorIs(t, err, os.ErrExist)

	f, err = OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.Write([]byte(" world"))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "hello world", string(b))

	f, err = OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	require.NoError(t, err)
	fi, err := f.Stat()
	require.NoError(t, err)
	assert.Zero(t, fi.Size())
	require.NoError(t, f.Close())

	ro := filepath.Join(dir, "ro")
	f, err = OpenFile(ro, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o444)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	fi, err = os.Stat(ro)
	require.NoError(t, err)
	assert.Zero(t, fi.Mode().Perm()&0o200, "created read-only, like os.OpenFile")
	require.NoError(t, os.Chmod(ro, 0o644))
}
