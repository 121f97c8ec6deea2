//go:build linux

package platform

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

type linuxOps struct{}

var _ osOps = linuxOps{}

var impl osOps = linuxOps{}

func (linuxOps) openFile(path string, flag int, perm os.FileMode) (*os.File, error) {
	return os.OpenFile(path, flag, perm)
}

func (linuxOps) preallocate(f *os.File, size int64) error {
	err := unix.Fallocate(int(f.Fd()), 0, 0, size)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return zeroFill(f, size) // e.g. some FUSE or network filesystems
	}
	return err
}

func (linuxOps) syncRange(m []byte, _ *os.File, off, n int) error { return msyncRange(m, off, n) }

func (linuxOps) syncFile(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }

func (linuxOps) syncDir(dir string) error { return fsyncDir(dir) }

func (linuxOps) lock(f *os.File) error { return flock(f) }

func (linuxOps) unlock(f *os.File) error { return funlock(f) }

func (linuxOps) lockDir(dir string) (*os.File, error) { return flockDir(dir) }

func (linuxOps) renameMapped(f *os.File, m []byte, to string) (*os.File, []byte, error) {
	return renameInPlace(f, m, to)
}

func (linuxOps) prefaultRead(m []byte) error {
	err := populate(m, unix.MADV_POPULATE_READ)
	if errors.Is(err, unix.EINVAL) {
		return unix.Madvise(m, unix.MADV_WILLNEED) // older kernel: read-ahead only
	}
	return err
}

func (linuxOps) prefault(m []byte) error {
	err := populate(m, unix.MADV_POPULATE_WRITE)
	if errors.Is(err, unix.EINVAL) {
		return nil // kernel older than 5.14: faults stay on the writer's path
	}
	return err
}

// populate runs MADV_POPULATE_READ or _WRITE over m, again while it is
// interrupted: a signal (the Go runtime's preemption signals among them)
// ends the call with EINTR part-way, and then the rest of m would be
// faulted by the writer after all. Pages already populated cost little the
// second time. The retries are bounded: a signal storm only costs speed.
func populate(m []byte, advice int) error {
	var err error
	for range 8 {
		if err = unix.Madvise(m, advice); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
	return err
}

func (linuxOps) readFileAt(path string, b []byte, off int64) (int, error) {
	return preadPath(path, b, off)
}
