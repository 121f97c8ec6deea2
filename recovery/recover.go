// Package recovery finds where a WAL directory's log really ends and brings
// the directory to that state. It is used by mmapwal.Open, and works on a
// closed directory for tools (Analyze, Repair).
//
// The rules, applied in order:
//
//  1. Temporary files (*.seg.tmp, *.idx.tmp, wal.meta.tmp) are leftovers of
//     an interrupted preparation or rename and are removed. Other unknown
//     files are left alone.
//  2. Every segment header must be valid and agree with its file name. A
//     segment whose header never reached the disk (all zero) was never
//     synced, and neither was any later one (the first sync of a segment
//     covers its header, and segments are synced in order): it and the later
//     segments are removed, unless a later frame proves a sync. Any other
//     bad header is corruption.
//  3. A valid index checkpoint (count, end offset) is trusted: those records
//     were synced before it was written. Frames after it are scanned; at the
//     first frame that fails its checksum, size bound, seq continuity or batch
//     order, the segment's valid data ends. An unfinished batch is dropped
//     whole. An all-zero header is the end of the data. A checkpoint marked
//     "truncating" (an interrupted TruncateBack) is the end, whatever follows.
//     The last segment, unless its checkpoint says it was closed cleanly,
//     must hold only zeros after the end: anything else is handled by rules
//     4 and 5, so no stale frame can ever meet new appends.
//  4. Where valid data ends before the log should go on (inside the last
//     segment, or before the next segment's first seq), the rest of the log
//     is searched for proof that the damaged record had been synced: a valid
//     later frame whose durable-seq hint covers it. With proof, this is
//     corruption: ErrCorrupt naming file, offset and seq, and nothing changes.
//  5. Without proof it is a torn tail: the bytes after the end are zeroed
//     and synced, later segments (holding only unsynced records) are removed,
//     and the report says what was dropped.
//  6. Segments wholly before the logical first seq in wal.meta (an
//     interrupted TruncateFront) are removed.
package recovery

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/platform"
)

// DefaultMaxRecordSize matches mmapwal's default.
const DefaultMaxRecordSize = 16 << 20

// Options tune recovery. The zero value is usable.
type Options struct {
	MaxRecordSize int          // frames claiming more are invalid; default 16 MiB
	Logger        *slog.Logger // nil: silent
	Full          bool         // ignore index checkpoints: scan and verify every record
	ReadOnly      bool         // only analyse; change nothing on disk
	Offsets       bool         // fill Segment.Offsets for scanned records
}

// Segment is one segment as recovered.
type Segment struct {
	Path      string
	IndexPath string
	FirstSeq  uint64
	ID        uint64
	Size      int64
	Count     uint64 // complete records
	End       int64  // offset after the last complete record
	// Trusted records were covered by a valid index checkpoint; their index
	// entries are in the index file. Offsets holds the offsets of records
	// Trusted..Count-1, found by scanning (with Options.Offsets).
	Trusted    uint64
	TrustedEnd int64 // offset just after record Trusted-1 (the header's end if none)
	IndexOK    bool
	// Closed: the segment was last at a clean Close (its checkpoint says so
	// and nothing follows it). The next writer must clear that durably
	// before appending (see format.IndexClosed).
	Closed       bool
	Offsets      []int64
	ScannedBytes int64
}

// Report is what recovery found and did.
type Report struct {
	Dir      string
	Segments []Segment
	// MetaFirst is the logical first seq from wal.meta (0 if none).
	MetaFirst uint64
	// NextSeq is the seq the next append gets (0 if the directory holds no
	// segments and no meta: the caller's default applies).
	NextSeq uint64

	TempRemoved    []string
	FilesRemoved   []string // segments and indexes removed (torn tail, truncated front)
	TornFile       string   // segment whose tail was cut ("" if none)
	TornOffset     int64
	TornSeq        uint64
	BytesZeroed    int64
	RecordsDropped int // valid frames discarded after the torn point
	IndexesInvalid int // index files that were missing or failed their checks
	ScannedBytes   int64
}

type segFile struct {
	seq  uint64
	path string
}

// dirListing is what a WAL directory holds, as recovery sees it.
type dirListing struct {
	segs       []segFile // in seq order, from the first not wholly before metaFirst
	beforeMeta []segFile // segments wholly before metaFirst (an interrupted TruncateFront)
	temps      []string
	metaFirst  uint64 // logical first seq from wal.meta (0 if none)
	metaErr    error  // a damaged wal.meta (*format.CorruptError)
}

func listDir(dir string) (dirListing, error) {
	var l dirListing
	entries, err := os.ReadDir(dir)
	if err != nil {
		return l, err
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case format.IsTemp(name):
			l.temps = append(l.temps, filepath.Join(dir, name))
		case name == format.MetaName:
			p := filepath.Join(dir, name)
			b, err := os.ReadFile(p)
			if err != nil {
				return l, err
			}
			if l.metaFirst, err = format.DecodeMeta(b); err != nil {
				l.metaErr = &format.CorruptError{File: p, Offset: 0, Reason: err.Error()}
			}
		default:
			if s, ok := format.ParseSegmentName(name); ok && e.Type().IsRegular() {
				l.segs = append(l.segs, segFile{s, filepath.Join(dir, name)})
			}
		}
	}
	slices.SortFunc(l.segs, func(a, b segFile) int { return cmpU64(a.seq, b.seq) })
	for len(l.segs) > 1 && l.metaFirst != 0 && l.segs[1].seq <= l.metaFirst {
		l.beforeMeta = append(l.beforeMeta, l.segs[0])
		l.segs = l.segs[1:]
	}
	return l, nil
}

// Recover brings dir to the state of its valid log (see the package rules)
// and reports it. With Options.ReadOnly it only reports. An error wrapping
// format.ErrCorrupt (a *format.CorruptError) means damage that cannot be a
// torn tail; nothing was changed.
func Recover(dir string, opts *Options) (*Report, error) {
	o := opts.withDefaults()
	log := o.Logger
	rep := &Report{Dir: dir}
	l, err := listDir(dir)
	if err != nil {
		return nil, err
	}
	if l.metaErr != nil {
		return nil, l.metaErr
	}
	segs, temps := l.segs, l.temps
	rep.MetaFirst = l.metaFirst
	// Rule 6: whole segments before the logical first seq go.
	var drop []string
	for _, s := range l.beforeMeta {
		drop = append(drop, s.path, indexPath(s.path))
	}

	maxLen := uint64(o.MaxRecordSize)
	var cut *cutPlan
	for i, sf := range segs {
		last := i == len(segs)-1
		seg, data, closeFn, err := openSegment(sf, o.ReadOnly)
		if err != nil {
			return nil, err
		}
		var res ScanResult
		var segErr error
		var tail int64
		var truncating bool
		ferr := platform.CatchFault(func() {
			res, truncating, segErr = recoverSegment(&seg, data, last, o, maxLen, rep)
			if segErr == nil && last && !seg.Closed {
				tail = lastNonZero(data, res.End)
			}
		})
		closeFn()
		if ferr != nil {
			return nil, fmt.Errorf("recover %s: %w", sf.path, ferr)
		}
		if errors.Is(segErr, errZeroHeader) {
			// Rule 2: the header never reached the disk, so no sync covered
			// this segment (the first sync of a segment starts at offset 0),
			// nor any later one (segments are synced in order). Only a later
			// frame proving otherwise makes this corruption.
			proof := proofInSegments(segs[i:i+1], sf.seq, maxLen, true)
			if proof == nil {
				proof = proofInSegments(segs[i+1:], sf.seq, maxLen, false)
			}
			if proof != nil {
				return nil, &format.CorruptError{File: sf.path, Offset: 0, Seq: sf.seq,
					Reason: "segment header is zero but " + proof.Error()}
			}
			cut = &cutPlan{segIdx: i, removeFrom: i, seq: sf.seq, off: 0, wholeFile: true}
			break
		}
		if segErr != nil {
			return nil, segErr
		}
		rep.Segments = append(rep.Segments, seg)
		rep.ScannedBytes += seg.ScannedBytes
		// Rule 3/4: does the valid data end where the log should go on? The
		// last segment, unless closed cleanly, must also hold nothing but
		// zeros after its end (stale frames of an append in flight at a crash,
		// or of an interrupted TruncateBack, must never meet new appends).
		var clean bool
		if last {
			clean = seg.Closed || tail <= res.End
		} else {
			clean = (res.Stop == StopZero || res.Stop == StopEnd) && res.Next == segs[i+1].seq && res.Dropped == 0
		}
		if clean {
			continue
		}
		if truncating {
			// An interrupted TruncateBack: complete it, nothing to prove.
			cut = &cutPlan{segIdx: i, removeFrom: i + 1, seq: res.Next, off: res.End, badOff: res.End, noProof: true, res: res}
			break
		}
		from := res.StopAt + format.FrameAlign
		if res.Dropped > 0 {
			from = res.End // the unfinished batch's own frames count as dropped
		}
		cut = &cutPlan{segIdx: i, removeFrom: i + 1, seq: res.Next, off: res.End, badOff: res.StopAt, searchFrom: from, res: res}
		break
	}

	if cut != nil {
		if err := checkTorn(cut, segs, rep, maxLen); err != nil {
			return nil, err
		}
	}
	if cut != nil {
		rep.TornSeq, rep.TornOffset = cut.seq, cut.off
		rep.TornFile = segs[cut.segIdx].path
		for _, s := range segs[cut.removeFrom:] {
			drop = append(drop, s.path, indexPath(s.path))
		}
		if cut.wholeFile {
			rep.Segments = rep.Segments[:cut.segIdx]
		} else {
			rep.Segments = rep.Segments[:cut.segIdx+1]
		}
	}

	// The next seq, and rule 6 for a log emptied by TruncateFront.
	switch {
	case len(rep.Segments) > 0:
		ls := rep.Segments[len(rep.Segments)-1]
		rep.NextSeq = ls.FirstSeq + ls.Count
		if rep.MetaFirst > rep.NextSeq {
			for _, s := range rep.Segments {
				drop = append(drop, s.Path, s.IndexPath)
			}
			rep.Segments = nil
			rep.NextSeq = rep.MetaFirst
		}
	case cut != nil:
		rep.NextSeq = max(cut.seq, rep.MetaFirst)
	default:
		rep.NextSeq = rep.MetaFirst
	}

	if o.ReadOnly {
		rep.TempRemoved = temps
		rep.FilesRemoved = existing(drop)
		return rep, nil
	}
	// Apply: zero the torn tail durably first, then remove files, then sync
	// the directory, so that a crash in between leaves a state these same
	// rules recover.
	if cut != nil && !cut.wholeFile {
		n, err := zeroTail(segs[cut.segIdx].path, cut.off)
		if err != nil {
			return nil, err
		}
		rep.BytesZeroed = n
		log.Warn("mmapwal: cut torn tail", "file", rep.TornFile, "offset", cut.off, "seq", cut.seq,
			"bytes_zeroed", n, "records_dropped", rep.RecordsDropped)
	}
	for _, p := range temps {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		rep.TempRemoved = append(rep.TempRemoved, p)
	}
	for i := len(drop) - 1; i >= 0; i-- { // newest first: a crash leaves a prefix
		p := drop[i]
		if err := os.Remove(p); err == nil {
			rep.FilesRemoved = append(rep.FilesRemoved, p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	if len(temps)+len(rep.FilesRemoved) > 0 {
		if err := platform.SyncDir(dir); err != nil {
			return nil, err
		}
		log.Info("mmapwal: removed files", "temporary", len(temps), "segments_and_indexes", len(rep.FilesRemoved))
	}
	return rep, nil
}

var errZeroHeader = errors.New("segment header is all zeros")

type cutPlan struct {
	segIdx     int    // segment where the log ends
	removeFrom int    // segments from this index on are removed
	seq        uint64 // first seq not in the log
	off        int64  // offset in segIdx where the log ends
	badOff     int64  // offset of the frame that failed
	searchFrom int64  // where the search for proof starts
	wholeFile  bool   // segIdx itself is removed
	noProof    bool   // completing a TruncateBack: what follows was discarded on purpose
	res        ScanResult
}

// checkTorn applies rule 4: it looks for proof that the record at the cut
// had been synced, and counts what a cut would drop.
func checkTorn(cut *cutPlan, segs []segFile, rep *Report, maxLen uint64) error {
	if cut.noProof {
		return nil
	}
	if !cut.wholeFile {
		s := rep.Segments[cut.segIdx]
		f, err := os.Open(s.Path)
		if err != nil {
			return err
		}
		defer f.Close()
		data, err := platform.MapReadOnly(f, int(s.Size))
		if err != nil {
			return err
		}
		defer platform.Unmap(data)
		var proof int64
		var valid int
		if ferr := platform.CatchFault(func() {
			proof, valid = FindProof(data, format.SegmentSeed(s.ID), cut.searchFrom, cut.seq, maxLen)
		}); ferr != nil {
			return fmt.Errorf("recover %s: %w", s.Path, ferr)
		}
		rep.RecordsDropped += valid
		if proof >= 0 {
			return &format.CorruptError{File: s.Path, Offset: cut.badOff, Seq: cut.seq,
				Reason: fmt.Sprintf("%s (%s); a later frame at offset %d proves this record was synced", cut.res.Stop, cut.res.Frame, proof)}
		}
	}
	if later := segs[cut.removeFrom:]; len(later) > 0 {
		if p := proofInSegments(later, cut.seq, maxLen, false); p != nil {
			return &format.CorruptError{File: segs[cut.segIdx].path, Offset: cut.badOff, Seq: cut.seq,
				Reason: "log ends here but " + p.Error()}
		}
		for _, s := range later {
			rep.RecordsDropped += countValid(s, maxLen)
		}
	}
	return nil
}

// proofInSegments scans the valid frames of segs for a durable-seq hint
// covering seq. With viaIndex, a segment whose header is unreadable is
// checked with the segment ID its index file recorded.
func proofInSegments(segs []segFile, seq uint64, maxLen uint64, viaIndex bool) error {
	for _, sf := range segs {
		f, err := os.Open(sf.path)
		if err != nil {
			continue
		}
		fi, err := f.Stat()
		if err != nil || fi.Size() < format.SegmentHeaderSize {
			f.Close()
			continue
		}
		data, err := platform.MapReadOnly(f, int(fi.Size()))
		f.Close()
		if err != nil {
			continue
		}
		var id uint64
		if h, err := format.DecodeSegmentHeader(data); err == nil {
			id = h.ID
		} else if viaIndex {
			if ih, err := readIndexHeader(indexPath(sf.path)); err == nil && ih.FirstSeq == sf.seq {
				id = ih.SegmentID
			}
		}
		var found error
		if id != 0 {
			_ = platform.CatchFault(func() {
				if off, _ := FindProof(data, format.SegmentSeed(id), format.SegmentHeaderSize, seq, maxLen); off >= 0 {
					found = fmt.Errorf("a frame in %s at offset %d proves record %d was synced", sf.path, off, seq)
				}
			})
		}
		platform.Unmap(data)
		if found != nil {
			return found
		}
	}
	return nil
}

func countValid(sf segFile, maxLen uint64) int {
	f, err := os.Open(sf.path)
	if err != nil {
		return 0
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() < format.SegmentHeaderSize {
		return 0
	}
	data, err := platform.MapReadOnly(f, int(fi.Size()))
	if err != nil {
		return 0
	}
	defer platform.Unmap(data)
	n := 0
	_ = platform.CatchFault(func() {
		h, err := format.DecodeSegmentHeader(data)
		if err != nil {
			return
		}
		r := Scan(data, format.SegmentSeed(h.ID), format.SegmentHeaderSize, h.FirstSeq, maxLen, false)
		n = int(r.Next - h.FirstSeq)
	})
	return n
}

// openSegment opens and maps a segment for reading and decodes nothing yet.
func openSegment(sf segFile, _ bool) (Segment, []byte, func(), error) {
	seg := Segment{Path: sf.path, IndexPath: indexPath(sf.path), FirstSeq: sf.seq}
	f, err := os.Open(sf.path)
	if err != nil {
		return seg, nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return seg, nil, nil, err
	}
	seg.Size = fi.Size()
	if seg.Size < format.SegmentHeaderSize {
		f.Close()
		return seg, nil, nil, &format.CorruptError{File: sf.path, Offset: 0, Seq: sf.seq,
			Reason: fmt.Sprintf("segment is %d bytes, shorter than its %d-byte header", seg.Size, format.SegmentHeaderSize)}
	}
	data, err := platform.MapReadOnly(f, int(seg.Size))
	f.Close() // the mapping stays valid after close
	if err != nil {
		return seg, nil, nil, err
	}
	return seg, data, func() { platform.Unmap(data) }, nil
}

// recoverSegment checks the header, takes the index checkpoint if it holds,
// and scans the rest.
func recoverSegment(seg *Segment, data []byte, last bool, o Options, maxLen uint64, rep *Report) (ScanResult, bool, error) {
	h, err := format.DecodeSegmentHeader(data)
	if errors.Is(err, format.ErrZeroHeader) {
		return ScanResult{}, false, errZeroHeader
	}
	if err != nil {
		return ScanResult{}, false, &format.CorruptError{File: seg.Path, Offset: 0, Seq: seg.FirstSeq, Reason: err.Error()}
	}
	if h.FirstSeq != seg.FirstSeq {
		return ScanResult{}, false, &format.CorruptError{File: seg.Path, Offset: 0, Seq: seg.FirstSeq,
			Reason: fmt.Sprintf("header says first seq %d, file name says %d", h.FirstSeq, seg.FirstSeq)}
	}
	seg.ID = h.ID
	seed := format.SegmentSeed(h.ID)
	start, count := int64(format.SegmentHeaderSize), uint64(0)
	ck, ok := checkpoint(seg, data, seed, last, maxLen)
	if ok && !o.Full {
		start, count = ck.end, ck.count
		seg.IndexOK = true
	} else if !ok {
		rep.IndexesInvalid++
	} else {
		seg.IndexOK = true // valid, but Full asked for a rescan
	}
	seg.Trusted, seg.TrustedEnd = count, start
	if ok && last && ck.flags&format.IndexTruncating != 0 {
		// TruncateBack had durably decided the end; complete it.
		seg.Count, seg.End = ck.count, ck.end
		return ScanResult{End: ck.end, Next: seg.FirstSeq + ck.count, Stop: StopZero, StopAt: ck.end}, true, nil
	}
	if rest := data[start:]; len(rest) > 1<<20 && !isZeroPage(rest) {
		_ = platform.PrefaultRead(rest) // one call instead of a fault per page
	}
	r := Scan(data, seed, start, seg.FirstSeq+count, maxLen, o.Offsets)
	seg.Closed = ok && last && !o.Full && ck.flags&format.IndexClosed != 0 && r.Stop == StopZero && r.End == ck.end
	seg.Count = r.Next - seg.FirstSeq
	seg.End = r.End
	seg.Offsets = r.Offsets
	seg.ScannedBytes = max(r.StopAt-start, 0)
	if o.Full {
		seg.Trusted, seg.TrustedEnd = 0, format.SegmentHeaderSize
	}
	return r, false, nil
}

type ckpt struct {
	count uint64
	end   int64
	flags uint32
}

// checkpoint reads the segment's index header and accepts its checkpoint if
// it matches the segment. For the last segment, where appends continue,
// the frame of the last checkpointed record is also checked — unless the
// checkpoint says the log was closed cleanly (written by Close after its
// final sync), so that a clean reopen reads no record frame at all.
func checkpoint(seg *Segment, data []byte, seed uint32, last bool, maxLen uint64) (ckpt, bool) {
	f, err := os.Open(seg.IndexPath)
	if err != nil {
		return ckpt{}, false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ckpt{}, false
	}
	var hb [format.IndexHeaderSize]byte
	if _, err := f.ReadAt(hb[:], 0); err != nil {
		return ckpt{}, false
	}
	ih, err := format.DecodeIndexHeader(hb[:])
	if err != nil || ih.SegmentID != seg.ID || ih.FirstSeq != seg.FirstSeq {
		return ckpt{}, false
	}
	capacity := format.IndexCapacity(seg.Size)
	end := int64(ih.EndOffset)
	if fi.Size() < format.IndexFileSize(capacity) || ih.Count > uint64(capacity) ||
		end < format.SegmentHeaderSize || end > seg.Size || end%format.FrameAlign != 0 ||
		(ih.Count == 0) != (end == format.SegmentHeaderSize) {
		return ckpt{}, false
	}
	if last && ih.Count > 0 {
		var eb [4]byte
		if _, err := f.ReadAt(eb[:], format.IndexHeaderSize+int64(ih.Count-1)*format.IndexEntrySize); err != nil {
			return ckpt{}, false
		}
		off := int64(uint32(eb[0])|uint32(eb[1])<<8|uint32(eb[2])<<16|uint32(eb[3])<<24) * format.FrameAlign
		fh, _, st := format.DecodeFrame(data, off, seed, maxLen)
		if st != format.FrameOK || fh.Seq != seg.FirstSeq+ih.Count-1 || off+format.FrameSize(int(fh.Length)) != end {
			return ckpt{}, false
		}
	}
	return ckpt{ih.Count, end, ih.Flags}, true
}

// isZeroPage reports whether the first bytes of b (a frame header's worth)
// are zero: then the scan ends at once and prefaulting would only map zeros.
func isZeroPage(b []byte) bool {
	return bytes.Equal(b[:format.FrameHeaderSize], zeroChunk[:format.FrameHeaderSize])
}

func readIndexHeader(path string) (format.IndexHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return format.IndexHeader{}, err
	}
	defer f.Close()
	var hb [format.IndexHeaderSize]byte
	if _, err := f.ReadAt(hb[:], 0); err != nil {
		return format.IndexHeader{}, err
	}
	return format.DecodeIndexHeader(hb[:])
}

// zeroTail zeroes every non-zero byte of the segment at or after off and
// syncs it, so that stale bytes can never be read as records and new
// appends start on zeros.
func zeroTail(path string, off int64) (int64, error) {
	f, err := platform.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	data, err := platform.MapReadOnly(f, int(fi.Size()))
	if err != nil {
		return 0, err
	}
	var end int64
	ferr := platform.CatchFault(func() { end = lastNonZero(data, off) })
	platform.Unmap(data)
	if ferr != nil {
		return 0, fmt.Errorf("zero tail of %s: %w", path, ferr)
	}
	zeros := make([]byte, 1<<20)
	for p := off; p < end; {
		n := min(int64(len(zeros)), end-p)
		if _, err := f.WriteAt(zeros[:n], p); err != nil {
			return 0, fmt.Errorf("zero tail of %s at %d: %w", path, p, err)
		}
		p += n
	}
	if end > off {
		if err := platform.SyncFile(f); err != nil {
			return 0, err
		}
	}
	return end - off, nil
}

func indexPath(segPath string) string {
	return segPath[:len(segPath)-len(format.SegmentExt)] + format.IndexExt
}

func existing(paths []string) []string {
	var out []string
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// withDefaults returns a copy of o (nil: the zero value) with defaults
// filled in: Recover and Repair share it.
func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.MaxRecordSize <= 0 {
		r.MaxRecordSize = DefaultMaxRecordSize
	}
	if r.Logger == nil {
		r.Logger = silentLogger
	}
	return r
}

// silentLogger drops everything: no level is enabled.
var silentLogger = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.Level(math.MaxInt32)}))
