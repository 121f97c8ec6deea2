//go:build unix

package platform

import (
	"os"
	"syscall"
)

func statBlocks(fi os.FileInfo) (int64, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int64(st.Blocks), true
}
