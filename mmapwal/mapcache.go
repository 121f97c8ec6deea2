package mmapwal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/index"
	"github.com/mmapwal/wal/platform"
)

// DefaultMaxMappedSegments is the default Options.MaxMappedSegments. 64
// sealed segments are 128 mappings (a segment and its index): an eighth of
// the default `ulimit -n` where they are descriptors (Windows; on Unix they
// are not), a fraction of vm.max_map_count (65530), 4 GiB of address space
// at the default segment size, and room for a few readers far apart in the
// log (a follower catching up, a replay) without remapping each other's
// segments on every run.
const DefaultMaxMappedSegments = 64

// mapState is a segment's mapping, as seen by the mapping cache.
//
// Protocol. pins >= 0: s.data and s.idx are mapped, and pins goroutines use
// them; pins == -1: not mapped (lazy since Open, or evicted). A reader pins
// with one CAS from n >= 0 to n+1 (pin: no lock, no allocation) after taking
// the segment's lifetime reference (acquire), and unpins with one add. Only
// a goroutine holding mapCache.mu changes pins from or to -1: the evictor by
// a CAS from 0 to -1 (so never under a pin) before it unmaps, the mapper by
// a store of 1 (its own pin) after s.data and s.idx are set, so a pinner
// that sees pins >= 0 sees the mapping that goes with it. A pinner that
// finds -1 takes mapCache.mu and maps the segment (slow path).
//
// Only sealed segments whose records are all written (published) are in the
// ring and can be evicted, synced or not (see manageSealed): the active
// segment and any segment an appender may still be writing into (appenders
// hold no pin) and the prepared one stay mapped. Retirement (segment.unmap) removes a segment
// from the ring under mapCache.mu and marks it gone, after waiting for its
// lifetime references, so that a pin (which holds one) never sees a segment
// unmapped for good.
//
// On Unix a mapped segment holds no file descriptor: msync needs none, and
// the mapping outlives close. Elsewhere (Windows FlushFileBuffers needs a
// handle) the descriptors live as long as the mapping.
type mapState struct {
	pins  atomic.Int64
	used  atomic.Bool // CLOCK reference bit: set by pins, cleared by the evictor's sweep
	cache *mapCache   // set once the segment is part of the log (adopt, lazySegment)
	// managed: manageSealed passed it to the cache. Guarded by WAL.mu.
	managed bool
	// Guarded by cache.mu.
	slot int // 1 + its index in cache.ring; 0: not in the ring
	gone bool
}

// mapCache bounds the mapped sealed segments to max, evicting by CLOCK
// (second chance: a segment pinned since the last sweep stays).
type mapCache struct {
	max  int
	mu   sync.Mutex
	ring []*segment
	hand int
}

func newMapCache(max int) *mapCache { return &mapCache{max: max} }

var errSegmentGone = errors.New("mmapwal: segment retired")

// pin takes a reference on s and pins its mapping, mapping s first if it
// is not mapped. false with a nil error: s was retired. An error: s could
// not be mapped (the file named). unpin undoes it.
func (s *segment) pin() (bool, error) {
	if !s.acquire() {
		return false, nil
	}
	for {
		p := s.mc.pins.Load()
		if p < 0 {
			break
		}
		if s.mc.pins.CompareAndSwap(p, p+1) {
			if !s.mc.used.Load() {
				s.mc.used.Store(true)
			}
			return true, nil
		}
	}
	if err := s.mc.cache.mapIn(s); err != nil {
		s.release()
		if errors.Is(err, errSegmentGone) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// pinIfMapped is pin without the slow path: false if s is not mapped.
func (s *segment) pinIfMapped() bool {
	if !s.acquire() {
		return false
	}
	for {
		p := s.mc.pins.Load()
		if p < 0 {
			s.release()
			return false
		}
		if s.mc.pins.CompareAndSwap(p, p+1) {
			return true
		}
	}
}

func (s *segment) unpin() {
	s.mc.pins.Add(-1)
	s.release()
}

// indexPath is the index file's name, known even when it is not open.
func (s *segment) indexPath() string {
	return filepath.Join(filepath.Dir(s.path), format.IndexName(s.firstSeq))
}

// lazySegment is a sealed, fully synced segment of the log, known from
// recovery but not mapped: the first pin maps it.
func (c *mapCache) lazySegment(path string, firstSeq, id, logID uint64, size int64) *segment {
	// No prefaulter: it never gets a prefault loop (only a prepared segment
	// or the active one at Open does), and two channels per segment would
	// cost a 100,000-segment log megabytes for nothing.
	s := &segment{firstSeq: firstSeq, id: id, logID: logID, seed: format.SegmentSeed(id), path: path, size: size}
	s.refs.Store(1)
	s.mc.pins.Store(-1)
	s.mc.cache = c
	return s
}

// adopt makes a mapped segment part of the log: it may now be managed, and
// on Unix its descriptors are closed (the mappings stay).
func (c *mapCache) adopt(s *segment) error {
	s.mc.cache = c
	return s.dropFiles()
}

// dropFiles closes s's descriptors where its mappings do not need them.
// REQUIRES: s is mapped and its files will not be renamed again.
func (s *segment) dropFiles() error {
	if !mappingOutlivesFile {
		return nil
	}
	var err error
	if s.f != nil { // nil: keepWriteFile took it
		err = s.f.Close()
		s.f = nil
	}
	if ierr := s.idx.CloseFile(); err == nil {
		err = ierr
	}
	if err != nil {
		return fmt.Errorf("mmapwal: close %s: %w", s.path, err)
	}
	return nil
}

// manage makes s evictable: it is sealed and every byte of it is durable.
// REQUIRES: a pin on s, or no concurrent use (Open).
func (c *mapCache) manage(s *segment) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.mc.gone || s.mc.slot != 0 || s.mc.pins.Load() < 0 {
		return
	}
	c.ring = append(c.ring, s)
	s.mc.slot = len(c.ring)
	c.evictLocked(c.max)
}

// unmanage keeps s mapped from now on (it takes appends again).
// REQUIRES: a pin on s.
func (c *mapCache) unmanage(s *segment) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(s)
}

// mapIn is pin's slow path. REQUIRES: a reference on s.
func (c *mapCache) mapIn(s *segment) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		p := s.mc.pins.Load()
		if p < 0 {
			break
		}
		if s.mc.pins.CompareAndSwap(p, p+1) { // mapped by another pinner meanwhile
			return nil
		}
	}
	if s.mc.gone {
		return errSegmentGone
	}
	c.evictLocked(c.max - 1)
	if err := s.mapFiles(); err != nil {
		return err
	}
	s.mc.used.Store(true)
	c.ring = append(c.ring, s)
	s.mc.slot = len(c.ring)
	s.mc.pins.Store(1)
	return nil
}

// evictLocked unmaps unpinned ring segments until at most limit remain or
// every one left is pinned (the bound is soft: a pin never waits).
// REQUIRES: c.mu held.
func (c *mapCache) evictLocked(limit int) {
	for tries := 0; len(c.ring) > max(limit, 0) && tries < 2*len(c.ring)+1; tries++ {
		if c.hand >= len(c.ring) {
			c.hand = 0
		}
		s := c.ring[c.hand]
		if s.mc.used.Load() {
			s.mc.used.Store(false)
			c.hand++
			continue
		}
		if !s.mc.pins.CompareAndSwap(0, -1) {
			c.hand++
			continue
		}
		c.removeLocked(s) // moves the last ring entry to c.hand
		tries = 0
		if err := s.unmapFilesLocked(); err != nil {
			// The pages are dropped either way; nothing to retry.
			_ = err
		}
	}
}

// removeLocked takes s out of the ring. REQUIRES: c.mu held.
func (c *mapCache) removeLocked(s *segment) {
	i := s.mc.slot - 1
	if i < 0 {
		return
	}
	last := len(c.ring) - 1
	c.ring[i] = c.ring[last]
	c.ring[i].mc.slot = i + 1
	c.ring[last] = nil
	c.ring = c.ring[:last]
	s.mc.slot = 0
}

// mapFiles opens and maps s and its index, checks that they still are the
// segment recovery found, and closes the descriptors where it can.
// REQUIRES: c.mu held, s not mapped.
func (s *segment) mapFiles() error {
	f, err := platform.OpenFile(s.path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("mmapwal: map segment %s: %w", s.path, err)
	}
	data, err := platform.Map(f, int(s.size))
	if err != nil {
		f.Close()
		return fmt.Errorf("mmapwal: map segment %s: %w", s.path, err)
	}
	var h format.SegmentHeader
	var herr error
	if ferr := platform.CatchFault(func() { h, herr = format.DecodeSegmentHeader(data) }); ferr != nil {
		herr = ferr
	}
	if herr == nil {
		// The identity is checked whenever a segment is mapped: a file of
		// another log may have been renamed over this one since Open.
		if err := checkOwner(s.path, h, s.logID); err != nil {
			platform.Unmap(data)
			f.Close()
			return err
		}
		if h.ID != s.id || h.FirstSeq != s.firstSeq {
			herr = fmt.Errorf("header says id %#x first seq %d, want id %#x first seq %d", h.ID, h.FirstSeq, s.id, s.firstSeq)
		}
	}
	if herr != nil {
		platform.Unmap(data)
		f.Close()
		return &CorruptError{File: s.path, Offset: 0, Seq: s.firstSeq, Reason: "segment changed since Open: " + herr.Error()}
	}
	idx, err := index.Open(s.indexPath(), format.IndexCapacity(s.size))
	if err == nil {
		if ih := idx.Header(); ih.SegmentID != s.id || ih.FirstSeq != s.firstSeq {
			idx.Close()
			err = &CorruptError{File: s.indexPath(), Offset: 0, Seq: s.firstSeq, Reason: "index does not belong to its segment"}
		}
	}
	if err != nil {
		platform.Unmap(data)
		f.Close()
		return fmt.Errorf("mmapwal: map index of %s: %w", s.path, err)
	}
	s.f, s.data, s.idx = f, data, idx
	return s.dropFiles()
}

// unmapFiles releases s's mapping and descriptors for good (retirement,
// Close). REQUIRES: no references on s.
func (s *segment) unmapFiles() error {
	if c := s.mc.cache; c != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.removeLocked(s)
		s.mc.gone = true
	}
	if s.mc.pins.Load() < 0 {
		return nil // never mapped, or evicted
	}
	s.mc.pins.Store(-1)
	return s.unmapFilesLocked()
}

// unmapFilesLocked unmaps s's data and index. The index object stays (for
// its path); a later mapFiles replaces it. REQUIRES: pins == -1 set by the
// caller, and c.mu held if s is managed.
func (s *segment) unmapFilesLocked() error {
	err := platform.Unmap(s.data)
	s.data = nil
	if cerr := s.closeWriteFile(); err == nil {
		err = cerr
	}
	if s.f != nil {
		if cerr := s.f.Close(); err == nil {
			err = cerr
		}
		s.f = nil
	}
	if cerr := s.idx.Close(); err == nil {
		err = cerr
	}
	return err
}

// manageSealed makes the sealed segments whose records are all written
// (published) evictable, synced or not: under SyncNone, or with a flusher
// behind a disk slower than the appenders, they would otherwise stay mapped
// without bound. Unmapping loses nothing: the written pages stay in the
// page cache, dirty, and the flusher's later sync of the range, through a
// new mapping, writes them back (msync syncs the file range, not the
// mapping: Linux vfs_fsync_range, BSD vm_object_sync; on Windows views of a
// file share its pages, and FlushFileBuffers follows FlushViewOfFile).
// An appender may still be writing into a sealed segment until its record
// is published: those stay.
func (w *WAL) manageSealed() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.manageSealedLocked()
}

// manageSealedLocked is manageSealed with w.mu held. Segments are sealed
// and published in order, so it walks the dirty list back only to the
// first one it managed before: O(1) per rotation. REQUIRES: w.mu held.
func (w *WAL) manageSealedLocked() {
	published := w.published.Load()
	for i := len(w.dirty) - 1; i >= 0; i-- {
		s := w.dirty[i]
		if s.mc.managed {
			return
		}
		if s.sealed && s != w.active && s.sealedLast <= published {
			w.closeWriteFile(s)
			s.mc.managed = true
			w.cache.manage(s)
		}
	}
}
