package mmapwal

import (
	"errors"
	"fmt"
	"os"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/platform"
)

// maxEmptyingSeq bounds the seq TruncateFront may empty the log to (the next
// Append gets it): the same limit as Options.FirstSeq.
const maxEmptyingSeq = 1 << 62

// TruncateFront drops every record before seq. seq <= FirstSeq does nothing
// (TruncateFront(0) included); seq >= LastSeq+1 empties the log, and the
// next Append gets seq (at most 2^62 unless the log is already past it).
//
// The cut is logical and durable before any file goes: the new first seq is
// written to wal.meta and synced (appends go on meanwhile), then published.
// The whole segments before seq are deleted afterwards, oldest first, by a
// background goroutine that Close waits for; a crash at any point leaves
// wal.meta and a suffix of those segments, which the next Open removes
// (recovery rule 6). On an error writing wal.meta the log in memory is
// unchanged, but the truncation may still take effect after a crash.
func (w *WAL) TruncateFront(seq uint64) error {
	if w.ro != nil {
		return ErrReadOnly
	}
	w.lockFlush()
	defer w.unlockFlush()
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	if err := w.failed(); err != nil {
		w.mu.Unlock()
		return err
	}
	if seq <= w.first.Load() {
		w.mu.Unlock()
		return nil
	}
	if seq > w.nextSeq && seq > maxEmptyingSeq {
		w.mu.Unlock()
		return fmt.Errorf("%w: TruncateFront(%d) beyond LastSeq+1 and 2^62", ErrNotFound, seq)
	}
	w.mu.Unlock()
	// Only truncations change the first seq or remove segments, and they
	// all hold flushMu: what was decided above stays true while wal.meta is
	// written without w.mu, so appenders are not held up by its syncs.
	if err := w.writeMeta(seq); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.waitInFlightLocked()
	list := w.segs.Load().segs
	var drop []*segment
	if seq >= w.nextSeq {
		// Empty the log (appends meanwhile did not reach seq): every segment
		// goes, and the next Append starts a new segment at seq. Its name is
		// above every dropped segment's, so it never meets one of them:
		// their files are deleted in the background, after it may exist.
		// The one segment named seq already is an active segment holding no
		// record (a TruncateBack cut at its start, and seq is the next seq):
		// it stays, and the next Append writes into it.
		drop = list
		if a := w.active; a != nil && a.firstSeq == seq && len(list) > 0 && list[len(list)-1] == a {
			drop = list[:len(list)-1]
		} else {
			w.active, w.writeOff, w.nextSeq = nil, 0, seq
		}
		w.published.Store(seq - 1) // nothing in flight: w.mu held, waited above
		w.synced.Store(seq - 1)
	} else {
		for i := 0; i+1 < len(list) && list[i+1].firstSeq <= seq; i++ {
			drop = append(drop, list[i])
		}
	}
	w.first.Store(seq)
	w.st.truncations.Add(1)
	w.truncGen.Add(1)
	w.wakeFollowers() // a follower behind the new first seq must stop
	w.unlistLocked(drop)
	// Nothing is in flight (waited above, w.mu held since): the reaper has
	// nothing to wait for. Waiting for the newest seq instead would never
	// end once a later TruncateBack cut below it.
	w.reapLater(drop, 0)
	return nil
}

// unlistLocked takes segments out of the list and the dirty list; readers
// that load the list afterwards no longer find them. REQUIRES: w.mu held.
func (w *WAL) unlistLocked(drop []*segment) {
	if len(drop) == 0 {
		return
	}
	set := make(map[*segment]bool, len(drop))
	for _, s := range drop {
		set[s] = true
	}
	w.segs.Store(w.segs.Load().without(set))
	dirty := w.dirty[:0]
	for _, s := range w.dirty {
		if !set[s] {
			dirty = append(dirty, s)
		}
	}
	clear(w.dirty[len(dirty):])
	w.dirty = dirty
}

// frameAt reports whether a valid frame (header and checksum) of record seq
// starts at off in s. Its length is bounded by the segment, not by today's
// MaxRecordSize, which may be lower than when the record was written.
func frameAt(s *segment, off int64, seq uint64) bool {
	ok := false
	_ = platform.CatchFault(func() {
		h, _, st := format.DecodeFrame(s.data, off, s.seed, uint64(len(s.data)))
		ok = st == format.FrameOK && h.Seq == seq
	})
	return ok
}

// TruncateBack drops every record after seq; the next Append gets seq+1.
// seq < FirstSeq-1 is an error (ErrNotFound); seq >= LastSeq does nothing.
// Later segments are deleted first (newest first), then every record kept
// is synced (whatever the policy: under SyncNone too, TruncateBack returns
// with records FirstSeq..seq durable), a "truncating" checkpoint is made
// durable, and the tail is zeroed and synced; a crash at any point leaves
// the old log, a prefix of it, or the truncated log — never a gap or a
// stale record. The cut point is the frame of seq+1, checked (seq and
// checksum) before anything changes; an index entry that does not lead to
// it is rebuilt from the segment first. Appends in progress return first
// (see Append); Readers that returned a record it cut stop with
// ErrTruncated (see Reader).
func (w *WAL) TruncateBack(seq uint64) error {
	if w.ro != nil {
		return ErrReadOnly
	}
	w.lockFlush()
	defer w.unlockFlush()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	if err := w.failed(); err != nil {
		return err
	}
	w.waitInFlightLocked()
	if err := w.settleAppendersLocked(); err != nil {
		return err
	}
	first, last := w.first.Load(), w.nextSeq-1
	if seq+1 < first {
		return fmt.Errorf("%w: TruncateBack(%d) before FirstSeq-1 (%d)", ErrNotFound, seq, first-1)
	}
	if seq >= last {
		return nil
	}
	list := w.segs.Load().segs
	keep := w.segs.Load().find(seq + 1) // the segment that will hold seq+1
	if ok, err := keep.pin(); !ok {
		if err == nil {
			err = fmt.Errorf("%w: TruncateBack(%d): segment %s retired", ErrNotFound, seq, keep.path)
		}
		return err
	}
	defer keep.unpin()
	drop := map[*segment]bool{}
	for _, s := range list {
		if s.firstSeq > keep.firstSeq {
			drop[s] = true
		}
	}
	off, ok, lerr := keep.idx.Lookup(seq + 1 - keep.firstSeq)
	if lerr != nil {
		return fmt.Errorf("mmapwal: TruncateBack(%d): %w", seq, lerr)
	}
	if !ok || off < format.SegmentHeaderSize || !frameAt(keep, off, seq+1) {
		// Cutting at a wrong offset would zero kept records, or leave the
		// old record to reappear after an index rebuild: find the frame by
		// scanning, as reads do.
		if err := w.rebuildIndex(keep, seq+1); err != nil {
			return fmt.Errorf("mmapwal: TruncateBack(%d): %w", seq, err)
		}
		off, ok, lerr = keep.idx.Lookup(seq + 1 - keep.firstSeq)
		if lerr != nil {
			return fmt.Errorf("mmapwal: TruncateBack(%d): %w", seq, lerr)
		}
		if !ok || off < format.SegmentHeaderSize || !frameAt(keep, off, seq+1) {
			return &CorruptError{File: keep.path, Offset: off, Seq: seq + 1, Reason: "no valid frame for the truncation point, even after an index rebuild"}
		}
	}
	// From here on the log changes: readers see the new end first, and a
	// failure leaves the WAL failed (reopen recovers a consistent state).
	w.published.Store(seq) // nothing in flight: w.mu held, waited above
	w.noteTruncateBack(seq)
	w.wakeFollowers() // a follower past the new end must stop
	if err := w.retireLocked(drop); err != nil {
		w.fail(err)
		return err
	}
	end := keep.sealedEnd
	if keep == w.active {
		end = w.writeOff
	}
	// The decision is durable before any byte is zeroed: recovery that finds
	// the truncating checkpoint completes the truncation, whatever part of
	// the zeroing reached the disk.
	count := seq + 1 - keep.firstSeq
	// A checkpoint claims its records are durable: under SyncNone or
	// SyncPeriodic the records kept may not be synced yet, in this segment
	// or in earlier ones.
	if err := w.syncKeptLocked(keep); err != nil {
		w.fail(err)
		return err
	}
	if err := w.syncSegmentLocked(keep, off); err != nil {
		err = fmt.Errorf("mmapwal: truncate %s at %d: %w", keep.path, off, err)
		w.fail(err)
		return err
	}
	if err := w.checkpointLocked(keep, count, off, format.IndexTruncating); err != nil {
		err = fmt.Errorf("mmapwal: truncate %s at %d: %w", keep.path, off, err)
		w.fail(err)
		return err
	}
	// Readers that passed their range check before the new end was
	// published fail their frame check on zeroed bytes and see the new range.
	if ferr := platform.CatchFault(func() { clear(keep.data[off:end]) }); ferr != nil {
		err := fmt.Errorf("mmapwal: truncate %s at %d: %w", keep.path, off, ferr)
		w.fail(err)
		return err
	}
	if err := w.dur.syncSegment(keep, off, end-off); err != nil {
		err = fmt.Errorf("mmapwal: truncate %s at %d: %w", keep.path, off, err)
		w.fail(err)
		return err
	}
	if err := w.checkpointLocked(keep, count, off, 0); err != nil {
		err = fmt.Errorf("mmapwal: truncate %s at %d: %w", keep.path, off, err)
		w.fail(err)
		return err
	}
	keep.closedOnDisk = false
	if w.opts.batchPwrite && keep.wf.Load() == nil {
		// It takes appends again. Without a descriptor they are copied
		// into the mapping: slower, not wrong.
		if f, err := platform.OpenFile(keep.path, os.O_RDWR, 0); err == nil {
			keep.wf.Store(f)
		} else {
			w.log.Warn("mmapwal: reopening a segment for pwrite failed; appends copy into the mapping", "file", keep.path, "err", err)
		}
	}
	keep.sealed = false
	w.cache.unmanage(keep) // it takes appends again: stays mapped
	keep.mc.managed = false
	keep.syncedOff = min(keep.syncedOff, off)
	w.active, w.writeOff, w.nextSeq = keep, off, seq+1
	if len(w.dirty) == 0 || w.dirty[len(w.dirty)-1] != keep {
		w.dirty = append(w.dirty, keep)
	}
	w.synced.Store(seq) // every record kept was synced above
	w.st.truncations.Add(1)
	return nil
}

// syncKeptLocked makes every dirty segment before keep durable, with its
// final checkpoint, as the flusher does when it seals one. Those segments
// are sealed (keep follows them) and hold only kept records.
// REQUIRES: w.flushMu and w.mu held, no append in flight.
func (w *WAL) syncKeptLocked(keep *segment) error {
	n := 0
	for _, s := range w.dirty {
		if s.firstSeq >= keep.firstSeq || !s.sealed {
			continue
		}
		// Sealed and fully published: it may have been unmapped (mapcache.go).
		if err := w.syncKeptSegmentLocked(s); err != nil {
			return err
		}
		n++
	}
	w.dirty = w.dropSealed(w.dirty, n)
	return nil
}

// syncKeptSegmentLocked is syncKeptLocked's work on one sealed segment s,
// under a pin. REQUIRES: as syncKeptLocked.
func (w *WAL) syncKeptSegmentLocked(s *segment) error {
	ok, err := s.pin()
	if !ok {
		if err == nil { // only truncations retire segments, and they hold flushMu
			err = errSegmentGone
		}
		return fmt.Errorf("mmapwal: sync %s before truncating: %w", s.path, err)
	}
	defer s.unpin()
	if err := w.syncSegmentLocked(s, s.sealedEnd); err != nil {
		return fmt.Errorf("mmapwal: sync %s before truncating: %w", s.path, err)
	}
	if err := w.checkpointLocked(s, s.sealedLast-s.firstSeq+1, s.sealedEnd, 0); err != nil {
		return fmt.Errorf("mmapwal: sync %s before truncating: %w", s.indexPath(), err)
	}
	return nil
}

// retireLocked removes the segments after a TruncateBack's cut from the
// list, waits for their readers, unmaps them and deletes their files newest
// first (a crash part-way leaves a prefix of the log), then syncs the
// directory. It runs before TruncateBack returns: the next rotation reuses
// their names. REQUIRES: w.flushMu and w.mu held.
func (w *WAL) retireLocked(drop map[*segment]bool) error {
	if len(drop) == 0 {
		return nil
	}
	old := w.segs.Load()
	w.segs.Store(old.without(drop))
	dirty := w.dirty[:0]
	for _, s := range w.dirty {
		if !drop[s] {
			dirty = append(dirty, s)
		}
	}
	w.dirty = dirty
	var errs []error
	for i := len(old.segs) - 1; i >= 0; i-- {
		s := old.segs[i]
		if !drop[s] {
			continue
		}
		s.retire()
		if err := s.unmap(); err != nil {
			errs = append(errs, err)
		}
		if err := s.removeFiles(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := w.dur.syncDir(w.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// enforceMaxSegments drops the oldest sealed segments beyond MaxSegments,
// exactly as TruncateFront to the first seq of the first segment kept: the
// new first seq is made durable in wal.meta before anything goes, then
// published, and the files are deleted oldest first in the background. A
// crash at any point leaves wal.meta and a suffix of the dropped segments,
// which the next Open removes (recovery rule 6) — never a hole.
// REQUIRES: w.flushMu held (as every truncation).
func (w *WAL) enforceMaxSegments() error {
	if w.opts.MaxSegments <= 0 {
		return nil
	}
	w.mu.Lock()
	list := w.segs.Load().segs
	excess := len(list) - w.opts.MaxSegments
	if excess <= 0 || w.closed {
		w.mu.Unlock()
		return nil
	}
	var drop []*segment
	for _, s := range list[:excess] {
		if s == w.active || !s.sealed {
			break
		}
		drop = append(drop, s)
	}
	if len(drop) == 0 {
		w.mu.Unlock()
		return nil
	}
	newFirst := list[len(drop)].firstSeq
	published := drop[len(drop)-1].sealedLast
	w.mu.Unlock()
	// Without w.mu, as in TruncateFront: only truncations remove segments
	// or move the first seq, and they hold flushMu like this call.
	if newFirst > w.first.Load() {
		if err := w.writeMeta(newFirst); err != nil {
			return err
		}
	}
	w.opts.testHook(hookRetentionMeta)
	w.mu.Lock()
	defer w.mu.Unlock()
	if newFirst > w.first.Load() {
		w.first.Store(newFirst)
	}
	// Readers drop what they read ahead, as after TruncateFront.
	w.truncGen.Add(1)
	w.wakeFollowers() // a follower behind the new first seq must stop
	w.unlistLocked(drop)
	w.reapLater(drop, published)
	return nil
}
