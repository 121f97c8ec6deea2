package mmapwal

import (
	"fmt"
	"sync"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/internal/scan"
	"github.com/mmapwal/wal/platform"
)

// Read returns a copy of record seq; ErrNotFound outside [FirstSeq,
// LastSeq]. A record whose checksum fails returns ErrCorrupt, never the
// damaged bytes.
func (w *WAL) Read(seq uint64) ([]byte, error) {
	var b []byte
	var err error
	if w.ro != nil {
		b, _, err = w.ro.read(nil, seq)
	} else {
		b, err = w.read(nil, seq, nil)
	}
	if err == nil && b == nil {
		b = []byte{} // an empty record is a record: never nil on success
	}
	return b, err
}

// ReadAppend appends record seq to dst and returns the extended slice; with
// a dst of enough capacity it does not allocate.
func (w *WAL) ReadAppend(dst []byte, seq uint64) ([]byte, error) {
	if w.ro != nil {
		b, _, err := w.ro.read(dst, seq)
		return b, err
	}
	return w.read(dst, seq, nil)
}

// readHint lets sequential readers skip the index: the next record usually
// starts where the previous one ended.
type readHint struct {
	seg *segment
	off int64
}

type readStatus int

const (
	readOK       readStatus = iota
	readBadIndex            // the index entry does not lead to this seq
	readBadCRC              // the frame is there but its checksum fails
	readFault               // the mapping could not be read
)

func (w *WAL) read(dst []byte, seq uint64, hint *readHint) ([]byte, error) {
	rebuilt := false
	for attempt := 0; ; attempt++ {
		gen := w.truncGen.Load() // before the bounds: see cutMeanwhile
		first, last := w.first.Load(), w.published.Load()
		if seq < first || seq > last {
			return dst, w.notFound(seq)
		}
		s := w.segs.Load().find(seq)
		pinned, perr := false, error(nil)
		if s != nil {
			pinned, perr = s.pin()
		}
		if perr != nil {
			return dst, perr
		}
		if !pinned {
			if attempt < 3 {
				continue // the list changed under us (truncation, Close)
			}
			return dst, w.notFound(seq)
		}
		out, off, st := w.readFrame(s, dst, seq, hint)
		s.unpin()
		if st == readOK {
			return out, nil
		}
		// Failed check: first rule out a concurrent truncation.
		if seq < w.first.Load() || seq > w.published.Load() {
			return dst, w.notFound(seq)
		}
		switch {
		case st == readFault:
			return dst, &CorruptError{File: s.path, Offset: off, Seq: seq, Reason: "fault reading the mapping (file shrunk?)"}
		case st == readBadIndex && !rebuilt:
			if err := w.rebuildIndex(s, seq); err != nil {
				if cutMeanwhile(w, gen, attempt) {
					rebuilt, hint = false, nil
					continue
				}
				return dst, err
			}
			rebuilt, hint = true, nil
		case attempt >= 2:
			if cutMeanwhile(w, gen, attempt) {
				rebuilt, hint = false, nil
				continue
			}
			reason := "checksum mismatch"
			if st == readBadIndex {
				reason = "no valid frame with this seq where the rebuilt index points"
			}
			return dst, &CorruptError{File: s.path, Offset: off, Seq: seq, Reason: reason}
		}
		// Retry: a torn read of a frame being rewritten after TruncateBack
		// passes on the next attempt.
	}
}

// cutMeanwhile reports whether a truncation ran since truncGen was gen, so
// that a failed check may be a record being rewritten (TruncateBack, then
// appends of the same seq), not damage: the read starts again, a bounded
// number of times.
func cutMeanwhile(w *WAL, gen uint64, attempt int) bool {
	return w.truncGen.Load() != gen && attempt < 16
}

func (w *WAL) notFound(seq uint64) error {
	if w.isClosed() {
		return ErrClosed
	}
	first, last := w.FirstSeq(), w.LastSeq()
	if first == 0 {
		return fmt.Errorf("%w: seq %d (log is empty)", ErrNotFound, seq)
	}
	return fmt.Errorf("%w: seq %d outside [%d, %d]", ErrNotFound, seq, first, last)
}

// readFrame finds, checks and copies record seq of s. The payload is copied
// before its checksum is computed, so bytes changed after the check can
// never be returned. REQUIRES: a pin on s.
func (w *WAL) readFrame(s *segment, dst []byte, seq uint64, hint *readHint) ([]byte, int64, readStatus) {
	n := len(dst)
	off := int64(-1)
	st := readBadIndex
	ferr := platform.CatchFault(func() {
		var h format.FrameHeader
		var hst format.FrameStatus
		if hint != nil && hint.seg == s {
			off = hint.off
			h, hst = format.CheckFrameHeader(s.data, off, MaxMaxRecordSize)
		}
		if off < 0 || hst != format.FrameOK || h.Seq != seq {
			var ok bool
			if off, ok = s.idx.Get(seq - s.firstSeq); !ok {
				return
			}
			h, hst = format.CheckFrameHeader(s.data, off, MaxMaxRecordSize)
			if hst != format.FrameOK || h.Seq != seq {
				return
			}
		}
		if !w.bigFrameOK(s, off, h) {
			st = readBadCRC
			return
		}
		p := off + format.FrameHeaderSize
		dst = append(dst, s.data[p:p+int64(h.Length)]...)
		if format.FrameCRC(s.seed, s.data[off:p], dst[n:]) != h.CRC {
			dst, st = dst[:n], readBadCRC
			return
		}
		st = readOK
		if hint != nil {
			hint.seg, hint.off = s, off+format.FrameSize(int(h.Length))
		}
	})
	if ferr != nil {
		return dst[:n], off, readFault
	}
	return dst, off, st
}

// bigFrameOK checks, in place, the checksum of a frame longer than today's
// MaxRecordSize, before anything is allocated for it. Reads bound a frame by
// what the format allows (the segment, at most MaxMaxRecordSize), not by
// today's option: the log may have been written with a larger one. A damaged
// length field must still not make a read allocate up to a gigabyte, so such
// a frame is copied only once its bytes in the mapping pass the check (the
// copy is checked again: the mapping may change under a TruncateBack).
// REQUIRES: a pin on s; called under a fault guard.
func (w *WAL) bigFrameOK(s *segment, off int64, h format.FrameHeader) bool {
	if h.Length <= uint64(w.opts.MaxRecordSize) {
		return true
	}
	p := off + format.FrameHeaderSize
	return format.FrameCRC(s.seed, s.data[off:p], s.data[p:p+int64(h.Length)]) == h.CRC
}

// rebuildIndex rescans s and rewrites its index entries after an entry
// failed its check. REQUIRES: none; it pins s itself (a caller may hold a pin too).
func (w *WAL) rebuildIndex(s *segment, seq uint64) error {
	if ok, err := s.pin(); !ok {
		if err != nil {
			return err
		}
		return w.notFound(seq)
	}
	defer s.unpin()
	s.rebuildMu.Lock()
	defer s.rebuildMu.Unlock()
	var r scan.Result
	if ferr := platform.CatchFault(func() {
		r = scan.Scan(s.data, s.seed, format.SegmentHeaderSize, s.firstSeq, MaxMaxRecordSize, true)
	}); ferr != nil {
		return &CorruptError{File: s.path, Offset: -1, Seq: seq, Reason: ferr.Error()}
	}
	if err := s.idx.SetOffsets(0, r.Offsets); err != nil {
		return err
	}
	w.st.indexRepairs.Add(1)
	w.log.Warn("mmapwal: index entry failed its check; rebuilt index from segment",
		"file", s.idx.Path(), "seq", seq, "records", len(r.Offsets))
	if seq >= r.Next {
		return &CorruptError{File: s.path, Offset: r.StopAt, Seq: r.Next,
			Reason: fmt.Sprintf("segment scan stopped (%s, %s) before seq %d", r.Stop, r.Frame, seq)}
	}
	return nil
}

// Reader iterates over records in seq order. It is not safe for concurrent
// use, but any number of Readers may run beside appenders and truncations.
// It reads a run of records ahead of the caller, but never returns a record
// the log no longer holds when Next is called:
//
//   - Records dropped from the front (TruncateFront, MaxSegments retention)
//     end the Reader as if it were created there: Next returns false and Err
//     an error wrapping ErrNotFound, like Read of that seq.
//   - A TruncateBack that removed or replaced a record the Reader already
//     returned (or cut the log below its position) ends it: Next returns
//     false and Err an error wrapping ErrTruncated, so a follower knows to
//     resynchronise. A Reader whose position is at or before the new end
//     (it returned only records that were kept) continues normally.
type Reader struct {
	w      *WAL
	next   uint64 // seq the next call to Next returns
	seq    uint64
	val    []byte
	err    error
	closed bool
	hint   readHint

	buf    []byte // records read ahead (frames or bare payloads), back to back
	starts []int  // starts[i]: start in buf of the payload of record runSeq+i
	ends   []int  // ends[i]: end in buf of record runSeq+i
	i      int    // next record of the run to return
	// gen: w.truncGen when the Reader last checked that no TruncateBack cut
	// below its position; everything in buf was read after that check.
	gen uint64
	// anchor (read-only WAL): the frame of record next-1 as this Reader
	// returned it (or found it at NewReader); see roNext.
	anchor roFrame
	// pre: Replay's read-ahead on other cores (replay_parallel.go), or nil.
	pre *prefetch
}

const (
	readAhead        = 64 << 10
	readAheadRecords = 512
)

// cutLog remembers where recent TruncateBacks cut, so that a Reader that
// saw truncGen change can tell whether one of them cut below its position.
// A Reader needs the lowest cut made after its last check; an older cut at
// or above a newer one can never be that lowest, so the log keeps only an
// ascending staircase, and at most maxCuts of it (a Reader that has not
// called Next during that many ascending cuts is told it was truncated if
// a forgotten cut might have reached it: a needless resynchronisation,
// never a silent one).
type cutLog struct {
	mu      sync.Mutex
	cuts    []cut // gen and seq both strictly ascending
	lost    bool  // cuts were forgotten
	lostGen uint64
	lostSeq uint64 // the lowest forgotten cut
}

type cut struct{ gen, seq uint64 }

const maxCuts = 64

// noteTruncateBack records that TruncateBack cut the log after seq, and
// changes truncGen. REQUIRES: w.mu held, and the new end already published
// (w.published lowered first), so that a Reader that sees the new truncGen
// reads no record beyond seq.
func (w *WAL) noteTruncateBack(seq uint64) {
	c := &w.cuts
	c.mu.Lock()
	defer c.mu.Unlock()
	gen := w.truncGen.Add(1)
	for len(c.cuts) > 0 && c.cuts[len(c.cuts)-1].seq >= seq {
		c.cuts = c.cuts[:len(c.cuts)-1]
	}
	if len(c.cuts) == maxCuts {
		old := c.cuts[0]
		if !c.lost || old.seq < c.lostSeq {
			c.lostSeq = old.seq
		}
		c.lost, c.lostGen = true, old.gen
		c.cuts = append(c.cuts[:0], c.cuts[1:]...)
	}
	c.cuts = append(c.cuts, cut{gen, seq})
}

// cutSince returns the lowest seq a TruncateBack cut back to after truncGen
// was gen (cut false if none), and the truncGen the answer covers.
func (w *WAL) cutSince(gen uint64) (low uint64, cut bool, now uint64) {
	c := &w.cuts
	c.mu.Lock()
	defer c.mu.Unlock()
	now = w.truncGen.Load() // every TruncateBack up to now is in c.cuts
	for _, e := range c.cuts {
		if e.gen > gen { // ascending: the first is the lowest
			low, cut = e.seq, true
			break
		}
	}
	if c.lost && gen < c.lostGen && (!cut || c.lostSeq < low) {
		low, cut = c.lostSeq, true
	}
	return low, cut, now
}

// NewReader returns a Reader positioned before record from (0 means
// FirstSeq). from may be LastSeq()+1: the Reader is then at the tail, where
// Next returns false until more records are appended; Wait blocks until
// they are.
func (w *WAL) NewReader(from uint64) (*Reader, error) {
	if w.isClosed() {
		return nil, ErrClosed
	}
	if w.ro != nil {
		return w.ro.newReader(from)
	}
	gen := w.truncGen.Load() // before the bounds: a cut after them changes it
	first, last := w.first.Load(), w.published.Load()
	if from == 0 {
		from = first
	}
	if from < first || from > last+1 {
		return nil, fmt.Errorf("%w: reader from seq %d outside [%d, %d]", ErrNotFound, from, first, last+1)
	}
	return &Reader{w: w, next: from, gen: gen}, nil
}

// Next advances to the next record. It returns false at the end of the log
// (a later call may return true once more records are appended) or on an
// error, which Err returns (see Reader for truncations).
func (r *Reader) Next() bool {
	if r.closed {
		r.err = ErrClosed
		return false
	}
	if r.err != nil {
		return false
	}
	w := r.w
	if w.ro != nil {
		return r.roNext()
	}
	for {
		if gen := w.truncGen.Load(); gen != r.gen {
			low, cut, now := w.cutSince(r.gen)
			if cut && low+1 < r.next {
				r.dropRun()
				r.err = r.truncatedErr(low)
				return false
			}
			// Whatever was read ahead may be gone or replaced: read again.
			r.gen = now
			r.dropRun()
		}
		if r.next > w.published.Load() {
			return false
		}
		if r.i >= len(r.ends) {
			if err := r.fill(); err != nil {
				if w.truncGen.Load() != r.gen {
					continue // a truncation explains it: decide above
				}
				r.err = err
				return false
			}
			continue // a truncation during the fill is seen above
		}
		// Retention and TruncateFront delete from the front after moving
		// first: a record read ahead before that must not be returned.
		if r.next < w.first.Load() {
			r.dropRun()
			r.err = w.notFound(r.next)
			return false
		}
		r.val = r.buf[r.starts[r.i]:r.ends[r.i]:r.ends[r.i]]
		r.i++
		r.seq = r.next
		r.next++
		return true
	}
}

// dropRun forgets what was read ahead. The hint may stay: every use checks
// the frame's seq and CRC.
func (r *Reader) dropRun() { r.buf, r.starts, r.ends, r.i = r.buf[:0], r.starts[:0], r.ends[:0], 0 }

// fill reads the next run of records starting at r.next.
func (r *Reader) fill() error {
	w := r.w
	r.dropRun()
	stop, maxBytes := uint64(0), int64(readAhead)
	if r.pre != nil {
		var ok bool
		if ok, stop = r.pre.take(r); ok {
			return nil
		}
		maxBytes = runBytes
	}
	if w.readRunTo(r, stop, maxBytes, true) {
		return nil
	}
	// The fast path found nothing it could vouch for: the careful path
	// reports why (ErrNotFound after truncation, ErrCorrupt, index rebuild).
	var err error
	r.buf, err = w.read(r.buf[:0], r.next, &r.hint)
	if err != nil {
		return err
	}
	r.starts = append(r.starts, 0)
	r.ends = append(r.ends, len(r.buf))
	return nil
}

// readRunTo copies consecutive records from r.next on, within one segment,
// into r.buf under a single reference and fault guard, and checks each
// frame's seq and CRC in the copy. It returns false if it could not read
// even one.
//
// The run is copied with one memmove (up to maxBytes of frames,
// never past the last published frame) and then walked in the copy: one
// bulk copy and one CRC pass per frame over its header and payload,
// instead of a copy and two CRC calls per record (replay is bounded by
// these per-record costs, not by memory bandwidth). Every check is made on
// the copy, so a frame rewritten while it was copied (TruncateBack and new
// appends) fails its check and ends the run; nothing unchecked is returned.
//
// The run stops before record stop (0: after readAheadRecords) and copies
// at most maxBytes, more only for a first frame larger than that, and only
// if bigFirst (read-ahead leaves such a record to the Reader, so that each
// of its runs waiting for the caller holds at most maxBytes, not a whole
// record of up to MaxRecordSize). With a stop in the same segment, the copy
// ends at that record's frame.
func (w *WAL) readRunTo(r *Reader, stop uint64, maxBytes int64, bigFirst bool) bool {
	seq := r.next
	first, last := w.first.Load(), w.published.Load()
	if stop != 0 && stop <= last {
		last = stop - 1
	}
	if seq < first || seq > last {
		return false
	}
	segs := w.segs.Load()
	s := segs.find(seq)
	if s == nil {
		return false
	}
	if ok, _ := s.pin(); !ok {
		return false // the careful path reports a mapping error
	}
	defer s.unpin()
	_ = platform.CatchFault(func() {
		off := int64(-1)
		if r.hint.seg == s {
			off = r.hint.off
		} else if o, ok := s.idx.Get(seq - s.firstSeq); ok {
			off = o
		}
		// limit: the end of the last published frame of s (bytes after it
		// may be being written).
		limit := int64(len(s.data))
		if segs.find(last) == s {
			if limit = s.frameEnd(last); limit == 0 {
				return
			}
		}
		h, st := format.CheckFrameHeader(s.data, off, MaxMaxRecordSize)
		if st != format.FrameOK || h.Seq != seq || !bigFirst && format.FrameSize(int(h.Length)) > maxBytes || !w.bigFrameOK(s, off, h) {
			return
		}
		end := max(off+maxBytes, off+format.FrameSize(int(h.Length))) // at least the first frame
		end = min(end, limit, int64(len(s.data)))
		if end <= off {
			return
		}
		r.buf = append(r.buf[:0], s.data[off:end]...)
		buf := r.buf
		maxRec := uint64(w.opts.MaxRecordSize)
		q := int64(0)
		for n := 0; (stop != 0 || n < readAheadRecords) && seq <= last; n++ {
			// format.CheckFrameHeader's checks, written out: this loop is
			// replay's per-record cost, and a call is not inlined (a
			// format function doing just these checks measured 15-25% fewer
			// records/s in BenchmarkReplay1M/helpers=0).
			if q > int64(len(buf))-format.FrameHeaderSize {
				return // the end of the copy
			}
			h := format.ParseFrameHeader(buf[q : q+format.FrameHeaderSize])
			if h.Seq != seq || h.Kind < format.KindFull || h.Kind > format.KindLast || buf[q+5]|buf[q+6]|buf[q+7] != 0 ||
				h.Length > uint64(int64(len(buf))-q-format.FrameHeaderSize) {
				return // the end of the copy, or a frame changed under it
			}
			if h.Length > maxRec && n > 0 {
				return // checked in place first (bigFrameOK) when it starts a run
			}
			p := q + format.FrameHeaderSize
			e := p + int64(h.Length)
			if format.UpdateCRC(s.seed, buf[q+4:e]) != h.CRC {
				return
			}
			r.starts = append(r.starts, int(p))
			r.ends = append(r.ends, int(e))
			q += format.FrameSize(int(h.Length))
			r.hint.seg, r.hint.off = s, off+q
			seq++
		}
	})
	return len(r.ends) > 0
}

// Seq is the seq of the current record.
func (r *Reader) Seq() uint64 { return r.seq }

// Value is the current record; valid until the next call to Next.
func (r *Reader) Value() []byte { return r.val }

// Err is the error that stopped Next, if any.
func (r *Reader) Err() error { return r.err }

// Close releases the Reader. Next then returns false and Err ErrClosed.
func (r *Reader) Close() error {
	r.closed = true
	r.buf, r.starts, r.ends, r.val = nil, nil, nil, nil
	return nil
}

// Replay calls fn for every record from seq from (0 means FirstSeq) to the
// LastSeq at the time of the call, in order, on the calling goroutine. It
// stops at fn's first error and returns it. data is valid only during the
// call. With GOMAXPROCS above 1, a long replay uses up to 3 goroutines that
// copy and check the records ahead of fn; they stop before Replay returns.
func (w *WAL) Replay(from uint64, fn func(seq uint64, data []byte) error) error {
	if w.isClosed() {
		return ErrClosed
	}
	if w.ro != nil {
		w.ro.poll() // the writer's records up to now
	}
	last := w.published.Load()
	r, err := w.NewReader(from)
	if err != nil {
		return err
	}
	defer r.Close()
	if r.next <= last {
		if h := w.replayHelpers(last - r.next + 1); h > 0 {
			r.pre = w.startPrefetch(r.next, last, h)
			defer r.pre.close() // before r.Close: no helper outlives the call
		}
	}
	for r.next <= last && r.Next() {
		if err := fn(r.seq, r.val); err != nil {
			return err
		}
	}
	return r.Err()
}

// truncatedErr is the error of a Reader that a TruncateBack to low cut
// below its position.
func (r *Reader) truncatedErr(low uint64) error {
	return fmt.Errorf("%w: the log was cut back to seq %d; this Reader was at seq %d", ErrTruncated, low, r.next)
}
