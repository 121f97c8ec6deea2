package mmapwal

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/platform"
)

// Log identity: every log has a random, non-zero log ID, kept in wal.id and
// written into the header of every segment it creates, so that files of
// another log renamed into the directory are refused (ErrCorrupt naming the
// file) instead of serving that log's records. Segments written before
// identities existed carry zero and are accepted unchecked: a foreign file
// of that age cannot be told apart. See format's package doc.

// loadIdentity reads the log ID from wal.id; stored false means there is
// none (a new log, a log written before identities, or a copy that kept
// only the segments): the caller then adopts the log ID recovery found in
// the segments, or makes one, and writes wal.id. The segments themselves
// are checked by recovery's analysis (recovery.Options.LogID), before
// anything on disk changes: recovery would otherwise judge the log with the
// foreign records in it (and could cut a torn tail at the seam).
func loadIdentity(dir string) (logID uint64, stored bool, err error) {
	idPath := filepath.Join(dir, format.IdentityName)
	b, err := os.ReadFile(idPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("mmapwal: read %s: %w", idPath, err)
	}
	if logID, err = format.DecodeIdentity(b); err != nil {
		return 0, false, &CorruptError{File: idPath, Offset: 0, Reason: err.Error()}
	}
	return logID, true, nil
}

// readSegmentHeader reads and decodes path's header; nil if it does not
// decode (recovery's to judge).
func readSegmentHeader(path string) (*format.SegmentHeader, error) {
	var b [format.SegmentHeaderSize]byte
	if n, err := platform.ReadFileAt(path, b[:], 0); err != nil {
		return nil, fmt.Errorf("mmapwal: read header of %s: %w", path, err)
	} else if n < len(b) {
		return nil, nil
	}
	h, err := format.DecodeSegmentHeader(b[:])
	if err != nil {
		return nil, nil
	}
	return &h, nil
}

// checkOwner refuses a segment of another log. A zero log ID in the header
// is a segment written before identities: accepted unchecked.
func checkOwner(path string, h format.SegmentHeader, logID uint64) error {
	if h.LogID == 0 || h.LogID == logID || logID == 0 {
		return nil
	}
	return &CorruptError{File: path, Offset: 32, Seq: h.FirstSeq,
		Reason: fmt.Sprintf("segment belongs to another log (log ID %016x, this log is %016x)", h.LogID, logID)}
}
