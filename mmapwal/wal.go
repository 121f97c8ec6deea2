package mmapwal

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/index"
	"github.com/mmapwal/wal/internal/recoveryhook"
	"github.com/mmapwal/wal/internal/scan"
	"github.com/mmapwal/wal/platform"
	"github.com/mmapwal/wal/recovery"
)

// WAL is an open write-ahead log. All methods are safe for concurrent use.
type WAL struct {
	// Locks and goroutines: see DESIGN.md, which lists every lock, what it
	// guards, and the complete order. In short: closeMu → flushMu → mu →
	// pubMu → followers.mu; under mu also preparer.mu, mapCache.mu,
	// segment.rebuildMu, roundMu, cutLog.mu, reaper.mu and Index.hdrMu
	// (all leaves); flushMu → mapCache.mu and Index.hdrMu without mu.
	// Readers take none of them: they load segs and published atomically
	// and hold segments by reference count and mappings by pin.

	dir  string // absolute, resolved once at Open
	opts Options
	log  *slog.Logger
	dur  durability
	lock *platform.Lock

	logID uint64 // the log's identity (see identity.go), set by Open

	// mu is the writer lock: it guards reservation (active, writeOff,
	// nextSeq), the dirty list, segment sealing and list changes. Appenders
	// hold it only to reserve space and a seq.
	mu       sync.Mutex
	active   *segment // nil until the first append of an empty log
	writeOff int64
	nextSeq  uint64
	// prefaultKickAt: the write offset at which the active segment's
	// prefault loop is next told to move its window.
	prefaultKickAt int64
	dirty          []*segment // segments with unsynced bytes, oldest first
	closed         bool
	released       bool
	appended       uint64    // records reserved since Open (for Stats)
	batchHist      plainHist // records per Append/AppendBatch call (for Stats)
	batches        uint64
	bytes          uint64

	segs  atomic.Pointer[segList]
	first atomic.Uint64 // logical first seq (= nextSeq when empty)
	// truncGen changes with every truncation, so Readers drop what they
	// read ahead (a seq may now hold another record, or none).
	truncGen atomic.Uint64
	// replayHelpersLive counts Replay's read-ahead goroutines running (a
	// test checks that none outlives its Replay).
	replayHelpersLive atomic.Int32
	cuts              cutLog // where recent TruncateBacks cut, for Readers (read.go)
	// inflight counts SyncAlways appends between their reservation and
	// their return; TruncateBack waits for them (settleAppendersLocked), as
	// they may wait for a sync. Appends under the other policies return
	// once published, which TruncateBack waits for anyway
	// (waitInFlightLocked), and skip the two atomic adds.
	inflight atomic.Int64
	// closeMu serialises Close calls. closed (under mu): Close was called,
	// no more appends; released (under mu): Close finished, the log is
	// unmapped and unlocked. Between the two after a transient failure.
	closeMu sync.Mutex

	// Publication: records become visible in seq order, once their frame and
	// index entry are written. published is the last visible seq.
	pubMu     sync.Mutex
	pubCond   sync.Cond
	published atomic.Uint64
	pubSlow   atomic.Int64      // goroutines on publish's slow path or waiting on pubCond
	pending   map[uint64]uint64 // guarded by pubMu: first -> last of ranges written early

	// Durability: synced is the last seq known durable. A sync failure is
	// sticky (writeErr): Linux drops the failed pages, so retrying would lie.
	flushMu   sync.Mutex // held for a whole flush round and by truncation; release with unlockFlush
	flushWork []dirtySeg // guarded by flushMu: reused by every round
	roundMu   sync.Mutex
	roundEnd  chan struct{} // guarded by roundMu: closed when the current flush round ends
	roundGen  uint64        // guarded by roundMu: bumped when a round ends
	shut      atomic.Bool   // Close made its final flush: no more rounds
	// durableAppenders counts SyncAlways appends in progress: a flush leader
	// yields once before syncing only when others could join its group.
	durableAppenders atomic.Int64
	// roundWaiters counts appenders waiting on the current flush round
	// (changed under roundMu, read by a leader deciding whether to yield).
	roundWaiters atomic.Int64
	synced       atomic.Uint64
	writeErr     atomic.Pointer[error]
	kick         chan struct{}
	done         chan struct{}
	wg           sync.WaitGroup

	prep *preparer
	reap reaper // deletes dropped segments off the append path (reaper.go)
	// follow: Readers waiting in Wait for new records (follow.go).
	follow followers
	st     counters
	rec    RecoveryStats

	cache *mapCache // the mapped sealed segments (mapcache.go)
	bufs  sync.Pool // *pwriteBuf: encoding buffers of pwrite appends (append.go)

	// ro is set when the log was opened with Options.ReadOnly: reads, the
	// bounds and Close go through it (readonly.go); nothing else is used.
	ro *roLog
}

// Open opens the log in dir, creating dir if missing. A nil opts means
// defaults. It recovers a crashed log (see package recovery): a torn tail is
// cut, but damage that cannot be a torn tail fails with ErrCorrupt and
// changes nothing. A second Open of the same directory fails with ErrLocked.
//
// A relative dir is resolved against the working directory once, here:
// the log keeps using that directory whatever the working directory later
// becomes (Dir returns the absolute path). Renaming or moving the directory
// itself while the log is open is not supported.
func Open(dir string, opts *Options) (*WAL, error) {
	o, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("mmapwal: open %s: %w", dir, err)
	}
	dir = abs
	if o.ReadOnly {
		return openReadOnly(dir, o)
	}
	if err := os.MkdirAll(dir, o.DirMode); err != nil {
		return nil, err
	}
	lk, err := platform.LockDir(dir, format.LockName, o.FileMode)
	if err != nil {
		if errors.Is(err, platform.ErrLockHeld) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
		}
		return nil, err
	}
	w := &WAL{dir: dir, opts: o, log: o.Logger, dur: o.hooks, lock: lk,
		kick: make(chan struct{}, 1), done: make(chan struct{}), pending: map[uint64]uint64{}}
	w.pubCond.L = &w.pubMu
	w.roundEnd = make(chan struct{})
	w.cache = newMapCache(o.MaxMappedSegments)
	if err := w.load(); err != nil {
		w.unmapAll()
		lk.Unlock()
		return nil, err
	}
	w.warmUp()
	w.prep = newPreparer(dir, o.SegmentSize, w.logID, o.FileMode, o.prefault, w.log)
	if w.active == nil {
		w.prep.prepareNow()
	} else {
		w.prep.mu.Lock()
		w.prep.startLocked()
		w.prep.mu.Unlock()
		w.prefaultKickAt = w.writeOff + o.prefault.kick()
		w.prep.startPrefault(w.active, w.writeOff)
	}
	w.retainAtOpen()
	w.wg.Add(1)
	go w.flushLoop()
	return w, nil
}

// retainAtOpen applies MaxSegments to the log as found, before Open
// returns: a log reopened with a lower MaxSegments (or first given one) is
// cut now, not at its next rotation, and FirstSeq does not move under a
// caller that reads right after Open. A failure here loses nothing (the
// cut is made durable in wal.meta before any file goes): it is logged, and
// the next rotation tries again.
func (w *WAL) retainAtOpen() {
	if w.opts.MaxSegments <= 0 {
		return
	}
	w.lockFlush()
	err := w.enforceMaxSegments()
	w.unlockFlush()
	if err != nil {
		w.log.Warn("mmapwal: removing old segments at open failed", "dir", w.dir, "err", err)
	}
}

// load checks the log's identity, runs recovery and maps what it found.
func (w *WAL) load() error {
	logID, stored, err := loadIdentity(w.dir)
	if err != nil {
		return err
	}
	ropts := &recovery.Options{Logger: w.log, LogID: logID}
	recoveryhook.WithOffsets(ropts)
	rep, err := recovery.Recover(w.dir, ropts)
	if err != nil {
		return err
	}
	if logID == 0 {
		logID = rep.LogID // no wal.id: the segments' (recovery checked they agree)
	}
	if logID == 0 {
		logID = newSegmentID() // a new log, or one written before identities
	}
	w.logID = logID
	w.rec = RecoveryStats{
		BytesTruncated: rep.BytesZeroed, RecordsDropped: rep.RecordsDropped, TornFile: rep.TornFile,
		TornOffset: rep.TornOffset, TempFilesRemoved: len(rep.TempRemoved), FilesRemoved: len(rep.FilesRemoved),
		ScannedBytes: rep.ScannedBytes, Manifest: rep.Manifest,
	}
	list := &segList{}
	var scanned []*segment
	next := rep.NextSeq
	if next == 0 {
		next = w.opts.FirstSeq
	}
	synced := next - 1
	for i, rs := range rep.Segments {
		// A sealed segment whose records are all checkpointed needs nothing
		// at Open: it is mapped when first read (mapcache.go), and its
		// header and owner are checked then (recovery has checked them
		// once already).
		if i < len(rep.Segments)-1 && rs.IndexOK && rs.Trusted == rs.Count && len(recoveryhook.Offsets(&rs)) == 0 {
			s := w.cache.lazySegment(rs.Path, rs.FirstSeq, rs.ID, w.logID, rs.Size)
			s.sealed, s.sealedEnd, s.sealedLast = true, rs.End, rs.FirstSeq+rs.Count-1
			s.syncedOff, s.named = rs.End, true
			list.segs = append(list.segs, s)
			continue
		}
		s, err := openSegment(rs.Path, rs.FirstSeq, rs.ID, w.logID, rs.Size)
		if err != nil {
			return err
		}
		list.segs = append(list.segs, s)
		w.segs.Store(list)
		if err := w.loadIndex(s, rs); err != nil {
			return err
		}
		if w.opts.batchPwrite && i == len(rep.Segments)-1 {
			s.keepWriteFile() // the active segment takes appends
		}
		if err := w.cache.adopt(s); err != nil {
			return err
		}
		s.sealed, s.sealedEnd, s.sealedLast = true, rs.End, rs.FirstSeq+rs.Count-1
		// A trusted checkpoint proves its records (and, by the flusher's
		// order, the segment's header and name) durable. Records found by
		// scanning may exist only in the page cache after a process crash:
		// they are not counted durable until the flusher syncs them.
		s.syncedOff, s.named = rs.End, true
		if rs.Trusted < rs.Count {
			scanned = append(scanned, s)
			s.syncedOff = rs.TrustedEnd
			if rs.Trusted == 0 {
				s.syncedOff, s.named = 0, false
			}
			synced = min(synced, rs.FirstSeq+rs.Trusted-1)
		} else if i < len(rep.Segments)-1 {
			w.cache.manage(s)
		}
	}
	w.segs.Store(list)
	w.dirty = scanned
	w.nextSeq = next
	w.published.Store(next - 1)
	first := next
	if len(list.segs) > 0 {
		first = max(list.segs[0].firstSeq, rep.MetaFirst)
		last := list.segs[len(list.segs)-1]
		last.sealed = false
		w.active, w.writeOff = last, rep.Segments[len(rep.Segments)-1].End
		if len(w.dirty) == 0 || w.dirty[len(w.dirty)-1] != last {
			w.dirty = append(w.dirty, last) // the active segment is always dirty until synced
		}
		last.closedOnDisk = rep.Segments[len(rep.Segments)-1].Closed
	}
	w.first.Store(first)
	w.synced.Store(synced) // durable-seq hints written from now on stay true
	if !stored {
		// Before any segment carrying the ID can be created.
		if err := w.writeIdentity(logID); err != nil {
			return err
		}
	}
	if len(scanned) > 0 || w.rec.IndexesRebuilt > 0 {
		w.log.Info("mmapwal: recovered", "dir", w.dir, "segments", len(list.segs), "next_seq", next,
			"scanned_bytes", rep.ScannedBytes, "indexes_rebuilt", w.rec.IndexesRebuilt)
	}
	return nil
}

// warmTail is how much of the active segment before the write offset
// warmUp faults in: the records a follower at the tail reads first. 1 MiB
// (and its index entries, at most 128 KiB) is read from disk at most once
// per Open, whatever the log's size.
const warmTail = 1 << 20

// warmUp maps, in the background, the pages the first appends and the first
// reads at the tail need: the index header and the active segment's last
// warmTail bytes with their index entries. The pages ahead of the writer are
// the prefault loop's. Nothing else is read: older segments are not even
// mapped until read (mapcache.go), so an open log costs no memory that grows
// with its size beyond a small struct per segment.
func (w *WAL) warmUp() {
	a := w.active
	if a == nil {
		return
	}
	writeOff, count := w.writeOff, int64(w.nextSeq-a.firstSeq) // read now: Open has not returned
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		// By now appends may have sealed a and the cache unmapped it: a pin
		// keeps the mapping, if it is still there, for the hints below.
		if !a.pinIfMapped() {
			return
		}
		defer a.unpin()
		lo := max(int64(format.SegmentHeaderSize), writeOff-warmTail) &^ (4096 - 1)
		idx := a.idx.Mapping()
		entries := max(0, count-(writeOff-lo)/32)
		ilo := (format.IndexHeaderSize + entries*format.IndexEntrySize) &^ (4096 - 1)
		ihi := min(int64(len(idx)), format.IndexHeaderSize+count*format.IndexEntrySize)
		_ = platform.PrefaultRead(idx[:min(int64(len(idx)), 4096)])
		if ilo < ihi {
			_ = platform.PrefaultRead(idx[ilo:ihi])
		}
		_ = platform.PrefaultRead(a.data[lo:writeOff])
	}()
}

// loadIndex opens the segment's index, or rebuilds it when recovery found
// it missing or invalid.
func (w *WAL) loadIndex(s *segment, rs recovery.Segment) error {
	capacity := format.IndexCapacity(s.size)
	offs := recoveryhook.Offsets(&rs)
	if rs.IndexOK {
		if x, err := index.Open(rs.IndexPath, capacity); err == nil {
			if err := x.SetOffsets(int(rs.Trusted), offs); err == nil {
				s.idx = x
				return nil
			}
			x.Close() // shrunk under us: rebuild
		}
	}
	// Rebuild: recovery scanned this segment from its header, so offs
	// covers every record.
	w.rec.IndexesRebuilt++
	x, err := index.Create(rs.IndexPath, rs.ID, rs.FirstSeq, capacity, w.opts.FileMode)
	if err != nil {
		return err
	}
	s.idx = x
	if rs.Trusted != 0 {
		// The index file was valid when recovery read it but cannot be mapped
		// now; rescan the segment for its offsets.
		offs = scan.Scan(s.data, s.seed, format.SegmentHeaderSize, s.firstSeq, format.MaxRecordLength, true).Offsets
	}
	if err := x.SetOffsets(0, offs); err != nil {
		return err
	}
	// The checkpoint covers only what recovery proved durable: records found
	// by scanning may exist only in the page cache after a process crash,
	// and a checkpoint on disk claims its records (and, for recovery's proof
	// rule, every earlier segment) synced. The flusher checkpoints the rest
	// after syncing it.
	if err := x.Checkpoint(rs.Trusted, rs.TrustedEnd, 0); err != nil {
		return err
	}
	if err := w.dur.syncIndex(x); err != nil {
		return err
	}
	return w.dur.syncDir(w.dir)
}

// FirstSeq is the oldest readable seq; 0 when the log holds no records.
func (w *WAL) FirstSeq() uint64 {
	if w.ro != nil {
		w.ro.poll()
	}
	first, last := w.first.Load(), w.published.Load()
	if last < first {
		return 0
	}
	return first
}

// LastSeq is the newest seq; 0 when the log holds no records.
func (w *WAL) LastSeq() uint64 {
	if w.ro != nil {
		w.ro.poll()
	}
	first, last := w.first.Load(), w.published.Load()
	if last < first {
		return 0
	}
	return last
}

// Dir is the directory the log lives in, as an absolute path (a relative
// path given to Open is resolved once, at Open).
func (w *WAL) Dir() string { return w.dir }

// Close syncs whatever the policy, unmaps, and releases the directory lock.
// Appends fail with ErrClosed as soon as Close is called.
//
// If the final sync fails with an error that lost nothing (opening the
// directory for its sync failed with EMFILE, ENFILE or ENOMEM), Close returns
// that error and keeps the log mapped and locked: Sync or Close may be called
// again and succeed once the cause is gone, and Close must be, to release the
// directory. Any other error (an fsync or msync failure: the kernel may have
// dropped the data) is final: Close releases everything and returns it.
// After a Close that released the log, every call returns ErrClosed.
func (w *WAL) Close() error {
	if w.ro != nil {
		return w.ro.close()
	}
	w.closeMu.Lock()
	defer w.closeMu.Unlock()
	w.mu.Lock()
	if w.released {
		w.mu.Unlock()
		return ErrClosed
	}
	retry := w.closed // an earlier Close failed transiently: stopped already
	w.closed = true
	if !retry {
		w.waitInFlightLocked()
	}
	w.mu.Unlock()

	if !retry {
		close(w.done)
		w.wg.Wait()
		w.prep.close()
	}
	// The final round: everything published becomes durable, the active
	// segment is checkpointed as closed, and no round may follow (shut).
	w.lockFlush()
	err := w.flushLocked(true)
	if err == nil && w.active != nil {
		w.writeCleanManifest() // before the closed checkpoint is synced: see there
		if err = w.dur.syncIndex(w.active.idx); err != nil {
			err = fmt.Errorf("mmapwal: sync %s: %w", w.active.idx.Path(), err)
			w.fail(err)
		}
	}
	if err != nil && isTransient(err) && w.failed() == nil {
		w.unlockFlush()
		w.log.Warn("mmapwal: close could not sync; call Close again", "dir", w.dir, "err", err)
		return err
	}
	w.shut.Store(true)
	w.unlockFlush()
	w.reapWait() // no truncation can queue a job any more
	w.mu.Lock()
	w.released = true
	w.mu.Unlock()
	if uerr := w.unmapAll(); err == nil {
		err = uerr
	}
	if lerr := w.lock.Unlock(); err == nil {
		err = lerr
	}
	return err
}

// unmapAll retires every segment; readers still inside a segment finish
// first.
func (w *WAL) unmapAll() error {
	list := w.segs.Swap(&segList{})
	if list == nil {
		return nil
	}
	var errs []error
	for _, s := range list.segs {
		s.retire()
		if s.idx == nil && s.mc.pins.Load() >= 0 { // failed half-way through load (not a lazy segment)
			platform.Unmap(s.data)
			s.f.Close()
			continue
		}
		if err := s.unmap(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (w *WAL) isClosed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closed
}

// failed returns the sticky write error, if any.
func (w *WAL) failed() error {
	if p := w.writeErr.Load(); p != nil {
		return *p
	}
	return nil
}

// fail makes err sticky: every later write returns it. Reads keep working.
func (w *WAL) fail(err error) {
	if w.writeErr.CompareAndSwap(nil, &err) {
		w.log.Error("mmapwal: write path failed; refusing further writes until reopen", "dir", w.dir, "err", err)
	}
	w.pubMu.Lock()
	w.pubCond.Broadcast()
	w.pubMu.Unlock()
}
