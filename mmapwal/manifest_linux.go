//go:build linux

package mmapwal

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/mmapwal/wal/format"
)

// stampFiles returns the stamps of names in dir, through one directory
// descriptor (fstatat): ok false if one is not a regular file.
func stampFiles(dir string, names []string) ([]format.FileStamp, bool, error) {
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, false, fmt.Errorf("open %s: %w", dir, err)
	}
	defer unix.Close(dfd)
	out := make([]format.FileStamp, len(names))
	for i, name := range names {
		var st unix.Stat_t
		err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		for errors.Is(err, unix.EINTR) {
			err = unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		}
		if err != nil {
			return nil, false, fmt.Errorf("stat %s/%s: %w", dir, name, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			return nil, false, nil
		}
		out[i] = format.FileStamp{Dev: st.Dev, Ino: st.Ino, Ctime: st.Ctim.Nano(), Size: st.Size}
	}
	return out, true, nil
}
