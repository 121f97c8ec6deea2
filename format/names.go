package format

import (
	"fmt"
	"strconv"
	"strings"
)

// File names in a WAL directory.
const (
	SegmentExt = ".seg"
	IndexExt   = ".idx"
	TempExt    = ".tmp"
	MetaName   = "wal.meta"
	// IdentityName holds the log's identity (its log ID), written once,
	// durably, before the log's first segment is created.
	IdentityName = "wal.id"
	LockName     = "LOCK"
	// CleanName is the clean-close manifest (see "Clean-close manifest" in
	// the package documentation): written by Close, trusted by the next
	// Open only when every file it describes is provably unchanged.
	CleanName = "wal.clean"
)

// SegmentName is the file name of the segment whose first seq is seq.
func SegmentName(seq uint64) string { return fmt.Sprintf("%020d%s", seq, SegmentExt) }

// IndexName is the file name of the index of the segment starting at seq.
func IndexName(seq uint64) string { return fmt.Sprintf("%020d%s", seq, IndexExt) }

// ParseSegmentName returns the first seq encoded in a segment file name.
func ParseSegmentName(name string) (uint64, bool) { return parseNumbered(name, SegmentExt) }

// ParseIndexName returns the first seq encoded in an index file name.
func ParseIndexName(name string) (uint64, bool) { return parseNumbered(name, IndexExt) }

func parseNumbered(name, ext string) (uint64, bool) {
	base, ok := strings.CutSuffix(name, ext)
	if !ok || len(base) != 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(base, 10, 64)
	if err != nil || n == 0 {
		return 0, false
	}
	return n, true
}

// IsTemp reports whether name is a temporary file mmapwal may have left
// behind (a prepared segment, an index or meta file being replaced).
func IsTemp(name string) bool {
	return strings.HasSuffix(name, SegmentExt+TempExt) || strings.HasSuffix(name, IndexExt+TempExt) ||
		name == MetaName+TempExt || name == IdentityName+TempExt || name == CleanName+TempExt
}
