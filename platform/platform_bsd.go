//go:build unix && !linux

package platform

import (
	"os"

	"golang.org/x/sys/unix"
)

// unixOps is the portable Unix fallback: zero-filled preallocation and fsync.
type unixOps struct{}

var _ osOps = unixOps{}

var impl osOps = unixOps{}

func (unixOps) openFile(path string, flag int, perm os.FileMode) (*os.File, error) {
	return os.OpenFile(path, flag, perm)
}

func (unixOps) preallocate(f *os.File, size int64) error { return zeroFill(f, size) }

func (unixOps) syncRange(m []byte, _ *os.File, off, n int) error { return msyncRange(m, off, n) }

func (unixOps) syncFile(f *os.File) error { return unix.Fsync(int(f.Fd())) }

func (unixOps) syncDir(dir string) error { return fsyncDir(dir) }

func (unixOps) lock(f *os.File) error { return flock(f) }

func (unixOps) unlock(f *os.File) error { return funlock(f) }

func (unixOps) lockDir(dir string) (*os.File, error) { return flockDir(dir) }

func (unixOps) renameMapped(f *os.File, m []byte, to string) (*os.File, []byte, error) {
	return renameInPlace(f, m, to)
}

func (unixOps) prefault([]byte) error { return nil }

func (unixOps) prefaultRead([]byte) error { return nil }

func (unixOps) readFileAt(path string, b []byte, off int64) (int, error) {
	return preadPath(path, b, off)
}
