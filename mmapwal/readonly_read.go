package mmapwal

import (
	"errors"
	"fmt"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/platform"
)

// Read-only access: reading a record from the view, with the checks the
// comment in readonly.go lists, and scanning a segment's frames.

// scanLimit is where frames of s may end: its size, or the end offset of a
// "truncating" checkpoint (what lies after it is being cut).
// REQUIRES: s pinned.
func (s *roSeg) scanLimit() int64 {
	limit, _ := s.checkpoint()
	return limit
}

// checkpoint is scanLimit and the seq after the records the index
// checkpoint vouches for (s.firstSeq if none). REQUIRES: s pinned.
func (s *roSeg) checkpoint() (limit int64, trustedNext uint64) {
	limit, trustedNext = int64(len(s.data)), s.firstSeq
	if s.idx == nil {
		return limit, trustedNext
	}
	ih, err := s.idx.ReadHeader()
	if err != nil || ih.SegmentID != s.id || ih.FirstSeq != s.firstSeq {
		return limit, trustedNext
	}
	if ih.Flags&format.IndexTruncating != 0 && ih.EndOffset >= format.SegmentHeaderSize && int64(ih.EndOffset) < limit {
		limit = int64(ih.EndOffset)
	}
	return limit, s.firstSeq + ih.Count
}

// scan checks s's frames from off (record seq) on. REQUIRES: s pinned.
func (s *roSeg) scan(off int64, seq uint64) (roScanResult, error) {
	var r roScanResult
	limit, trusted := s.checkpoint()
	if off > limit {
		return roScanResult{End: off, Next: seq}, nil
	}
	if ferr := platform.CatchFault(func() {
		r = roScan(s.data[:limit], s.seed, off, seq, trusted)
	}); ferr != nil {
		return r, &CorruptError{File: s.path, Offset: off, Seq: seq, Reason: ferr.Error()}
	}
	return r, nil
}

// still reports whether the frame f read is still there, unchanged,
// and not being cut. REQUIRES: f.s pinned.
func (f roFrame) still() bool {
	s := f.s
	ok := false
	_ = platform.CatchFault(func() {
		h, st := format.CheckFrameHeader(s.data, f.off, format.MaxRecordLength)
		ok = st == format.FrameOK && h.Seq == f.seq && h.CRC == f.crc
	})
	return ok && f.off < s.scanLimit()
}

// readFrame locates, copies and checks record seq of s. REQUIRES: s pinned.
func (ro *roLog) readFrame(s *roSeg, dst []byte, seq uint64) ([]byte, roFrame, readStatus) {
	n := len(dst)
	fr := roFrame{s: s, off: -1, seq: seq}
	st := readBadIndex
	ferr := platform.CatchFault(func() {
		i := seq - s.firstSeq
		var h format.FrameHeader
		at := func(off int64) bool {
			var hst format.FrameStatus
			h, hst = format.CheckFrameHeader(s.data, off, format.MaxRecordLength)
			return hst == format.FrameOK && h.Seq == seq
		}
		off, ok := int64(-1), false
		if s.idx != nil {
			if o, in := s.idx.Get(i); in && o >= format.SegmentHeaderSize {
				off, ok = o, at(o)
			}
		}
		if !ok && i < uint64(len(s.offs)) {
			off = s.offs[i]
			ok = at(off)
		}
		if !ok {
			return
		}
		fr.off, fr.crc = off, h.CRC
		p := off + format.FrameHeaderSize
		if h.Length > uint64(ro.w.opts.MaxRecordSize) &&
			format.FrameCRC(s.seed, s.data[off:p], s.data[p:p+int64(h.Length)]) != h.CRC {
			st = readBadCRC // checked in place before a large allocation
			return
		}
		dst = append(dst, s.data[p:p+int64(h.Length)]...)
		if format.FrameCRC(s.seed, s.data[off:p], dst[n:]) != h.CRC {
			dst, st = dst[:n], readBadCRC
			return
		}
		st = readOK
	})
	if ferr != nil {
		return dst[:n], fr, readFault
	}
	return dst, fr, st
}

// rescanOffsets rebuilds s.offs from the segment (its index failed).
func (ro *roLog) rescanOffsets(s *roSeg) error {
	if err := ro.pin(s); err != nil {
		return err
	}
	r, err := s.scan(format.SegmentHeaderSize, s.firstSeq)
	s.mu.RUnlock()
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.offs = r.Offsets
	s.mu.Unlock()
	return nil
}

// read copies record seq into dst after the checks in the file comment,
// and returns the frame it came from.
func (ro *roLog) read(dst []byte, seq uint64) ([]byte, roFrame, error) {
	n := len(dst)
	var fail error
	rescanned := false
	for attempt := 0; attempt < 4; attempt++ {
		if ro.closed.Load() {
			return dst, roFrame{}, ErrClosed
		}
		v := ro.view.Load()
		if seq > v.last {
			ro.poll() // asks beyond the known end: look for new records
			v = ro.view.Load()
		}
		if seq < v.first || seq > v.last {
			return dst, roFrame{}, ro.notFound(v, seq)
		}
		s := v.find(seq)
		if s == nil {
			return dst, roFrame{}, ro.notFound(v, seq)
		}
		if err := ro.pin(s); err != nil {
			if !errors.Is(err, errROChanged) {
				return dst, roFrame{}, err
			}
			ro.refresh()
			continue
		}
		out, fr, st := ro.readFrame(s, dst[:n], seq)
		ok := st == readOK && fr.still() && s.linked()
		s.mu.RUnlock()
		if ok {
			// wal.meta after the copy: a TruncateFront that returned before
			// this read began is seen here.
			first, err := ro.checkMeta()
			if err != nil {
				return dst[:n], roFrame{}, err
			}
			if seq < first {
				return dst[:n], roFrame{}, ro.notFound(ro.view.Load(), seq)
			}
			return out, fr, nil
		}
		dst = out[:n]
		switch st {
		case readFault:
			fail = &CorruptError{File: s.path, Offset: fr.off, Seq: seq, Reason: "fault reading the mapping (file shrunk?)"}
		case readBadCRC:
			fail = &CorruptError{File: s.path, Offset: fr.off, Seq: seq, Reason: "checksum mismatch"}
		case readBadIndex:
			fail = &CorruptError{File: s.path, Offset: -1, Seq: seq, Reason: "no valid frame with this seq in the segment"}
			if !rescanned {
				rescanned = true
				if err := ro.rescanOffsets(s); err != nil && !errors.Is(err, errROChanged) {
					return dst, roFrame{}, err
				}
				continue
			}
		}
		// Something changed under the view (or the data is damaged): look
		// at the directory again and retry.
		ro.refresh()
	}
	if fail == nil {
		fail = &CorruptError{File: ro.dir, Offset: -1, Seq: seq, Reason: "the log kept changing under the read"}
	}
	return dst, roFrame{}, fail
}

func (ro *roLog) notFound(v *roView, seq uint64) error {
	if ro.closed.Load() {
		return ErrClosed
	}
	if v.last < v.first {
		return fmt.Errorf("%w: seq %d (log is empty)", ErrNotFound, seq)
	}
	return fmt.Errorf("%w: seq %d outside [%d, %d]", ErrNotFound, seq, v.first, v.last)
}

// frameCRCAt is the checksum field of the frame at off. REQUIRES: s pinned.
func frameCRCAt(s *roSeg, off int64) uint32 {
	var crc uint32
	_ = platform.CatchFault(func() { crc = format.ParseFrameHeader(s.data[off:]).CRC })
	return crc
}

// roScanResult is the run of complete records roScan found.
type roScanResult struct {
	End     int64   // offset after the last complete record
	Next    uint64  // seq after it
	Offsets []int64 // offsets of the complete records
}

// roScan walks the frames of a segment from off (record seq) on, checking
// each completely (header, length bound, checksum, seq continuity). A
// batch's records count once its last frame is seen, or once a later
// frame starts another record (the writer's TruncateBack cut the batch:
// what it kept are records), or where the index checkpoint (trustedNext)
// vouches for them. Anything else stops it: the end of what the writer has
// published, as far as the files show.
func roScan(data []byte, seed uint32, off int64, seq, trustedNext uint64) roScanResult {
	r := roScanResult{End: off, Next: seq}
	var pending []int64 // the open batch's frames
	accept := func(end int64) {
		r.Offsets = append(r.Offsets, pending...)
		r.Next += uint64(len(pending))
		r.End = end
		pending = pending[:0]
	}
	for {
		h, _, st := format.DecodeFrame(data, off, seed, format.MaxRecordLength)
		if st != format.FrameOK || h.Seq != seq {
			break
		}
		switch h.Kind {
		case format.KindFull, format.KindFirst:
			if len(pending) > 0 {
				accept(off) // a batch cut by TruncateBack
			}
		case format.KindMiddle, format.KindLast:
			if len(pending) == 0 {
				return r // a batch's tail with no start: not ours to judge
			}
		}
		pending = append(pending, off)
		off += format.FrameSize(int(h.Length))
		seq++
		if h.Kind == format.KindFull || h.Kind == format.KindLast {
			accept(off)
		}
	}
	if len(pending) > 0 && seq <= trustedNext {
		accept(off)
	}
	return r
}
