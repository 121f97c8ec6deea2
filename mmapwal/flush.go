package mmapwal

import (
	"errors"
	"fmt"
	"time"

	"github.com/mmapwal/wal/format"
)

// The flusher is one goroutine that makes data durable for everyone: it
// takes the published watermark, syncs every dirty range up to it with one
// msync per segment, and wakes all appenders it covered (group commit). A
// rotation kicks it, so a sealed segment gets its final sync and index
// checkpoint soon (except under SyncNone, which syncs only on Sync and
// Close). It also runs the SyncPeriodic timer and MaxSegments retention.

func (w *WAL) flushLoop() {
	defer w.wg.Done()
	var tick <-chan time.Time
	if w.opts.Sync == SyncPeriodic {
		t := time.NewTicker(w.opts.SyncInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-w.done:
			return
		case <-w.kick:
		case <-tick:
		}
		if w.opts.Sync == SyncNone {
			// SyncNone syncs only on Sync() and Close(); rotation still
			// kicks, for MaxSegments.
			if w.opts.MaxSegments > 0 {
				w.lockFlush()
				if err := w.enforceMaxSegments(); err != nil {
					w.log.Warn("mmapwal: removing old segments failed", "dir", w.dir, "err", err)
				}
				w.unlockFlush()
			}
			continue
		}
		_ = w.flush(false) // a failure is sticky and reported to waiters
	}
}

func (w *WAL) kickFlusher() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

type dirtySeg struct {
	s      *segment
	sealed bool
	end    int64
	last   uint64
}

// flush makes every published record durable. With final set (Close) it
// also writes the active segment's checkpoint.
func (w *WAL) flush(final bool) error {
	w.lockFlush()
	defer w.unlockFlush()
	return w.flushLocked(final)
}

// lockFlush takes flushMu: for a flush round, or to keep flushes out
// (truncation).
func (w *WAL) lockFlush() { w.flushMu.Lock() }

// unlockFlush releases flushMu and then tells waiting appenders, so a
// follower that could not become the leader tries again.
func (w *WAL) unlockFlush() {
	w.flushMu.Unlock()
	w.syncMu.Lock()
	w.flushGen++
	w.syncCond.Broadcast()
	w.syncMu.Unlock()
}

// flushLocked is flush with flushMu held.
func (w *WAL) flushLocked(final bool) error {
	if err := w.failed(); err != nil {
		return err
	}
	w.pubMu.Lock()
	target, tseg, tend := w.published.Load(), w.pubSeg, w.pubEnd
	w.pubMu.Unlock()

	w.mu.Lock()
	work := make([]dirtySeg, 0, len(w.dirty)+1)
	inDirty := false
	for _, s := range w.dirty {
		work = append(work, dirtySeg{s, s.sealed, s.sealedEnd, s.sealedLast})
		inDirty = inDirty || s == tseg
	}
	if tseg != nil && !inDirty && tseg.syncedOff < tend {
		// Invariant: the segment of the last published record is dirty
		// until synced. Guard it anyway: an acknowledged record must never
		// be counted durable without its sync.
		w.log.Error("mmapwal: internal: published segment missing from dirty list", "file", tseg.path)
		w.dirty = append(w.dirty, tseg)
		work = append(work, dirtySeg{tseg, tseg.sealed, tseg.sealedEnd, tseg.sealedLast})
	}
	w.mu.Unlock()

	// Segments before the target's are sealed and fully published; those
	// after it hold nothing published yet.
	upto := -1
	for i, d := range work {
		if d.s == tseg {
			upto = i
		}
	}
	synced := 0
	for i, d := range work[:upto+1] {
		s := d.s
		end, full := d.end, true
		if i == upto {
			end, full = tend, d.sealed && tend == d.end
		}
		if !s.acquire() {
			continue // retired by truncation meanwhile
		}
		err := w.syncSegmentLocked(s, end)
		if err == nil {
			if full {
				s.idx.Checkpoint(d.last-s.firstSeq+1, d.end, 0)
				err = w.dur.syncIndex(s.idx)
			} else {
				s.idx.Checkpoint(target-s.firstSeq+1, end, 0)
			}
		}
		s.release()
		if err != nil {
			err = fmt.Errorf("mmapwal: sync %s: %w", s.path, err)
			w.fail(err)
			return err
		}
		if full {
			synced++
		}
	}
	if final {
		// Close: the active segment's checkpoint, marked closed (nothing but
		// zeros after it), makes the next Open read no frames.
		w.mu.Lock()
		if a := w.active; a != nil && w.published.Load() == w.nextSeq-1 {
			a.idx.Checkpoint(w.nextSeq-a.firstSeq, w.writeOff, format.IndexClosed)
		}
		w.mu.Unlock()
	}
	if synced > 0 {
		w.mu.Lock()
		w.dirty = w.dropSealed(w.dirty, synced)
		w.mu.Unlock()
		if w.opts.MaxSegments > 0 {
			if err := w.enforceMaxSegments(); err != nil {
				w.log.Warn("mmapwal: removing old segments failed", "dir", w.dir, "err", err)
			}
		}
	}
	w.syncMu.Lock()
	if target > w.synced.Load() {
		w.synced.Store(target)
	}
	w.syncCond.Broadcast()
	w.syncMu.Unlock()
	return nil
}

// dropSealed removes the first n fully synced sealed segments from the dirty
// list. REQUIRES: w.mu held.
func (w *WAL) dropSealed(dirty []*segment, n int) []*segment {
	out := dirty[:0]
	for _, s := range dirty {
		if n > 0 && s.sealed && s.syncedOff >= s.sealedEnd {
			n--
			continue
		}
		out = append(out, s)
	}
	return out
}

// syncSegmentLocked syncs s from its synced offset to end. The first sync
// of a new segment starts at offset 0 (its header) and is preceded by a
// directory sync, so the segment's name is durable before any of its
// records is. REQUIRES: w.flushMu held.
func (w *WAL) syncSegmentLocked(s *segment, end int64) error {
	if end <= s.syncedOff {
		return nil
	}
	if !s.named {
		if err := w.dur.syncDir(w.dir); err != nil {
			return err
		}
		s.named = true
	}
	if err := w.dur.syncSegment(s, s.syncedOff, end-s.syncedOff); err != nil {
		return err
	}
	w.st.syncs.Add(1)
	s.syncedOff = end
	return nil
}

// waitDurable returns once seq is durable, or the sticky error. Group
// commit by leader and followers: the appender that finds no flush running
// does it itself, for everything published so far (no hand-off to another
// goroutine on the latency path); the others wait for it to finish and
// then either are covered or one of them leads the next round.
func (w *WAL) waitDurable(seq uint64) error {
	for {
		if w.synced.Load() >= seq {
			return nil
		}
		if err := w.failed(); err != nil {
			return err
		}
		w.syncMu.Lock()
		gen := w.flushGen
		w.syncMu.Unlock()
		if w.flushMu.TryLock() {
			err := w.flushLocked(false)
			w.unlockFlush()
			if err != nil {
				return err
			}
			continue
		}
		w.syncMu.Lock()
		for w.flushGen == gen && w.synced.Load() < seq && w.failed() == nil && !w.isClosedSync() {
			w.syncCond.Wait()
		}
		closed := w.isClosedSync()
		w.syncMu.Unlock()
		if closed && w.synced.Load() < seq {
			return ErrClosed
		}
	}
}

// isClosedSync reports Close having finished its final flush; it is read
// under syncMu, which Close's final broadcast also takes.
func (w *WAL) isClosedSync() bool {
	select {
	case <-w.done:
		return w.flushDone.Load()
	default:
		return false
	}
}

// Sync makes every record appended before the call durable, whatever the
// policy.
func (w *WAL) Sync() error {
	w.mu.Lock()
	closed := w.closed
	w.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if err := w.failed(); err != nil {
		return err
	}
	target := w.published.Load()
	if w.synced.Load() >= target {
		return nil
	}
	err := w.flush(false)
	if err == nil && w.synced.Load() < target {
		err = errors.New("mmapwal: sync did not reach the published seq")
	}
	return err
}
