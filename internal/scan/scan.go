// Package scan walks the frames of a segment: the frame scanner and proof
// search shared by package recovery (which decides where a log ends) and
// package mmapwal (which rebuilds offset indexes). It is not part of the
// module's public API.
package scan

import (
	"github.com/mmapwal/wal/format"
)

// Stop says why a scan stopped.
type Stop int

const (
	StopZero     Stop = iota // all-zero header: the clean end of the written data
	StopEnd                  // end of the segment
	StopBadFrame             // header, size bound or checksum failed
	StopBadSeq               // a valid frame with the wrong seq
	StopBadBatch             // batch markers out of order
)

var stopText = [...]string{
	StopZero:     "end of data",
	StopEnd:      "end of segment",
	StopBadFrame: "bad frame",
	StopBadSeq:   "seq out of order",
	StopBadBatch: "batch markers out of order",
}

func (s Stop) String() string {
	if s < 0 || int(s) >= len(stopText) {
		return "unknown stop"
	}
	return stopText[s]
}

// Result describes the valid run of frames a scan found.
type Result struct {
	End     int64  // offset just after the last complete record (or batch)
	Next    uint64 // seq the next record would have
	Stop    Stop
	StopAt  int64              // offset of the frame that stopped the scan
	Frame   format.FrameStatus // for StopBadFrame: what failed
	Dropped int                // complete frames of an unfinished batch that were discarded
	Offsets []int64            // offsets of the complete records, in seq order (if requested)
}

// Scan walks the frames of one segment's bytes from offset off, expecting
// seq. It accepts a frame only if its header, size bound, checksum and seq
// are right and batch markers are in order; a batch counts only once its last
// frame is seen. With offsets set, Offsets lists every complete record.
func Scan(data []byte, seed uint32, off int64, seq uint64, maxLen uint64, offsets bool) Result {
	r := Result{End: off, Next: seq}
	var pending []int64 // offsets of the open batch's frames
	inBatch := false
	batchStart, batchSeq := off, seq
	for {
		if off+format.FrameHeaderSize > int64(len(data)) {
			r.Stop, r.StopAt = StopEnd, off
			break
		}
		h, _, st := format.DecodeFrame(data, off, seed, maxLen)
		if st == format.FrameZero {
			r.Stop, r.StopAt = StopZero, off
			break
		}
		if st != format.FrameOK {
			r.Stop, r.StopAt, r.Frame = StopBadFrame, off, st
			break
		}
		if h.Seq != seq {
			r.Stop, r.StopAt = StopBadSeq, off
			break
		}
		ok := true
		switch h.Kind {
		case format.KindFull:
			ok = !inBatch
		case format.KindFirst:
			ok = !inBatch
			inBatch, batchStart, batchSeq = true, off, seq
			pending = pending[:0]
		case format.KindMiddle, format.KindLast:
			ok = inBatch
		}
		if !ok {
			r.Stop, r.StopAt = StopBadBatch, off
			break
		}
		next := off + format.FrameSize(int(h.Length))
		if inBatch {
			if offsets {
				pending = append(pending, off)
			}
			if h.Kind == format.KindLast {
				inBatch = false
				r.Offsets = append(r.Offsets, pending...)
				r.End, r.Next = next, seq+1
			}
		} else {
			if offsets {
				r.Offsets = append(r.Offsets, off)
			}
			r.End, r.Next = next, seq+1
		}
		off, seq = next, seq+1
	}
	if inBatch {
		// An unfinished batch is dropped whole: the log ends where it began.
		r.Dropped = int(seq - batchSeq)
		r.End, r.Next = batchStart, batchSeq
	}
	return r
}

// FindProof looks in data from offset from on (8-byte aligned positions) for
// a valid frame whose seq is at least seq and whose durable-seq hint is at
// least seq: proof that record seq had been synced before it was damaged.
// It returns the offset of the first such frame, or -1, and how many valid
// frames with seq ≥ seq it saw (records that a truncation would drop).
func FindProof(data []byte, seed uint32, from int64, seq uint64, maxLen uint64) (proof int64, valid int) {
	proof = -1
	from = (from + format.FrameAlign - 1) &^ (format.FrameAlign - 1)
	for off := from; off+format.FrameHeaderSize <= int64(len(data)); off += format.FrameAlign {
		b := data[off:]
		if b[4] == 0 || b[4] > format.KindLast {
			continue // cheap filter before decoding
		}
		h, _, st := format.DecodeFrame(data, off, seed, maxLen)
		if st != format.FrameOK || h.Seq < seq {
			continue
		}
		valid++
		if h.Durable >= seq && proof < 0 {
			proof = off
		}
		off += format.FrameSize(int(h.Length)) - format.FrameAlign
	}
	return proof, valid
}
