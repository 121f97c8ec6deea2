package mmapwal

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mmapwal/wal/format"
)

func TestOpenRejectsInvalidOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"segment smaller than 64 KiB", Options{SegmentSize: 4096}},
		{"segment larger than 16 GiB", Options{SegmentSize: 32 << 30}},
		{"negative max record size", Options{MaxRecordSize: -1}},
		{"max record size above 1 GiB", Options{MaxRecordSize: 2 << 30}},
		{"unknown sync policy", Options{Sync: SyncPolicy(7)}},
		{"negative sync interval", Options{SyncInterval: -time.Second}},
		{"negative max segments", Options{MaxSegments: -1}},
		{"first seq above 2^62", Options{FirstSeq: 1<<62 + 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := Open(dir, &tc.opts)
			require.ErrorIs(t, err, ErrInvalidOptions)
			entries, _ := os.ReadDir(dir)
			assert.Empty(t, entries, "a rejected Open must not touch the directory")
		})
	}
}

func TestOpenNilOptionsUsesDefaultsAndCreatesDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	w, err := Open(dir, nil)
	require.NoError(t, err)
	defer w.Close()
	assert.Equal(t, int64(DefaultSegmentSize), w.opts.SegmentSize)
	assert.Equal(t, DefaultMaxRecordSize, w.opts.MaxRecordSize)
	assert.Equal(t, SyncAlways, w.opts.Sync)
	assert.Equal(t, DefaultSyncInterval, w.opts.SyncInterval)
	seq, err := w.Append([]byte("hello"))
	require.NoError(t, err)
	assert.Equal(t, uint64(1), seq)
}

func TestEmptyLog(t *testing.T) {
	w := mustOpen(t, t.TempDir(), smallOpts(SyncAlways))
	defer w.Close()
	assert.Zero(t, w.FirstSeq())
	assert.Zero(t, w.LastSeq())
	_, err := w.Read(0)
	assert.ErrorIs(t, err, ErrNotFound)
	_, err = w.Read(1)
	assert.ErrorIs(t, err, ErrNotFound)
	r, err := w.NewReader(0)
	require.NoError(t, err)
	assert.False(t, r.Next())
	assert.NoError(t, r.Err())
	called := false
	require.NoError(t, w.Replay(0, func(uint64, []byte) error { called = true; return nil }))
	assert.False(t, called)
	require.NoError(t, w.Sync())
	require.NoError(t, w.TruncateBack(0), "TruncateBack(FirstSeq-1) of an empty log is a no-op")
	require.NoError(t, w.TruncateFront(1))
	newModel(1).check(t, w)
}

func TestAppendReadAcrossPoliciesAndReopen(t *testing.T) {
	for _, p := range []SyncPolicy{SyncAlways, SyncPeriodic, SyncNone} {
		t.Run(p.String(), func(t *testing.T) {
			o := smallOpts(p)
			w := mustOpen(t, t.TempDir(), o)
			m := newModel(1)
			for i := 0; i < 600; i++ { // several segments of 64 KiB
				b := rec(uint64(i+1), i%700)
				seq, err := w.Append(b)
				require.NoError(t, err)
				require.Equal(t, uint64(i+1), seq)
				m.append(seq, b)
			}
			m.check(t, w)
			assert.Greater(t, w.Stats().Rotations, uint64(3))
			w = reopen(t, w, o)
			m.check(t, w)
			assert.Zero(t, w.Stats().Recovery.ScannedBytes, "clean reopen reads no frames")
			seq, err := w.Append([]byte("after reopen"))
			require.NoError(t, err)
			m.append(seq, []byte("after reopen"))
			m.check(t, w)
			require.NoError(t, w.Close())
		})
	}
}

func TestEmptyRecordsAreValid(t *testing.T) {
	o := smallOpts(SyncNone)
	w := mustOpen(t, t.TempDir(), o)
	m := newModel(1)
	for i := 0; i < 3; i++ {
		seq, err := w.Append(nil)
		require.NoError(t, err)
		m.append(seq, []byte{})
	}
	first, err := w.AppendBatch([][]byte{{}, []byte("x"), {}})
	require.NoError(t, err)
	m.append(first, []byte{})
	m.append(first+1, []byte("x"))
	m.append(first+2, []byte{})
	got, err := w.Read(1)
	require.NoError(t, err)
	assert.NotNil(t, got)
	assert.Empty(t, got)
	w = reopen(t, w, o)
	m.check(t, w)
	require.NoError(t, w.Close())
}

func TestFirstSeqOptionForNewLogOnly(t *testing.T) {
	dir := t.TempDir()
	o := &Options{SegmentSize: MinSegmentSize, FirstSeq: 1000}
	w := mustOpen(t, dir, o)
	assert.Zero(t, w.FirstSeq(), "empty log")
	seq, err := w.Append([]byte("a"))
	require.NoError(t, err)
	assert.Equal(t, uint64(1000), seq)
	m := newModel(1000)
	m.append(seq, []byte("a"))
	m.check(t, w)
	w = reopen(t, w, &Options{SegmentSize: MinSegmentSize, FirstSeq: 5})
	m.check(t, w) // FirstSeq only applies to a new, empty log
	seq, err = w.Append([]byte("b"))
	require.NoError(t, err)
	assert.Equal(t, uint64(1001), seq)
	require.NoError(t, w.Close())
}

func TestRecordSizeLimits(t *testing.T) {
	o := &Options{SegmentSize: MinSegmentSize, MaxRecordSize: 300 << 10, Sync: SyncNone}
	w := mustOpen(t, t.TempDir(), o)
	_, err := w.Append(make([]byte, 300<<10+1))
	require.ErrorIs(t, err, ErrTooLarge)
	_, err = w.AppendBatch([][]byte{[]byte("ok"), make([]byte, 300<<10+1)})
	require.ErrorIs(t, err, ErrTooLarge)
	assert.Zero(t, w.LastSeq(), "rejected records take no seq")

	m := newModel(1)
	for _, n := range []int{10, 200 << 10, 20, 300 << 10, 5} { // larger than a 64 KiB segment
		b := rec(m.next, n)
		seq, err := w.Append(b)
		require.NoError(t, err)
		m.append(seq, b)
	}
	m.check(t, w)
	w = reopen(t, w, o)
	m.check(t, w)
	require.NoError(t, w.Close())
}

func TestAppendBatch(t *testing.T) {
	o := smallOpts(SyncAlways)
	w := mustOpen(t, t.TempDir(), o)
	m := newModel(1)
	first, err := w.AppendBatch(nil)
	require.NoError(t, err)
	assert.Zero(t, first, "empty batch appends nothing")
	// Batches of growing size: some cross the 64 KiB segment boundary (and
	// then start a new segment), one is larger than a segment.
	for _, spec := range []struct{ n, size int }{{1, 10}, {5, 100}, {50, 1000}, {100, 1000}, {3, 40 << 10}, {200, 500}} {
		batch := make([][]byte, spec.n)
		for i := range batch {
			batch[i] = rec(m.next+uint64(i), spec.size)
		}
		first, err := w.AppendBatch(batch)
		require.NoError(t, err)
		require.Equal(t, m.next, first)
		for i, b := range batch {
			m.append(first+uint64(i), b)
		}
	}
	m.check(t, w)
	w = reopen(t, w, o)
	m.check(t, w)
	require.NoError(t, w.Close())
}

func TestReadAppendDoesNotAllocate(t *testing.T) {
	w := mustOpen(t, t.TempDir(), &Options{Sync: SyncNone}) // no rotation within the runs
	defer w.Close()
	for i := 0; i < 100; i++ {
		_, err := w.Append(rec(uint64(i+1), 100))
		require.NoError(t, err)
	}
	buf := make([]byte, 0, 128)
	allocs := testing.AllocsPerRun(1000, func() {
		var err error
		buf, err = w.ReadAppend(buf[:0], 42)
		if err != nil {
			panic(err)
		}
	})
	assert.Zero(t, allocs)
	assert.Equal(t, rec(42, 100), buf)
	allocs = testing.AllocsPerRun(1000, func() {
		if _, err := w.Append(buf); err != nil {
			panic(err)
		}
	})
	assert.Zero(t, allocs, "Append allocates")
}

func TestReaderFromMiddleAndTailFollow(t *testing.T) {
	w := mustOpen(t, t.TempDir(), smallOpts(SyncNone))
	defer w.Close()
	for i := 1; i <= 1000; i++ {
		_, err := w.Append(rec(uint64(i), 150))
		require.NoError(t, err)
	}
	r, err := w.NewReader(777)
	require.NoError(t, err)
	n := uint64(777)
	for r.Next() {
		require.Equal(t, n, r.Seq())
		require.Equal(t, rec(n, 150), r.Value())
		n++
	}
	require.NoError(t, r.Err())
	require.Equal(t, uint64(1001), n)
	// At the tail, Next returns false until more records arrive.
	_, err = w.Append(rec(1001, 150))
	require.NoError(t, err)
	require.True(t, r.Next())
	assert.Equal(t, uint64(1001), r.Seq())
	require.NoError(t, r.Close())
	assert.False(t, r.Next())
	assert.ErrorIs(t, r.Err(), ErrClosed)

	_, err = w.NewReader(1003)
	assert.ErrorIs(t, err, ErrNotFound, "beyond LastSeq+1")
	tail, err := w.NewReader(1002)
	require.NoError(t, err)
	assert.False(t, tail.Next())
	assert.NoError(t, tail.Err())
}

func TestReplayStopsAtFirstError(t *testing.T) {
	w := mustOpen(t, t.TempDir(), smallOpts(SyncNone))
	defer w.Close()
	for i := 1; i <= 50; i++ {
		_, err := w.Append(rec(uint64(i), 10))
		require.NoError(t, err)
	}
	stop := errors.New("stop")
	var seen []uint64
	err := w.Replay(10, func(seq uint64, data []byte) error {
		seen = append(seen, seq)
		if seq == 20 {
			return stop
		}
		return nil
	})
	assert.ErrorIs(t, err, stop)
	assert.Len(t, seen, 11)
	assert.Equal(t, uint64(20), seen[10])
	n := 0
	require.NoError(t, w.Replay(0, func(seq uint64, data []byte) error {
		n++
		assert.Equal(t, rec(seq, 10), data)
		return nil
	}))
	assert.Equal(t, 50, n)
	assert.ErrorIs(t, w.Replay(51+1, func(uint64, []byte) error { return nil }), ErrNotFound)
}

func TestTruncateFront(t *testing.T) {
	for _, tc := range []struct {
		name string
		to   func(first, last uint64) uint64
	}{
		{"to FirstSeq is a no-op", func(f, l uint64) uint64 { return f }},
		{"inside first segment", func(f, l uint64) uint64 { return f + 3 }},
		{"middle of the log", func(f, l uint64) uint64 { return (f + l) / 2 }},
		{"to LastSeq keeps one record", func(f, l uint64) uint64 { return l }},
		{"to LastSeq+1 empties the log", func(f, l uint64) uint64 { return l + 1 }},
		{"beyond LastSeq+1 empties and moves next seq", func(f, l uint64) uint64 { return l + 1000 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := smallOpts(SyncAlways)
			dir := t.TempDir()
			w := mustOpen(t, dir, o)
			m := newModel(1)
			m.fill(t, w, 400, 300)
			segsBefore := w.Stats().Segments
			to := tc.to(w.FirstSeq(), w.LastSeq())
			require.NoError(t, w.TruncateFront(to))
			m.truncateFront(to)
			m.check(t, w)
			assert.LessOrEqual(t, w.Stats().Segments, segsBefore)
			w = reopen(t, w, o)
			m.check(t, w)
			b := []byte("next")
			seq, err := w.Append(b)
			require.NoError(t, err)
			assert.Equal(t, m.next, seq, "next Append")
			m.append(seq, b)
			w = reopen(t, w, o)
			m.check(t, w)
			require.NoError(t, w.Close())
		})
	}
}

func TestTruncateBack(t *testing.T) {
	for _, tc := range []struct {
		name string
		to   func(first, last uint64) uint64
	}{
		{"to LastSeq is a no-op", func(f, l uint64) uint64 { return l }},
		{"drop the last record", func(f, l uint64) uint64 { return l - 1 }},
		{"middle of the log, across segments", func(f, l uint64) uint64 { return (f + l) / 2 }},
		{"to FirstSeq keeps one record", func(f, l uint64) uint64 { return f }},
		{"to FirstSeq-1 empties the log", func(f, l uint64) uint64 { return f - 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := smallOpts(SyncAlways)
			w := mustOpen(t, t.TempDir(), o)
			m := newModel(1)
			m.fill(t, w, 400, 300)
			to := tc.to(w.FirstSeq(), w.LastSeq())
			require.NoError(t, w.TruncateBack(to))
			m.truncateBack(to)
			m.check(t, w)
			for i := 0; i < 50; i++ { // the log goes on from to+1, over the zeroed tail
				b := rec(m.next+7, 200)
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

func TestTruncateBackAfterTruncateFront(t *testing.T) {
	o := smallOpts(SyncNone)
	w := mustOpen(t, t.TempDir(), o)
	m := newModel(1)
	m.fill(t, w, 300, 250)
	require.NoError(t, w.TruncateFront(120))
	m.truncateFront(120)
	err := w.TruncateBack(100)
	require.ErrorIs(t, err, ErrNotFound, "before FirstSeq-1")
	require.NoError(t, w.TruncateBack(119)) // empties the log; next Append gets 120
	m.truncateBack(119)
	m.check(t, w)
	seq, err := w.Append([]byte("z"))
	require.NoError(t, err)
	assert.Equal(t, uint64(120), seq)
	m.append(seq, []byte("z"))
	w = reopen(t, w, o)
	m.check(t, w)
	require.NoError(t, w.Close())
}

func TestMaxSegmentsDeletesOldestSealed(t *testing.T) {
	for _, p := range []SyncPolicy{SyncAlways, SyncPeriodic, SyncNone} {
		t.Run(p.String(), func(t *testing.T) {
			o := &Options{SegmentSize: MinSegmentSize, MaxSegments: 3, Sync: p}
			w := mustOpen(t, t.TempDir(), o)
			for i := 0; i < 2000; i++ {
				_, err := w.Append(rec(uint64(i+1), 200))
				require.NoError(t, err)
			}
			// Retention runs in the background after each rotation; Sync
			// waits for nothing of it, so wait (safety net only) for it.
			require.NoError(t, w.Sync())
			require.Eventually(t, func() bool { return w.Stats().Segments <= 3 }, 10*time.Second, time.Millisecond)
			st := w.Stats()
			assert.Greater(t, st.FirstSeq, uint64(1))
			m := newModel(st.FirstSeq)
			for s := st.FirstSeq; s <= st.LastSeq; s++ {
				m.append(s, rec(s, 200))
			}
			m.check(t, w)
			w = reopen(t, w, o)
			m.check(t, w)
			require.NoError(t, w.Close())
		})
	}
}

func TestClosedWALReturnsErrClosed(t *testing.T) {
	w := mustOpen(t, t.TempDir(), smallOpts(SyncAlways))
	_, err := w.Append([]byte("a"))
	require.NoError(t, err)
	r, err := w.NewReader(1)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	assert.ErrorIs(t, w.Close(), ErrClosed)
	_, err = w.Append([]byte("b"))
	assert.ErrorIs(t, err, ErrClosed)
	_, err = w.AppendBatch([][]byte{[]byte("b")})
	assert.ErrorIs(t, err, ErrClosed)
	_, err = w.Read(1)
	assert.ErrorIs(t, err, ErrClosed)
	_, err = w.ReadAppend(nil, 1)
	assert.ErrorIs(t, err, ErrClosed)
	_, err = w.NewReader(1)
	assert.ErrorIs(t, err, ErrClosed)
	assert.False(t, r.Next())
	assert.ErrorIs(t, r.Err(), ErrClosed)
	assert.ErrorIs(t, w.Replay(0, func(uint64, []byte) error { return nil }), ErrClosed)
	assert.ErrorIs(t, w.Sync(), ErrClosed)
	assert.ErrorIs(t, w.TruncateFront(1), ErrClosed)
	assert.ErrorIs(t, w.TruncateBack(0), ErrClosed)
	_ = w.Stats() // must not panic
}

func TestSecondOpenIsLocked(t *testing.T) {
	dir := t.TempDir()
	w := mustOpen(t, dir, nil)
	_, err := Open(dir, nil)
	require.ErrorIs(t, err, ErrLocked)
	assert.Contains(t, err.Error(), dir)

	// From another process: re-run this test binary as a child that tries.
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperOpenLocked$")
	cmd.Env = append(os.Environ(), "MMAPWAL_LOCK_DIR="+dir)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "child: ErrLocked")

	require.NoError(t, w.Close())
	w2 := mustOpen(t, dir, nil) // released on Close
	require.NoError(t, w2.Close())
}

func TestHelperOpenLocked(t *testing.T) {
	dir := os.Getenv("MMAPWAL_LOCK_DIR")
	if dir == "" {
		t.Skip("child process of TestSecondOpenIsLocked")
	}
	_, err := Open(dir, nil)
	if errors.Is(err, ErrLocked) {
		fmt.Println("child: ErrLocked")
		return
	}
	t.Fatalf("child: want ErrLocked, got %v", err)
}

// failingSync fails data syncs after `after` successes (a test seam at the
// point where durability is decided).
type failingSync struct {
	osDurability
	after atomic.Int64
	err   error
}

func (f *failingSync) syncSegment(s *segment, off, n int64) error {
	if f.after.Add(-1) < 0 {
		return f.err
	}
	return f.osDurability.syncSegment(s, off, n)
}

func TestSyncErrorIsSticky(t *testing.T) {
	dir := t.TempDir()
	eio := errors.New("injected EIO")
	fs := &failingSync{err: eio}
	fs.after.Store(5)
	o := smallOpts(SyncAlways)
	o.hooks = fs
	w := mustOpen(t, dir, o)
	m := newModel(1)
	var failedAt uint64
	for i := 0; i < 20; i++ {
		b := rec(m.next, 100)
		seq, err := w.Append(b)
		if err != nil {
			require.ErrorIs(t, err, eio)
			failedAt = m.next
			break
		}
		m.append(seq, b)
	}
	require.NotZero(t, failedAt, "the injected failure must surface")
	// Sticky: no retry, even though the next sync would succeed.
	fs.after.Store(1 << 40)
	_, err := w.Append([]byte("more"))
	assert.ErrorIs(t, err, eio)
	_, err = w.AppendBatch([][]byte{[]byte("more")})
	assert.ErrorIs(t, err, eio)
	assert.ErrorIs(t, w.Sync(), eio)
	assert.ErrorIs(t, w.TruncateBack(1), eio)
	assert.ErrorIs(t, w.Stats().Failed, eio)
	// Reads keep working for every acknowledged record.
	for s := m.first; s < m.next; s++ {
		got, err := w.Read(s)
		require.NoError(t, err)
		assert.Equal(t, m.recs[s], got)
	}
	assert.ErrorIs(t, w.Close(), eio)
	// Reopen recovers: the acknowledged records, and maybe the failed one
	// (its bytes reached the page cache; it was never acknowledged).
	w = mustOpen(t, dir, smallOpts(SyncAlways))
	if w.LastSeq() == failedAt {
		m.append(failedAt, rec(failedAt, 100))
	}
	m.check(t, w)
	seq, err := w.Append([]byte("after"))
	require.NoError(t, err)
	assert.Equal(t, m.next, seq)
	require.NoError(t, w.Close())
}

func TestGroupCommitSharesSyncs(t *testing.T) {
	w := mustOpen(t, t.TempDir(), &Options{Sync: SyncAlways})
	defer w.Close()
	const writers, each = 16, 50
	var wg sync.WaitGroup
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				_, err := w.Append(make([]byte, 100))
				assert.NoError(t, err)
			}
		}()
	}
	wg.Wait()
	st := w.Stats()
	assert.Equal(t, uint64(writers*each), st.Appended)
	assert.Equal(t, uint64(writers*each), st.SyncedSeq, "every acknowledged record is durable")
	assert.Less(t, st.Syncs, st.Appended, "concurrent appenders must share flushes")
	t.Logf("%d appends, %d syncs (%.1f records per sync)", st.Appended, st.Syncs, float64(st.Appended)/float64(st.Syncs))
}

func TestSyncPeriodicFlushesInBackground(t *testing.T) {
	w := mustOpen(t, t.TempDir(), &Options{SegmentSize: MinSegmentSize, Sync: SyncPeriodic, SyncInterval: 5 * time.Millisecond})
	defer w.Close()
	for i := 0; i < 10; i++ {
		_, err := w.Append([]byte("x"))
		require.NoError(t, err)
	}
	// Timing is only a safety net here: the flush must happen without Sync().
	require.Eventually(t, func() bool { return w.Stats().SyncedSeq == 10 }, 10*time.Second, time.Millisecond)
}

func TestSyncNoneSyncsOnSyncAndClose(t *testing.T) {
	w := mustOpen(t, t.TempDir(), &Options{Sync: SyncNone})
	for i := 0; i < 10; i++ {
		_, err := w.Append([]byte("x"))
		require.NoError(t, err)
	}
	assert.Zero(t, w.Stats().Syncs)
	require.NoError(t, w.Sync())
	assert.Equal(t, uint64(10), w.Stats().SyncedSeq)
	assert.Equal(t, uint64(1), w.Stats().Syncs)
	require.NoError(t, w.Close())
}

func TestIndexIsRebuiltWhenMissingOrDamaged(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"missing", func(t *testing.T, p string) { require.NoError(t, os.Remove(p)) }},
		{"truncated", func(t *testing.T, p string) { require.NoError(t, os.Truncate(p, 100)) }},
		{"garbage header", func(t *testing.T, p string) {
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			require.NoError(t, err)
			_, err = f.WriteAt([]byte("garbage!garbage!"), 0)
			require.NoError(t, err)
			require.NoError(t, f.Close())
		}},
		{"wrong entries behind a valid header", func(t *testing.T, p string) {
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			require.NoError(t, err)
			_, err = f.WriteAt(make([]byte, 400), format.IndexHeaderSize+40) // zero ten entries
			require.NoError(t, err)
			require.NoError(t, f.Close())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			o := smallOpts(SyncAlways)
			w := mustOpen(t, dir, o)
			m := newModel(1)
			m.fill(t, w, 1500, 120)
			require.NoError(t, w.Close())
			idx, err := filepath.Glob(filepath.Join(dir, "*.idx"))
			require.NoError(t, err)
			require.Greater(t, len(idx), 2)
			tc.damage(t, idx[0]) // a sealed segment's index
			tc.damage(t, idx[len(idx)-1])
			w = mustOpen(t, dir, o)
			m.check(t, w)
			st := w.Stats()
			assert.Positive(t, uint64(st.Recovery.IndexesRebuilt)+st.IndexRepairs, "rebuild visible in Stats")
			w = reopen(t, w, o)
			m.check(t, w)
			require.NoError(t, w.Close())
		})
	}
}

func TestConcurrentAppendReadTruncate(t *testing.T) {
	for _, p := range []SyncPolicy{SyncAlways, SyncNone} {
		t.Run(p.String(), func(t *testing.T) {
			o := smallOpts(p)
			dir := t.TempDir()
			w := mustOpen(t, dir, o)
			stop := make(chan struct{})
			var appenders, others sync.WaitGroup
			var truncatedFront atomic.Uint64
			// Records carry their own seq so readers can check any record
			// without knowing who wrote it.
			check := func(seq uint64, b []byte) {
				if len(b) < 8 || string(b[:8]) != fmt.Sprintf("%08d", seq%100000000) {
					t.Errorf("seq %d: wrong record %q", seq, b[:min(len(b), 16)])
				}
			}
			var mu sync.Mutex // appends and TruncateBack must agree on seqs in records
			for g := 0; g < 8; g++ {
				appenders.Add(1)
				go func(g int) {
					defer appenders.Done()
					for i := 0; i < 300; i++ {
						mu.Lock()
						next := w.LastSeq() + 1
						if w.LastSeq() == 0 {
							next = max(truncatedFront.Load(), 1)
						}
						if i%10 == 0 {
							batch := [][]byte{[]byte(fmt.Sprintf("%08d-batch", next)), []byte(fmt.Sprintf("%08d-batch", next+1))}
							_, err := w.AppendBatch(batch)
							assert.NoError(t, err)
						} else {
							_, err := w.Append([]byte(fmt.Sprintf("%08d-g%d-%d", next, g, i)))
							assert.NoError(t, err)
						}
						mu.Unlock()
					}
				}(g)
			}
			for r := 0; r < 3; r++ {
				others.Add(1)
				go func() {
					defer others.Done()
					buf := make([]byte, 0, 64)
					for {
						select {
						case <-stop:
							return
						default:
						}
						first, last := w.FirstSeq(), w.LastSeq()
						for s := first; s <= last && s != 0; s += 7 {
							var err error
							buf, err = w.ReadAppend(buf[:0], s)
							if errors.Is(err, ErrNotFound) {
								continue // truncated meanwhile
							}
							if !assert.NoError(t, err) {
								return
							}
							check(s, buf)
						}
					}
				}()
			}
			others.Add(1)
			go func() { // a follower
				defer others.Done()
				rd, err := w.NewReader(0)
				if !assert.NoError(t, err) {
					return
				}
				for {
					select {
					case <-stop:
						return
					default:
					}
					for rd.Next() {
						check(rd.Seq(), rd.Value())
					}
					if rd.Err() != nil {
						// Truncated under it: from the front, or back below what it returned.
						assert.True(t, errors.Is(rd.Err(), ErrNotFound) || errors.Is(rd.Err(), ErrTruncated), "%v", rd.Err())
						if rd, err = w.NewReader(0); !assert.NoError(t, err) {
							return
						}
					}
				}
			}()
			others.Add(1)
			go func() { // truncation from both ends
				defer others.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					time.Sleep(time.Millisecond)
					if i%2 == 0 {
						if l := w.LastSeq(); l > 100 {
							assert.NoError(t, w.TruncateFront(l-50))
						}
					} else {
						mu.Lock()
						if l := w.LastSeq(); l > 10 {
							assert.NoError(t, w.TruncateBack(l-3))
						}
						mu.Unlock()
					}
				}
			}()
			appenders.Wait()
			close(stop)
			others.Wait()
			first, last := w.FirstSeq(), w.LastSeq()
			require.NoError(t, w.Close())
			w = mustOpen(t, dir, o)
			assert.Equal(t, first, w.FirstSeq())
			assert.Equal(t, last, w.LastSeq())
			require.NoError(t, w.Replay(0, func(seq uint64, b []byte) error { check(seq, b); return nil }))
			require.NoError(t, w.Close())
		})
	}
}

func TestOpenRemovesTempFilesAndKeepsUnknownFiles(t *testing.T) {
	dir := t.TempDir()
	o := smallOpts(SyncAlways)
	w := mustOpen(t, dir, o)
	_, err := w.Append([]byte("a"))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	for _, n := range []string{"prepared-1-1.seg.tmp", "prepared-1-1.idx.tmp", "wal.meta.tmp"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), []byte("junk"), 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "NOTES.txt"), []byte("mine"), 0o644))
	w = mustOpen(t, dir, o)
	assert.Equal(t, 3, w.Stats().Recovery.TempFilesRemoved)
	require.NoError(t, w.Close())
	for _, n := range []string{"prepared-1-1.seg.tmp", "prepared-1-1.idx.tmp", "wal.meta.tmp"} {
		assert.NoFileExists(t, filepath.Join(dir, n))
	}
	assert.FileExists(t, filepath.Join(dir, "NOTES.txt"))
}

func TestCloseLeavesOnlyLogFiles(t *testing.T) {
	dir := t.TempDir()
	w := mustOpen(t, dir, smallOpts(SyncNone))
	for i := 0; i < 1000; i++ {
		_, err := w.Append(rec(uint64(i), 100))
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	segs := 0
	for _, e := range entries {
		n := e.Name()
		if _, ok := format.ParseSegmentName(n); ok {
			segs++
			fi, err := e.Info()
			require.NoError(t, err)
			assert.Equal(t, int64(MinSegmentSize), fi.Size(), "segments are preallocated to full size")
			continue
		}
		if _, ok := format.ParseIndexName(n); ok {
			fi, err := e.Info()
			require.NoError(t, err)
			assert.Equal(t, format.IndexFileSize(format.IndexCapacity(MinSegmentSize)), fi.Size())
			continue
		}
		assert.Contains(t, []string{format.LockName, format.IdentityName, format.CleanName}, n, "no prepared or temporary file left behind")
	}
	assert.Positive(t, segs)
}

func TestRecoveryIsLoggedAndInStats(t *testing.T) {
	dir := t.TempDir()
	o := smallOpts(SyncAlways)
	w := mustOpen(t, dir, o)
	for i := 0; i < 10; i++ {
		_, err := w.Append(rec(uint64(i+1), 100))
		require.NoError(t, err)
	}
	end := w.writeOff
	seg := w.active.path
	require.NoError(t, w.Close())
	// A torn record after the last one, as a crash mid-append leaves it.
	f, err := os.OpenFile(seg, os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte{0xde, 0xad, 0xbe, 0xef, 1, 0, 0, 0, 50}, end)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, os.Remove(filepath.Join(dir, format.IndexName(1)))) // and a lost index

	var logs bytes.Buffer
	o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	w = mustOpen(t, dir, o)
	defer w.Close()
	st := w.Stats().Recovery
	assert.Equal(t, seg, st.TornFile)
	assert.Equal(t, end, st.TornOffset)
	assert.Positive(t, st.BytesTruncated)
	assert.Equal(t, 1, st.IndexesRebuilt)
	assert.Positive(t, st.ScannedBytes)
	assert.Contains(t, logs.String(), "cut torn tail")
	assert.Contains(t, logs.String(), "mmapwal: recovered")
	assert.Equal(t, uint64(10), w.LastSeq())
}
