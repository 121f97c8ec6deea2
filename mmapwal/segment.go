package mmapwal

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/index"
	"github.com/mmapwal/wal/platform"
)

// segment is one mapped segment file and its index.
//
// Lifetime: refs starts at 1, owned by the segment list. Readers and the
// flusher acquire a reference before touching data and release it after;
// retire drops the list's reference and waits for the rest, and only then
// unmaps — so no goroutine ever touches an unmapped page. Appenders need no
// reference: truncation and Close wait for in-flight appends first.
type segment struct {
	firstSeq uint64
	id       uint64
	logID    uint64 // the log's identity, written into the header at activation
	seed     uint32
	path     string
	f        *os.File
	// wf is the descriptor appends pwrite frames through (Options.batchPwrite):
	// open while the segment may take appends, closed once every frame
	// reserved in it is written (closeWriteFile). nil: frames are copied
	// into the mapping.
	wf       atomic.Pointer[os.File]
	data     []byte // the mapping, len == size
	size     int64
	idx      *index.Index
	refs     atomic.Int64
	retiring atomic.Bool // set before the list's reference is dropped: background work stops
	prefault *prefaulter // its loop runs while the segment is prepared or active; nil if left unmapped at Open
	mc       mapState    // data, idx and f are valid only under a pin (mapcache.go)

	// Guarded by WAL.mu.
	sealed     bool   // no more appends; sealedEnd/sealedLast are final
	sealedEnd  int64  // offset after the last frame
	sealedLast uint64 // last seq in the segment
	// closedOnDisk: the index on disk says "closed, zeros after the end";
	// the first append must clear that durably first.
	closedOnDisk bool

	// Owned by the flusher (WAL.flushMu).
	syncedOff int64 // bytes [0, syncedOff) are durable
	named     bool  // the directory entry is durable

	rebuildMu sync.Mutex // serialises index rebuilds after a failed check
}

func (s *segment) acquire() bool {
	for {
		r := s.refs.Load()
		if r <= 0 {
			return false
		}
		if s.refs.CompareAndSwap(r, r+1) {
			return true
		}
	}
}

func (s *segment) release() { s.refs.Add(-1) }

// retire drops the list's reference and waits until no goroutine holds one.
// Afterwards s may be unmapped.
func (s *segment) retire() {
	s.retiring.Store(true)
	s.prefault.halt()
	s.release()
	s.waitIdle()
}

// waitIdle waits until only the caller's view remains. REQUIRES: the list's
// reference was dropped, so no new reference can be taken.
func (s *segment) waitIdle() {
	for i := 0; s.refs.Load() > 0; i++ {
		if i < 100 {
			runtime.Gosched()
		} else {
			time.Sleep(50 * time.Microsecond)
		}
	}
}

// unmap closes the mapping, file and index. REQUIRES: no references.
func (s *segment) unmap() error { return s.unmapFiles() }

// keepWriteFile makes s's data descriptor the one appends pwrite through,
// instead of letting adopt close it. REQUIRES: s is not yet adopted.
func (s *segment) keepWriteFile() {
	if s.f != nil {
		s.wf.Store(s.f)
		s.f = nil
	}
}

// closeWriteFile closes the pwrite descriptor, if any (idempotent).
// REQUIRES: no frame reserved in s is still being written (all published,
// or none reserved).
func (s *segment) closeWriteFile() error {
	if f := s.wf.Swap(nil); f != nil {
		return f.Close()
	}
	return nil
}

// segList is an immutable, ordered snapshot of the live segments. Readers
// load it with one atomic pointer read; writers replace it under WAL.mu.
type segList struct {
	segs []*segment
}

// find returns the segment that would hold seq (the last one starting at or
// before it), or nil.
func (l *segList) find(seq uint64) *segment {
	s := l.segs
	n := len(s)
	if n == 0 {
		return nil
	}
	if last := s[n-1]; seq >= last.firstSeq { // the common case: the tail
		return last
	}
	i := sort.Search(n, func(i int) bool { return s[i].firstSeq > seq })
	if i == 0 {
		return nil
	}
	return s[i-1]
}

func (l *segList) with(s *segment) *segList {
	segs := make([]*segment, 0, len(l.segs)+1)
	return &segList{segs: append(append(segs, l.segs...), s)}
}

func (l *segList) without(drop map[*segment]bool) *segList {
	segs := make([]*segment, 0, len(l.segs))
	for _, s := range l.segs {
		if !drop[s] {
			segs = append(segs, s)
		}
	}
	return &segList{segs: segs}
}

func newSegmentID() uint64 {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic(err) // crypto/rand never fails on supported platforms
		}
		if id := binary.LittleEndian.Uint64(b[:]); id != 0 {
			return id
		}
	}
}

var tempCounter atomic.Uint64

// prepareSegment creates a preallocated, mapped segment and index of the
// log logID under temporary names, with permissions perm. activate gives it
// its first seq and final names.
func prepareSegment(dir string, size int64, logID uint64, perm os.FileMode) (*segment, error) {
	n := tempCounter.Add(1)
	base := filepath.Join(dir, fmt.Sprintf("prepared-%d-%d", os.Getpid(), n))
	path := base + format.SegmentExt + format.TempExt
	f, err := platform.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*segment, error) {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	if err := platform.Preallocate(f, size); err != nil {
		return fail(err) // a failed fallocate can leave a partial file: delete it
	}
	data, err := platform.Map(f, int(size))
	if err != nil {
		return fail(err)
	}
	id := newSegmentID()
	idx, err := index.Create(base+format.IndexExt+format.TempExt, id, 0, format.IndexCapacity(size), perm)
	if err != nil {
		platform.Unmap(data)
		return fail(err)
	}
	s := &segment{id: id, logID: logID, seed: format.SegmentSeed(id), path: path, f: f, data: data, size: size, idx: idx,
		prefault: newPrefaulter()}
	s.refs.Store(1)
	return s, nil
}

// activate writes the header for firstSeq and renames the files to their
// final names. The directory sync that makes the names durable is left to
// the flusher, which does it before it syncs any byte of the segment.
func (s *segment) activate(dir string, firstSeq uint64) error {
	s.firstSeq = firstSeq
	if err := platform.CatchFault(func() {
		format.SegmentHeader{FirstSeq: firstSeq, ID: s.id, LogID: s.logID}.Encode(s.data)
	}); err != nil {
		return fmt.Errorf("%s: %w", s.path, err)
	}
	if err := s.idx.Init(s.id, firstSeq); err != nil {
		return err
	}
	final := filepath.Join(dir, format.SegmentName(firstSeq))
	// On Windows this unmaps, renames and maps again: s is not in the
	// segment list yet, and the preparer's prefault works on its own copy
	// of the slices, so nothing else can be touching s.f or s.data.
	f, data, err := platform.RenameMapped(s.f, s.data, final)
	if err != nil {
		s.f, s.data = nil, nil // closed and unmapped by RenameMapped
		return err
	}
	s.f, s.data, s.path = f, data, final
	return s.idx.Rename(filepath.Join(dir, format.IndexName(firstSeq)))
}

// discard unmaps and deletes a prepared segment that was never activated
// (or whose activation failed part-way).
func (s *segment) discard() {
	s.retire()
	s.closeWriteFile()
	platform.Unmap(s.data)
	if s.f != nil {
		s.f.Close()
	}
	os.Remove(s.path)
	s.idx.Remove()
}

// openSegment maps an existing segment that recovery has checked, and
// checks that the header in the mapping is still the one recovery read and
// that the segment belongs to the log logID (see checkOwner): a file can be
// swapped between recovery's look and this mapping.
func openSegment(path string, firstSeq, id, logID uint64, size int64) (*segment, error) {
	f, err := platform.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	data, err := platform.Map(f, int(size))
	if err != nil {
		f.Close()
		return nil, err
	}
	var h format.SegmentHeader
	if ferr := platform.CatchFault(func() { h, err = format.DecodeSegmentHeader(data) }); ferr != nil {
		err = ferr
	}
	if err == nil && (h.ID != id || h.FirstSeq != firstSeq) {
		err = fmt.Errorf("header (first seq %d, segment ID %016x) differs from the one recovery read (%d, %016x)",
			h.FirstSeq, h.ID, firstSeq, id)
	}
	if err == nil {
		err = checkOwner(path, h, logID)
	} else {
		err = &CorruptError{File: path, Offset: 0, Seq: firstSeq, Reason: err.Error()}
	}
	if err != nil {
		platform.Unmap(data)
		f.Close()
		return nil, err
	}
	s := &segment{firstSeq: firstSeq, id: id, logID: logID, seed: format.SegmentSeed(id), path: path, f: f, data: data,
		size: size, prefault: newPrefaulter()}
	s.refs.Store(1)
	return s, nil
}

// removeFiles deletes an unmapped segment's files.
func (s *segment) removeFiles() error {
	var errs []error
	for _, p := range []string{s.path, s.indexPath()} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkpointLocked writes s's index checkpoint and makes it durable. A fault
// on the index mapping (the file was shrunk by another process) is an
// error, not a crash. REQUIRES: what the checkpoint describes was synced;
// w.flushMu held (or w.mu on the append path's reopen step).
func (w *WAL) checkpointLocked(s *segment, count uint64, end int64, flags uint32) error {
	if err := s.idx.Checkpoint(count, end, flags); err != nil {
		return err
	}
	return w.dur.syncIndex(s.idx)
}
