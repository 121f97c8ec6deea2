package mmapwal

import "github.com/mmapwal/wal/format"

// Sentinel errors; test with errors.Is.
var (
	ErrNotFound       = format.ErrNotFound       // seq outside [FirstSeq, LastSeq]
	ErrClosed         = format.ErrClosed         // the WAL (or Reader) is closed
	ErrCorrupt        = format.ErrCorrupt        // damaged data; see *CorruptError
	ErrTooLarge       = format.ErrTooLarge       // record above MaxRecordSize
	ErrLocked         = format.ErrLocked         // another WAL has the directory open
	ErrInvalidOptions = format.ErrInvalidOptions // an Options field is out of range
	// ErrTruncated: a TruncateBack removed or replaced records a Reader had
	// already returned (or cut the log below its position); resynchronise.
	ErrTruncated = format.ErrTruncated
	// ErrReadOnly: a write method (Append, AppendBatch, TruncateFront,
	// TruncateBack, Sync) was called on a WAL opened with Options.ReadOnly.
	ErrReadOnly = format.ErrReadOnly
)

// CorruptError names the file, offset and seq of damaged data. Reach it with
// errors.As; errors.Is(err, ErrCorrupt) also holds.
type CorruptError = format.CorruptError
