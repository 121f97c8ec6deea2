package recovery

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/internal/scan"
	"github.com/mmapwal/wal/platform"
)

// Analysis: read-only facts about a directory, one segFacts per segment. It
// changes nothing, and it aborts on any error: a file that could not be
// opened, read or mapped, or whose mapping faulted, is never taken for a
// file that is missing or holds nothing. Only "not there" (a missing index
// file) and "there but invalid" (a bad checksum, a short file) are facts.

// dirFacts is what a WAL directory holds, as recovery sees it.
type dirFacts struct {
	names      map[string]bool // every entry of the directory
	temps      []string
	metaFirst  uint64 // logical first seq from wal.meta (0 if none)
	metaErr    error  // a damaged wal.meta (*format.CorruptError)
	logID      uint64 // the log's identity (0: none known)
	beforeMeta []segName
	// segs lists the segments from the first not wholly before metaFirst.
	// Segments before stop were found to continue into the next one and
	// have every fact; segs[stop] (if stop < len(segs)) is where the valid
	// data ends before the log should go on; later segments have evidence
	// facts only (header, checkpoint, hints, valid records), which are what
	// rules 4 and 5 ask of them.
	segs []segFacts
	stop int
	// manifest: the facts before the last segment came from wal.clean
	// (manifest.go), not from reading the segments.
	manifest bool
}

type segName struct {
	seq        uint64
	name, path string
}

type headerState int

const (
	headerOK    headerState = iota
	headerZero              // all zero: never reached the disk
	headerShort             // the file is shorter than a header
	headerBad               // damaged, or disagrees with the file name
)

type indexState int

const (
	indexMissing indexState = iota // no index file
	indexInvalid                   // there, but not a checkpoint of this segment
	indexValid
)

// ckptFacts is what a segment's index file says about it.
type ckptFacts struct {
	state  indexState
	reason string // why invalid
	count  uint64
	end    int64
	flags  uint32
	id     uint64 // the segment ID the index names (header valid, first seq matching)
}

// proves reports whether a checkpoint shows that the log went on past the
// start of its segment. See rule 4 for why this holds.
func (c ckptFacts) proves() bool {
	return c.state == indexValid && (c.count > 0 || c.flags&format.IndexClosed != 0)
}

type segFacts struct {
	path, indexPath string
	seq             uint64 // from the file name
	size            int64
	header          headerState
	headerReason    string
	id              uint64
	logID           uint64 // from a valid header (0: written before log identities)
	ck              ckptFacts

	// Segments up to stop.
	start      int64 // where the scan started (the trusted checkpoint's end, or the header's)
	trusted    uint64
	scan       scan.Result
	truncating bool  // the checkpoint records an interrupted TruncateBack: no scan
	closed     bool  // checkpoint marked closed, last segment, nothing after it
	tailEnd    int64 // just after the last non-zero byte at or after scan.End, where a rule needs it
	proofOff   int64 // the stop segment: first later frame whose hint covers scan.Next (-1: none)
	afterValid int   // the stop segment: valid frames after the end

	// Segments after stop (and a stop segment whose header is zero).
	hintOff int64  // offset of the frame with the highest durable-seq hint (-1: no valid frame)
	hint    uint64 // that hint
	chain   uint64 // records in the valid run from the header
}

// analyse gathers the facts of dir. strict (Repair) treats non-zero bytes
// after the valid data of any segment as the end, as the last segment's.
func analyse(fsys fileSystem, dir string, o Options, strict bool) (f *dirFacts, err error) {
	d, err := fsys.OpenDir(dir)
	if err != nil {
		return nil, fmt.Errorf("recover: read directory %s: %w", dir, err)
	}
	defer func() {
		if cerr := d.Close(); cerr != nil && err == nil {
			f, err = nil, fmt.Errorf("recover: %w", cerr)
		}
	}()
	f, segs, err := listDir(fsys, d, dir)
	if err != nil {
		return nil, err
	}
	if ok, err := analyseManifest(fsys, d, dir, f, segs, o, strict); err != nil {
		return nil, err
	} else if ok {
		if f.logID, err = checkIdentity(d, f, o.LogID); err != nil {
			return nil, err
		}
		return f, nil
	}
	f.stop = len(segs)
	f.segs = make([]segFacts, 0, len(segs))
	pre := prefetch(d, segs, o, strict, f.segs[:len(segs)])
	for i, sn := range segs {
		last := i == len(segs)-1
		var next uint64
		if !last {
			next = segs[i+1].seq
		}
		var s segFacts
		if pre != nil && pre[i] {
			s = f.segs[:i+1][i] // where prefetch put it
		} else if s, err = analyseSegment(d, sn, last, next, o, strict); err != nil {
			return nil, err
		}
		f.segs = append(f.segs, s)
		if !continues(&s, next, last, strict) {
			f.stop = i
			break
		}
	}
	if f.stop < len(segs) {
		for _, sn := range segs[f.stop+1:] {
			s, err := analyseEvidence(d, sn)
			if err != nil {
				return nil, err
			}
			f.segs = append(f.segs, s)
		}
	}
	if f.logID, err = checkIdentity(d, f, o.LogID); err != nil {
		return nil, err
	}
	return f, nil
}

// checkIdentity is the log-identity part of rule 2, and part of the
// analysis so that a file of another log is refused before the plan could
// judge the log with it (its records could look like a torn tail, and the
// segments after it be cut): every segment whose valid header carries a
// non-zero log ID must carry want, or, when want is zero, the log ID of the
// first segment (in seq order) that has one. Segments before wal.meta's
// first seq are checked too: rule 6 would delete them. A zero log ID (a
// segment written before log identities) is accepted unchecked, and a
// header that does not decode is rule 2's to judge. It returns the log's ID
// (0 if neither want nor any segment gives one).
func checkIdentity(d dirHandle, f *dirFacts, want uint64) (uint64, error) {
	id, from := want, ""
	check := func(path string, seq, logID uint64) error {
		switch {
		case logID == 0 || logID == id:
			return nil
		case id == 0:
			id, from = logID, path
			return nil
		}
		reason := fmt.Sprintf("segment belongs to another log (log ID %016x, this log is %016x", logID, id)
		if from != "" {
			reason += ", the log ID of " + from + ", the first segment that has one"
		}
		return &format.CorruptError{File: path, Offset: 32, Seq: seq, Reason: reason + ")"}
	}
	for _, sn := range f.beforeMeta {
		var s segFacts
		sf, err := openFacts(d, sn, &s)
		if err == nil {
			closeInto(sf, &err)
		}
		if err != nil {
			return 0, err
		}
		if err := check(s.path, s.seq, s.logID); err != nil {
			return 0, err
		}
	}
	for i := range f.segs {
		if err := check(f.segs[i].path, f.segs[i].seq, f.segs[i].logID); err != nil {
			return 0, err
		}
	}
	return id, nil
}

func listDir(fsys fileSystem, d dirHandle, dir string) (*dirFacts, []segName, error) {
	entries, err := d.List()
	if err != nil {
		return nil, nil, fmt.Errorf("recover: read directory %s: %w", dir, err)
	}
	f := &dirFacts{names: make(map[string]bool, len(entries))}
	segs := make([]segName, 0, len(entries)/2+1)
	for _, e := range entries {
		name := e.name
		f.names[name] = true
		switch {
		case format.IsTemp(name):
			f.temps = append(f.temps, filepath.Join(dir, name))
		case name == format.MetaName:
			p := filepath.Join(dir, name)
			b, err := fsys.ReadFile(p)
			if err != nil {
				return nil, nil, fmt.Errorf("recover: read %s: %w", p, err)
			}
			if f.metaFirst, err = format.DecodeMeta(b); err != nil {
				f.metaErr = &format.CorruptError{File: p, Offset: 0, Reason: err.Error()}
			}
		default:
			// Only regular files are segments: a directory or device under
			// a segment's name is not one of ours.
			if s, ok := format.ParseSegmentName(name); ok && e.regular {
				segs = append(segs, segName{s, name, filepath.Join(dir, name)})
			}
		}
	}
	slices.SortFunc(segs, func(a, b segName) int { return cmp.Compare(a.seq, b.seq) })
	slices.Sort(f.temps)
	for len(segs) > 1 && f.metaFirst != 0 && segs[1].seq <= f.metaFirst {
		f.beforeMeta = append(f.beforeMeta, segs[0])
		segs = segs[1:]
	}
	return f, segs, nil
}

// prefetchMin is the number of segments from which prefetch reads ahead in
// parallel: below it, a sequential pass costs less than the goroutines.
const prefetchMin = 256

// prefetch analyses, in parallel, the segments before the last that the
// common case settles from a few bytes each (see endAtCheckpoint): at 9
// system calls per segment, a sequential pass over 10,000 segments takes
// ~50 ms of system time alone. Everything else, including every error, is
// left to the sequential pass (done false), which redoes that segment's
// analysis in seq order: so the rules see the same facts, and an I/O error
// aborts the analysis with the same file named, as without the prefetch.
// The facts of segment i go to into[i] (done[i] true); done is nil when the
// log is small, or every segment must be scanned.
func prefetch(d dirHandle, segs []segName, o Options, strict bool, into []segFacts) (done []bool) {
	workers := min(runtime.GOMAXPROCS(0), 8)
	if len(segs) < prefetchMin || strict || o.Full || workers < 2 {
		return nil
	}
	done = make([]bool, len(segs))
	const batch = 64
	var claimed atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				from := int(claimed.Add(batch)) - batch
				if from >= len(segs)-1 {
					return
				}
				for i := from; i < min(from+batch, len(segs)-1); i++ {
					ok, err := analyseClean(d, segs[i], segs[i+1].seq, o, &into[i])
					done[i] = ok && err == nil
				}
			}
		}()
	}
	wg.Wait()
	return done
}

// analyseClean is analyseSegment for a segment before the last, when
// endAtCheckpoint settles it (done); it never maps the segment.
func analyseClean(d dirHandle, sn segName, next uint64, o Options, s *segFacts) (done bool, err error) {
	sf, err := openFacts(d, sn, s)
	if err != nil {
		return false, err
	}
	defer closeInto(sf, &err)
	if s.header != headerOK {
		return false, nil
	}
	if s.ck, err = readCheckpoint(d, s, sf, false); err != nil || s.ck.state != indexValid {
		return false, err
	}
	s.start, s.trusted = s.ck.end, s.ck.count
	return endAtCheckpoint(s, sf, false, next, o, false)
}

// analyseSegment checks the header, takes the index checkpoint if it holds,
// and scans the rest.
func analyseSegment(d dirHandle, sn segName, last bool, next uint64, o Options, strict bool) (s segFacts, err error) {
	sf, err := openFacts(d, sn, &s)
	if err != nil {
		return s, err
	}
	defer closeInto(sf, &err)
	if s.header == headerZero {
		// Evidence only: rule 2 asks whether anything proves a sync.
		return s, evidence(d, &s, sf)
	}
	if s.header != headerOK {
		return s, nil
	}
	if s.ck, err = readCheckpoint(d, &s, sf, last); err != nil {
		return s, err
	}
	s.start = format.SegmentHeaderSize
	if s.ck.state == indexValid && !o.Full {
		s.start, s.trusted = s.ck.end, s.ck.count
	}
	if done, err := endAtCheckpoint(&s, sf, last, next, o, strict); done || err != nil {
		return s, err
	}
	seed := format.SegmentSeed(s.id)
	err = sf.read(func(data []byte) {
		if s.ck.state == indexValid && last && s.ck.flags&format.IndexTruncating != 0 {
			// TruncateBack had durably decided the end.
			s.truncating = true
			s.scan = scan.Result{End: s.ck.end, Next: s.seq + s.ck.count, Stop: scan.StopZero, StopAt: s.ck.end}
		} else {
			if rest := data[s.start:]; len(rest) > 1<<20 && !isZeroPage(rest) {
				_ = platform.PrefaultRead(rest) // one call instead of a fault per page
			}
			s.scan = scan.Scan(data, seed, s.start, s.seq+s.trusted, format.MaxRecordLength, o.offsets)
			s.closed = s.ck.state == indexValid && last && !o.Full && s.ck.flags&format.IndexClosed != 0 &&
				s.scan.Stop == scan.StopZero && s.scan.End == s.ck.end
		}
		s.tailEnd = s.scan.End
		if strict || (last && !s.closed) || !chainContinues(&s, next, last) {
			s.tailEnd = lastNonZero(data, s.scan.End)
		}
		if !s.truncating && !continues(&s, next, last, strict) {
			s.proofOff, s.afterValid = scan.FindProof(data, seed, searchFrom(s.scan), s.scan.Next, format.MaxRecordLength)
		}
	})
	return s, err
}

// endAtCheckpoint settles the common case of a cleanly written segment
// without mapping it: a trusted checkpoint followed by a zero frame header
// (or the end of the segment), in a segment that continues into the next
// one or, the last, was closed cleanly. What a scan from the checkpoint's
// end would find then is known from those 32 bytes alone: it stops at once,
// nothing after the end needs to be read (only the last segment without the
// clean-close mark, and Repair, look for stale bytes there), and no proof
// needs to be searched. Anything else is left to the full analysis (done
// false), which maps the segment.
func endAtCheckpoint(s *segFacts, sf *segmentFile, last bool, next uint64, o Options, strict bool) (done bool, err error) {
	if strict || o.Full || s.ck.state != indexValid || s.ck.flags&format.IndexTruncating != 0 ||
		(last && s.ck.flags&format.IndexClosed == 0) {
		return false, nil
	}
	end := s.ck.end
	r := scan.Result{End: end, Next: s.seq + s.ck.count, Stop: scan.StopEnd, StopAt: end}
	if !last && r.Next == next {
		// The checkpoint reaches the next segment's first seq: the chain
		// is proven without looking past the end. Whatever follows it
		// can only be frames of seqs the next segment holds, which no
		// reader looks for here, so the frame header there is not read:
		// one system call less per segment. A full scan (Options.Full,
		// Repair) still judges those bytes.
		r.Stop = scan.StopZero
	} else if end+format.FrameHeaderSize <= s.size {
		var fh [format.FrameHeaderSize]byte
		if err := sf.readAt(fh[:], end); err != nil {
			return false, err
		}
		if fh != ([format.FrameHeaderSize]byte{}) {
			return false, nil // a frame after the checkpoint, or damage: scan
		}
		r.Stop = scan.StopZero
	}
	f := *s
	f.scan, f.tailEnd = r, r.End
	f.closed = last && r.Stop == scan.StopZero
	if (last && !f.closed) || !chainContinues(&f, next, last) || !continues(&f, next, last, false) {
		return false, nil // the tail must be checked for stale bytes, or proof searched
	}
	*s = f
	return true, nil
}

// searchFrom is where the search for proof after a stop starts: after the
// frame that stopped the scan, or at an unfinished batch's first frame (its
// own frames count as dropped).
func searchFrom(r scan.Result) int64 {
	if r.Dropped > 0 {
		return r.End
	}
	return r.StopAt + format.FrameAlign
}

// analyseEvidence gathers what a segment after the end can prove.
func analyseEvidence(d dirHandle, sn segName) (s segFacts, err error) {
	sf, err := openFacts(d, sn, &s)
	if err != nil {
		return s, err
	}
	defer closeInto(sf, &err)
	if s.header == headerShort {
		return s, nil
	}
	return s, evidence(d, &s, sf)
}

// evidence reads the checkpoint and finds the highest durable-seq hint and
// the valid run of records. A segment whose header is unreadable is checked
// with the segment ID its index file records.
func evidence(d dirHandle, s *segFacts, sf *segmentFile) error {
	var err error
	if s.ck, err = readCheckpoint(d, s, sf, false); err != nil {
		return err
	}
	id := s.id
	if s.header != headerOK {
		id = s.ck.id
	}
	if id == 0 {
		return nil
	}
	seed := format.SegmentSeed(id)
	return sf.read(func(data []byte) {
		s.hintOff, s.hint = highestHint(data, seed, s.seq)
		if s.header == headerOK {
			s.chain = scan.Scan(data, seed, format.SegmentHeaderSize, s.seq, format.MaxRecordLength, false).Next - s.seq
		}
	})
}

// highestHint returns the offset and durable-seq hint of the valid frame
// (seq at least minSeq) with the highest hint, or -1.
func highestHint(data []byte, seed uint32, minSeq uint64) (int64, uint64) {
	best, hint := int64(-1), uint64(0)
	for off := int64(format.SegmentHeaderSize); off+format.FrameHeaderSize <= int64(len(data)); off += format.FrameAlign {
		if k := data[off+4]; k == 0 || k > format.KindLast {
			continue // cheap filter before decoding
		}
		h, _, st := format.DecodeFrame(data, off, seed, format.MaxRecordLength)
		if st != format.FrameOK || h.Seq < minSeq {
			continue
		}
		if best < 0 || h.Durable > hint {
			best, hint = off, h.Durable
		}
		off += format.FrameSize(int(h.Length)) - format.FrameAlign
	}
	return best, hint
}

// readHeader reads and judges the segment header.
// openFacts starts the facts of segment sn in *s: it opens the file and
// reads its header. On success the caller owns sf and closes it with
// closeInto; on an error sf is already closed.
func openFacts(d dirHandle, sn segName, s *segFacts) (*segmentFile, error) {
	*s = segFacts{path: sn.path, indexPath: indexPath(sn.path), seq: sn.seq, proofOff: -1, hintOff: -1}
	sf, err := openSegmentFile(d, sn)
	if err != nil {
		return nil, err
	}
	s.size = sf.size
	if err := readHeader(s, sf); err != nil {
		sf.close()
		return nil, err
	}
	return sf, nil
}

// closeInto closes sf and reports a close error through *err unless an
// earlier error is already there: a file that could not be closed cleanly
// is an error of the analysis like any other.
func closeInto(sf *segmentFile, err *error) {
	if cerr := sf.close(); *err == nil {
		*err = cerr
	}
}

func readHeader(s *segFacts, sf *segmentFile) error {
	if sf.size < format.SegmentHeaderSize {
		s.header = headerShort
		s.headerReason = fmt.Sprintf("segment is %d bytes, shorter than its %d-byte header", s.size, format.SegmentHeaderSize)
		return nil
	}
	var b [format.SegmentHeaderSize]byte
	if err := sf.readAt(b[:], 0); err != nil {
		return err
	}
	judgeHeader(s, b[:])
	return nil
}

func judgeHeader(s *segFacts, b []byte) {
	h, err := format.DecodeSegmentHeader(b)
	switch {
	case errors.Is(err, format.ErrZeroHeader):
		s.header, s.headerReason = headerZero, "segment header: "+err.Error()
	case err != nil:
		s.header, s.headerReason = headerBad, err.Error()
	case h.FirstSeq != s.seq:
		s.header = headerBad
		s.headerReason = fmt.Sprintf("header says first seq %d, file name says %d", h.FirstSeq, s.seq)
	default:
		s.header, s.id, s.logID = headerOK, h.ID, h.LogID
	}
}

// readCheckpoint reads the segment's index header and accepts its
// checkpoint if it matches the segment (with an unreadable segment header:
// if it matches the file name). For the last segment, where appends
// continue, the frame of the last checkpointed record is also checked —
// unless the checkpoint says the log was closed cleanly (written by Close
// after its final sync), so that a clean reopen reads no record frame.
func readCheckpoint(d dirHandle, s *segFacts, sf *segmentFile, last bool) (ckptFacts, error) {
	invalid := func(why string) (ckptFacts, error) { return ckptFacts{state: indexInvalid, reason: why}, nil }
	f, err := d.Open(filepath.Base(s.indexPath), s.indexPath)
	if errors.Is(err, fs.ErrNotExist) {
		return ckptFacts{state: indexMissing}, nil
	}
	if err != nil {
		return ckptFacts{}, fmt.Errorf("recover: open %s: %w", s.indexPath, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ckptFacts{}, fmt.Errorf("recover: stat %s: %w", s.indexPath, err)
	}
	if !fi.Mode().IsRegular() {
		return ckptFacts{}, fmt.Errorf("recover: %s: not a regular file (%s)", s.indexPath, fi.Mode().Type())
	}
	var hb [format.IndexHeaderSize]byte
	if err := readFull(f, hb[:], 0); errors.Is(err, io.ErrUnexpectedEOF) {
		return invalid("shorter than its header")
	} else if err != nil {
		return ckptFacts{}, fmt.Errorf("recover: read %s: %w", s.indexPath, err)
	}
	ih, err := format.DecodeIndexHeader(hb[:])
	if err != nil {
		return invalid(err.Error())
	}
	if ih.FirstSeq != s.seq || (s.header == headerOK && ih.SegmentID != s.id) {
		return invalid("index belongs to another segment")
	}
	capacity := format.IndexCapacity(s.size)
	end := int64(ih.EndOffset)
	if fi.Size() < format.IndexFileSize(capacity) || ih.Count > uint64(capacity) ||
		end < format.SegmentHeaderSize || end > s.size || end%format.FrameAlign != 0 ||
		(ih.Count == 0) != (end == format.SegmentHeaderSize) {
		return invalid("checkpoint does not fit the segment")
	}
	ck := ckptFacts{state: indexValid, count: ih.Count, end: end, flags: ih.Flags, id: ih.SegmentID}
	if last && ih.Count > 0 && s.header == headerOK {
		var eb [format.IndexEntrySize]byte
		if err := readFull(f, eb[:], format.IndexHeaderSize+int64(ih.Count-1)*format.IndexEntrySize); err != nil {
			return ckptFacts{}, fmt.Errorf("recover: read %s: %w", s.indexPath, err) // the size was checked
		}
		off := int64(binary.LittleEndian.Uint32(eb[:])) * format.FrameAlign
		var ok bool
		if err := sf.read(func(data []byte) {
			fh, _, st := format.DecodeFrame(data, off, format.SegmentSeed(s.id), format.MaxRecordLength)
			ok = st == format.FrameOK && fh.Seq == s.seq+ih.Count-1 && off+format.FrameSize(int(fh.Length)) == end
		}); err != nil {
			return ckptFacts{}, err
		}
		if !ok {
			return invalid("last checkpointed record does not match its frame")
		}
	}
	return ck, nil
}

// readFull reads len(b) bytes at off: io.ErrUnexpectedEOF if the file ends
// first, any other error as it came.
func readFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
