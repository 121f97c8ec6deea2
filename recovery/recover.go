// Package recovery finds where a WAL directory's log really ends and brings
// the directory to that state. mmapwal.Open runs it on every open; tools use
// it on a directory no WAL has open for writing: Recover (with
// Options.ReadOnly to only report what it would do) and Repair (to get a log
// with real damage open again, keeping a copy of what it cuts).
//
// Recovery runs in three steps. First it reads every fact the rules below
// need, per segment, and changes nothing; any error while looking (a file
// that cannot be opened, read or mapped, a fault on a mapping) aborts it,
// and with it Recover, Repair and mmapwal.Open, with the error naming the
// file: a failure to look is never taken for "no data here" or "no proof".
// Then it plans, from those facts alone, what the rules require. Only the
// last step writes, in this order: copy aside and sync the copy, sync the
// directory (Repair only), zero the torn tail and sync it, delete or move
// files aside, newest first, sync the directory. A crash at any point leaves
// a state these same rules recover. Recover with Options.ReadOnly returns
// the plan as its Report and writes nothing.
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
//     segments are removed, unless rule 4 finds proof of a sync. Any other
//     bad header is corruption, and so is a header of another log (a log ID
//     other than Options.LogID, or than the first segment's): that one is
//     found by the analysis, before any other rule is applied.
//  3. A valid index checkpoint (count, end offset) is trusted: those records
//     were synced before it was written. Frames after it are scanned; at the
//     first frame that fails its checksum, size bound, seq continuity or batch
//     order, the segment's valid data ends. A frame's size is bounded by the
//     format (format.MaxRecordLength) and its segment, never by an option of
//     the reader. An unfinished batch is dropped whole. An all-zero header
//     is the end of the data. A checkpoint marked "truncating" (an
//     interrupted TruncateBack) is the end, whatever follows. The last
//     segment, unless its checkpoint says it was closed cleanly, must hold
//     only zeros after the end: anything else is handled by rules 4 and 5, so
//     no stale frame can ever meet new appends.
//  4. Where valid data ends before the log should go on (inside the last
//     segment, inside an earlier one, or before the next segment's first
//     seq: a missing segment), the rest of the log is searched for proof
//     that the lost record had been synced: a valid later frame whose
//     durable-seq hint covers it, or a valid checkpoint of a later segment
//     that covers records or marks a clean close (checkpoints are written
//     in seq order, each after every earlier segment was synced). With
//     proof, this is corruption: ErrCorrupt naming file, offset and seq (or
//     the missing seq range), and nothing changes.
//  5. Without proof it is a torn tail: the bytes after the end are zeroed
//     and synced, later segments (holding only unsynced records) are removed,
//     and the report says what was dropped.
//  6. Segments wholly before the logical first seq in wal.meta (an
//     interrupted TruncateFront) are removed.
package recovery

import (
	"bytes"
	"log/slog"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/internal/recoveryhook"
	"github.com/mmapwal/wal/internal/silent"
)

// Options tune recovery. The zero value is usable.
type Options struct {
	// A frame's length is bounded by the format (format.MaxRecordLength)
	// and by its segment, never by a writer's configured limit: records
	// already on disk stay valid when that limit is lowered.

	Logger   *slog.Logger // nil: silent
	Full     bool         // ignore index checkpoints: scan and verify every record
	ReadOnly bool         // only analyse and plan; change nothing on disk
	// LogID is the identity of the log (mmapwal keeps it in wal.id; see
	// format.SegmentHeader.LogID). When non-zero, a segment whose header
	// carries a different non-zero log ID is a file of another log: Recover
	// and Repair fail with ErrCorrupt naming it, and nothing changes. When
	// zero, the first segment (in seq order) with a non-zero log ID defines
	// it, and every other segment that carries one must match. A log ID of
	// zero in a header (a segment written before log identities) is
	// accepted either way. The check is part of the analysis: a foreign
	// file is refused before recovery could judge it a torn tail.
	LogID uint64

	fs      fileSystem // nil: the OS; tests inject failures here
	offsets bool       // fill Segment.offsets for scanned records (mmapwal, through internal/recoveryhook)
}

func init() {
	recoveryhook.Install(
		func(o *Options) { o.offsets = true },
		func(s *Segment) []int64 { return s.offsets })
}

// Segment is one segment as recovered.
type Segment struct {
	Path      string // the segment file
	IndexPath string // its index file (which may be missing or invalid: see IndexOK)
	FirstSeq  uint64 // seq of its first record (from its name and header)
	ID        uint64 // segment ID from its header (format.SegmentHeader)
	Size      int64  // file size
	Count     uint64 // complete records
	End       int64  // offset after the last complete record
	// Trusted records were covered by a valid index checkpoint; their index
	// entries are in the index file. Records Trusted..Count-1 were found by
	// scanning the segment.
	Trusted    uint64
	TrustedEnd int64 // offset just after record Trusted-1 (the header's end if none)
	IndexOK    bool  // the index file exists and its header and checkpoint are valid
	// Closed: the segment was last at a clean Close (its checkpoint says so
	// and nothing follows it). The next writer must clear that durably
	// before appending (see format.IndexClosed).
	Closed       bool
	ScannedBytes int64

	offsets []int64 // offsets of records Trusted..Count-1 (only for mmapwal)
}

// Report is what recovery found and did. With Options.ReadOnly it is the
// plan: TempRemoved, FilesRemoved, BytesZeroed and the Torn fields say what
// Recover would remove, zero and cut, and nothing was.
type Report struct {
	Dir      string    // the directory recovered
	Segments []Segment // the log's segments after recovery, in seq order
	// MetaFirst is the logical first seq from wal.meta (0 if none).
	MetaFirst uint64
	// NextSeq is the seq the next append gets (0 if the directory holds no
	// segments and no meta: the caller's default applies).
	NextSeq uint64
	// LogID is the log's identity as checked: Options.LogID when it was
	// set, else the log ID the segments carry (0 if none carries one).
	LogID uint64

	TempRemoved    []string // temporary files removed (rule 1)
	FilesRemoved   []string // segments and indexes removed (torn tail, truncated front)
	TornFile       string   // segment whose tail was cut ("" if none)
	TornOffset     int64    // offset in TornFile where the log now ends
	TornSeq        uint64   // first seq no longer in the log (valid when TornFile is set)
	BytesZeroed    int64    // bytes zeroed after TornOffset
	RecordsDropped int      // valid frames discarded after the torn point
	IndexesInvalid int      // index files that were missing or failed their checks
	ScannedBytes   int64    // segment bytes whose frames were verified (not covered by a checkpoint)
	// Manifest: the segments before the last were taken from the
	// clean-close manifest (wal.clean) without reading them; see
	// format.CleanName.
	Manifest bool
}

// Recover brings dir to the state of its valid log (see the package rules)
// and reports it. With Options.ReadOnly it only reports what it would do.
// An error wrapping format.ErrCorrupt (a *format.CorruptError) means damage
// that cannot be a torn tail; any other error means recovery could not look
// at a file. In both cases nothing was changed.
//
// Recover takes no lock: without Options.ReadOnly it must not run while a
// WAL has dir open (mmapwal.Open calls it holding the directory lock; tools
// should use Repair, which takes it, or open the log with mmapwal).
func Recover(dir string, opts *Options) (*Report, error) {
	o := opts.withDefaults()
	facts, err := analyse(o.fs, dir, o, false)
	if err != nil {
		return nil, err
	}
	p := planRecover(facts, o)
	if p.corrupt != nil {
		return nil, p.corrupt
	}
	rep := &Report{Dir: dir, Segments: p.segs, MetaFirst: facts.metaFirst, NextSeq: p.nextSeq, LogID: facts.logID,
		TempRemoved: p.temps, FilesRemoved: p.remove, RecordsDropped: p.dropped,
		IndexesInvalid: p.invalid, ScannedBytes: p.scanned, Manifest: facts.manifest}
	if c := p.cut; c != nil {
		rep.TornFile, rep.TornOffset, rep.TornSeq = c.file, c.off, c.seq
		rep.BytesZeroed = c.zeroTo - c.off
	}
	if o.ReadOnly {
		return rep, nil
	}
	dropManifest(o.fs, dir, facts, o.Logger)
	if err := applyRecover(o.fs, dir, p, o.Logger); err != nil {
		return nil, err
	}
	return rep, nil
}

// isZeroPage reports whether the first bytes of b (a frame header's worth)
// are zero: then the scan ends at once and prefaulting would only map zeros.
func isZeroPage(b []byte) bool {
	return bytes.Equal(b[:format.FrameHeaderSize], zeroChunk[:format.FrameHeaderSize])
}

func indexPath(segPath string) string {
	return segPath[:len(segPath)-len(format.SegmentExt)] + format.IndexExt
}

// withDefaults returns a copy of o (nil: the zero value) with defaults
// filled in: Recover and Repair share it.
func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.Logger == nil {
		r.Logger = silent.Logger
	}
	if r.fs == nil {
		r.fs = osFS{}
	}
	return r
}
