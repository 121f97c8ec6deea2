package mmapwal

import (
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/platform"
)

// Append adds a record and returns its seq. Under SyncAlways it returns once
// the record is durable; otherwise once it is in the mapping (it survives a
// crash of this process). An empty record is valid.
//
// An Append racing a TruncateBack is ordered entirely before or entirely
// after it: TruncateBack waits for the appends in progress to return. So a
// racing Append returns its seq (under SyncAlways, durable), and the record
// then stays or is cut like any record appended before the TruncateBack; or
// it starts after the truncation and gets a seq after the new end. It never
// waits for a seq the truncation took away. An error means the record is
// not acknowledged, as always.
func (w *WAL) Append(data []byte) (uint64, error) {
	if w.ro != nil {
		return 0, ErrReadOnly
	}
	if len(data) > w.opts.MaxRecordSize {
		return 0, fmt.Errorf("%w: %d bytes, MaxRecordSize is %d", ErrTooLarge, len(data), w.opts.MaxRecordSize)
	}
	size := format.FrameSize(len(data))
	if w.opts.Sync == SyncAlways {
		w.durableAppenders.Add(1)
		defer w.durableAppenders.Add(-1)
	}
	w.mu.Lock()
	seg, off, seq, durable, err := w.reserveLocked(size, 1)
	if err == nil && w.opts.Sync == SyncAlways {
		// Under w.mu: TruncateBack sees it (settleAppendersLocked). The
		// other policies return right after publication, which needs no
		// settling (see publish).
		w.inflight.Add(1)
		defer w.inflight.Add(-1)
	}
	w.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if err := w.write(seg, off, seq, durable, format.KindFull, data); err != nil {
		return 0, err
	}
	if err := w.publish(seq, seq); err != nil {
		return 0, err
	}
	if w.opts.Sync == SyncAlways {
		if err := w.waitDurable(seq); err != nil {
			return 0, err
		}
	}
	return seq, nil
}

// AppendBatch adds records with consecutive seqs and returns the first. The
// batch is atomic: after a crash either all its records are present or none.
// A batch never spans segments; one larger than a segment gets a segment
// sized to fit. An empty batch returns (0, nil) and appends nothing. Against
// a racing TruncateBack it behaves as Append.
func (w *WAL) AppendBatch(records [][]byte) (uint64, error) {
	if w.ro != nil {
		return 0, ErrReadOnly
	}
	if len(records) == 0 {
		return 0, nil
	}
	var size int64
	for i, r := range records {
		if len(r) > w.opts.MaxRecordSize {
			return 0, fmt.Errorf("%w: record %d of batch is %d bytes, MaxRecordSize is %d", ErrTooLarge, i, len(r), w.opts.MaxRecordSize)
		}
		size += format.FrameSize(len(r))
	}
	if size > MaxSegmentSize-format.SegmentHeaderSize {
		return 0, fmt.Errorf("%w: batch of %d bytes exceeds the largest segment", ErrTooLarge, size)
	}
	n := uint64(len(records))
	if w.opts.Sync == SyncAlways {
		w.durableAppenders.Add(1)
		defer w.durableAppenders.Add(-1)
	}
	w.mu.Lock()
	seg, off, first, durable, err := w.reserveLocked(size, n)
	if err == nil && w.opts.Sync == SyncAlways {
		w.inflight.Add(1) // as in Append
		defer w.inflight.Add(-1)
	}
	w.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if err := w.writeBatch(seg, off, first, durable, records, size); err != nil {
		return 0, err
	}
	if err := w.publish(first, first+n-1); err != nil {
		return 0, err
	}
	if w.opts.Sync == SyncAlways {
		if err := w.waitDurable(first + n - 1); err != nil {
			return 0, err
		}
	}
	return first, nil
}

// reserveLocked takes size bytes and n seqs in the active segment, rotating
// first if they do not fit. It returns the durable-seq hint for the frames.
// REQUIRES: w.mu held.
func (w *WAL) reserveLocked(size int64, n uint64) (*segment, int64, uint64, uint64, error) {
	if w.closed {
		return nil, 0, 0, 0, ErrClosed
	}
	if err := w.failed(); err != nil {
		return nil, 0, 0, 0, err
	}
	if w.active == nil || w.writeOff+size > w.active.size {
		if err := w.rotateLocked(size); err != nil {
			return nil, 0, 0, 0, err
		}
	}
	if a := w.active; a.closedOnDisk {
		// Once per clean reopen: the segment must stop claiming "zeros after
		// the end" on disk before any new byte can be written back.
		if err := w.checkpointLocked(a, w.nextSeq-a.firstSeq, w.writeOff, 0); err != nil {
			return nil, 0, 0, 0, fmt.Errorf("mmapwal: reopen %s for appending: %w", a.idx.Path(), err)
		}
		a.closedOnDisk = false
	}
	s, off, seq := w.active, w.writeOff, w.nextSeq
	w.writeOff += size
	if w.writeOff >= w.prefaultKickAt {
		w.prefaultKickAt = w.writeOff + w.opts.prefault.kick()
		s.prefault.poke(w.writeOff)
	}
	w.nextSeq += n
	w.appended += n
	w.bytes += uint64(size)
	w.batchHist.observe(&countBounds, n)
	if n > 1 {
		w.batches++
	}
	return s, off, seq, w.synced.Load(), nil
}

// rotateLocked seals the active segment and activates a prepared one (or a
// dedicated one for a frame larger than a segment). A failure (e.g. ENOSPC
// preparing the file) is returned to this appender only: it is not sticky,
// and the next append tries again. REQUIRES: w.mu held.
func (w *WAL) rotateLocked(need int64) error {
	size := w.opts.SegmentSize
	if need+format.SegmentHeaderSize > size {
		size = (need + format.SegmentHeaderSize + 4095) &^ 4095
	}
	next, err := w.prep.take(size)
	if err != nil {
		return fmt.Errorf("mmapwal: new segment in %s: %w", w.dir, err)
	}
	if a := w.active; a != nil && a.firstSeq == w.nextSeq {
		// The active segment holds no record (a TruncateBack cut at its
		// start) and this frame does not fit in it: the new segment takes
		// its name. The empty one goes first, so a file name never refers
		// to two segments (a later drop of the old one would delete the
		// new one's files).
		w.dropEmptyActiveLocked()
	}
	if err := next.activate(w.dir, w.nextSeq); err != nil {
		next.discard()
		return fmt.Errorf("mmapwal: activate segment %d in %s: %w", w.nextSeq, w.dir, err)
	}
	if w.opts.batchPwrite {
		next.keepWriteFile()
	}
	if err := w.cache.adopt(next); err != nil {
		w.log.Warn("mmapwal: closing a mapped segment's descriptors failed", "file", next.path, "err", err)
	}
	old := w.active
	if old != nil {
		old.sealed, old.sealedEnd, old.sealedLast = true, w.writeOff, w.nextSeq-1
		old.prefault.halt()
	}
	w.active, w.writeOff = next, format.SegmentHeaderSize
	w.prefaultKickAt = w.writeOff + w.opts.prefault.kick()
	w.dirty = append(w.dirty, next)
	w.segs.Store(w.segs.Load().with(next))
	w.st.rotations.Add(1)
	if old != nil {
		// The flusher seals the old segment (full sync, index checkpoint)
		// in the background.
		w.kickFlusher()
		w.manageSealedLocked()
	}
	return nil
}

// dropEmptyActiveLocked removes the active segment, which holds no record,
// from the lists and deletes its files. Nothing is reserved in it, and no
// record is lost if a crash follows: the log then ends with the segment
// before it. A failure to delete is only logged: the new segment's rename
// replaces whatever is left under the name. REQUIRES: w.mu held.
func (w *WAL) dropEmptyActiveLocked() {
	a := w.active
	w.unlistLocked([]*segment{a})
	w.active, w.writeOff = nil, 0
	a.retire() // readers and the flusher hold a reference only briefly
	err := a.unmap()
	if rerr := a.removeFiles(); err == nil {
		err = rerr
	}
	if err != nil {
		w.log.Warn("mmapwal: removing an empty segment before reusing its name failed", "file", a.path, "err", err)
	}
}

// maxPwrite bounds what one append writes with pwrite: larger frames and
// batches are copied into the mapping rather than encoded into a buffer of
// their size first.
const maxPwrite = 1 << 20

// pwriteBuf is a pooled encoding buffer for pwrite appends.
type pwriteBuf struct{ b []byte }

// getBuf returns a pooled buffer of n bytes (n <= maxPwrite); putBuf gives
// it back. In steady state neither allocates.
func (w *WAL) getBuf(n int64) *pwriteBuf {
	pb, _ := w.bufs.Get().(*pwriteBuf)
	if pb == nil {
		pb = &pwriteBuf{}
	}
	if int64(cap(pb.b)) < n {
		pb.b = make([]byte, n, max(n, 64<<10))
	}
	pb.b = pb.b[:n]
	return pb
}

func (w *WAL) putBuf(pb *pwriteBuf) { w.bufs.Put(pb) }

// pwriteFrames writes the encoded frames b at off through s's descriptor.
// Any error, a short write among them, is sticky as a fault is: the frames
// may be half-written, and a retry could report success for pages the
// kernel dropped.
func (w *WAL) pwriteFrames(s *segment, f *os.File, b []byte, off int64, seq uint64) error {
	n, err := f.WriteAt(b, off)
	if err == nil && n != len(b) {
		err = fmt.Errorf("short write: %d of %d bytes", n, len(b))
	}
	if err != nil {
		err = fmt.Errorf("mmapwal: write seq %d to %s at offset %d: %w", seq, s.path, off, err)
		w.fail(err)
		return err
	}
	return nil
}

// closeWriteFile closes s's pwrite descriptor, which no append needs any
// more. A failed close loses nothing (the frames are in the page cache, and
// their sync through the mapping reports write-back errors): only logged.
func (w *WAL) closeWriteFile(s *segment) {
	if err := s.closeWriteFile(); err != nil {
		w.log.Warn("mmapwal: closing a segment's write descriptor failed", "file", s.path, "err", err)
	}
}

// write copies one frame into the mapping and records it in the index. A
// fault on the mapping is sticky: the frame may be half-written.
func (w *WAL) write(s *segment, off int64, seq, durable uint64, kind byte, data []byte) error {
	ferr := platform.CatchFault(func() {
		format.EncodeFrame(s.data[off:], s.seed, kind, seq, durable, data)
		s.idx.Set(int(seq-s.firstSeq), off)
	})
	if ferr != nil {
		err := fmt.Errorf("mmapwal: write seq %d to %s at offset %d: %w", seq, s.path, off, ferr)
		w.fail(err)
		return err
	}
	return nil
}

// batchKind is the frame kind of record i of a batch of n.
func batchKind(i, n int) byte {
	switch {
	case n == 1:
		return format.KindFull
	case i == 0:
		return format.KindFirst
	case i == n-1:
		return format.KindLast
	}
	return format.KindMiddle
}

// writeBatch writes the frames of records, the first at off with seq
// first: with one pwrite of all of them when s has a write descriptor and
// they fit maxPwrite, else copied into the mapping under one fault guard (a
// guard per frame costs as much as a small frame's copy). A fault or a
// failed pwrite is sticky, as in write.
func (w *WAL) writeBatch(s *segment, off int64, first, durable uint64, records [][]byte, size int64) error {
	n := len(records)
	if f := s.wf.Load(); f != nil && size <= maxPwrite {
		pb := w.getBuf(size)
		var p int64
		for i, r := range records {
			p += format.EncodeFrame(pb.b[p:], s.seed, batchKind(i, n), first+uint64(i), durable, r)
		}
		err := w.pwriteFrames(s, f, pb.b, off, first)
		w.putBuf(pb)
		if err != nil {
			return err
		}
		p = off
		ferr := platform.CatchFault(func() {
			for i, r := range records {
				s.idx.Set(int(first+uint64(i)-s.firstSeq), p)
				p += format.FrameSize(len(r))
			}
		})
		if ferr != nil {
			err := fmt.Errorf("mmapwal: index seq %d of %s: %w", first, s.path, ferr)
			w.fail(err)
			return err
		}
		return nil
	}
	p, seq := off, first
	ferr := platform.CatchFault(func() {
		for i, r := range records {
			size := format.EncodeFrame(s.data[p:], s.seed, batchKind(i, n), seq, durable, r)
			s.idx.Set(int(seq-s.firstSeq), p)
			p += size
			seq++
		}
	})
	if ferr != nil {
		err := fmt.Errorf("mmapwal: write seq %d to %s at offset %d: %w", seq, s.path, p, ferr)
		w.fail(err)
		return err
	}
	return nil
}

// publish makes seqs [first, last] visible to readers once every earlier
// seq is visible, and returns when that has happened: an append is only
// acknowledged after all earlier appends are in the mapping, so a crash can
// never keep a later acknowledged record behind a torn earlier one.
//
// The common case takes no lock: the owner of seq published+1 advances the
// watermark with one CAS. An appender that finishes early parks its range in
// pending and waits. Both sides use sequentially consistent atomics in
// opposite order (fast: CAS published, then load pubSlow; slow: add pubSlow,
// then read published under pubMu), so one of them always sees the other.
func (w *WAL) publish(first, last uint64) error {
	if w.published.CompareAndSwap(first-1, last) {
		if w.pubSlow.Load() != 0 {
			w.pubMu.Lock()
			w.drainLocked()
			w.pubCond.Broadcast()
			w.pubMu.Unlock()
		}
		w.wakeFollowers()
		return nil
	}
	w.pubSlow.Add(1)
	defer w.pubSlow.Add(-1)
	w.pubMu.Lock()
	defer w.pubMu.Unlock()
	w.pending[first] = last
	w.drainLocked()
	// Parked until drainLocked publishes the range (it deletes the entry
	// as it does), not until the watermark passes last: once published, a
	// TruncateBack may lower the watermark again before this goroutine
	// runs, and it must not wait for a seq the log no longer reaches. (If
	// a later append parks under the same first meanwhile, this one waits
	// for that range too: later, never forever.)
	for {
		if _, parked := w.pending[first]; !parked {
			break
		}
		if err := w.failed(); err != nil {
			return err
		}
		w.pubCond.Wait()
	}
	w.pubCond.Broadcast()
	w.wakeFollowers()
	return nil
}

// drainLocked advances the watermark over parked ranges that now follow it.
// REQUIRES: w.pubMu held.
func (w *WAL) drainLocked() {
	for {
		p := w.published.Load()
		last, ok := w.pending[p+1]
		if !ok {
			return
		}
		delete(w.pending, p+1)
		w.published.CompareAndSwap(p, last) // only this range's owner could advance past p
	}
}

// waitInFlightLocked waits until every reserved seq is published, so that
// no appender is still copying. REQUIRES: w.mu held (no new reservations).
func (w *WAL) waitInFlightLocked() {
	w.pubSlow.Add(1)
	defer w.pubSlow.Add(-1)
	w.pubMu.Lock()
	for w.published.Load() != w.nextSeq-1 && w.failed() == nil {
		w.pubCond.Wait()
	}
	w.pubMu.Unlock()
}

// settleAppendersLocked lets every SyncAlways append in progress return
// before a TruncateBack changes the log, so that each one is ordered
// entirely before the truncation (see Append). Without it, an append
// waiting for its sync could wait for a seq the log no longer reaches.
// (Waiting for publication cannot: see publish.) Under
// SyncAlways it first makes everything published durable and ends the
// current flush round, since the waiters cannot lead one while flushMu is
// held. On error nothing was changed and the truncation must not proceed.
// REQUIRES: w.flushMu and w.mu held (no new reservations), after
// waitInFlightLocked.
func (w *WAL) settleAppendersLocked() error {
	if w.inflight.Load() == 0 {
		return nil
	}
	if w.opts.Sync == SyncAlways && w.synced.Load() < w.published.Load() {
		if err := w.flushRound(false, true); err != nil {
			return err
		}
	}
	w.endRound()
	for i := 0; w.inflight.Load() > 0; i++ {
		// Every one of them is past publication and about to return:
		// nothing it still needs is held here.
		if i < 100 {
			runtime.Gosched()
		} else {
			time.Sleep(20 * time.Microsecond)
		}
	}
	return nil
}
