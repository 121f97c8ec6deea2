package mmapwal

import (
	"sync/atomic"
	"time"
)

// Stats is a snapshot of the WAL's counters.
type Stats struct {
	FirstSeq     uint64 // as FirstSeq()
	LastSeq      uint64 // as LastSeq()
	SyncedSeq    uint64 // last seq known durable
	Segments     int    // live segment files
	DiskBytes    int64  // size of the live segment files (preallocated)
	Appended     uint64 // records appended since Open
	Batches      uint64 // AppendBatch calls of more than one record since Open
	BytesWritten uint64 // frame bytes written since Open
	Syncs        uint64 // segment data syncs (msync/fdatasync calls) since Open
	Rotations    uint64 // segments activated since Open
	IndexRepairs uint64 // indexes rebuilt after a failed check at read time
	Truncations  uint64 // TruncateFront and TruncateBack calls that dropped records since Open
	Failed       error  // the sticky write error, if any
	Recovery     RecoveryStats

	// SyncSeconds: latency of each segment data sync (msync or
	// fdatasync, with the directory sync a new segment's first one waits
	// for), in seconds.
	SyncSeconds Histogram
	// RecordsPerSync: records made durable by one flush round (one group
	// commit); shows how well concurrent appenders share a sync.
	RecordsPerSync Histogram
	// BatchRecords: records per Append (1) or AppendBatch call.
	BatchRecords Histogram
}

// Histogram is a snapshot of fixed buckets. Counts[i] counts observations
// <= Bounds[i] (and above the previous bound); Counts[len(Bounds)] counts
// those above the last bound. Sum is the sum of every observation. The
// buckets never change, so snapshots can be subtracted.
type Histogram struct {
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    float64
}

// Bucket bounds: 16 each, fixed so that recording is a search over a
// constant array and an atomic add, with no allocation or lock.
var (
	syncBoundsNs = [16]uint64{
		10e3, 25e3, 50e3, 100e3, 250e3, 500e3, // 10 µs .. 500 µs
		1e6, 2.5e6, 5e6, 10e6, 25e6, 50e6, 100e6, 250e6, 500e6, 1e9, // 1 ms .. 1 s
	}
	countBounds = [16]uint64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 65536}
)

// bucket is the index of the bucket of bounds that v falls in (the last,
// len(bounds), for values above every bound).
func bucket(bounds *[16]uint64, v uint64) int {
	i := 0
	for i < len(bounds) && v > bounds[i] {
		i++
	}
	return i
}

// histogram builds the exported form of a fixed-bucket histogram, dividing
// bounds and sum by unit; count(i) is bucket i's count.
func histogram(bounds *[16]uint64, unit float64, count func(i int) uint64, sum uint64) Histogram {
	out := Histogram{Bounds: make([]float64, len(bounds)), Counts: make([]uint64, len(bounds)+1)}
	for i, b := range bounds {
		out.Bounds[i] = float64(b) / unit
	}
	for i := range out.Counts {
		out.Counts[i] = count(i)
		out.Count += out.Counts[i]
	}
	out.Sum = float64(sum) / unit
	return out
}

// hist is a fixed-bucket histogram updated with atomics only.
type hist struct {
	counts [17]atomic.Uint64
	sum    atomic.Uint64
}

func (h *hist) observe(bounds *[16]uint64, v uint64) {
	h.counts[bucket(bounds, v)].Add(1)
	h.sum.Add(v)
}

func (h *hist) snapshot(bounds *[16]uint64, unit float64) Histogram {
	return histogram(bounds, unit, func(i int) uint64 { return h.counts[i].Load() }, h.sum.Load())
}

// plainHist is a hist kept under a lock the caller holds (the batch sizes,
// under the append lock): plain increments instead of two atomic adds on
// every append.
type plainHist struct {
	counts [17]uint64
	sum    uint64
}

func (h *plainHist) observe(bounds *[16]uint64, v uint64) {
	h.counts[bucket(bounds, v)]++
	h.sum += v
}

func (h *plainHist) snapshot(bounds *[16]uint64) Histogram {
	return histogram(bounds, 1, func(i int) uint64 { return h.counts[i] }, h.sum)
}

func (c *counters) observeSync(d time.Duration) { c.syncLat.observe(&syncBoundsNs, uint64(max(d, 0))) }
func (c *counters) observeRound(n uint64)       { c.perSync.observe(&countBounds, n) }

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
	// Manifest: Open took the segments before the last from the clean-close
	// manifest (wal.clean) written by the previous Close, without reading
	// them (see format.CleanName).
	Manifest bool
}

type counters struct {
	syncs, rotations, indexRepairs, truncations atomic.Uint64
	syncLat, perSync                            hist
}

// Stats returns the current counters.
func (w *WAL) Stats() Stats {
	w.mu.Lock()
	appended, batches, bytes := w.appended, w.batches, w.bytes
	batchRecords := w.batchHist.snapshot(&countBounds)
	w.mu.Unlock()
	segments, disk := len(w.segs.Load().segs), int64(0)
	for _, s := range w.segs.Load().segs {
		disk += s.size
	}
	if w.ro != nil {
		segments, disk = len(w.ro.view.Load().segs), 0
		for _, s := range w.ro.view.Load().segs {
			disk += s.size
		}
	}
	return Stats{
		FirstSeq:     w.FirstSeq(),
		LastSeq:      w.LastSeq(),
		SyncedSeq:    w.synced.Load(),
		Segments:     segments,
		DiskBytes:    disk,
		Appended:     appended,
		Batches:      batches,
		BytesWritten: bytes,
		Syncs:        w.st.syncs.Load(),
		Rotations:    w.st.rotations.Load(),
		IndexRepairs: w.st.indexRepairs.Load(),
		Truncations:  w.st.truncations.Load(),
		Failed:       w.failed(),
		Recovery:     w.rec,

		SyncSeconds:    w.st.syncLat.snapshot(&syncBoundsNs, 1e9),
		RecordsPerSync: w.st.perSync.snapshot(&countBounds, 1),
		BatchRecords:   batchRecords,
	}
}
