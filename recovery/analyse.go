package recovery

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"

	"github.com/mmapwal/wal/format"
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
	beforeMeta []segName
	// segs lists the segments from the first not wholly before metaFirst.
	// Segments before stop were found to continue into the next one and
	// have every fact; segs[stop] (if stop < len(segs)) is where the valid
	// data ends before the log should go on; later segments have evidence
	// facts only (header, checkpoint, hints, valid records), which are what
	// rules 4 and 5 ask of them.
	segs []segFacts
	stop int
}

type segName struct {
	seq  uint64
	path string
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
	ck              ckptFacts

	// Segments up to stop.
	start      int64 // where the scan started (the trusted checkpoint's end, or the header's)
	trusted    uint64
	scan       ScanResult
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
func analyse(fsys fileSystem, dir string, o Options, strict bool) (*dirFacts, error) {
	f, segs, err := listDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	f.stop = len(segs)
	for i, sn := range segs {
		last := i == len(segs)-1
		var next uint64
		if !last {
			next = segs[i+1].seq
		}
		s, err := analyseSegment(fsys, sn, last, next, o, strict)
		if err != nil {
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
			s, err := analyseEvidence(fsys, sn)
			if err != nil {
				return nil, err
			}
			f.segs = append(f.segs, s)
		}
	}
	return f, nil
}

func listDir(fsys fileSystem, dir string) (*dirFacts, []segName, error) {
	f := &dirFacts{names: map[string]bool{}}
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("recover: read directory %s: %w", dir, err)
	}
	var segs []segName
	for _, e := range entries {
		name := e.Name()
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
			if s, ok := format.ParseSegmentName(name); ok && e.Type().IsRegular() {
				segs = append(segs, segName{s, filepath.Join(dir, name)})
			}
		}
	}
	slices.SortFunc(segs, func(a, b segName) int { return cmpU64(a.seq, b.seq) })
	for len(segs) > 1 && f.metaFirst != 0 && segs[1].seq <= f.metaFirst {
		f.beforeMeta = append(f.beforeMeta, segs[0])
		segs = segs[1:]
	}
	return f, segs, nil
}

// analyseSegment checks the header, takes the index checkpoint if it holds,
// and scans the rest.
func analyseSegment(fsys fileSystem, sn segName, last bool, next uint64, o Options, strict bool) (s segFacts, err error) {
	s = segFacts{path: sn.path, indexPath: indexPath(sn.path), seq: sn.seq, proofOff: -1, hintOff: -1}
	sf, err := openSegmentFile(fsys, sn.path)
	if err != nil {
		return s, err
	}
	defer func() {
		if cerr := sf.close(); err == nil {
			err = cerr
		}
	}()
	s.size = sf.size
	if err := sf.read(func(data []byte) { readHeader(&s, data) }); err != nil {
		return s, err
	}
	if s.header == headerZero {
		// Evidence only: rule 2 asks whether anything proves a sync.
		return s, evidence(fsys, &s, sf)
	}
	if s.header != headerOK {
		return s, nil
	}
	if s.ck, err = readCheckpoint(fsys, &s, sf, last); err != nil {
		return s, err
	}
	s.start = format.SegmentHeaderSize
	if s.ck.state == indexValid && !o.Full {
		s.start, s.trusted = s.ck.end, s.ck.count
	}
	seed := format.SegmentSeed(s.id)
	err = sf.read(func(data []byte) {
		if s.ck.state == indexValid && last && s.ck.flags&format.IndexTruncating != 0 {
			// TruncateBack had durably decided the end.
			s.truncating = true
			s.scan = ScanResult{End: s.ck.end, Next: s.seq + s.ck.count, Stop: StopZero, StopAt: s.ck.end}
		} else {
			if rest := data[s.start:]; len(rest) > 1<<20 && !isZeroPage(rest) {
				_ = platform.PrefaultRead(rest) // one call instead of a fault per page
			}
			s.scan = Scan(data, seed, s.start, s.seq+s.trusted, format.MaxRecordLength, o.Offsets)
			s.closed = s.ck.state == indexValid && last && !o.Full && s.ck.flags&format.IndexClosed != 0 &&
				s.scan.Stop == StopZero && s.scan.End == s.ck.end
		}
		s.tailEnd = s.scan.End
		if strict || (last && !s.closed) || !chainContinues(&s, next, last) {
			s.tailEnd = lastNonZero(data, s.scan.End)
		}
		if !s.truncating && !continues(&s, next, last, strict) {
			s.proofOff, s.afterValid = FindProof(data, seed, searchFrom(s.scan), s.scan.Next, format.MaxRecordLength)
		}
	})
	return s, err
}

// searchFrom is where the search for proof after a stop starts: after the
// frame that stopped the scan, or at an unfinished batch's first frame (its
// own frames count as dropped).
func searchFrom(r ScanResult) int64 {
	if r.Dropped > 0 {
		return r.End
	}
	return r.StopAt + format.FrameAlign
}

// analyseEvidence gathers what a segment after the end can prove.
func analyseEvidence(fsys fileSystem, sn segName) (s segFacts, err error) {
	s = segFacts{path: sn.path, indexPath: indexPath(sn.path), seq: sn.seq, proofOff: -1, hintOff: -1}
	sf, err := openSegmentFile(fsys, sn.path)
	if err != nil {
		return s, err
	}
	defer func() {
		if cerr := sf.close(); err == nil {
			err = cerr
		}
	}()
	s.size = sf.size
	if err := sf.read(func(data []byte) { readHeader(&s, data) }); err != nil {
		return s, err
	}
	if s.header == headerShort {
		return s, nil
	}
	return s, evidence(fsys, &s, sf)
}

// evidence reads the checkpoint and finds the highest durable-seq hint and
// the valid run of records. A segment whose header is unreadable is checked
// with the segment ID its index file records.
func evidence(fsys fileSystem, s *segFacts, sf *segmentFile) error {
	var err error
	if s.ck, err = readCheckpoint(fsys, s, sf, false); err != nil {
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
			s.chain = Scan(data, seed, format.SegmentHeaderSize, s.seq, format.MaxRecordLength, false).Next - s.seq
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

func readHeader(s *segFacts, data []byte) {
	if data == nil {
		s.header = headerShort
		s.headerReason = fmt.Sprintf("segment is %d bytes, shorter than its %d-byte header", s.size, format.SegmentHeaderSize)
		return
	}
	h, err := format.DecodeSegmentHeader(data)
	switch {
	case errors.Is(err, format.ErrZeroHeader):
		s.header, s.headerReason = headerZero, "segment header: "+err.Error()
	case err != nil:
		s.header, s.headerReason = headerBad, err.Error()
	case h.FirstSeq != s.seq:
		s.header = headerBad
		s.headerReason = fmt.Sprintf("header says first seq %d, file name says %d", h.FirstSeq, s.seq)
	default:
		s.header, s.id = headerOK, h.ID
	}
}

// readCheckpoint reads the segment's index header and accepts its
// checkpoint if it matches the segment (with an unreadable segment header:
// if it matches the file name). For the last segment, where appends
// continue, the frame of the last checkpointed record is also checked —
// unless the checkpoint says the log was closed cleanly (written by Close
// after its final sync), so that a clean reopen reads no record frame.
func readCheckpoint(fsys fileSystem, s *segFacts, sf *segmentFile, last bool) (ckptFacts, error) {
	invalid := func(why string) (ckptFacts, error) { return ckptFacts{state: indexInvalid, reason: why}, nil }
	f, err := fsys.Open(s.indexPath)
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
