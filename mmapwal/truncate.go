package mmapwal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/platform"
)

// TruncateFront drops every record before seq. Whole segments before seq
// are deleted; the logical first seq is kept in wal.meta (written and synced
// before any file is deleted, so a crash in between recovers to the same
// state). seq > LastSeq+1 empties the log, and the next Append gets seq.
// seq <= FirstSeq does nothing.
func (w *WAL) TruncateFront(seq uint64) error {
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
	if seq == 0 || seq > 1<<62 {
		return fmt.Errorf("%w: TruncateFront(%d)", ErrNotFound, seq)
	}
	first, next := w.first.Load(), w.nextSeq
	if seq <= first {
		return nil
	}
	if err := w.writeMeta(seq); err != nil {
		return err
	}
	list := w.segs.Load().segs
	drop := map[*segment]bool{}
	if seq >= next {
		// Empty the log: every segment goes, and the next Append starts a
		// new segment at seq.
		for _, s := range list {
			drop[s] = true
		}
		w.active, w.writeOff, w.nextSeq = nil, 0, seq
		w.published.Store(seq - 1) // nothing in flight: w.mu held, waited above
		w.synced.Store(seq - 1)
	} else {
		for i := 0; i+1 < len(list) && list[i+1].firstSeq <= seq; i++ {
			drop[list[i]] = true
		}
	}
	w.first.Store(seq)
	w.truncGen.Add(1)
	return w.retireLocked(drop)
}

// TruncateBack drops every record after seq; the next Append gets seq+1.
// seq < FirstSeq-1 is an error (ErrNotFound); seq >= LastSeq does nothing.
// Later segments are deleted first (newest first), then the records kept
// are synced, a "truncating" checkpoint is made durable, and the tail is
// zeroed and synced; a crash at any point leaves the old log, a prefix of
// it, or the truncated log — never a gap or a stale record.
func (w *WAL) TruncateBack(seq uint64) error {
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
	off, ok := keep.idx.Get(seq + 1 - keep.firstSeq)
	if !ok || off < format.SegmentHeaderSize {
		return &CorruptError{File: keep.path, Offset: off, Seq: seq + 1, Reason: "no index entry for truncation point"}
	}
	// From here on the log changes: readers see the new end first, and a
	// failure leaves the WAL failed (reopen recovers a consistent state).
	w.published.Store(seq) // nothing in flight: w.mu held, waited above
	w.truncGen.Add(1)
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
	// SyncPeriodic the records kept may not be synced yet.
	if err := w.syncSegmentLocked(keep, off); err != nil {
		err = fmt.Errorf("mmapwal: truncate %s at %d: %w", keep.path, off, err)
		w.fail(err)
		return err
	}
	keep.idx.Checkpoint(count, off, format.IndexTruncating)
	if err := w.dur.syncIndex(keep.idx); err != nil {
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
	keep.idx.Checkpoint(count, off, 0)
	if err := w.dur.syncIndex(keep.idx); err != nil {
		err = fmt.Errorf("mmapwal: truncate %s at %d: %w", keep.path, off, err)
		w.fail(err)
		return err
	}
	keep.closedOnDisk = false
	keep.sealed = false
	w.cache.unmanage(keep) // it takes appends again: stays mapped
	keep.mc.managed = false
	keep.syncedOff = min(keep.syncedOff, off)
	w.active, w.writeOff, w.nextSeq = keep, off, seq+1
	if len(w.dirty) == 0 || w.dirty[len(w.dirty)-1] != keep {
		w.dirty = append(w.dirty, keep)
	}
	if w.synced.Load() > seq {
		w.synced.Store(seq)
	}
	return nil
}

// retireLocked removes segments from the list, waits for their readers,
// unmaps them and deletes their files (newest first), then syncs the
// directory. REQUIRES: w.flushMu and w.mu held.
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

// enforceMaxSegments deletes the oldest sealed segments beyond MaxSegments.
// REQUIRES: w.flushMu held.
func (w *WAL) enforceMaxSegments() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	list := w.segs.Load().segs
	excess := len(list) - w.opts.MaxSegments
	if w.opts.MaxSegments <= 0 || excess <= 0 || w.closed {
		return nil
	}
	drop := map[*segment]bool{}
	for _, s := range list[:excess] {
		if s == w.active || !s.sealed {
			break
		}
		drop[s] = true
	}
	if len(drop) == 0 {
		return nil
	}
	newFirst := list[len(drop)].firstSeq
	if newFirst > w.first.Load() {
		w.first.Store(newFirst)
	}
	return w.retireLocked(drop)
}

// writeMeta durably records the logical first seq: temporary file, sync,
// rename, directory sync.
func (w *WAL) writeMeta(first uint64) error {
	path := filepath.Join(w.dir, format.MetaName)
	tmp := path + format.TempExt
	f, err := platform.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(format.EncodeMeta(first))
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
