// Package platform is mmapwal's operating-system layer: memory mappings (through
// mmap-go), preallocation, range and directory syncs, the directory lock,
// turning faults on mapped memory into errors, and paging hints. Each system
// has its own build-tagged implementation behind one internal interface.
//
// Package platform is a low-level building block of package mmapwal (and of
// package recovery, which reads segments through it). Applications use
// mmapwal; this API changes with mmapwal's needs.
package platform

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"

	"github.com/edsrzf/mmap-go"
)

// ErrLockHeld is returned by Lock when another holder has the lock.
var ErrLockHeld = errors.New("platform: lock held")

// ErrFault is returned by CatchFault when mapped memory could not be accessed
// (SIGBUS on Unix: the file shrank, or a store hit a hole on a full disk).
var ErrFault = errors.New("platform: fault on mapped memory")

// osOps is implemented once per operating system.
type osOps interface {
	preallocate(f *os.File, size int64) error
	syncRange(m []byte, f *os.File, off, n int) error
	syncFile(f *os.File) error
	syncDir(dir string) error
	lock(f *os.File) error
	// lockDir opens dir and locks it exclusively, or returns nil, nil where
	// a directory cannot be locked (the lock file alone is the lock there).
	lockDir(dir string) (*os.File, error)
	unlock(f *os.File) error
	renameMapped(f *os.File, m []byte, to string) (*os.File, []byte, error)
	prefault(m []byte) error
	prefaultRead(m []byte) error
	openFile(path string, flag int, perm os.FileMode) (*os.File, error)
	readFileAt(path string, b []byte, off int64) (int, error)
}

// ReadFileAt reads up to len(b) bytes at off from the file at path (fewer
// only at the end of the file), without the cost of an *os.File: Open reads
// every segment's header with it.
func ReadFileAt(path string, b []byte, off int64) (int, error) {
	return impl.readFileAt(path, b, off)
}

// OpenFile opens a file the way mmapwal needs it. On Windows the file is
// opened with FILE_SHARE_DELETE so that a prepared segment can be renamed.
func OpenFile(path string, flag int, perm os.FileMode) (*os.File, error) {
	return impl.openFile(path, flag, perm)
}

// Preallocate gives f exactly size bytes of allocated, zeroed storage, so
// that stores through a mapping can never hit a hole (SIGBUS on a full disk).
// It never creates a sparse file. On failure the caller should delete f: a
// failed fallocate can leave a partly allocated file.
func Preallocate(f *os.File, size int64) error {
	if err := impl.preallocate(f, size); err != nil {
		return fmt.Errorf("preallocate %s to %d bytes: %w", f.Name(), size, err)
	}
	return nil
}

// zeroFill writes zeros up to size: the portable preallocation.
func zeroFill(f *os.File, size int64) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() > size {
		if err := f.Truncate(size); err != nil {
			return err
		}
	}
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; {
		n := int64(len(buf))
		if size-off < n {
			n = size - off
		}
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// Map maps the first size bytes of f read-write and shared.
func Map(f *os.File, size int) ([]byte, error) {
	m, err := mmap.MapRegion(f, size, mmap.RDWR, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("map %s (%d bytes): %w", f.Name(), size, err)
	}
	return m, nil
}

// Unmap releases a mapping made by Map. No access to m may follow.
func Unmap(m []byte) error {
	if m == nil {
		return nil
	}
	mm := mmap.MMap(m)
	return mm.Unmap()
}

// SyncRange makes bytes [off, off+n) of the mapping m of f durable. On Linux
// this is msync(MS_SYNC) of the page-aligned range; on Windows
// FlushViewOfFile followed by FlushFileBuffers. On Unix f is not used and
// may be nil (the mapping outlives its descriptor).
func SyncRange(m []byte, f *os.File, off, n int) error {
	if n <= 0 {
		return nil
	}
	if off < 0 || off+n > len(m) {
		return fmt.Errorf("sync: range [%d,%d) outside mapping of %d bytes", off, off+n, len(m)) // f may be nil (Unix)
	}
	if err := impl.syncRange(m, f, off, n); err != nil {
		// No file name here: f.Name() is stale after RenameMapped on Unix.
		// Callers name the file.
		return fmt.Errorf("sync [%d,%d): %w", off, off+n, err)
	}
	return nil
}

// RenameMapped renames the file f, mapped as m, to path to, and returns the
// file and mapping to use from now on. On Unix it is a plain rename and both
// stay valid. On Windows a mapped file is not renamed: it is unmapped,
// closed, renamed, reopened and mapped again. On failure the file is closed
// and unmapped, and both returned values are nil.
func RenameMapped(f *os.File, m []byte, to string) (*os.File, []byte, error) {
	nf, nm, err := impl.renameMapped(f, m, to)
	if err != nil {
		return nil, nil, fmt.Errorf("rename %s to %s: %w", f.Name(), to, err)
	}
	return nf, nm, nil
}

// SyncFile makes the written contents of f durable (fdatasync where it exists).
func SyncFile(f *os.File) error {
	if err := impl.syncFile(f); err != nil {
		return fmt.Errorf("sync %s: %w", f.Name(), err)
	}
	return nil
}

// SyncDir makes creations, renames and deletions in dir durable. It does
// nothing on Windows, where directories cannot be synced.
func SyncDir(dir string) error {
	if err := impl.syncDir(dir); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// Prefault asks the kernel to back m with writable pages now, so that the
// first store into each page does not take a page fault on the hot path. It
// never changes the contents of m. Where the hint is not supported it does
// nothing.
func Prefault(m []byte) error {
	if len(m) == 0 {
		return nil
	}
	return impl.prefault(m)
}

// PrefaultRead asks the kernel to map m's pages (already in the page cache,
// or read them) now, so that later reads take no page fault. Contents are
// unchanged; unsupported systems do nothing.
func PrefaultRead(m []byte) error {
	if len(m) == 0 {
		return nil
	}
	return impl.prefaultRead(m)
}

// Lock is an exclusive lock on a file (and, from LockDir on Unix, on a
// directory), held until Unlock.
type Lock struct{ files []*os.File }

// LockDir takes the exclusive lock of a WAL directory: a second LockDir of
// the same directory, from this or another process, fails with ErrLockHeld
// until Unlock. On Unix the directory itself is flocked: unlike a lock file
// it cannot be deleted from under the holder, so deleting the lock file does
// not let a second writer in. The lock file name (created with perm) is
// locked too, on every system: on Windows it is the lock (opened without
// FILE_SHARE_DELETE, so it cannot be deleted while held), and on Unix it
// excludes earlier versions and tools that lock only the file.
func LockDir(dir, name string, perm os.FileMode) (*Lock, error) {
	l := &Lock{}
	d, err := impl.lockDir(dir)
	if err != nil {
		if errors.Is(err, ErrLockHeld) {
			return nil, fmt.Errorf("lock directory %s: %w", dir, ErrLockHeld)
		}
		return nil, fmt.Errorf("lock directory %s: %w", dir, err)
	}
	if d != nil {
		l.files = append(l.files, d)
	}
	f, err := lockFile(filepath.Join(dir, name), perm)
	if err != nil {
		l.Unlock()
		return nil, err
	}
	l.files = append(l.files, f)
	return l, nil
}

func lockFile(path string, perm os.FileMode) (*os.File, error) {
	// os.OpenFile, not OpenFile: on Windows the lock file must not be
	// deletable while it is held.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, perm)
	if err != nil {
		return nil, err
	}
	if err := impl.lock(f); err != nil {
		f.Close()
		if errors.Is(err, ErrLockHeld) {
			return nil, fmt.Errorf("lock %s: %w", path, ErrLockHeld)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

// Unlock releases the lock explicitly (Windows releases a LockFileEx lock
// on close only "when resources allow"), then closes the files.
func (l *Lock) Unlock() error {
	if l == nil {
		return nil
	}
	var errs []error
	for i := len(l.files) - 1; i >= 0; i-- {
		f := l.files[i]
		if err := impl.unlock(f); err != nil {
			errs = append(errs, fmt.Errorf("unlock %s: %w", f.Name(), err))
		}
		if err := f.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	l.files = nil
	return errors.Join(errs...)
}

var _ io.Closer = (*os.File)(nil)

// CatchFault runs fn and turns a fault on mapped memory (SIGBUS or SIGSEGV
// inside fn) into an error wrapping ErrFault instead of a crashed process.
// Other panics propagate.
func CatchFault(fn func()) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			if re, ok := r.(runtime.Error); ok && isFault(re) {
				err = fmt.Errorf("%w: %v", ErrFault, re)
				return
			}
			panic(r)
		}
	}()
	fn()
	return nil
}

// isFault recognises the runtime error SetPanicOnFault produces. Such
// errors implement Addr() (documented in runtime/debug.SetPanicOnFault).
func isFault(e runtime.Error) bool {
	_, ok := e.(interface{ Addr() uintptr })
	return ok
}

// MapReadOnly maps the first size bytes of f for reading.
func MapReadOnly(f *os.File, size int) ([]byte, error) {
	m, err := mmap.MapRegion(f, size, mmap.RDONLY, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("map %s (%d bytes): %w", f.Name(), size, err)
	}
	return m, nil
}
