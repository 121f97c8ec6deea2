package mmapwal

import (
	"os"

	"github.com/mmapwal/wal/index"
	"github.com/mmapwal/wal/platform"
)

// durability is the seam at which durability is decided. Every byte mmapwal
// claims durable went through one of these calls first, so a test can
// replace them to record what a power cut would keep (see crash tests).
type durability interface {
	// syncSegment makes bytes [off, off+n) of s durable.
	syncSegment(s *segment, off, n int64) error
	// syncIndex makes an index file durable.
	syncIndex(x *index.Index) error
	// syncFile makes a regular file's contents durable (the meta file).
	syncFile(f *os.File) error
	// syncDir makes creations, renames and deletions in dir durable.
	syncDir(dir string) error
}

type osDurability struct{}

var _ durability = osDurability{}

func (osDurability) syncSegment(s *segment, off, n int64) error {
	return platform.SyncRange(s.data, s.f, int(off), int(n))
}
func (osDurability) syncIndex(x *index.Index) error { return x.Sync() }
func (osDurability) syncFile(f *os.File) error      { return platform.SyncFile(f) }
func (osDurability) syncDir(dir string) error       { return platform.SyncDir(dir) }
