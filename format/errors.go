package format

import (
	"errors"
	"fmt"
)

// Sentinel errors shared by every package; mmapwal re-exports them.
var (
	ErrNotFound       = errors.New("mmapwal: not found")
	ErrClosed         = errors.New("mmapwal: closed")
	ErrCorrupt        = errors.New("mmapwal: corrupt")
	ErrTooLarge       = errors.New("mmapwal: record too large")
	ErrLocked         = errors.New("mmapwal: directory locked by another WAL")
	ErrInvalidOptions = errors.New("mmapwal: invalid options")
	ErrTruncated      = errors.New("mmapwal: truncated by a concurrent TruncateBack")
	ErrReadOnly       = errors.New("mmapwal: log opened read-only")
)

// CorruptError says where damage was found. errors.Is(err, ErrCorrupt) holds.
type CorruptError struct {
	File   string // path of the damaged file
	Offset int64  // byte offset in File of the damaged frame or header (-1 if unknown)
	Seq    uint64 // seq expected at Offset (0 if unknown)
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("mmapwal: corrupt: %s at offset %d (seq %d): %s", e.File, e.Offset, e.Seq, e.Reason)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }
