//go:build !unix && !windows

package platform

import "os"

// otherOps is for systems without Unix or Windows file semantics (plan9,
// wasm): zero-filled preallocation, whole-file sync, no lock.
type otherOps struct{}

var _ osOps = otherOps{}

var impl osOps = otherOps{}

func (otherOps) openFile(path string, flag int, perm os.FileMode) (*os.File, error) {
	return os.OpenFile(path, flag, perm)
}

func (otherOps) preallocate(f *os.File, size int64) error { return zeroFill(f, size) }

func (otherOps) syncRange(_ []byte, f *os.File, _, _ int) error { return f.Sync() }

func (otherOps) syncFile(f *os.File) error { return f.Sync() }

func (otherOps) syncDir(string) error { return nil }

func (otherOps) lock(*os.File) error { return nil }

func (otherOps) unlock(*os.File) error { return nil }

func (otherOps) lockDir(string) (*os.File, error) { return nil, nil }

func (otherOps) renameMapped(f *os.File, m []byte, to string) (*os.File, []byte, error) {
	return renameInPlace(f, m, to)
}

func (otherOps) prefault([]byte) error { return nil }

func (otherOps) prefaultRead([]byte) error { return nil }

func (otherOps) readFileAt(path string, b []byte, off int64) (int, error) {
	return readFileAtPortable(path, b, off)
}
