package recovery

import (
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/mmapwal/wal/platform"
)

// fileSystem is every file operation recovery performs. Recover and Repair
// use osFS; the package's tests put an error-injecting wrapper into
// Options.fs to prove that a failure to look never turns into deleting data.
type fileSystem interface {
	OpenDir(dir string) (dirHandle, error)
	ReadFile(path string) ([]byte, error)
	Open(path string) (file, error)         // read-only
	OpenWrite(path string) (file, error)    // read-write, existing file
	CreateExcl(path string) (file, error)   // new file, write-only
	Lstat(path string) (fs.FileInfo, error) //
	Remove(path string) error
	Rename(from, to string) error
	SyncDir(dir string) error
}

// dirHandle is an open directory. Recovery opens a WAL directory's files
// through it: opening a file by name in an open directory costs no lookup
// of the directory's path, which at two files per segment was a third of
// Open's time.
type dirHandle interface {
	// List lists the directory, unsorted (listDir sorts what it needs).
	List() ([]dirEntry, error)
	// Open opens the file name in the directory read-only; path (the
	// directory joined with name) names it in errors.
	Open(name, path string) (file, error)
	Close() error
}

type dirEntry struct {
	name    string
	regular bool // a regular file (not a directory, device, FIFO or symlink)
}

// file is an open file. MapReadOnly's mapping stays valid after Close and
// is released with platform.Unmap.
type file interface {
	io.ReaderAt
	io.WriterAt
	io.Reader
	io.Writer
	Stat() (fs.FileInfo, error)
	MapReadOnly(size int) ([]byte, error)
	Sync() error
	Close() error
}

type osFS struct{}

var _ fileSystem = osFS{}

func (osFS) ReadFile(path string) ([]byte, error) { return os.ReadFile(path) }
func (osFS) OpenWrite(path string) (file, error) {
	return wrapOS(platform.OpenFile(path, os.O_RDWR, 0))
}
func (osFS) CreateExcl(path string) (file, error) {
	return wrapOS(os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644))
}
func (osFS) Lstat(path string) (fs.FileInfo, error) { return os.Lstat(path) }
func (osFS) Remove(path string) error               { return os.Remove(path) }
func (osFS) Rename(from, to string) error           { return os.Rename(from, to) }
func (osFS) SyncDir(dir string) error {
	if err := platform.SyncDir(dir); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

type osFile struct{ *os.File }

func wrapOS(f *os.File, err error) (file, error) {
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (f osFile) MapReadOnly(size int) ([]byte, error) { return platform.MapReadOnly(f.File, size) }
func (f osFile) Sync() error                          { return platform.SyncFile(f.File) }
