package mmapwal

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"time"

	"github.com/mmapwal/wal/format"
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
	// SyncNone: flush only on Sync(), Close() and when a segment is sealed.
	SyncNone
)

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
)

// Options configure Open. A nil *Options means all defaults; zero fields take
// their defaults.
type Options struct {
	SegmentSize   int64         // preallocated size of each segment file; default 64 MiB, at least 64 KiB
	MaxRecordSize int           // largest payload accepted; default 16 MiB, at most 1 GiB
	Sync          SyncPolicy    // default SyncAlways (the zero value)
	SyncInterval  time.Duration // for SyncPeriodic; default 100 ms
	FirstSeq      uint64        // seq of the first record of a new, empty log; default 1
	MaxSegments   int           // 0 = keep all; else the oldest sealed segments beyond this count are deleted
	Logger        *slog.Logger  // nil = silent
	// MaxMappedSegments bounds the sealed segments kept mapped (2 mappings
	// each, and on Windows 2 handles); others are mapped again when read.
	// 0 = DefaultMaxMappedSegments.
	MaxMappedSegments int

	// hooks replace the durability points in tests (crash simulation).
	hooks durability
}

// silentLogger drops everything: no level is enabled, so nothing is formatted.
var silentLogger = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.Level(math.MaxInt32)}))

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
	case r.SyncInterval < 0:
		return bad("negative SyncInterval %v", r.SyncInterval)
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
	if r.Logger == nil {
		r.Logger = silentLogger
	}
	if r.hooks == nil {
		r.hooks = osDurability{}
	}
	_ = format.Version
	return r, nil
}
