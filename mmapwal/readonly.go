package mmapwal

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/index"
	"github.com/mmapwal/wal/recovery"
)

// Read-only access (Options.ReadOnly): a view of a log that another process
// may be writing, built from the files alone. Nothing here writes, creates,
// deletes or locks a file; every mapping is PROT_READ.
//
// The writer shares nothing with us but the files, so the view can be stale
// at any moment. It is refreshed when a read asks beyond its end, when a
// follower polls (Wait), and when a check fails; and no record is returned
// unless, after it was copied and its checksum verified, all of these held:
//
//   - the frame header at its offset is unchanged (seq and checksum): the
//     writer's TruncateBack zeroes the frames it cut before it returns, and
//     a record appended later at that offset carries another checksum;
//   - the segment's index does not say "truncating" below that offset;
//   - the segment file is still the one at its path (a TruncateBack across
//     segments deletes the later ones first; a retention or TruncateFront
//     deletes older ones: our mapping would outlive the file);
//   - wal.meta is unchanged, or its new logical first seq is at or below
//     the record's (TruncateFront writes wal.meta before it returns).
//
// A check that fails makes the read refresh the whole view and try again.
// So a record the writer cut before the read began is never returned; one
// cut while the read runs may be, as with a Read racing TruncateBack in the
// writer's own process. A Reader also checks, after each copy, that the
// record it returned last (its anchor) still holds: records are cut only as
// a suffix, so an intact anchor means nothing it returned was cut, and a
// changed one ends the Reader with ErrTruncated.
//
// The view ends where its last segment's valid frames end (each frame
// checked: checksum, seq continuity, batches complete), never beyond a
// "truncating" checkpoint; the writer's next segment is adopted once its
// name (the next seq) appears with a valid header of this log. Segments
// recovery would remove at Open (a torn tail's later segments) are never
// adopted, so a crashed log shows its valid prefix only.

// roLog is the read-only machinery of a WAL.
type roLog struct {
	w         *WAL
	dir       string
	metaPath  string
	logID     uint64
	maxMapped int

	// mu serialises refreshes and guards what they read and write.
	// Lock order: mu, then a roSeg's mu, then mapMu.
	mu        sync.Mutex
	metaFI    os.FileInfo // wal.meta when last read (nil: absent)
	metaSeen  bool        // metaFI is meaningful
	metaFirst uint64      // the first seq wal.meta held (0: none)
	// metaNow is metaFI for readers that check it without mu.
	metaNow atomic.Pointer[roMeta]
	dropped []roDropped // segment files Open's recovery would remove: never adopted
	view    atomic.Pointer[roView]
	closed  atomic.Bool

	mapMu  sync.Mutex
	mapped []*roSeg // mapped segments, oldest mapping first (bounded by maxMapped)
}

type roMeta struct{ fi os.FileInfo }

type roDropped struct {
	fi os.FileInfo
	id uint64 // its segment ID (0 if its header did not decode)
}

// roView is an immutable snapshot of the log as last seen.
type roView struct {
	segs  []*roSeg
	first uint64 // logical first seq
	last  uint64 // last complete record; first-1 when the log is empty
	// In the last segment: the offset after its last complete record.
	tailOff int64
	// The frame of record last (s nil if it is not in the last segment).
	lastFrame roFrame
}

func (v *roView) find(seq uint64) *roSeg {
	i, _ := slices.BinarySearchFunc(v.segs, seq, func(s *roSeg, seq uint64) int {
		if s.firstSeq <= seq {
			return -1
		}
		return 1
	})
	if i == 0 {
		return nil
	}
	return v.segs[i-1]
}

// roSeg is one segment file as the read-only view knows it.
type roSeg struct {
	path     string
	firstSeq uint64
	id       uint64
	seed     uint32
	size     int64
	fi       os.FileInfo // the file at adoption: identity for "still linked"

	// RLock: data and idx are in use. Lock: mapping, unmapping, offs.
	mu   sync.RWMutex
	data []byte       // PROT_READ mapping; nil when not mapped
	idx  *index.Index // read-only; nil when missing, invalid or not mapped
	offs []int64      // offsets of records firstSeq.. found by scanning
	gone bool         // retired: never mapped again
}

// roFrame identifies the frame a record was read from.
type roFrame struct {
	s   *roSeg
	off int64
	seq uint64
	crc uint32
}

var errROChanged = errors.New("mmapwal: read-only view changed")

// openReadOnly opens dir for reading only (see Options.ReadOnly).
func openReadOnly(dir string, o Options) (*WAL, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("mmapwal: open %s read-only: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("mmapwal: open %s read-only: not a directory", dir)
	}
	w := &WAL{dir: dir, opts: o, log: o.Logger, done: make(chan struct{}), pending: map[uint64]uint64{}}
	w.pubCond.L = &w.pubMu
	w.segs.Store(&segList{})
	ro := &roLog{w: w, dir: dir, metaPath: filepath.Join(dir, format.MetaName), maxMapped: max(o.MaxMappedSegments, 2)}
	w.ro = ro
	logID, _, err := loadIdentity(dir)
	if err != nil {
		return nil, err
	}
	// Recovery's plan: what it would cut (reported, not applied), and which
	// files it would remove. A writer changing files as it looks can make it
	// fail to open one: look again.
	var rep *recovery.Report
	for attempt := 0; ; attempt++ {
		rep, err = recovery.Recover(dir, &recovery.Options{Logger: w.log, ReadOnly: true, LogID: logID})
		if err == nil || attempt == 4 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		return nil, err
	}
	if logID == 0 {
		logID = rep.LogID
	}
	ro.logID = logID
	w.rec = RecoveryStats{
		BytesTruncated: rep.BytesZeroed, RecordsDropped: rep.RecordsDropped, TornFile: rep.TornFile,
		TornOffset: rep.TornOffset, TempFilesRemoved: len(rep.TempRemoved), FilesRemoved: len(rep.FilesRemoved),
		ScannedBytes: rep.ScannedBytes, IndexesRebuilt: rep.IndexesInvalid,
	}
	for _, p := range rep.FilesRemoved {
		if _, ok := format.ParseSegmentName(filepath.Base(p)); !ok {
			continue
		}
		dfi, err := os.Stat(p)
		if err != nil {
			continue // gone already: nothing to refuse
		}
		d := roDropped{fi: dfi}
		if h, _ := readSegmentHeader(p); h != nil {
			d.id = h.ID
		}
		ro.dropped = append(ro.dropped, d)
	}
	// The bounds of a log without segments until the writer adds some.
	first := cmp.Or(rep.MetaFirst, rep.NextSeq, o.FirstSeq)
	if rep.MetaFirst == 0 && len(rep.Segments) > 0 {
		// rebuildLocked drops segments wholly before the view's first seq:
		// starting from NextSeq would hide every sealed segment.
		first = rep.Segments[0].FirstSeq
	}
	ro.view.Store(&roView{first: first, last: first - 1})
	ro.mu.Lock()
	err = ro.rebuildLocked()
	ro.mu.Unlock()
	if err != nil {
		ro.close()
		return nil, err
	}
	return w, nil
}

// publishLocked installs v and the bounds generic code reads.
// REQUIRES: ro.mu held.
func (ro *roLog) publishLocked(v *roView) {
	ro.view.Store(v)
	ro.w.first.Store(v.first)
	ro.w.published.Store(v.last)
}

// close releases every mapping; later calls return ErrClosed.
func (ro *roLog) close() error {
	w := ro.w
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	w.closed, w.released = true, true
	w.mu.Unlock()
	close(w.done)
	ro.mu.Lock()
	defer ro.mu.Unlock()
	ro.closed.Store(true)
	for _, s := range ro.view.Load().segs {
		ro.retire(s)
	}
	ro.mapMu.Lock()
	left := ro.mapped
	ro.mapped = nil
	ro.mapMu.Unlock()
	for _, s := range left {
		s.mu.Lock()
		s.gone = true
		s.unmapLocked()
		s.mu.Unlock()
	}
	return nil
}
