package mmapwal

import (
	"fmt"
	"runtime"
	"time"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/platform"
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
		w.manageSealed() // a rotation kicked: the sealed segment may be unmapped once written (mapcache.go)
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
		if err := w.flush(false); err != nil && isTransient(err) {
			// Not sticky (see transientError): the next round retries.
			w.log.Warn("mmapwal: background sync failed; will retry", "dir", w.dir, "err", err)
		}
		// Any other failure is sticky and reported to waiters.
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

// unlockFlush releases flushMu, then closes the channel followers wait on
// and installs a fresh one. A follower loads the channel before it tries
// flushMu; if the try fails, the holder's unlock (or an earlier one) closes
// that very channel, so no follower can miss the end of a round. Closing a
// channel wakes every follower without a lock convoy.
func (w *WAL) unlockFlush() {
	w.flushMu.Unlock()
	w.endRound()
}

// endRound wakes every follower waiting on the current round. unlockFlush
// calls it; TruncateBack also calls it while it keeps flushMu, after its own
// flush made every waiting appender's record durable (settleAppendersLocked).
func (w *WAL) endRound() {
	next := make(chan struct{}) // the one allocation of a flush round, shared by its group
	w.roundMu.Lock()
	ended := w.roundEnd
	w.roundEnd = next
	w.roundGen++
	w.roundWaiters.Store(0) // everyone waiting on ended is woken now
	w.roundMu.Unlock()
	close(ended)
}

// joinRound registers the caller as waiting for the current flush round and
// returns the channel closed when it ends, and its generation.
func (w *WAL) joinRound() (chan struct{}, uint64) {
	w.roundMu.Lock()
	defer w.roundMu.Unlock()
	w.roundWaiters.Add(1)
	return w.roundEnd, w.roundGen
}

// leaveRound undoes joinRound for a caller that became the leader instead,
// unless that round has ended meanwhile (its count was reset).
func (w *WAL) leaveRound(gen uint64) {
	w.roundMu.Lock()
	defer w.roundMu.Unlock()
	if w.roundGen == gen {
		w.roundWaiters.Add(-1)
	}
}

// flushLocked is flush with flushMu held.
func (w *WAL) flushLocked(final bool) error { return w.flushRound(final, false) }

// flushRound is flushLocked; with muHeld the caller already holds w.mu
// (TruncateBack, settling appenders), and retention is left for a later round.
func (w *WAL) flushRound(final, muHeld bool) error {
	lock, unlock := w.mu.Lock, w.mu.Unlock
	if muHeld {
		lock, unlock = func() {}, func() {}
	}
	if w.shut.Load() {
		return ErrClosed
	}
	if err := w.failed(); err != nil {
		return err
	}
	target := w.published.Load()
	tseg, tend := w.endOf(target)

	// Invariant (the dirty list): every listed segment with bytes not yet
	// synced is in w.dirty, in seq order; so tseg, unless synced up to tend,
	// is in work. It holds because: Open puts every segment with records
	// beyond its checkpoint, and the active one, in w.dirty; a rotation
	// appends the new active segment; a sealed segment leaves only through
	// dropSealed, once synced to its end, by the flushMu holder (this round,
	// or TruncateBack's syncKeptLocked); and segments leave with their
	// listing only (unlistLocked, retireLocked, dropEmptyActiveLocked: an
	// empty segment). tseg, found before w.mu was taken, cannot leave
	// meanwhile: every removal but dropEmptyActiveLocked (which holds no
	// record) holds flushMu, as this round does.
	lock()
	work := w.flushWork[:0] // owned by the flushMu holder
	for _, s := range w.dirty {
		work = append(work, dirtySeg{s, s.sealed, s.sealedEnd, s.sealedLast})
	}
	unlock()
	w.flushWork = work[:0]

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
		end, full, checkpoint := d.end, true, true
		if i == upto {
			end, full = tend, d.sealed && tend == d.end
			if tend < 0 { // see endOf: sync everything, claim nothing
				end, full, checkpoint = s.size, false, false
				if d.sealed {
					end = d.end
				}
			}
		}
		if ok, perr := s.pin(); !ok {
			if perr == nil {
				continue // retired by truncation meanwhile
			}
			// Mapping it again failed. Nothing written is lost (unmapped
			// pages stay in the page cache), so a lack of descriptors or
			// memory is retried later, as for a directory sync.
			err := fmt.Errorf("mmapwal: sync %s: %w", s.path, dirSyncError(perr))
			if !isTransient(err) {
				w.fail(err)
			}
			return err
		}
		err := w.syncSegmentLocked(s, end)
		if err == nil {
			if full {
				if err = w.checkpointLocked(s, d.last-s.firstSeq+1, d.end, 0); err == nil {
					w.cache.manage(s)
				}
			} else if checkpoint {
				err = s.idx.Checkpoint(target-s.firstSeq+1, end, 0)
			}
		}
		s.unpin()
		if err != nil {
			err = fmt.Errorf("mmapwal: sync %s: %w", s.path, err)
			if !isTransient(err) {
				w.fail(err)
			}
			return err
		}
		if full {
			synced++
		}
	}
	if final {
		// Close: the active segment's checkpoint, marked closed (nothing but
		// zeros after it), makes the next Open read no frames.
		lock()
		var err error
		if a := w.active; a != nil && w.published.Load() == w.nextSeq-1 {
			err = a.idx.Checkpoint(w.nextSeq-a.firstSeq, w.writeOff, format.IndexClosed)
		}
		unlock()
		if err != nil {
			return err
		}
	}
	if synced > 0 {
		lock()
		w.dirty = w.dropSealed(w.dirty, synced)
		unlock()
		if w.opts.MaxSegments > 0 && !muHeld {
			if err := w.enforceMaxSegments(); err != nil {
				w.log.Warn("mmapwal: removing old segments failed", "dir", w.dir, "err", err)
			}
		}
	}
	if prev := w.synced.Load(); target > prev {
		w.st.observeRound(target - prev)
		w.synced.Store(target) // followers see it when unlockFlush wakes them
	}
	return nil
}

// endOf returns the segment holding record seq and the offset just after
// its frame, read from the index and the frame itself (nil if seq is not in
// a live segment). Every record up to seq is published, so its entry is set.
func (w *WAL) endOf(seq uint64) (*segment, int64) {
	s := w.segs.Load().find(seq)
	if s == nil {
		return nil, 0
	}
	if ok, _ := s.pin(); !ok {
		return nil, 0 // dirty segments are never unmapped: it was retired
	}
	defer s.unpin()
	var end int64
	_ = platform.CatchFault(func() { end = s.frameEnd(seq) })
	if end == 0 {
		// The index entry failed its check (a damaged index file being
		// rebuilt): sync the whole segment and write no checkpoint for it.
		w.log.Warn("mmapwal: flush could not locate the last published record", "file", s.path, "seq", seq)
		return s, -1
	}
	return s, end
}

// frameEnd returns the offset just after the frame of record seq of s, as
// the index entry and the frame itself give it, or 0 if they do not agree
// (a damaged index entry). REQUIRES: a pin on s; a fault guard.
func (s *segment) frameEnd(seq uint64) int64 {
	off, ok := s.idx.Get(seq - s.firstSeq)
	if !ok {
		return 0
	}
	// Bounded by the format, not today's MaxRecordSize: the record may
	// have been written under a larger one.
	h, st := format.CheckFrameHeader(s.data, off, MaxMaxRecordSize)
	if st != format.FrameOK || h.Seq != seq {
		return 0
	}
	return off + format.FrameSize(int(h.Length))
}

// dropSealed removes the first n fully synced sealed segments from the dirty
// list. REQUIRES: w.mu held.
func (w *WAL) dropSealed(dirty []*segment, n int) []*segment {
	out := dirty[:0]
	for _, s := range dirty {
		if n > 0 && s.sealed && s.syncedOff >= s.sealedEnd {
			w.closeWriteFile(s) // every frame in it is written: it was synced to its end
			n--
			continue
		}
		out = append(out, s)
	}
	return out
}

// syncSegmentLocked syncs s from its synced offset to end. The first sync
// of a new segment starts at offset 0 (its header) and comes with a
// directory sync, so the segment's name is durable by the time any of its
// records is counted durable. The two run concurrently (on ext4 one journal
// commit can serve both); both must succeed. REQUIRES: w.flushMu held.
func (w *WAL) syncSegmentLocked(s *segment, end int64) error {
	if end <= s.syncedOff {
		return nil
	}
	var dirErr chan error
	if !s.named {
		dirErr = make(chan error, 1)
		go func() { dirErr <- dirSyncError(w.dur.syncDir(w.dir)) }()
	}
	t0 := time.Now()
	err := w.dur.syncSegment(s, s.syncedOff, end-s.syncedOff)
	if dirErr != nil {
		if derr := <-dirErr; err == nil {
			err = derr
		}
	}
	if err != nil {
		return err
	}
	s.named = true
	w.st.syncs.Add(1)
	w.st.observeSync(time.Since(t0))
	s.syncedOff = end
	return nil
}

// waitDurable returns once seq is durable, or the sticky error. Group
// commit by leader and followers: the appender that finds no flush running
// does it itself, for everything published so far (no hand-off to another
// goroutine on the latency path); the others wait for that round to end and
// then either are covered or one of them leads the next round.
// REQUIRES: the caller counted itself in w.durableAppenders.
func (w *WAL) waitDurable(seq uint64) error {
	for {
		if w.synced.Load() >= seq {
			return nil
		}
		if err := w.failed(); err != nil {
			return err
		}
		if w.shut.Load() {
			return ErrClosed
		}
		roundEnd, gen := w.joinRound()
		if w.synced.Load() >= seq {
			// A round ended between the check above and joinRound (e.g.
			// the flush of a TruncateBack, which keeps flushMu and waits
			// for this call to return).
			w.leaveRound(gen)
			return nil
		}
		if w.flushMu.TryLock() {
			w.leaveRound(gen)
			// Appenders inside Append that are not waiting on this round
			// yet (woken by the last one, or between reserving and
			// waiting) would miss it and lead a tiny next one: let them
			// catch up first (a few yields at most). Alone, the leader
			// syncs at once.
			for i := 0; i < 16 && w.durableAppenders.Load()-w.roundWaiters.Load() > 1; i++ {
				runtime.Gosched()
			}
			err := w.flushLocked(false)
			w.unlockFlush()
			if err != nil {
				return err
			}
			continue
		}
		<-roundEnd
	}
}

// Sync makes every record appended before the call durable, whatever the
// policy. Records a concurrent TruncateBack cut need not be: Sync returns nil
// once everything that remains of them is durable. After a Close that failed
// with an error that lost nothing (see Close), Sync retries the flush.
func (w *WAL) Sync() error {
	if w.ro != nil {
		return ErrReadOnly
	}
	w.mu.Lock()
	released := w.released
	w.mu.Unlock()
	if released {
		return ErrClosed
	}
	if err := w.failed(); err != nil {
		return err
	}
	if w.synced.Load() >= w.published.Load() {
		return nil
	}
	// flushLocked syncs up to the watermark it reads under flushMu, which
	// TruncateBack also holds: every record appended before this call is at
	// or below that watermark, or was cut before it was read.
	return w.flush(false)
}
