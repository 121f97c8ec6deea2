package mmapwal

import (
	"errors"
	"os"
	"syscall"

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

// transientError marks a sync that could not be done now but lost nothing:
// opening the directory for its sync failed for lack of descriptors or
// memory (EMFILE, ENFILE, ENOMEM). Unlike a failed fsync or msync (EIO: Linux
// drops the failed pages, so a retry would report success for lost data),
// it is not sticky: the same sync is tried again by the next flush, Sync or
// Close.
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() + " (not sticky: the sync is retried)" }
func (e *transientError) Unwrap() error { return e.err }

// dirSyncError classifies an error of syncDir.
func dirSyncError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ENOMEM) {
		return &transientError{err}
	}
	return err
}

// isTransient reports whether err is only "could not do it now".
func isTransient(err error) bool {
	var t *transientError
	return errors.As(err, &t)
}
