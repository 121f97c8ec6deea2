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

// loadIdentity reads the log ID from wal.id and checks every segment header
// in dir against it. It runs before recovery, so a foreign file is refused
// before anything on disk changes: recovery would otherwise judge the log
// with the foreign records in it (and could cut a torn tail at the seam).
//
// With no wal.id, the log ID of the oldest segment that has one is adopted
// (a copy that kept only the segments); stored then says wal.id must be
// written. A log ID of 0 means none was found: a new log, or one written
// before identities.
//
// Headers that cannot be decoded are left to recovery, which knows whether
// they are a torn tail or corruption; a file that cannot be read fails Open.
func loadIdentity(dir string) (logID uint64, stored bool, err error) {
	idPath := filepath.Join(dir, format.IdentityName)
	b, err := os.ReadFile(idPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return 0, false, fmt.Errorf("mmapwal: read %s: %w", idPath, err)
	default:
		if logID, err = format.DecodeIdentity(b); err != nil {
			return 0, false, &CorruptError{File: idPath, Offset: 0, Reason: err.Error()}
		}
		stored = true
	}
	entries, err := os.ReadDir(dir) // sorted by name: the fixed-width names sort by seq
	if err != nil {
		return 0, false, err
	}
	adoptedFrom := ""
	for _, e := range entries {
		if _, ok := format.ParseSegmentName(e.Name()); !ok || !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		h, err := readSegmentHeader(path)
		if err != nil {
			return 0, false, err
		}
		if h == nil || h.LogID == 0 {
			continue
		}
		if logID == 0 {
			logID, adoptedFrom = h.LogID, path
			continue
		}
		if err := checkOwner(path, *h, logID); err != nil {
			if adoptedFrom != "" {
				return 0, false, fmt.Errorf("%w (%s is missing; log ID %016x adopted from %s)", err,
					format.IdentityName, logID, adoptedFrom)
			}
			return 0, false, err
		}
	}
	return logID, stored, nil
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

// writeIdentity durably records the log ID: temporary file, sync, rename,
// directory sync. It runs before the first segment carrying the ID exists.
func (w *WAL) writeIdentity(logID uint64) error {
	path := filepath.Join(w.dir, format.IdentityName)
	tmp := path + format.TempExt
	f, err := platform.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, w.opts.FileMode)
	if err != nil {
		return fmt.Errorf("mmapwal: write %s: %w", path, err)
	}
	_, err = f.Write(format.EncodeIdentity(logID))
	if err == nil {
		err = w.dur.syncFile(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = w.dur.syncDir(w.dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("mmapwal: write %s: %w", path, err)
	}
	return nil
}
