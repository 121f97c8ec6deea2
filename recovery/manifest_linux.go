//go:build linux

package recovery

import (
	"errors"

	"golang.org/x/sys/unix"

	"github.com/mmapwal/wal/format"
)

var _ stamper = (*fdDir)(nil)

func (d *fdDir) stamp(name string) (format.FileStamp, bool) {
	var st unix.Stat_t
	err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	for errors.Is(err, unix.EINTR) {
		err = unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	}
	if err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return format.FileStamp{}, false
	}
	return format.FileStamp{Dev: st.Dev, Ino: st.Ino, Ctime: st.Ctim.Nano(), Size: st.Size}, true
}
