package mmapwal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/index"
	"github.com/mmapwal/wal/platform"
)

// Read-only access: mapping a view's segments (PROT_READ, bounded by
// MaxMappedSegments) and checking they are still the files at their paths.

// linked reports whether s's file is still the one at its path.
func (s *roSeg) linked() bool {
	fi, err := os.Stat(s.path)
	return err == nil && os.SameFile(fi, s.fi)
}

// pin returns with s mapped and s.mu read-locked, or an error
// (errROChanged: s is no longer the file at its path).
func (ro *roLog) pin(s *roSeg) error {
	for {
		s.mu.RLock()
		if s.gone {
			s.mu.RUnlock()
			return errROChanged
		}
		if s.data != nil {
			return nil
		}
		s.mu.RUnlock()
		s.mu.Lock()
		var err error
		mappedNow := false
		if !s.gone && s.data == nil {
			err = s.mapLocked(ro.logID)
			mappedNow = err == nil
		}
		s.mu.Unlock()
		if err != nil {
			return err
		}
		if mappedNow {
			ro.noteMapped(s)
		}
	}
}

// noteMapped bounds the mapped segments: the oldest mappings that no read
// is using are dropped (mapped again when read).
func (ro *roLog) noteMapped(s *roSeg) {
	ro.mapMu.Lock()
	defer ro.mapMu.Unlock()
	ro.mapped = append(ro.mapped, s)
	for i := 0; len(ro.mapped) > ro.maxMapped && i < len(ro.mapped); {
		c := ro.mapped[i]
		if c == s || !c.mu.TryLock() {
			i++
			continue
		}
		c.unmapLocked()
		c.mu.Unlock()
		ro.mapped = slices.Delete(ro.mapped, i, i+1)
	}
}

// mapLocked maps s and its index read-only, after checking that the file
// at s.path is still the one adopted. REQUIRES: s.mu held.
func (s *roSeg) mapLocked(logID uint64) error {
	f, err := os.Open(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return errROChanged
	}
	if err != nil {
		return fmt.Errorf("mmapwal: map segment %s: %w", s.path, err)
	}
	defer f.Close() // nothing is synced through a read-only mapping
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("mmapwal: map segment %s: %w", s.path, err)
	}
	if !os.SameFile(fi, s.fi) || fi.Size() < s.size {
		return errROChanged
	}
	data, err := platform.MapReadOnly(f, int(s.size))
	if err != nil {
		return fmt.Errorf("mmapwal: map segment %s: %w", s.path, err)
	}
	var h format.SegmentHeader
	var herr error
	if ferr := platform.CatchFault(func() { h, herr = format.DecodeSegmentHeader(data) }); ferr != nil {
		herr = ferr
	}
	if herr == nil && (h.ID != s.id || h.FirstSeq != s.firstSeq) {
		herr = errROChanged
	}
	if herr == nil {
		herr = checkOwner(s.path, h, logID)
	}
	if herr != nil {
		platform.Unmap(data)
		if errors.Is(herr, ErrCorrupt) {
			return herr
		}
		return errROChanged
	}
	s.data = data
	// The index is only a hint (every offset is checked): without it, reads
	// scan the segment into s.offs.
	idxPath := filepath.Join(filepath.Dir(s.path), format.IndexName(s.firstSeq))
	if x, err := index.OpenReadOnly(idxPath, format.IndexCapacity(s.size)); err == nil {
		if ih := x.Header(); ih.SegmentID == s.id && ih.FirstSeq == s.firstSeq {
			s.idx = x
		} else {
			x.Close()
		}
	}
	return nil
}

// unmapLocked drops s's mappings. REQUIRES: s.mu held.
func (s *roSeg) unmapLocked() {
	if s.data != nil {
		platform.Unmap(s.data)
		s.data = nil
	}
	if s.idx != nil {
		s.idx.Close()
		s.idx = nil
	}
}

// retire unmaps s for good (it left the view).
func (ro *roLog) retire(s *roSeg) {
	s.mu.Lock()
	s.gone = true
	s.unmapLocked()
	s.mu.Unlock()
	ro.mapMu.Lock()
	if i := slices.Index(ro.mapped, s); i >= 0 {
		ro.mapped = slices.Delete(ro.mapped, i, i+1)
	}
	ro.mapMu.Unlock()
}
