package mmapwal

import "sync/atomic"

// Stats is a snapshot of the WAL's counters.
type Stats struct {
	FirstSeq     uint64 // as FirstSeq()
	LastSeq      uint64 // as LastSeq()
	SyncedSeq    uint64 // last seq known durable
	Segments     int    // live segment files
	Appended     uint64 // records appended since Open
	Batches      uint64 // AppendBatch calls of more than one record since Open
	BytesWritten uint64 // frame bytes written since Open
	Syncs        uint64 // segment data syncs (msync/fdatasync calls) since Open
	Rotations    uint64 // segments activated since Open
	IndexRepairs uint64 // indexes rebuilt after a failed check at read time
	Failed       error  // the sticky write error, if any
	Recovery     RecoveryStats
}

// RecoveryStats is what Open's recovery found and did.
type RecoveryStats struct {
	BytesTruncated   int64  // torn-tail bytes zeroed
	RecordsDropped   int    // valid but unsynced frames discarded after a torn point
	TornFile         string // segment whose tail was cut ("" if none)
	TornOffset       int64
	IndexesRebuilt   int   // index files missing or invalid, rebuilt from segments
	TempFilesRemoved int   // leftovers of an interrupted rotation
	FilesRemoved     int   // segment and index files removed (torn tail, interrupted truncation)
	ScannedBytes     int64 // segment bytes scanned (0 after a clean close)
}

type counters struct {
	syncs, rotations, indexRepairs atomic.Uint64
}

// Stats returns the current counters.
func (w *WAL) Stats() Stats {
	w.mu.Lock()
	appended, batches, bytes := w.appended, w.batches, w.bytes
	w.mu.Unlock()
	segments := len(w.segs.Load().segs)
	if w.ro != nil {
		segments = len(w.ro.view.Load().segs)
	}
	return Stats{
		FirstSeq:     w.FirstSeq(),
		LastSeq:      w.LastSeq(),
		SyncedSeq:    w.synced.Load(),
		Segments:     segments,
		Appended:     appended,
		Batches:      batches,
		BytesWritten: bytes,
		Syncs:        w.st.syncs.Load(),
		Rotations:    w.st.rotations.Load(),
		IndexRepairs: w.st.indexRepairs.Load(),
		Failed:       w.failed(),
		Recovery:     w.rec,
	}
}
