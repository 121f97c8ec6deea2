//go:build unix

package recovery

import (
	"errors"
	"io"
	"io/fs"
	"time"

	"golang.org/x/sys/unix"
)

// Open opens path read-only as a bare descriptor. Recovery opens two files
// per segment, and an *os.File costs more than the reads it serves (poller
// registration, a finalizer, and one more system call): at 10,000 segments
// that is most of Open's time. O_NONBLOCK: a FIFO under an index's name must
// not hang recovery (the check that it is not a regular file follows).
func (osFS) Open(path string) (file, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return &fdFile{fd: fd, path: path}, nil
	}
}

// OpenDir opens dir as a bare descriptor, for openat.
func (osFS) OpenDir(dir string) (dirHandle, error) {
	for {
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
		}
		return &fdDir{fd: fd, path: dir}, nil
	}
}

// fdDir is an open directory as a bare descriptor.
type fdDir struct {
	fd   int
	path string
}

// Open is osFS.Open relative to the directory.
func (d *fdDir) Open(name, path string) (file, error) {
	for {
		fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return &fdFile{fd: fd, path: path}, nil
	}
}

func (d *fdDir) Close() error {
	if err := unix.Close(d.fd); err != nil {
		return &fs.PathError{Op: "close", Path: d.path, Err: err}
	}
	return nil
}

// fdFile is a read-only file as a bare descriptor.
type fdFile struct {
	fd   int
	path string
	off  int64 // for Read
}

func (f *fdFile) ReadAt(b []byte, off int64) (int, error) {
	n := 0
	for n < len(b) {
		m, err := unix.Pread(f.fd, b[n:], off+int64(n))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return n, &fs.PathError{Op: "read", Path: f.path, Err: err}
		}
		if m == 0 {
			return n, io.EOF
		}
		n += m
	}
	return n, nil
}

func (f *fdFile) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	n, err := f.ReadAt(b[:min(len(b), 1<<20)], f.off)
	f.off += int64(n)
	if n > 0 && errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}

func (f *fdFile) WriteAt([]byte, int64) (int, error) {
	return 0, &fs.PathError{Op: "write", Path: f.path, Err: unix.EBADF}
}

func (f *fdFile) Write([]byte) (int, error) {
	return 0, &fs.PathError{Op: "write", Path: f.path, Err: unix.EBADF}
}

func (f *fdFile) Stat() (fs.FileInfo, error) {
	var st unix.Stat_t
	for {
		err := unix.Fstat(f.fd, &st)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "stat", Path: f.path, Err: err}
		}
		return statInfo{path: f.path, size: st.Size, mode: uint32(st.Mode)}, nil
	}
}

func (f *fdFile) MapReadOnly(size int) ([]byte, error) {
	// Released with platform.Unmap (mmap-go), which unmaps through the
	// same golang.org/x/sys/unix mapper.
	m, err := unix.Mmap(f.fd, 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, &fs.PathError{Op: "mmap", Path: f.path, Err: err}
	}
	return m, nil
}

func (f *fdFile) Sync() error {
	if err := unix.Fsync(f.fd); err != nil {
		return &fs.PathError{Op: "sync", Path: f.path, Err: err}
	}
	return nil
}

func (f *fdFile) Close() error {
	// Not retried on EINTR: the descriptor is released either way.
	if err := unix.Close(f.fd); err != nil {
		return &fs.PathError{Op: "close", Path: f.path, Err: err}
	}
	return nil
}

// statInfo is what recovery uses of a stat: small, as one is allocated per
// file (two per segment).
type statInfo struct {
	path string
	size int64
	mode uint32
}

func (i statInfo) Name() string       { return i.path }
func (i statInfo) Size() int64        { return i.size }
func (i statInfo) ModTime() time.Time { return time.Time{} } // unused by recovery
func (i statInfo) IsDir() bool        { return i.Mode().IsDir() }
func (i statInfo) Sys() any           { return nil }

func (i statInfo) Mode() fs.FileMode {
	m := fs.FileMode(i.mode & 0o777)
	switch i.mode & unix.S_IFMT {
	case unix.S_IFDIR:
		m |= fs.ModeDir
	case unix.S_IFLNK:
		m |= fs.ModeSymlink
	case unix.S_IFIFO:
		m |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		m |= fs.ModeSocket
	case unix.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		m |= fs.ModeDevice
	}
	return m
}
