package mmapwal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/mmapwal/wal/format"
)

// Read-only access: following the writer process — wal.meta, new records,
// new segments — and rebuilding the view from the directory.

// checkMeta returns the logical first seq, rereading wal.meta (and
// refreshing the view) if it changed since it was last read.
func (ro *roLog) checkMeta() (uint64, error) {
	fi, err := os.Stat(ro.metaPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("mmapwal: stat %s: %w", ro.metaPath, err)
	}
	if m := ro.metaNow.Load(); m != nil && sameMeta(m.fi, fi) {
		return ro.view.Load().first, nil
	}
	ro.mu.Lock()
	defer ro.mu.Unlock()
	if !sameMeta(ro.metaFI, fi) || !ro.metaSeen {
		if err := ro.reloadMetaLocked(); err != nil {
			return 0, err
		}
	}
	return ro.view.Load().first, nil
}

// sameMeta: a and b (nil: absent) are the same version of wal.meta. It is
// replaced by rename, so a new version is a new file.
func sameMeta(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}

// readMeta reads wal.meta: its logical first seq (0 if absent) and stat.
func (ro *roLog) readMeta() (uint64, os.FileInfo, error) {
	for attempt := 0; ; attempt++ {
		f, err := os.Open(ro.metaPath)
		if errors.Is(err, os.ErrNotExist) {
			return 0, nil, nil
		}
		if err != nil {
			return 0, nil, fmt.Errorf("mmapwal: read %s: %w", ro.metaPath, err)
		}
		fi, err := f.Stat()
		var b [format.MetaSize + 1]byte
		n := 0
		if err == nil {
			n, err = f.ReadAt(b[:], 0)
			if errors.Is(err, io.EOF) {
				err = nil
			}
		}
		f.Close()
		if err != nil {
			return 0, nil, fmt.Errorf("mmapwal: read %s: %w", ro.metaPath, err)
		}
		first, derr := format.DecodeMeta(b[:n])
		if derr == nil {
			return first, fi, nil
		}
		if attempt == 2 {
			return 0, nil, &CorruptError{File: ro.metaPath, Offset: 0, Reason: derr.Error()}
		}
		time.Sleep(time.Millisecond) // written by rename: a bad one is not a torn write; look again
	}
}

// reloadMetaLocked rereads wal.meta and applies its first seq to the
// view: segments wholly before it leave. REQUIRES: ro.mu held.
func (ro *roLog) reloadMetaLocked() error {
	first, fi, err := ro.readMeta()
	if err != nil {
		return err
	}
	ro.metaFI, ro.metaSeen, ro.metaFirst = fi, true, first
	defer ro.metaNow.Store(&roMeta{fi: fi}) // after the view has its first seq
	v := ro.view.Load()
	if first <= v.first {
		return nil
	}
	nv := *v
	nv.first = first
	if nv.last < first-1 {
		nv.last = first - 1 // emptied: the writer's next record gets first
	}
	keep := 0
	for keep+1 < len(nv.segs) && nv.segs[keep+1].firstSeq <= first {
		keep++
	}
	if nv.last < first {
		keep = len(nv.segs) // nothing left to read
	}
	dropped := nv.segs[:keep]
	nv.segs = slices.Clone(nv.segs[keep:])
	if len(nv.segs) == 0 {
		nv.tailOff, nv.lastFrame = 0, roFrame{}
	}
	ro.publishLocked(&nv)
	for _, s := range dropped {
		ro.retire(s)
	}
	return nil
}

// poll looks for what the writer did since the last look: a changed
// wal.meta, records after the known end, a new segment; anything else (the
// last record changed or is being cut, the last segment gone) makes it
// rebuild the view from the directory.
func (ro *roLog) poll() {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	if ro.closed.Load() {
		return
	}
	if err := ro.pollLocked(); err != nil {
		ro.w.log.Warn("mmapwal: read-only refresh failed", "dir", ro.dir, "err", err)
	}
}

// refresh rebuilds the view from the directory.
func (ro *roLog) refresh() {
	ro.mu.Lock()
	defer ro.mu.Unlock()
	if ro.closed.Load() {
		return
	}
	if err := ro.rebuildLocked(); err != nil {
		ro.w.log.Warn("mmapwal: read-only refresh failed", "dir", ro.dir, "err", err)
	}
}

// pollLocked is poll. REQUIRES: ro.mu held.
func (ro *roLog) pollLocked() error {
	fi, err := os.Stat(ro.metaPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if !sameMeta(ro.metaFI, fi) || !ro.metaSeen {
		if err := ro.reloadMetaLocked(); err != nil {
			return err
		}
	}
	v := ro.view.Load()
	if len(v.segs) == 0 {
		return ro.rebuildLocked() // an empty log: any segment may appear
	}
	L := v.segs[len(v.segs)-1]
	if v.lastFrame.s != nil && v.lastFrame.s != L {
		return ro.rebuildLocked()
	}
	if err := ro.pin(L); err != nil {
		return ro.rebuildLocked()
	}
	intact := L.linked() && (v.lastFrame.s == nil || v.lastFrame.still())
	var r roScanResult
	if intact {
		r, err = L.scan(v.tailOff, v.last+1)
	}
	var lastCRC uint32
	if intact && err == nil && r.Next > v.last+1 {
		lastCRC = frameCRCAt(L, r.Offsets[len(r.Offsets)-1])
	}
	L.mu.RUnlock()
	if !intact {
		return ro.rebuildLocked()
	}
	if err != nil {
		return err
	}
	if r.Next > v.last+1 {
		nv := *v
		ro.extendLocked(&nv, L, r, lastCRC)
		ro.publishLocked(&nv)
		v = &nv
	}
	return ro.followRotationLocked(v)
}

// extendLocked adds the records r found in the last segment L to nv.
// REQUIRES: ro.mu held.
func (ro *roLog) extendLocked(nv *roView, L *roSeg, r roScanResult, lastCRC uint32) {
	L.mu.Lock()
	if k := int(nv.last + 1 - L.firstSeq); k == len(L.offs) {
		L.offs = append(L.offs, r.Offsets...)
	}
	L.mu.Unlock()
	nv.last = r.Next - 1
	nv.tailOff = r.End
	nv.lastFrame = roFrame{s: L, off: r.Offsets[len(r.Offsets)-1], seq: r.Next - 1, crc: lastCRC}
}

// followRotationLocked adopts the writer's next segments: a segment named
// for the seq after the view's last record, with a valid header of this
// log. REQUIRES: ro.mu held.
func (ro *roLog) followRotationLocked(v *roView) error {
	for {
		path := filepath.Join(ro.dir, format.SegmentName(v.last+1))
		if _, err := os.Stat(path); err != nil {
			return nil
		}
		s, err := ro.adopt(path, v.last+1)
		if err != nil || s == nil {
			return err
		}
		nv := *v
		nv.segs = append(slices.Clone(v.segs), s)
		nv.tailOff, nv.lastFrame = format.SegmentHeaderSize, roFrame{}
		if err := ro.pin(s); err != nil {
			return nil // gone again: the next look sorts it out
		}
		r, err := s.scan(format.SegmentHeaderSize, s.firstSeq)
		var lastCRC uint32
		if err == nil && r.Next > s.firstSeq {
			lastCRC = frameCRCAt(s, r.Offsets[len(r.Offsets)-1])
		}
		s.mu.RUnlock()
		if err != nil {
			return err
		}
		if r.Next > s.firstSeq {
			ro.extendLocked(&nv, s, r, lastCRC)
		}
		ro.publishLocked(&nv)
		v = &nv
		if r.Next == s.firstSeq {
			return nil
		}
	}
}

// adopt makes a roSeg of the segment file at path (named for seq): nil if
// it is not (or not yet) a segment of this log that may be read.
func (ro *roLog) adopt(path string, seq uint64) (*roSeg, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil
	}
	h, err := readSegmentHeader(path)
	if err != nil || h == nil || h.FirstSeq != seq {
		return nil, nil // vanished, or a header not written yet
	}
	if err := checkOwner(path, *h, ro.logID); err != nil {
		return nil, err
	}
	for _, d := range ro.dropped {
		if os.SameFile(d.fi, fi) && d.id == h.ID {
			return nil, nil // recovery would remove it: after a torn tail
		}
	}
	return &roSeg{path: path, firstSeq: seq, id: h.ID, seed: format.SegmentSeed(h.ID), size: fi.Size(), fi: fi}, nil
}

// rebuildLocked builds the view again from the directory: wal.meta, the
// segment files (reusing those still linked), the last segment scanned
// from its header. REQUIRES: ro.mu held.
func (ro *roLog) rebuildLocked() error {
	if err := ro.reloadMetaLocked(); err != nil {
		return err
	}
	old := ro.view.Load()
	ents, err := os.ReadDir(ro.dir)
	if err != nil {
		return fmt.Errorf("mmapwal: read directory %s: %w", ro.dir, err)
	}
	var seqs []uint64
	for _, e := range ents {
		if seq, ok := format.ParseSegmentName(e.Name()); ok {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	reuse := map[string]*roSeg{}
	for _, s := range old.segs {
		reuse[s.path] = s
	}
	var segs []*roSeg
	for _, seq := range seqs {
		path := filepath.Join(ro.dir, format.SegmentName(seq))
		if s := reuse[path]; s != nil && s.linked() {
			segs = append(segs, s)
			continue
		}
		s, err := ro.adopt(path, seq)
		if err != nil {
			return err
		}
		if s == nil {
			if len(segs) == 0 {
				continue // deleted from the front meanwhile
			}
			break // the log ends before it
		}
		segs = append(segs, s)
	}
	first := old.first
	if ro.metaFirst != 0 {
		first = max(first, ro.metaFirst)
	}
	for len(segs) > 1 && segs[1].firstSeq <= first {
		segs = segs[1:]
	}
	nv := &roView{first: first, last: first - 1}
	if len(segs) > 0 {
		nv.segs = segs
		nv.first = max(ro.metaFirst, segs[0].firstSeq)
		L := segs[len(segs)-1]
		if err := ro.pin(L); err != nil {
			if errors.Is(err, errROChanged) {
				nv.segs = segs[:len(segs)-1] // the next look sorts it out
				L = nil
			} else {
				return err
			}
		}
		if L != nil {
			r, err := L.scan(format.SegmentHeaderSize, L.firstSeq)
			var lastCRC uint32
			if err == nil && r.Next > L.firstSeq {
				lastCRC = frameCRCAt(L, r.Offsets[len(r.Offsets)-1])
			}
			L.mu.RUnlock()
			if err != nil {
				return err
			}
			L.mu.Lock()
			L.offs = r.Offsets
			L.mu.Unlock()
			nv.last = r.Next - 1
			nv.tailOff = r.End
			if r.Next > L.firstSeq {
				nv.lastFrame = roFrame{s: L, off: r.Offsets[len(r.Offsets)-1], seq: r.Next - 1, crc: lastCRC}
			}
		}
		if nv.last < nv.first {
			nv.last = nv.first - 1
		}
	}
	ro.publishLocked(nv)
	for _, s := range old.segs {
		if !slices.Contains(nv.segs, s) {
			ro.retire(s)
		}
	}
	return nil
}
