package mmapwal

import (
	"fmt"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/platform"
	"github.com/mmapwal/wal/recovery"
)

// Read returns a copy of record seq; ErrNotFound outside [FirstSeq,
// LastSeq]. A record whose checksum fails returns ErrCorrupt, never the
// damaged bytes.
func (w *WAL) Read(seq uint64) ([]byte, error) {
	b, err := w.read(nil, seq, nil)
	if err == nil && b == nil {
		b = []byte{} // an empty record is a record: never nil on success
	}
	return b, err
}

// ReadAppend appends record seq to dst and returns the extended slice; with
// a dst of enough capacity it does not allocate.
func (w *WAL) ReadAppend(dst []byte, seq uint64) ([]byte, error) {
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
				return dst, err
			}
			rebuilt, hint = true, nil
		case attempt >= 2:
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
// never be returned. REQUIRES: a reference on s.
func (w *WAL) readFrame(s *segment, dst []byte, seq uint64, hint *readHint) ([]byte, int64, readStatus) {
	n := len(dst)
	off := int64(-1)
	st := readBadIndex
	maxLen := uint64(w.opts.MaxRecordSize)
	ferr := platform.CatchFault(func() {
		var h format.FrameHeader
		var hst format.FrameStatus
		if hint != nil && hint.seg == s {
			off = hint.off
			h, hst = format.CheckFrameHeader(s.data, off, maxLen)
		}
		if off < 0 || hst != format.FrameOK || h.Seq != seq {
			var ok bool
			if off, ok = s.idx.Get(seq - s.firstSeq); !ok {
				return
			}
			h, hst = format.CheckFrameHeader(s.data, off, maxLen)
			if hst != format.FrameOK || h.Seq != seq {
				return
			}
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

// rebuildIndex rescans s and rewrites its index entries after an entry
// failed its check. REQUIRES: a reference on s is not held (it takes one).
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
	var r recovery.ScanResult
	if ferr := platform.CatchFault(func() {
		r = recovery.Scan(s.data, s.seed, format.SegmentHeaderSize, s.firstSeq, uint64(w.opts.MaxRecordSize), true)
	}); ferr != nil {
		return &CorruptError{File: s.path, Offset: -1, Seq: seq, Reason: ferr.Error()}
	}
	for i, off := range r.Offsets {
		s.idx.Set(i, off)
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
// use, but any number of Readers may run beside appenders. It reads ahead
// in runs of up to readAhead bytes; a TruncateBack (or TruncateFront) makes
// it drop what it read ahead, so it never returns a record the log no
// longer holds at that seq.
type Reader struct {
	w      *WAL
	next   uint64 // seq the next call to Next returns
	seq    uint64
	val    []byte
	err    error
	closed bool
	hint   readHint

	buf  []byte // payloads read ahead, back to back
	ends []int  // ends[i]: end in buf of record runSeq+i
	i    int    // next record of the run to return
	gen  uint64 // w.truncGen when the run was read
}

const (
	readAhead        = 64 << 10
	readAheadRecords = 512
)

// NewReader returns a Reader positioned before record from (0 means
// FirstSeq). from may be LastSeq()+1: the Reader then waits at the tail, and
// Next returns records as they are appended.
func (w *WAL) NewReader(from uint64) (*Reader, error) {
	if w.isClosed() {
		return nil, ErrClosed
	}
	first, last := w.first.Load(), w.published.Load()
	if from == 0 {
		from = first
	}
	if from < first || from > last+1 {
		return nil, fmt.Errorf("%w: reader from seq %d outside [%d, %d]", ErrNotFound, from, first, last+1)
	}
	return &Reader{w: w, next: from}, nil
}

// Next advances to the next record. It returns false at the end of the log
// (a later call may return true once more records are appended) or on an
// error, which Err returns.
func (r *Reader) Next() bool {
	if r.closed {
		r.err = ErrClosed
		return false
	}
	w := r.w
	if r.err != nil || r.next > w.published.Load() {
		return false
	}
	if r.i >= len(r.ends) || r.gen != w.truncGen.Load() {
		if !r.fill() {
			return false
		}
	}
	start := 0
	if r.i > 0 {
		start = r.ends[r.i-1]
	}
	r.val = r.buf[start:r.ends[r.i]:r.ends[r.i]]
	r.i++
	r.seq = r.next
	r.next++
	return true
}

// fill reads the next run of records starting at r.next.
func (r *Reader) fill() bool {
	w := r.w
	r.buf, r.ends, r.i = r.buf[:0], r.ends[:0], 0
	r.gen = w.truncGen.Load()
	if w.readRun(r) {
		return true
	}
	// The fast path found nothing it could vouch for: the careful path
	// reports why (ErrNotFound after truncation, ErrCorrupt, index rebuild).
	var err error
	r.buf, err = w.read(r.buf[:0], r.next, &r.hint)
	if err != nil {
		r.err = err
		return false
	}
	r.ends = append(r.ends, len(r.buf))
	return true
}

// readRun copies consecutive records from r.next on, within one segment,
// into r.buf under a single reference and fault guard, checking each
// frame's seq and CRC. It returns false if it could not read even one.
func (w *WAL) readRun(r *Reader) bool {
	seq := r.next
	first, last := w.first.Load(), w.published.Load()
	if seq < first || seq > last {
		return false
	}
	s := w.segs.Load().find(seq)
	if s == nil {
		return false
	}
	if ok, _ := s.pin(); !ok {
		return false // the careful path reports a mapping error
	}
	defer s.unpin()
	maxLen := uint64(w.opts.MaxRecordSize)
	_ = platform.CatchFault(func() {
		off := int64(-1)
		if r.hint.seg == s {
			off = r.hint.off
		} else if o, ok := s.idx.Get(seq - s.firstSeq); ok {
			off = o
		}
		for n := 0; n < readAheadRecords && seq <= last && (n == 0 || len(r.buf) < readAhead); n++ {
			h, st := format.CheckFrameHeader(s.data, off, maxLen)
			if st != format.FrameOK || h.Seq != seq {
				return
			}
			p := off + format.FrameHeaderSize
			b := len(r.buf)
			r.buf = append(r.buf, s.data[p:p+int64(h.Length)]...)
			if format.FrameCRC(s.seed, s.data[off:p], r.buf[b:]) != h.CRC {
				r.buf = r.buf[:b]
				return
			}
			r.ends = append(r.ends, len(r.buf))
			off += format.FrameSize(int(h.Length))
			r.hint.seg, r.hint.off = s, off
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
	r.buf, r.ends, r.val = nil, nil, nil
	return nil
}

// Replay calls fn for every record from seq from (0 means FirstSeq) to the
// LastSeq at the time of the call, in order. It stops at fn's first error and
// returns it. data is valid only during the call.
func (w *WAL) Replay(from uint64, fn func(seq uint64, data []byte) error) error {
	if w.isClosed() {
		return ErrClosed
	}
	last := w.published.Load()
	r, err := w.NewReader(from)
	if err != nil {
		return err
	}
	defer r.Close()
	for r.next <= last && r.Next() {
		if err := fn(r.seq, r.val); err != nil {
			return err
		}
	}
	return r.Err()
}
