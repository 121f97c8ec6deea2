package mmapwal

// Truncation and retention contracts (issue 8: items of sections 1, 1b, 4
// and 6). The crash tests of retention are in crash_retention_test.go.

import (
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mmapwal/wal/format"
)

var allPolicies = []SyncPolicy{SyncAlways, SyncPeriodic, SyncNone}

func TestTruncateFrontZeroDoesNothing(t *testing.T) {
	o := smallOpts(SyncAlways)
	w := mustOpen(t, t.TempDir(), o)
	require.NoError(t, w.TruncateFront(0), "empty log")
	m := newModel(1)
	m.fill(t, w, 50, 100)
	require.NoError(t, w.TruncateFront(0), "seq <= FirstSeq does nothing")
	m.check(t, w)
	w = reopen(t, w, o)
	m.check(t, w)
	require.NoError(t, w.Close())
	require.ErrorIs(t, w.TruncateFront(0), ErrClosed)
}

func TestTruncateFrontNearSeqLimit(t *testing.T) {
	const first = 1<<62 - 5
	o := &Options{SegmentSize: MinSegmentSize, FirstSeq: first}
	w := mustOpen(t, t.TempDir(), o)
	m := newModel(first)
	m.fill(t, w, 400, 300) // several segments, seqs beyond 2^62
	require.Greater(t, w.LastSeq(), uint64(1<<62+100))
	to := w.LastSeq() - 20 // inside the log, above 2^62
	require.NoError(t, w.TruncateFront(to))
	m.truncateFront(to)
	m.check(t, w)
	// Emptying it up to its own next seq is allowed too.
	next := w.LastSeq() + 1
	require.NoError(t, w.TruncateFront(next))
	m.truncateFront(next)
	m.check(t, w)
	w = reopen(t, w, o)
	m.check(t, w)
	m.fill(t, w, 3, 10)
	m.check(t, w)
	require.NoError(t, w.Close())
}

func TestSyncIntervalBelowOneMillisecondIsRejected(t *testing.T) {
	for _, d := range []time.Duration{time.Nanosecond, time.Microsecond, 999 * time.Microsecond} {
		_, err := Open(t.TempDir(), &Options{Sync: SyncPeriodic, SyncInterval: d})
		require.ErrorIs(t, err, ErrInvalidOptions, "SyncInterval %v", d)
	}
	w := mustOpen(t, t.TempDir(), &Options{Sync: SyncPeriodic, SyncInterval: time.Millisecond})
	require.NoError(t, w.Close())
}

// syncRecorder records, per file, how far from offset 0 the segment bytes
// were synced (syncs of a segment are contiguous from its synced offset).
type syncRecorder struct {
	osDurability
	mu     sync.Mutex
	synced map[string]int64
}

func (r *syncRecorder) syncSegment(s *segment, off, n int64) error {
	if err := r.osDurability.syncSegment(s, off, n); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if off <= r.synced[s.path] {
		r.synced[s.path] = max(r.synced[s.path], off+n)
	}
	return nil
}

func (r *syncRecorder) get(path string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.synced[path]
}

// TruncateBack says every record kept is synced; under SyncNone that must
// hold for the records in earlier segments too, not only the segment of
// the cut.
func TestTruncateBackSyncsEveryKeptRecord(t *testing.T) {
	for _, p := range allPolicies {
		t.Run(p.String(), func(t *testing.T) {
			rec := &syncRecorder{synced: map[string]int64{}}
			o := smallOpts(p)
			o.SyncInterval = time.Hour // SyncPeriodic: the timer never helps
			o.hooks = rec
			w := mustOpen(t, t.TempDir(), o)
			m := newModel(1)
			m.fill(t, w, 1000, 300) // about five segments
			segs := w.segs.Load().segs
			require.GreaterOrEqual(t, len(segs), 4)
			k := segs[3].firstSeq + 5 // the cut in the fourth segment
			require.NoError(t, w.TruncateBack(k))
			m.truncateBack(k)
			for i, s := range segs[:3] {
				assert.GreaterOrEqual(t, rec.get(s.path), s.sealedEnd, "segment %d (%s) not synced to its end", i, s.path)
			}
			w.mu.Lock()
			cut := w.writeOff
			w.mu.Unlock()
			assert.GreaterOrEqual(t, rec.get(segs[3].path), cut, "segment of the cut not synced to the cut")
			m.check(t, w)
			require.NoError(t, w.Sync())
			w = reopen(t, w, smallOpts(p))
			m.check(t, w)
			require.NoError(t, w.Close())
		})
	}
}

// A wrong index entry at the truncation point (here written into the
// mapped index file, i.e. on disk) must not make TruncateBack cut at the
// wrong frame: it checks the frame and rebuilds the index.
func TestTruncateBackChecksTheFrameAtTheIndexEntry(t *testing.T) {
	for _, tc := range []struct {
		name  string
		wrong int // the entry for k+1 is set to the offset of record k+1+wrong
	}{
		{"entry points at a kept record", -1},
		{"entry points at a later record", +1},
		{"entry points into a frame", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := smallOpts(SyncAlways)
			w := mustOpen(t, t.TempDir(), o)
			m := newModel(1)
			m.fill(t, w, 40, 100)
			const k = 20
			s := w.segs.Load().find(k + 1)
			off, ok := s.idx.Get(uint64(k + 1 + tc.wrong - int(s.firstSeq)))
			require.True(t, ok)
			if tc.wrong == 0 {
				off += 8
			}
			s.idx.Set(int(k+1-s.firstSeq), off)
			require.NoError(t, s.idx.Sync())
			require.NoError(t, w.TruncateBack(k))
			m.truncateBack(k)
			m.check(t, w)
			for i := 0; i < 10; i++ {
				b := rec(m.next+1000, 150)
				seq, err := w.Append(b)
				require.NoError(t, err)
				require.Equal(t, m.next, seq)
				m.append(seq, b)
			}
			m.check(t, w)
			w = reopen(t, w, o)
			m.check(t, w)
			require.NoError(t, w.Close())
		})
	}
}

// After TruncateBack to just before a segment's first seq, that segment is
// empty and active; a record larger than a segment then needs a dedicated
// segment with the same name. A file name must never refer to two segments:
// a later TruncateFront or retention dropping the old object must not
// delete the new segment's files.
func TestLargeRecordAfterTruncateBackToSegmentStart(t *testing.T) {
	for _, p := range allPolicies {
		for _, batch := range []bool{false, true} {
			name := p.String() + "/record"
			if batch {
				name = p.String() + "/batch"
			}
			t.Run(name, func(t *testing.T) {
				o := smallOpts(p)
				w := mustOpen(t, t.TempDir(), o)
				m := newModel(1)
				m.fill(t, w, 700, 300)
				segs := w.segs.Load().segs
				require.GreaterOrEqual(t, len(segs), 3)
				start := segs[2].firstSeq
				require.NoError(t, w.TruncateBack(start-1))
				m.truncateBack(start - 1)
				big := rec(start, MinSegmentSize+5000)
				if batch {
					first, err := w.AppendBatch([][]byte{big, rec(start+1, 40000), rec(start+2, 40000)})
					require.NoError(t, err)
					require.Equal(t, start, first)
					m.append(start, big)
					m.append(start+1, rec(start+1, 40000))
					m.append(start+2, rec(start+2, 40000))
				} else {
					seq, err := w.Append(big)
					require.NoError(t, err)
					require.Equal(t, start, seq)
					m.append(seq, big)
				}
				m.fill(t, w, 5, 100)
				names := map[string]int{}
				for _, s := range w.segs.Load().segs {
					names[s.path]++
					assert.Equal(t, 1, names[s.path], "two live segments named %s", s.path)
				}
				require.NoError(t, w.TruncateFront(start))
				m.truncateFront(start)
				m.check(t, w)
				w = reopen(t, w, o)
				m.check(t, w)
				require.NoError(t, w.Close())
			})
		}
	}
}

// Retention deletes files only after the new first seq is durable in
// wal.meta, and oldest first: whatever prefix of the deletions happened,
// the directory is wal.meta plus a suffix of the old segments, which Open
// accepts (rule 6) with every record from the new first seq.
func TestRetentionMetaBeforeDeletesOldestFirst(t *testing.T) {
	dir := t.TempDir()
	o := &Options{SegmentSize: MinSegmentSize, Sync: SyncNone}
	w := mustOpen(t, dir, o)
	m := newModel(1)
	m.fill(t, w, 3000, 300)
	require.NoError(t, w.Close())

	var mu sync.Mutex
	var snaps []map[string][]byte // the directory at every unlink
	o2 := &Options{SegmentSize: MinSegmentSize, Sync: SyncNone, MaxSegments: 4}
	o2.crashAt = func(p hookPoint) {
		if p != hookReapUnlinked && p != hookRetentionMeta {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if len(snaps) < 40 {
			snaps = append(snaps, copyLogFiles(t, dir))
		}
	}
	w = mustOpen(t, dir, o2)
	m.fill(t, w, 300, 300) // rotations: retention runs in the background
	require.Eventually(t, func() bool { return w.Stats().Segments <= 4 }, 10*time.Second, time.Millisecond)
	require.NoError(t, w.Close())
	require.NotEmpty(t, snaps)
	for i, snap := range snaps {
		d := filepath.Join(t.TempDir(), "img")
		require.NoError(t, os.MkdirAll(d, 0o755))
		for name, b := range snap {
			require.NoError(t, os.WriteFile(filepath.Join(d, name), b, 0o644))
		}
		w, err := Open(d, &Options{SegmentSize: MinSegmentSize, Sync: SyncNone})
		require.NoError(t, err, "snapshot %d", i)
		first, last := w.FirstSeq(), w.LastSeq()
		require.NotZero(t, first, "snapshot %d", i)
		for s := first; s <= last; s++ {
			got, err := w.Read(s)
			require.NoError(t, err, "snapshot %d: Read(%d)", i, s)
			require.Equal(t, m.recs[s], got, "snapshot %d: Read(%d)", i, s)
		}
		require.NoError(t, w.Close())
	}
}

// copyLogFiles copies the log files of dir (the page cache: what a process
// crash keeps).
func copyLogFiles(t *testing.T, dir string) map[string][]byte {
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	out := map[string][]byte{}
	for _, e := range ents {
		if e.Name() == format.LockName || format.IsTemp(e.Name()) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // deleted meanwhile
		}
		out[e.Name()] = b
	}
	return out
}

// Close waits for the background deletions: no file of a dropped segment
// is left.
func TestCloseLeavesNoDroppedSegment(t *testing.T) {
	for _, p := range allPolicies {
		t.Run(p.String(), func(t *testing.T) {
			dir := t.TempDir()
			o := smallOpts(p)
			w := mustOpen(t, dir, o)
			m := newModel(1)
			m.fill(t, w, 2000, 300)
			to := w.LastSeq() - 10
			require.NoError(t, w.TruncateFront(to))
			m.truncateFront(to)
			kept := map[string]bool{}
			for _, s := range w.segs.Load().segs {
				kept[filepath.Base(s.path)] = true
				kept[filepath.Base(s.idx.Path())] = true
			}
			require.NoError(t, w.Close())
			ents, err := os.ReadDir(dir)
			require.NoError(t, err)
			var extra []string
			for _, e := range ents {
				n := e.Name()
				if _, ok := format.ParseSegmentName(n); ok && !kept[n] {
					extra = append(extra, n)
				}
				if _, ok := format.ParseIndexName(n); ok && !kept[n] {
					extra = append(extra, n)
				}
			}
			sort.Strings(extra)
			assert.Empty(t, extra, "files of dropped segments left after Close")
			w = mustOpen(t, dir, o)
			m.check(t, w)
			require.NoError(t, w.Close())
		})
	}
}

// A TruncateBack right after a TruncateFront, before the background delete
// of the dropped segments has started: the delete must not wait for a seq
// the TruncateBack cut (Close used to hang waiting for it).
func TestTruncateBackBeforeTheDroppedSegmentsAreDeleted_CloseReturns(t *testing.T) {
	for _, p := range allPolicies {
		t.Run(p.String(), func(t *testing.T) {
			release := make(chan struct{})
			o := smallOpts(p)
			o.crashAt = func(h hookPoint) {
				if h == hookReapStart {
					<-release
				}
			}
			w := mustOpen(t, t.TempDir(), o)
			var last uint64
			for i := uint64(1); w.Stats().Segments < 6; i++ {
				seq, err := w.Append(rec(i, 2000))
				require.NoError(t, err)
				last = seq
			}
			require.NoError(t, w.TruncateFront(last/2))
			require.NoError(t, w.TruncateBack(last/2+1))
			close(release)
			done := make(chan error, 1)
			go func() { done <- w.Close() }()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(30 * time.Second):
				t.Fatal("Close did not return: the background delete waits for a seq that was cut")
			}
		})
	}
}

// A log reopened with a MaxSegments below its segment count is cut to it
// by Open, under every policy (SyncNone has no flush round to do it): the
// FirstSeq seen right after Open is the one that stays, and the files are
// gone by Close.
func TestOpenAppliesMaxSegments(t *testing.T) {
	for _, p := range allPolicies {
		t.Run(p.String(), func(t *testing.T) {
			dir := t.TempDir()
			o := &Options{SegmentSize: MinSegmentSize, Sync: p}
			w := mustOpen(t, dir, o)
			m := newModel(1)
			m.fill(t, w, 2000, 300) // ~10 segments
			segs := w.segs.Load().segs
			require.Greater(t, len(segs), 6)
			keepFrom := segs[len(segs)-3].firstSeq
			require.NoError(t, w.Close())

			o.MaxSegments = 3
			w = mustOpen(t, dir, o)
			require.Equal(t, keepFrom, w.FirstSeq(), "FirstSeq right after Open")
			m.truncateFront(keepFrom)
			m.check(t, w)
			require.NoError(t, w.Close())
			names, err := filepath.Glob(filepath.Join(dir, "*"+format.SegmentExt))
			require.NoError(t, err)
			require.Len(t, names, 3, "segment files after Close: %v", names)

			w = mustOpen(t, dir, &Options{SegmentSize: MinSegmentSize, Sync: p})
			m.check(t, w)
			require.NoError(t, w.Close())
		})
	}
}

// TruncateFront emptying the log at the first seq of an empty active
// segment (a TruncateBack cut at its start) leaves no file name to two
// segments: the next segment is created under that same name, and the
// background delete of the dropped ones must not take its file.
func TestTruncateFrontAtEmptyActiveSegment_KeepsTheNextSegmentsFile(t *testing.T) {
	for _, p := range allPolicies {
		t.Run(p.String(), func(t *testing.T) {
			dir := t.TempDir()
			o := &Options{SegmentSize: MinSegmentSize, Sync: p}
			w := mustOpen(t, dir, o)
			m := newModel(1)
			m.fill(t, w, 600, 300) // a few segments
			segs := w.segs.Load().segs
			start := segs[len(segs)-1].firstSeq
			require.Greater(t, start, uint64(1))
			require.NoError(t, w.TruncateBack(start-1)) // the active segment is now empty
			m.truncateBack(start - 1)
			require.NoError(t, w.TruncateFront(start)) // empties the log at its name
			m.truncateFront(start)
			m.fill(t, w, 600, 300) // the first new segment is named start
			m.check(t, w)
			// A process crash now (the files as the page cache holds them,
			// the background delete perhaps part-way) keeps every record.
			img := filepath.Join(t.TempDir(), "img")
			require.NoError(t, os.MkdirAll(img, 0o755))
			for name, b := range copyLogFiles(t, dir) {
				require.NoError(t, os.WriteFile(filepath.Join(img, name), b, 0o644))
			}
			iw := mustOpen(t, img, o)
			m.check(t, iw)
			require.NoError(t, iw.Close())
			require.NoError(t, w.Close()) // waits for the background delete
			w = mustOpen(t, dir, o)
			m.check(t, w)
			require.NoError(t, w.Close())
		})
	}
}
