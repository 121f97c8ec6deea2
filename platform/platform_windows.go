//go:build windows

package platform

import (
	"errors"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/windows"
)

type windowsOps struct{}

var _ osOps = windowsOps{}

var impl osOps = windowsOps{}

// openFile opens with FILE_SHARE_DELETE (Go's os.OpenFile does not), so that
// prepared segments can be renamed while open. Segments are still unmapped
// and closed before they are truncated or deleted. The other flags follow
// os.OpenFile: O_APPEND opens for appending, O_SYNC writes through, and a
// file created with a perm lacking the owner-write bit is read-only. The
// handle is not inherited by child processes (like O_CLOEXEC).
func (windowsOps) openFile(path string, flag int, perm os.FileMode) (*os.File, error) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	access := uint32(windows.GENERIC_READ)
	if flag&(os.O_WRONLY|os.O_RDWR|os.O_CREATE|os.O_TRUNC) != 0 {
		access |= windows.GENERIC_WRITE
	}
	if flag&os.O_APPEND != 0 {
		// As syscall.Open: without FILE_WRITE_DATA every write appends.
		if flag&os.O_TRUNC == 0 {
			access &^= windows.GENERIC_WRITE
		}
		access |= windows.FILE_APPEND_DATA | windows.FILE_WRITE_ATTRIBUTES | windows.FILE_WRITE_EA |
			windows.STANDARD_RIGHTS_WRITE | windows.SYNCHRONIZE
	}
	disp := uint32(windows.OPEN_EXISTING)
	switch {
	case flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		disp = windows.CREATE_NEW
	case flag&os.O_CREATE != 0 && flag&os.O_TRUNC != 0:
		disp = windows.CREATE_ALWAYS
	case flag&os.O_CREATE != 0:
		disp = windows.OPEN_ALWAYS
	case flag&os.O_TRUNC != 0:
		disp = windows.TRUNCATE_EXISTING
	}
	attrs := uint32(windows.FILE_ATTRIBUTE_NORMAL)
	if perm&0o200 == 0 && (disp == windows.CREATE_NEW || disp == windows.OPEN_ALWAYS) {
		// Applies only when the file is created; CREATE_ALWAYS would also
		// make an existing file read-only (go.dev/issue/38225), so not there.
		attrs = windows.FILE_ATTRIBUTE_READONLY
	}
	if flag&os.O_SYNC != 0 {
		attrs |= windows.FILE_FLAG_WRITE_THROUGH
	}
	share := uint32(windows.FILE_SHARE_READ | windows.FILE_SHARE_WRITE | windows.FILE_SHARE_DELETE)
	h, err := windows.CreateFile(p, access, share, nil, disp, attrs, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(h), path), nil
}

// preallocate writes zeros: NTFS allocates written ranges, so the mapping
// never meets an unallocated page.
func (windowsOps) preallocate(f *os.File, size int64) error { return zeroFill(f, size) }

func (windowsOps) syncRange(m []byte, f *os.File, off, n int) error {
	addr := uintptr(unsafe.Pointer(&m[off]))
	if err := windows.FlushViewOfFile(addr, uintptr(n)); err != nil {
		return os.NewSyscallError("FlushViewOfFile", err)
	}
	return windowsOps{}.syncFile(f)
}

func (windowsOps) syncFile(f *os.File) error {
	if err := windows.FlushFileBuffers(windows.Handle(f.Fd())); err != nil {
		return os.NewSyscallError("FlushFileBuffers", err)
	}
	return nil
}

// syncDir: Windows has no directory fsync; NTFS journals metadata itself.
func (windowsOps) syncDir(string) error { return nil }

func (windowsOps) lock(f *os.File) error {
	var ol windows.Overlapped
	err := windows.LockFileEx(windows.Handle(f.Fd()),
		windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ol)
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) || errors.Is(err, syscall.Errno(windows.ERROR_IO_PENDING)) {
		return ErrLockHeld
	}
	return err
}

func (windowsOps) unlock(f *os.File) error {
	var ol windows.Overlapped
	return windows.UnlockFileEx(windows.Handle(f.Fd()), 0, 1, 0, &ol)
}

// lockDir: a directory handle cannot be locked on Windows; the lock file,
// opened without FILE_SHARE_DELETE, cannot be deleted while held.
func (windowsOps) lockDir(string) (*os.File, error) { return nil, nil }

// renameMapped: a mapped file is not renamed on Windows. Unmap (mmap-go
// flushes the view first) and close, rename, then open and map again; the
// page cache keeps the contents, so nothing is read from disk.
func (windowsOps) renameMapped(f *os.File, m []byte, to string) (*os.File, []byte, error) {
	size, from := len(m), f.Name()
	err := Unmap(m)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(from, to)
	}
	if err != nil {
		return nil, nil, err
	}
	nf, err := windowsOps{}.openFile(to, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, err
	}
	nm, err := Map(nf, size)
	if err != nil {
		nf.Close()
		return nil, nil, err
	}
	return nf, nm, nil
}

func (windowsOps) prefault([]byte) error { return nil }

func (windowsOps) prefaultRead([]byte) error { return nil }

func (windowsOps) readFileAt(path string, b []byte, off int64) (int, error) {
	return readFileAtPortable(path, b, off)
}
