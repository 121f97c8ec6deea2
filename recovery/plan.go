package recovery

import (
	"fmt"
	"path/filepath"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/internal/scan"
)

// The plan: what recovery will do, as a pure function of the facts. Each
// numbered rule of the package documentation is one function below; the
// tests build facts directly and check each rule without files.

// plan is Recover's decision.
type plan struct {
	corrupt error // non-nil: damage that cannot be a torn tail; nothing else applies
	segs    []Segment
	nextSeq uint64
	cut     *cutPoint // where the log ends before it should go on (nil if it does not)
	temps   []string
	remove  []string // segments and indexes to delete, in this order
	dropped int      // valid records after the cut
	invalid int      // index files missing or failing their checks
	scanned int64
}

// cutPoint is where valid data ends before the log should go on.
type cutPoint struct {
	idx       int    // in dirFacts.segs
	file      string // the segment
	off       int64  // the log ends here in file
	seq       uint64 // first seq not in the log
	badOff    int64  // offset of what failed
	what      string // what failed, for messages
	wholeFile bool   // file itself goes (its header never reached the disk)
	noProof   bool   // completing a TruncateBack: what follows was discarded on purpose
	zeroTo    int64  // bytes [off, zeroTo) of file hold something and are zeroed
}

// planRecover applies the rules in order.
func planRecover(f *dirFacts, o Options) *plan {
	p := &plan{temps: ruleTemps(f)}
	if f.metaErr != nil {
		p.corrupt = f.metaErr
		return p
	}
	p.segs = make([]Segment, 0, min(f.stop+1, len(f.segs)))
	for i := range f.segs[:min(f.stop+1, len(f.segs))] {
		s := &f.segs[i]
		if err := ruleHeader(s); err != nil {
			p.corrupt = err
			return p
		}
		if s.header != headerOK {
			break // a zero header: rule 2 via ruleEnd
		}
		p.segs = append(p.segs, ruleSegment(s, o))
		p.scanned += s.scan.StopAt - s.start
		if s.ck.state != indexValid {
			p.invalid++
		}
	}
	if f.stop < len(f.segs) {
		p.cut = ruleEnd(f)
		if err := ruleProof(f, p.cut); err != nil {
			p.corrupt = err
			return p
		}
		ruleTorn(f, p)
	}
	ruleMetaFirst(f, p)
	return p
}

// Rule 1: temporary files are leftovers and go.
func ruleTemps(f *dirFacts) []string { return f.temps }

// Rule 2: a header must be valid and agree with the file name. An all-zero
// header is not corruption by itself (see ruleEnd).
func ruleHeader(s *segFacts) error {
	switch s.header {
	case headerShort, headerBad:
		return &format.CorruptError{File: s.path, Offset: 0, Seq: s.seq, Reason: s.headerReason}
	}
	return nil
}

// Rule 3: a valid checkpoint is trusted; the records a scan accepted after
// it complete the segment.
func ruleSegment(s *segFacts, o Options) Segment {
	seg := Segment{Path: s.path, IndexPath: s.indexPath, FirstSeq: s.seq, ID: s.id, Size: s.size,
		Count: s.scan.Next - s.seq, End: s.scan.End, Trusted: s.trusted, TrustedEnd: s.start,
		IndexOK: s.ck.state == indexValid, Closed: s.closed, offsets: s.scan.Offsets,
		ScannedBytes: max(s.scan.StopAt-s.start, 0)}
	if o.Full {
		seg.Trusted, seg.TrustedEnd = 0, format.SegmentHeaderSize
	}
	return seg
}

// chainContinues: the valid run of s ends cleanly where the next segment
// starts (for the last segment: it ends cleanly).
func chainContinues(s *segFacts, next uint64, last bool) bool {
	r := s.scan
	return (r.Stop == scan.StopZero || r.Stop == scan.StopEnd) && r.Dropped == 0 && (last || r.Next == next)
}

// continues says whether the log goes on past s as it should (rule 3). The
// last segment, unless closed cleanly, must hold only zeros after its end:
// stale frames of an append in flight at a crash, or of an interrupted
// TruncateBack, must never meet new appends. strict (Repair) asks that of
// every segment, and ignores the clean-close mark.
func continues(s *segFacts, next uint64, last, strict bool) bool {
	switch {
	case s.header != headerOK:
		return false
	case last && !strict:
		return s.closed || s.tailEnd <= s.scan.End
	case !chainContinues(s, next, last):
		return false
	}
	return !strict || s.tailEnd <= s.scan.End
}

// ruleEnd locates the end of the valid data in the stop segment.
func ruleEnd(f *dirFacts) *cutPoint {
	s := &f.segs[f.stop]
	c := &cutPoint{idx: f.stop, file: s.path}
	switch {
	case s.header == headerZero:
		c.seq, c.wholeFile, c.what = s.seq, true, "segment header is zero"
	case s.truncating:
		c.off, c.seq, c.badOff, c.noProof = s.scan.End, s.scan.Next, s.scan.End, true
		c.what = "interrupted TruncateBack"
	default:
		c.off, c.seq, c.badOff = s.scan.End, s.scan.Next, s.scan.StopAt
		c.what = describeStop(f, f.stop)
	}
	if !c.wholeFile {
		c.zeroTo = max(s.tailEnd, c.off)
	}
	return c
}

func describeStop(f *dirFacts, i int) string {
	s := &f.segs[i]
	r := s.scan
	switch {
	case r.Dropped > 0:
		return fmt.Sprintf("unfinished batch at offset %d", r.End)
	case r.Stop == scan.StopBadFrame:
		return fmt.Sprintf("%s (%s)", r.Stop, r.Frame)
	case r.Stop != scan.StopZero && r.Stop != scan.StopEnd:
		return r.Stop.String()
	case i+1 < len(f.segs) && r.Next < f.segs[i+1].seq:
		return fmt.Sprintf("records %d..%d are missing (the next segment, %s, starts at %d)",
			r.Next, f.segs[i+1].seq-1, filepath.Base(f.segs[i+1].path), f.segs[i+1].seq)
	case i+1 < len(f.segs) && r.Next > f.segs[i+1].seq:
		return fmt.Sprintf("the segment runs to seq %d, past the next segment's first seq %d", r.Next-1, f.segs[i+1].seq)
	case s.tailEnd > r.End:
		return fmt.Sprintf("non-zero bytes after the end of the data, up to offset %d", s.tailEnd)
	}
	return r.Stop.String()
}

// Rule 4: where valid data ends before the log should go on, anything
// proving that the lost record had been synced makes this corruption:
//
//   - a valid later frame whose durable-seq hint covers it (a hint is only
//     written once that seq was synced);
//   - a valid checkpoint of a later segment (or of this segment, when its
//     header is zero) that covers records, or marks a clean close.
//
// Why a later checkpoint is proof (see mmapwal/flush.go): a segment's
// checkpoint is written only after its own data was synced, and a flush
// round walks the dirty segments in seq order, syncing each earlier one
// (header, records and, on its first sync, the directory entry) before it
// writes a later one's checkpoint; a segment leaves the dirty list only
// once fully synced. Close writes the clean-close mark after its final
// sync of every segment. So a checkpoint of segment j that covers records,
// or is marked closed, on disk means every record before segment j was
// durable: if one of them is now missing or damaged, that is not a torn
// tail but lost synced data, under every sync policy. This is what makes a
// missing or damaged middle segment of a log written under SyncNone or
// SyncPeriodic (whose frames carry no useful hints) corruption, not a cut.
// It relies on every writer of a checkpoint keeping that order: one that
// wrote a checkpoint before syncing the earlier segments would make a later
// power cut look like corruption (ErrCorrupt, nothing changed), never lose
// data.
func ruleProof(f *dirFacts, c *cutPoint) error {
	if c.noProof {
		return nil
	}
	s := &f.segs[c.idx]
	corrupt := func(reason string) error {
		return &format.CorruptError{File: c.file, Offset: c.badOff, Seq: c.seq, Reason: reason}
	}
	if c.wholeFile {
		if s.ck.proves() {
			return corrupt(fmt.Sprintf("%s but its index %s holds a checkpoint of %d records: the header had been synced",
				c.what, s.indexPath, s.ck.count))
		}
		if s.hintOff >= 0 && s.hint >= c.seq {
			return corrupt(fmt.Sprintf("%s but a frame at offset %d proves record %d was synced", c.what, s.hintOff, c.seq))
		}
	} else if s.proofOff >= 0 {
		return corrupt(fmt.Sprintf("%s; a later frame at offset %d proves this record was synced", c.what, s.proofOff))
	}
	for _, l := range f.segs[c.idx+1:] {
		if l.hintOff >= 0 && l.hint >= c.seq {
			return corrupt(fmt.Sprintf("log ends here (%s) but a frame in %s at offset %d proves record %d was synced",
				c.what, l.path, l.hintOff, c.seq))
		}
		if l.ck.proves() {
			return corrupt(fmt.Sprintf("log ends here (%s) but the checkpoint in %s proves the log was synced past it: records %d..%d are missing or damaged",
				c.what, l.indexPath, c.seq, l.seq-1))
		}
	}
	return nil
}

// Rule 5: without proof it is a torn tail: the bytes after the end are
// zeroed, later segments (only unsynced records) go, and what they held is
// counted.
func ruleTorn(f *dirFacts, p *plan) {
	c := p.cut
	if c.wholeFile {
		p.remove = append(p.remove, existing(f, f.segs[c.idx].path)...)
	} else if !c.noProof {
		p.dropped += f.segs[c.idx].afterValid
	}
	for _, l := range f.segs[c.idx+1:] {
		p.remove = append(p.remove, existing(f, l.path)...)
		p.dropped += int(l.chain)
	}
	p.segs = p.segs[:min(len(p.segs), c.idx+1)]
	if c.wholeFile {
		p.segs = p.segs[:min(len(p.segs), c.idx)]
	}
}

// Rule 6: segments wholly before the logical first seq in wal.meta go; a
// meta beyond the log empties it.
func ruleMetaFirst(f *dirFacts, p *plan) {
	var front []string
	for _, s := range f.beforeMeta {
		front = append(front, existing(f, s.path)...)
	}
	switch {
	case len(p.segs) > 0:
		ls := p.segs[len(p.segs)-1]
		p.nextSeq = ls.FirstSeq + ls.Count
		if f.metaFirst > p.nextSeq {
			for _, s := range p.segs {
				front = append(front, existing(f, s.Path)...)
			}
			p.segs = nil
			p.nextSeq = f.metaFirst
		}
	case p.cut != nil:
		p.nextSeq = max(p.cut.seq, f.metaFirst)
	default:
		p.nextSeq = f.metaFirst
	}
	// Deletion goes newest first (a crash leaves a prefix of the log), the
	// files before the logical first seq last.
	all := append(front, p.remove...)
	p.remove = make([]string, 0, len(all))
	for i := len(all) - 1; i >= 0; i-- {
		p.remove = append(p.remove, all[i])
	}
}

// existing lists a segment and its index, as far as the directory holds
// them.
func existing(f *dirFacts, segPath string) []string {
	var out []string
	for _, p := range []string{segPath, indexPath(segPath)} {
		if f.names[filepath.Base(p)] {
			out = append(out, p)
		}
	}
	return out
}
