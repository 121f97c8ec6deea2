package mmapwal

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/mmapwal/wal/format"
)

// writeCleanManifest writes wal.clean (see format.CleanName) at the end of
// a successful Close: after the final round synced every segment and every
// sealed segment's checkpoint, and before the last index's closed
// checkpoint is synced (Close syncs it next). The next Open then proves
// with two fstatat calls per segment, instead of reading each segment's
// header and checkpoint, that the files are the ones described here. The
// last index is not stamped: its closed checkpoint is still to be synced,
// and recovery checks it by content. A crash before that sync leaves a
// manifest whose last segment is not closed: recovery ignores it.
//
// The manifest is an optimisation: when it cannot be written (or the log
// is not in the state it describes: a record still unsynced, a sealed
// segment not checkpointed), Close goes on without it and the next Open
// runs the full analysis. Its failure is logged, never returned.
// REQUIRES: flushMu held, the final round done, no appender left.
func (w *WAL) writeCleanManifest() {
	path := filepath.Join(w.dir, format.CleanName)
	m, ok, err := w.cleanManifest()
	if err == nil && ok {
		err = w.replaceFile(format.CleanName, format.EncodeManifest(m))
	}
	if err != nil {
		w.log.Warn("mmapwal: clean-close manifest not written; the next Open reads every segment", "file", path, "err", err)
	}
}

// cleanManifest describes the log as the final round left it; ok false if
// it cannot be described (see writeCleanManifest).
func (w *WAL) cleanManifest() (*format.Manifest, bool, error) {
	w.mu.Lock()
	a, segs := w.active, w.segs.Load().segs
	clean := a != nil && len(segs) > 0 && segs[len(segs)-1] == a && w.published.Load() == w.nextSeq-1 &&
		len(w.dirty) <= 1 && (len(w.dirty) == 0 || w.dirty[0] == a)
	m := &format.Manifest{LogID: w.logID, Segments: make([]format.ManifestSegment, len(segs))}
	if clean {
		for i, s := range segs {
			ms := &m.Segments[i]
			ms.FirstSeq, ms.ID, ms.Size = s.firstSeq, s.id, s.size
			if s == a {
				ms.Count, ms.End = w.nextSeq-s.firstSeq, w.writeOff
			} else if s.sealed {
				ms.Count, ms.End = s.sealedLast-s.firstSeq+1, s.sealedEnd
			} else {
				clean = false
			}
		}
	}
	w.mu.Unlock()
	if !clean {
		return nil, false, nil
	}
	b, err := os.ReadFile(filepath.Join(w.dir, format.MetaName))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, false, err
	default:
		if m.MetaFirst, err = format.DecodeMeta(b); err != nil {
			return nil, false, nil // recovery judges a damaged wal.meta
		}
	}
	names := make([]string, 0, 2*len(segs)-1)
	for i, s := range segs {
		names = append(names, filepath.Base(s.path))
		if i < len(segs)-1 {
			names = append(names, filepath.Base(s.indexPath()))
		}
	}
	stamps, ok, err := stampFiles(w.dir, names)
	if err != nil || !ok {
		return nil, false, err
	}
	for i := range m.Segments {
		ms := &m.Segments[i]
		ms.Seg = stamps[2*i]
		if i < len(segs)-1 {
			ms.Index = stamps[2*i+1]
		}
		if ms.Seg.Size != ms.Size {
			return nil, false, nil
		}
	}
	return m, true, nil
}
