package mmapwal

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/index"
	"github.com/mmapwal/wal/platform"
	"github.com/mmapwal/wal/recovery"
)

// Read-only access (Options.ReadOnly): a view of a log that another process
// may be writing, built from the files alone. Nothing here writes, creates,
// deletes or locks a file; every mapping is PROT_READ.
//
// The writer shares nothing with us but the files, so the view can be stale
// at any moment. It is refreshed when a read asks beyond its end, when a
// follower polls (Wait), and when a check fails; and no record is returned
// unless, after it was copied and its checksum verified, all of these held:
//
//   - the frame header at its offset is unchanged (seq and checksum): the
//     writer's TruncateBack zeroes the frames it cut before it returns, and
//     a record appended later at that offset carries another checksum;
//   - the segment's index does not say "truncating" below that offset;
//   - the segment file is still the one at its path (a TruncateBack across
//     segments deletes the later ones first; a retention or TruncateFront
//     deletes older ones: our mapping would outlive the file);
//   - wal.meta is unchanged, or its new logical first seq is at or below
//     the record's (TruncateFront writes wal.meta before it returns).
//
// A check that fails makes the read refresh the whole view and try again.
// So a record the writer cut before the read began is never returned; one
// cut while the read runs may be, as with a Read racing TruncateBack in the
// writer's own process. A Reader also checks, after each copy, that the
// record it returned last (its anchor) still holds: records are cut only as
// a suffix, so an intact anchor means nothing it returned was cut, and a
// changed one ends the Reader with ErrTruncated.
//
// The view ends where its last segment's valid frames end (each frame
// checked: checksum, seq continuity, batches complete), never beyond a
// "truncating" checkpoint; the writer's next segment is adopted once its
// name (the next seq) appears with a valid header of this log. Segments
// recovery would remove at Open (a torn tail's later segments) are never
// adopted, so a crashed log shows its valid prefix only.

// ROPollInterval is how often a Reader.Wait on a read-only WAL looks for
// records the writer process appended: Wait returns within about this delay
// (plus the time to check the new records) after the writer published them.
// Nothing polls while no one waits.
const ROPollInterval = 5 * time.Millisecond

// roLog is the read-only machinery of a WAL.
type roLog struct {
	w         *WAL
	dir       string
	metaPath  string
	logID     uint64
	maxMapped int

	// mu serialises refreshes and guards what they read and write.
	// Lock order: mu, then a roSeg's mu, then mapMu.
	mu        sync.Mutex
	metaFI    os.FileInfo // wal.meta when last read (nil: absent)
	metaSeen  bool        // metaFI is meaningful
	metaFirst uint64      // the first seq wal.meta held (0: none)
	// metaNow is metaFI for readers that check it without mu.
	metaNow atomic.Pointer[roMeta]
	dropped []roDropped // segment files Open's recovery would remove: never adopted
	view    atomic.Pointer[roView]
	closed  atomic.Bool

	mapMu  sync.Mutex
	mapped []*roSeg // mapped segments, oldest mapping first (bounded by maxMapped)
}

type roMeta struct{ fi os.FileInfo }

type roDropped struct {
	fi os.FileInfo
	id uint64 // its segment ID (0 if its header did not decode)
}

// roView is an immutable snapshot of the log as last seen.
type roView struct {
	segs  []*roSeg
	first uint64 // logical first seq
	last  uint64 // last complete record; first-1 when the log is empty
	// In the last segment: the offset after its last complete record.
	tailOff int64
	// The frame of record last (s nil if it is not in the last segment).
	lastFrame roFrame
}

func (v *roView) find(seq uint64) *roSeg {
	i, _ := slices.BinarySearchFunc(v.segs, seq, func(s *roSeg, seq uint64) int {
		if s.firstSeq <= seq {
			return -1
		}
		return 1
	})
	if i == 0 {
		return nil
	}
	return v.segs[i-1]
}

// roSeg is one segment file as the read-only view knows it.
type roSeg struct {
	path     string
	firstSeq uint64
	id       uint64
	seed     uint32
	size     int64
	fi       os.FileInfo // the file at adoption: identity for "still linked"

	// RLock: data and idx are in use. Lock: mapping, unmapping, offs.
	mu   sync.RWMutex
	data []byte       // PROT_READ mapping; nil when not mapped
	idx  *index.Index // read-only; nil when missing, invalid or not mapped
	offs []int64      // offsets of records firstSeq.. found by scanning
	gone bool         // retired: never mapped again
}

// roFrame identifies the frame a record was read from.
type roFrame struct {
	s   *roSeg
	off int64
	seq uint64
	crc uint32
}

var errROChanged = errors.New("mmapwal: read-only view changed")

// openReadOnly opens dir for reading only (see Options.ReadOnly).
func openReadOnly(dir string, o Options) (*WAL, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("mmapwal: open %s read-only: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("mmapwal: open %s read-only: not a directory", dir)
	}
	w := &WAL{dir: dir, opts: o, log: o.Logger, done: make(chan struct{}), pending: map[uint64]uint64{}}
	w.pubCond.L = &w.pubMu
	w.segs.Store(&segList{})
	ro := &roLog{w: w, dir: dir, metaPath: filepath.Join(dir, format.MetaName), maxMapped: max(o.MaxMappedSegments, 2)}
	w.ro = ro
	logID, _, err := loadIdentity(dir)
	if err != nil {
		return nil, err
	}
	// Recovery's plan: what it would cut (reported, not applied), and which
	// files it would remove. A writer changing files as it looks can make it
	// fail to open one: look again.
	var rep *recovery.Report
	for attempt := 0; ; attempt++ {
		rep, err = recovery.Recover(dir, &recovery.Options{Logger: w.log, ReadOnly: true, LogID: logID})
		if err == nil || attempt == 4 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		return nil, err
	}
	if logID == 0 {
		logID = rep.LogID
	}
	ro.logID = logID
	w.rec = RecoveryStats{
		BytesTruncated: rep.BytesZeroed, RecordsDropped: rep.RecordsDropped, TornFile: rep.TornFile,
		TornOffset: rep.TornOffset, TempFilesRemoved: len(rep.TempRemoved), FilesRemoved: len(rep.FilesRemoved),
		ScannedBytes: rep.ScannedBytes, IndexesRebuilt: rep.IndexesInvalid,
	}
	for _, p := range rep.FilesRemoved {
		if _, ok := format.ParseSegmentName(filepath.Base(p)); !ok {
			continue
		}
		dfi, err := os.Stat(p)
		if err != nil {
			continue // gone already: nothing to refuse
		}
		d := roDropped{fi: dfi}
		if h, _ := readSegmentHeader(p); h != nil {
			d.id = h.ID
		}
		ro.dropped = append(ro.dropped, d)
	}
	// The bounds of a log without segments until the writer adds some.
	first := cmp.Or(rep.MetaFirst, rep.NextSeq, o.FirstSeq)
	if rep.MetaFirst == 0 && len(rep.Segments) > 0 {
		// rebuildLocked drops segments wholly before the view's first seq:
		// starting from NextSeq would hide every sealed segment.
		first = rep.Segments[0].FirstSeq
	}
	ro.view.Store(&roView{first: first, last: first - 1})
	ro.mu.Lock()
	err = ro.rebuildLocked()
	ro.mu.Unlock()
	if err != nil {
		ro.close()
		return nil, err
	}
	return w, nil
}

// publishLocked installs v and the bounds generic code reads.
// REQUIRES: ro.mu held.
func (ro *roLog) publishLocked(v *roView) {
	ro.view.Store(v)
	ro.w.first.Store(v.first)
	ro.w.published.Store(v.last)
}

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

// scanLimit is where frames of s may end: its size, or the end offset of a
// "truncating" checkpoint (what lies after it is being cut).
// REQUIRES: s pinned.
func (s *roSeg) scanLimit() int64 {
	limit, _ := s.checkpoint()
	return limit
}

// checkpoint is scanLimit and the seq after the records the index
// checkpoint vouches for (s.firstSeq if none). REQUIRES: s pinned.
func (s *roSeg) checkpoint() (limit int64, trustedNext uint64) {
	limit, trustedNext = int64(len(s.data)), s.firstSeq
	if s.idx == nil {
		return limit, trustedNext
	}
	ih, err := s.idx.ReadHeader()
	if err != nil || ih.SegmentID != s.id || ih.FirstSeq != s.firstSeq {
		return limit, trustedNext
	}
	if ih.Flags&format.IndexTruncating != 0 && ih.EndOffset >= format.SegmentHeaderSize && int64(ih.EndOffset) < limit {
		limit = int64(ih.EndOffset)
	}
	return limit, s.firstSeq + ih.Count
}

// scan checks s's frames from off (record seq) on. REQUIRES: s pinned.
func (s *roSeg) scan(off int64, seq uint64) (roScanResult, error) {
	var r roScanResult
	limit, trusted := s.checkpoint()
	if off > limit {
		return roScanResult{End: off, Next: seq}, nil
	}
	if ferr := platform.CatchFault(func() {
		r = roScan(s.data[:limit], s.seed, off, seq, trusted)
	}); ferr != nil {
		return r, &CorruptError{File: s.path, Offset: off, Seq: seq, Reason: ferr.Error()}
	}
	return r, nil
}

// still reports whether the frame f read is still there, unchanged,
// and not being cut. REQUIRES: f.s pinned.
func (f roFrame) still() bool {
	s := f.s
	ok := false
	_ = platform.CatchFault(func() {
		h, st := format.CheckFrameHeader(s.data, f.off, format.MaxRecordLength)
		ok = st == format.FrameOK && h.Seq == f.seq && h.CRC == f.crc
	})
	return ok && f.off < s.scanLimit()
}

// readFrame locates, copies and checks record seq of s. REQUIRES: s pinned.
func (ro *roLog) readFrame(s *roSeg, dst []byte, seq uint64) ([]byte, roFrame, readStatus) {
	n := len(dst)
	fr := roFrame{s: s, off: -1, seq: seq}
	st := readBadIndex
	ferr := platform.CatchFault(func() {
		i := seq - s.firstSeq
		var h format.FrameHeader
		at := func(off int64) bool {
			var hst format.FrameStatus
			h, hst = format.CheckFrameHeader(s.data, off, format.MaxRecordLength)
			return hst == format.FrameOK && h.Seq == seq
		}
		off, ok := int64(-1), false
		if s.idx != nil {
			if o, in := s.idx.Get(i); in && o >= format.SegmentHeaderSize {
				off, ok = o, at(o)
			}
		}
		if !ok && i < uint64(len(s.offs)) {
			off = s.offs[i]
			ok = at(off)
		}
		if !ok {
			return
		}
		fr.off, fr.crc = off, h.CRC
		p := off + format.FrameHeaderSize
		if h.Length > uint64(ro.w.opts.MaxRecordSize) &&
			format.FrameCRC(s.seed, s.data[off:p], s.data[p:p+int64(h.Length)]) != h.CRC {
			st = readBadCRC // checked in place before a large allocation
			return
		}
		dst = append(dst, s.data[p:p+int64(h.Length)]...)
		if format.FrameCRC(s.seed, s.data[off:p], dst[n:]) != h.CRC {
			dst, st = dst[:n], readBadCRC
			return
		}
		st = readOK
	})
	if ferr != nil {
		return dst[:n], fr, readFault
	}
	return dst, fr, st
}

// rescanOffsets rebuilds s.offs from the segment (its index failed).
func (ro *roLog) rescanOffsets(s *roSeg) error {
	if err := ro.pin(s); err != nil {
		return err
	}
	r, err := s.scan(format.SegmentHeaderSize, s.firstSeq)
	s.mu.RUnlock()
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.offs = r.Offsets
	s.mu.Unlock()
	return nil
}

// read copies record seq into dst after the checks in the file comment,
// and returns the frame it came from.
func (ro *roLog) read(dst []byte, seq uint64) ([]byte, roFrame, error) {
	n := len(dst)
	var fail error
	rescanned := false
	for attempt := 0; attempt < 4; attempt++ {
		if ro.closed.Load() {
			return dst, roFrame{}, ErrClosed
		}
		v := ro.view.Load()
		if seq > v.last {
			ro.poll() // asks beyond the known end: look for new records
			v = ro.view.Load()
		}
		if seq < v.first || seq > v.last {
			return dst, roFrame{}, ro.notFound(v, seq)
		}
		s := v.find(seq)
		if s == nil {
			return dst, roFrame{}, ro.notFound(v, seq)
		}
		if err := ro.pin(s); err != nil {
			if !errors.Is(err, errROChanged) {
				return dst, roFrame{}, err
			}
			ro.refresh()
			continue
		}
		out, fr, st := ro.readFrame(s, dst[:n], seq)
		ok := st == readOK && fr.still() && s.linked()
		s.mu.RUnlock()
		if ok {
			// wal.meta after the copy: a TruncateFront that returned before
			// this read began is seen here.
			first, err := ro.checkMeta()
			if err != nil {
				return dst[:n], roFrame{}, err
			}
			if seq < first {
				return dst[:n], roFrame{}, ro.notFound(ro.view.Load(), seq)
			}
			return out, fr, nil
		}
		dst = out[:n]
		switch st {
		case readFault:
			fail = &CorruptError{File: s.path, Offset: fr.off, Seq: seq, Reason: "fault reading the mapping (file shrunk?)"}
		case readBadCRC:
			fail = &CorruptError{File: s.path, Offset: fr.off, Seq: seq, Reason: "checksum mismatch"}
		case readBadIndex:
			fail = &CorruptError{File: s.path, Offset: -1, Seq: seq, Reason: "no valid frame with this seq in the segment"}
			if !rescanned {
				rescanned = true
				if err := ro.rescanOffsets(s); err != nil && !errors.Is(err, errROChanged) {
					return dst, roFrame{}, err
				}
				continue
			}
		}
		// Something changed under the view (or the data is damaged): look
		// at the directory again and retry.
		ro.refresh()
	}
	if fail == nil {
		fail = &CorruptError{File: ro.dir, Offset: -1, Seq: seq, Reason: "the log kept changing under the read"}
	}
	return dst, roFrame{}, fail
}

func (ro *roLog) notFound(v *roView, seq uint64) error {
	if ro.closed.Load() {
		return ErrClosed
	}
	if v.last < v.first {
		return fmt.Errorf("%w: seq %d (log is empty)", ErrNotFound, seq)
	}
	return fmt.Errorf("%w: seq %d outside [%d, %d]", ErrNotFound, seq, v.first, v.last)
}

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

// frameCRCAt is the checksum field of the frame at off. REQUIRES: s pinned.
func frameCRCAt(s *roSeg, off int64) uint32 {
	var crc uint32
	_ = platform.CatchFault(func() { crc = format.ParseFrameHeader(s.data[off:]).CRC })
	return crc
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

// close releases every mapping; later calls return ErrClosed.
func (ro *roLog) close() error {
	w := ro.w
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	w.closed, w.released = true, true
	w.mu.Unlock()
	close(w.done)
	ro.mu.Lock()
	defer ro.mu.Unlock()
	ro.closed.Store(true)
	for _, s := range ro.view.Load().segs {
		ro.retire(s)
	}
	ro.mapMu.Lock()
	left := ro.mapped
	ro.mapped = nil
	ro.mapMu.Unlock()
	for _, s := range left {
		s.mu.Lock()
		s.gone = true
		s.unmapLocked()
		s.mu.Unlock()
	}
	return nil
}

// newReader is NewReader on a read-only WAL: its anchor is the record
// before from, if the log holds it.
func (ro *roLog) newReader(from uint64) (*Reader, error) {
	ro.poll()
	v := ro.view.Load()
	if from == 0 {
		from = v.first
	}
	if from < v.first || from > v.last+1 {
		return nil, fmt.Errorf("%w: reader from seq %d outside [%d, %d]", ErrNotFound, from, v.first, v.last+1)
	}
	r := &Reader{w: ro.w, next: from}
	if from > v.first {
		if _, fr, err := ro.read(nil, from-1); err == nil {
			r.anchor = fr
		}
	}
	return r, nil
}

// anchorHolds reports whether the Reader's anchor is still in the log: true
// if it has none, or if it was dropped from the front (not a cut).
func (r *Reader) anchorHolds() bool {
	a := r.anchor
	if a.s == nil || a.seq < r.w.ro.view.Load().first {
		return true
	}
	if err := r.w.ro.pin(a.s); err != nil {
		return false
	}
	ok := a.still() && a.s.linked()
	a.s.mu.RUnlock()
	return ok
}

func (r *Reader) roTruncatedErr() error {
	return fmt.Errorf("%w: record %d, which this Reader returned, is no longer in the log; this Reader was at seq %d",
		ErrTruncated, r.anchor.seq, r.next)
}

// roNext is Next on a read-only WAL: one record at a time, each checked
// after its copy, and the anchor checked after that (a record read after a
// cut must not follow records the cut removed).
func (r *Reader) roNext() bool {
	ro := r.w.ro
	if ro.closed.Load() {
		r.err = ErrClosed
		return false
	}
	v := ro.view.Load()
	if r.next > v.last {
		ro.poll()
		v = ro.view.Load()
	}
	if r.next < v.first {
		r.err = ro.notFound(v, r.next)
		return false
	}
	if r.next > v.last {
		if !r.anchorHolds() {
			r.err = r.roTruncatedErr()
		}
		return false
	}
	buf, fr, err := ro.read(r.buf[:0], r.next)
	if err != nil {
		switch {
		case !r.anchorHolds():
			r.err = r.roTruncatedErr()
		case errors.Is(err, ErrNotFound) && r.next >= ro.view.Load().first:
			// the log now ends before r.next, and no record returned was cut
		default:
			r.err = err
		}
		return false
	}
	r.buf = buf
	if !r.anchorHolds() {
		r.err = r.roTruncatedErr()
		return false
	}
	r.val = buf[:len(buf):len(buf)]
	r.seq = r.next
	r.next++
	r.anchor = fr
	return true
}

// roWait is Wait on a read-only WAL: the writer is another process, so it
// polls every ROPollInterval while it waits.
func (r *Reader) roWait(ctx context.Context) error {
	t := time.NewTimer(ROPollInterval)
	defer t.Stop()
	for {
		if done, err := r.roReady(); done {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.w.done:
			return ErrClosed
		case <-t.C:
			t.Reset(ROPollInterval)
		}
	}
}

func (r *Reader) roReady() (bool, error) {
	ro := r.w.ro
	if r.closed || ro.closed.Load() {
		return true, ErrClosed
	}
	if r.err != nil {
		return true, r.err
	}
	ro.poll()
	v := ro.view.Load()
	if r.next < v.first {
		return true, ro.notFound(v, r.next)
	}
	if !r.anchorHolds() {
		return true, r.roTruncatedErr()
	}
	return r.next <= v.last, nil
}

// roScanResult is the run of complete records roScan found.
type roScanResult struct {
	End     int64   // offset after the last complete record
	Next    uint64  // seq after it
	Offsets []int64 // offsets of the complete records
}

// roScan walks the frames of a segment from off (record seq) on, checking
// each completely (header, length bound, checksum, seq continuity). A
// batch's records count once its last frame is seen, or once a later
// frame starts another record (the writer's TruncateBack cut the batch:
// what it kept are records), or where the index checkpoint (trustedNext)
// vouches for them. Anything else stops it: the end of what the writer has
// published, as far as the files show.
func roScan(data []byte, seed uint32, off int64, seq, trustedNext uint64) roScanResult {
	r := roScanResult{End: off, Next: seq}
	var pending []int64 // the open batch's frames
	accept := func(end int64) {
		r.Offsets = append(r.Offsets, pending...)
		r.Next += uint64(len(pending))
		r.End = end
		pending = pending[:0]
	}
	for {
		h, _, st := format.DecodeFrame(data, off, seed, format.MaxRecordLength)
		if st != format.FrameOK || h.Seq != seq {
			break
		}
		switch h.Kind {
		case format.KindFull, format.KindFirst:
			if len(pending) > 0 {
				accept(off) // a batch cut by TruncateBack
			}
		case format.KindMiddle, format.KindLast:
			if len(pending) == 0 {
				return r // a batch's tail with no start: not ours to judge
			}
		}
		pending = append(pending, off)
		off += format.FrameSize(int(h.Length))
		seq++
		if h.Kind == format.KindFull || h.Kind == format.KindLast {
			accept(off)
		}
	}
	if len(pending) > 0 && seq <= trustedNext {
		accept(off)
	}
	return r
}
