package mmapwal

import (
	"cmp"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/mmapwal/wal/internal/silent"
)

// SyncPolicy says when appended records are made durable.
type SyncPolicy int

const (
	// SyncAlways: Append returns only after its record is durable
	// (msync/fdatasync); concurrent appenders share one flush (group commit).
	SyncAlways SyncPolicy = iota
	// SyncPeriodic: a background flush every SyncInterval; Append returns
	// once the record is in the mapping.
	SyncPeriodic
	// SyncNone: no background flush; records are made durable only by Sync,
	// Close and TruncateBack (which syncs the records it keeps). Append
	// returns once the record is in the mapping.
	SyncNone
)

// String returns the policy's Go name ("SyncAlways", ...).
func (p SyncPolicy) String() string {
	switch p {
	case SyncAlways:
		return "SyncAlways"
	case SyncPeriodic:
		return "SyncPeriodic"
	case SyncNone:
		return "SyncNone"
	}
	return fmt.Sprintf("SyncPolicy(%d)", int(p))
}

// Defaults and limits.
const (
	DefaultSegmentSize   = 64 << 20
	MinSegmentSize       = 64 << 10
	MaxSegmentSize       = 16 << 30 // index entries hold offset/8 in 32 bits
	DefaultMaxRecordSize = 16 << 20
	MaxMaxRecordSize     = 1 << 30
	DefaultSyncInterval  = 100 * time.Millisecond
	MaxReplayReadAhead   = 8 // largest Options.ReplayReadAhead
)

// Options configure Open. A nil *Options means all defaults; zero fields take
// their defaults.
type Options struct {
	SegmentSize   int64         // preallocated size of each segment file; default 64 MiB, at least 64 KiB
	MaxRecordSize int           // largest payload accepted; default 16 MiB, at most 1 GiB
	Sync          SyncPolicy    // default SyncAlways (the zero value)
	SyncInterval  time.Duration // for SyncPeriodic; default 100 ms, at least 1 ms (MinSyncInterval)
	FirstSeq      uint64        // seq of the first record of a new, empty log; default 1
	MaxSegments   int           // 0 = keep all; else the oldest sealed segments beyond this count are deleted (by Open, and after rotations)
	Logger        *slog.Logger  // nil = silent
	FileMode      os.FileMode   // permissions of files the log creates (before the umask); default 0600
	DirMode       os.FileMode   // permissions of the directory if Open creates it (before the umask); default 0700
	// MaxMappedSegments bounds the sealed segments kept mapped (2 mappings
	// each, and on Windows 2 handles); others are mapped again when read.
	// 0 = DefaultMaxMappedSegments.
	MaxMappedSegments int
	// ReadOnly opens the log for reading only, as inspection tools do: Open
	// takes no lock, never creates, modifies or deletes a file (it does not
	// create dir, and does not repair a torn tail: Stats().Recovery reports
	// what recovery would cut), and works while another process has the log
	// open for writing, whose appends, rotations and truncations it follows
	// (see "Read-only access" in the package README). Write methods return
	// ErrReadOnly. SegmentSize, Sync, SyncInterval, FirstSeq, MaxSegments,
	// FileMode and DirMode are ignored.
	ReadOnly bool
	// ReplayReadAhead is how many goroutines a Replay of 2,048 records or
	// more starts to copy and check the records ahead of the one its
	// callback is given, on other cores: 0 = one per spare core
	// (GOMAXPROCS-1), at most 3; negative = none (Replay reads on the
	// caller's goroutine alone); at most MaxReplayReadAhead. They run only
	// during the call, which holds at most 4 runs per goroutine (the
	// caller's included) of at most 1 MiB each (a larger record is not read
	// ahead). Ignored by ReadOnly logs.
	ReplayReadAhead int

	// hooks replace the durability points in tests (crash simulation).
	hooks durability
	// prefault sizes the prefault loops; zero fields take the defaults
	// (tests use windows smaller than a segment).
	prefault prefaultWindow
	// mappedBatches keeps batches copied into the mapping where they would
	// be written with pwrite (see batchPwrite): set by the test that
	// compares the two.
	mappedBatches bool
	// batchPwrite is resolved at Open: under SyncAlways, on a platform
	// whose page cache serves the mapping and pwrite alike, a batch is
	// written with one pwrite on the active segment's descriptor, because
	// bytes written that way take less to make durable than bytes written
	// through a mapping. Measured (pwrite_bench_test.go, interleaved, 6
	// repetitions): batches of 1000 × 100 B p50 -41 to -48%, of 64 × 1 KiB
	// -1 to -7%; single appends and 64 concurrent appenders unchanged (they
	// still copy into the mapping: pwriting them too cost 64 appenders
	// 20-30% of their throughput).
	batchPwrite bool
	// replayStride is the records per read-ahead run (0:
	// readAheadRecords); tests set small runs on small logs.
	replayStride int
	// crashAt, if set, is called at named points of housekeeping, so that a
	// test's child process can kill itself at exactly that point.
	crashAt func(hookPoint)
}

// hookPoint names a point at which Options.crashAt is called.
type hookPoint int

const (
	// hookReapUnlinked: the reaper has just unlinked one file of a dropped
	// segment (wal.meta already covers it).
	hookReapUnlinked hookPoint = iota + 1
	// hookRetentionMeta: retention has made its new first seq durable and
	// not yet removed anything.
	hookRetentionMeta
	// hookReapStart: the reaper is about to handle a job.
	hookReapStart
)

func (o *Options) testHook(p hookPoint) {
	if o.crashAt != nil {
		o.crashAt(p)
	}
}

// MinSyncInterval is the shortest SyncInterval accepted: a shorter period
// spends a core on timer wake-ups while the log is idle.
const MinSyncInterval = time.Millisecond

// resolve validates o and fills defaults.
func (o *Options) resolve() (Options, error) {
	var r Options
	if o != nil {
		r = *o
	}
	bad := func(format string, args ...any) (Options, error) {
		return Options{}, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOptions}, args...)...)
	}
	switch {
	case r.SegmentSize == 0:
		r.SegmentSize = DefaultSegmentSize
	case r.SegmentSize < MinSegmentSize || r.SegmentSize > MaxSegmentSize:
		return bad("SegmentSize %d outside [%d, %d]", r.SegmentSize, MinSegmentSize, int64(MaxSegmentSize))
	}
	switch {
	case r.MaxRecordSize == 0:
		r.MaxRecordSize = DefaultMaxRecordSize
	case r.MaxRecordSize < 0 || r.MaxRecordSize > MaxMaxRecordSize:
		return bad("MaxRecordSize %d outside [1, %d]", r.MaxRecordSize, MaxMaxRecordSize)
	}
	if r.Sync < SyncAlways || r.Sync > SyncNone {
		return bad("unknown Sync policy %d", int(r.Sync))
	}
	switch {
	case r.SyncInterval == 0:
		r.SyncInterval = DefaultSyncInterval
	case r.SyncInterval < MinSyncInterval:
		return bad("SyncInterval %v below %v", r.SyncInterval, MinSyncInterval)
	}
	if r.FirstSeq == 0 {
		r.FirstSeq = 1
	}
	if r.FirstSeq > 1<<62 {
		return bad("FirstSeq %d above 2^62", r.FirstSeq)
	}
	if r.MaxSegments < 0 {
		return bad("negative MaxSegments %d", r.MaxSegments)
	}
	switch {
	case r.MaxMappedSegments == 0:
		r.MaxMappedSegments = DefaultMaxMappedSegments
	case r.MaxMappedSegments < 0:
		return bad("negative MaxMappedSegments %d", r.MaxMappedSegments)
	}
	if r.ReplayReadAhead > MaxReplayReadAhead {
		return bad("ReplayReadAhead %d above %d", r.ReplayReadAhead, MaxReplayReadAhead)
	}
	if r.Logger == nil {
		r.Logger = silent.Logger
	}
	if r.FileMode&^os.ModePerm != 0 || r.DirMode&^os.ModePerm != 0 {
		return bad("FileMode %v / DirMode %v: only permission bits", r.FileMode, r.DirMode)
	}
	r.FileMode, r.DirMode = cmp.Or(r.FileMode, 0o600), cmp.Or(r.DirMode, 0o700)
	if r.hooks == nil {
		r.hooks = osDurability{}
	}
	r.batchPwrite = pwriteCapable && r.Sync == SyncAlways && !r.mappedBatches
	r.prefault.ahead = cmp.Or(r.prefault.ahead, defaultPrefaultAhead)
	r.prefault.chunk = cmp.Or(r.prefault.chunk, defaultPrefaultChunk)
	return r, nil
}
