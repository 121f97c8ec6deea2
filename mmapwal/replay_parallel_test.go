package mmapwal

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// replayCollect replays w from from and returns the records in order.
func replayCollect(w *WAL, from uint64, fn func(seq uint64) error) (seqs []uint64, recs [][]byte, err error) {
	err = w.Replay(from, func(seq uint64, b []byte) error {
		seqs = append(seqs, seq)
		recs = append(recs, bytes.Clone(b))
		if fn != nil {
			return fn(seq)
		}
		return nil
	})
	return seqs, recs, err
}

// The read-ahead replay returns exactly what the sequential one does, for
// records of every size (runs cut short by runBytes, records in segments of
// their own), across segments, from any first seq, with 1 to 3 helpers.
func TestReplayReadAheadMatchesModel(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	dir := t.TempDir()
	o := &Options{SegmentSize: 1 << 20, Sync: SyncNone}
	w := mustOpen(t, dir, o)
	m := newModel(1)
	for i := 0; i < 6000; i++ {
		size := rng.Intn(600)
		switch rng.Intn(200) {
		case 0:
			size = 300 << 10 // several to a run's 1 MiB
		case 1:
			size = 1<<20 + 5000 // larger than a segment
		}
		b := rec(m.next, size)
		seq, err := w.Append(b)
		require.NoError(t, err)
		m.append(seq, b)
	}
	require.NoError(t, w.Close())
	for _, c := range []struct{ stride, helpers int }{{1, 1}, {3, 2}, {16, 1}, {64, 3}, {512, 1}} {
		t.Run(fmt.Sprintf("stride=%d/helpers=%d", c.stride, c.helpers), func(t *testing.T) {
			o := &Options{SegmentSize: 1 << 20, Sync: SyncNone, replayStride: c.stride, ReplayReadAhead: c.helpers}
			w := mustOpen(t, dir, o)
			defer w.Close()
			for _, from := range []uint64{0, 1, 2, 777, 3001, 5990, 6000} {
				seqs, recs, err := replayCollect(w, from, nil)
				require.NoError(t, err, "from %d", from)
				start := max(from, 1)
				require.Len(t, seqs, int(6000-start+1), "from %d", from)
				for i, s := range seqs {
					require.Equal(t, start+uint64(i), s, "from %d", from)
					require.Equal(t, m.recs[s], recs[i], "from %d: seq %d", from, s)
				}
			}
			require.Zero(t, w.replayHelpersLive.Load(), "helpers left running after Replay returned")
		})
	}
}

// fn's error ends the replay at once, with every helper stopped.
func TestReplayReadAheadStopsAtCallbackError(t *testing.T) {
	w := mustOpen(t, t.TempDir(), &Options{SegmentSize: 1 << 20, Sync: SyncNone, replayStride: 8, ReplayReadAhead: 3})
	defer w.Close()
	m := newModel(1)
	m.fill(t, w, 3000, 100)
	stopErr := errors.New("enough")
	for _, at := range []uint64{1, 8, 9, 100, 2999, 3000} {
		seqs, _, err := replayCollect(w, 0, func(seq uint64) error {
			if seq == at {
				return stopErr
			}
			return nil
		})
		require.ErrorIs(t, err, stopErr)
		require.Len(t, seqs, int(at))
		require.Zero(t, w.replayHelpersLive.Load(), "helpers left running after Replay returned")
	}
}

// Truncations made during a replay (from its callback) have the same
// effect with read-ahead as without: runs the helpers read before the cut
// are not returned.
func TestReplayReadAheadTruncatedMidway(t *testing.T) {
	const cutAt = 1040 // the replay is at 1000; helpers have read to ~1100
	cases := []struct {
		name string
		cut  func(w *WAL) error
	}{
		// Ahead of the replay (within the runs read ahead), then new
		// records: the replay goes on and returns the new ones, not the
		// old ones the helpers had read.
		{"TruncateBack ahead, new records", func(w *WAL) error {
			if err := w.TruncateBack(cutAt); err != nil {
				return err
			}
			for s := uint64(cutAt + 1); s <= 1500; s++ {
				if _, err := w.Append(recV(s, 2, 100)); err != nil {
					return err
				}
			}
			return nil
		}},
		// Below the replay's position: ErrTruncated.
		{"TruncateBack behind", func(w *WAL) error { return w.TruncateBack(500) }},
		// The front past the replay's position: ErrNotFound.
		{"TruncateFront past", func(w *WAL) error { return w.TruncateFront(3000) }},
	}
	for _, c := range cases {
		var want struct {
			seqs []uint64
			recs [][]byte
			err  error
		}
		for _, helpers := range []int{-1, 2} {
			t.Run(fmt.Sprintf("%s/helpers=%d", c.name, helpers), func(t *testing.T) {
				w := mustOpen(t, t.TempDir(), &Options{SegmentSize: MinSegmentSize, Sync: SyncNone, replayStride: 16, ReplayReadAhead: helpers})
				defer w.Close()
				for s := uint64(1); s <= 5000; s++ {
					_, err := w.Append(recV(s, 1, 100))
					require.NoError(t, err)
				}
				seqs, recs, err := replayCollect(w, 0, func(seq uint64) error {
					if seq == 1000 {
						return c.cut(w)
					}
					return nil
				})
				for i, s := range seqs {
					v := 1
					if s > cutAt {
						v = 2
					}
					require.Equal(t, recV(s, v, 100), recs[i], "seq %d", s)
				}
				if helpers < 0 {
					want.seqs, want.recs, want.err = seqs, recs, err
					return
				}
				require.Equal(t, want.seqs, seqs)
				require.Equal(t, want.recs, recs)
				if want.err == nil {
					require.NoError(t, err)
				} else {
					require.Error(t, err)
					require.Equal(t, errors.Is(want.err, ErrTruncated), errors.Is(err, ErrTruncated), "%v vs %v", err, want.err)
					require.Equal(t, errors.Is(want.err, ErrNotFound), errors.Is(err, ErrNotFound), "%v vs %v", err, want.err)
				}
				require.Zero(t, w.replayHelpersLive.Load())
			})
		}
		require.NotNil(t, want.seqs, "%s: the sequential replay ran", c.name)
	}
}

// A run a helper filled before a TruncateBack replaced its records is not
// returned: the Reader reads the new records itself.
func TestReplayReadAheadDropsRunsReadBeforeACut(t *testing.T) {
	w := mustOpen(t, t.TempDir(), &Options{SegmentSize: MinSegmentSize, Sync: SyncNone, replayStride: 16, ReplayReadAhead: 1})
	defer w.Close()
	for s := uint64(1); s <= 5000; s++ {
		_, err := w.Append(recV(s, 1, 100))
		require.NoError(t, err)
	}
	r, err := w.NewReader(1)
	require.NoError(t, err)
	r.pre = w.startPrefetch(1, w.LastSeq(), 1)
	defer r.pre.close()
	for r.Next() && r.Seq() < 1000 {
	}
	require.Equal(t, uint64(1000), r.Seq())
	// Run 65 holds 1041-1056 (base 1, stride 16): wait until the helper has
	// read it (it is within the ring of runs ahead), then replace it.
	const k = 65
	s := r.pre.slot(k)
	deadline := time.Now().Add(time.Minute) // a safety net: the helper gets there
	for s.word.Load() != k<<slotBits|slotReady {
		require.True(t, time.Now().Before(deadline), "the helper never read run %d", k)
		runtime.Gosched()
	}
	require.NoError(t, w.TruncateBack(1040))
	for q := uint64(1041); q <= 1500; q++ {
		_, err := w.Append(recV(q, 2, 100))
		require.NoError(t, err)
	}
	for r.Next() {
		v := 1
		if r.Seq() > 1040 {
			v = 2
		}
		require.Equal(t, recV(r.Seq(), v, 100), r.Value(), "seq %d", r.Seq())
	}
	require.NoError(t, r.Err())
	require.Equal(t, uint64(1500), r.Seq())
}

// Options.ReplayReadAhead: negative runs Replay on the caller's goroutine
// alone, a positive count starts that many helpers (even where GOMAXPROCS
// would give fewer), above MaxReplayReadAhead is refused at Open. Every
// setting returns the same records.
func TestReplayReadAheadOption(t *testing.T) {
	_, err := Open(t.TempDir(), &Options{ReplayReadAhead: MaxReplayReadAhead + 1})
	require.ErrorIs(t, err, ErrInvalidOptions)
	require.ErrorContains(t, err, "ReplayReadAhead")

	dir := t.TempDir()
	w := mustOpen(t, dir, &Options{SegmentSize: MinSegmentSize, Sync: SyncNone})
	for s := uint64(1); s <= 6000; s++ {
		_, err := w.Append(recV(s, 1, 50))
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	auto := min(runtime.GOMAXPROCS(0)-1, 3)
	for _, c := range []struct{ opt, want int }{{0, auto}, {-1, 0}, {1, 1}, {MaxReplayReadAhead, MaxReplayReadAhead}} {
		t.Run(fmt.Sprintf("ReplayReadAhead=%d", c.opt), func(t *testing.T) {
			w := mustOpen(t, dir, &Options{SegmentSize: MinSegmentSize, Sync: SyncNone, ReplayReadAhead: c.opt})
			defer w.Close()
			require.Equal(t, c.want, w.replayHelpers(6000), "helpers for a replay of 6000 records")
			require.Zero(t, w.replayHelpers(2047), "helpers for a replay of fewer than 2048 records")
			// Helpers may finish their runs and leave before fn sees them,
			// so the live count bounds them from above only.
			most := int32(0)
			next := uint64(1)
			err := w.Replay(1, func(seq uint64, b []byte) error {
				most = max(most, w.replayHelpersLive.Load())
				require.Equal(t, next, seq)
				require.Equal(t, recV(seq, 1, 50), b)
				next++
				return nil
			})
			require.NoError(t, err)
			require.Equal(t, uint64(6001), next)
			require.LessOrEqual(t, most, int32(c.want), "helpers running during the replay")
			require.Zero(t, w.replayHelpersLive.Load(), "helpers left running after Replay returned")
		})
	}
}

// Read-ahead never copies a record larger than a run (runBytes): the
// Reader reads it itself when it gets there, so the runs waiting for the
// caller hold at most runBytes each, not up to MaxRecordSize each.
func TestReplayReadAheadLeavesLargeRecordsToTheReader(t *testing.T) {
	w := mustOpen(t, t.TempDir(), &Options{Sync: SyncNone, replayStride: 1, ReplayReadAhead: 1})
	defer w.Close()
	const n, size = 12, runBytes + runBytes/2
	for s := uint64(1); s <= n; s++ {
		_, err := w.Append(recV(s, 1, size))
		require.NoError(t, err)
	}
	p := w.startPrefetch(1, w.LastSeq(), 1)
	s := p.slot(1)                          // run 0 is the caller's; the helper takes run 1 first
	deadline := time.Now().Add(time.Minute) // a safety net: the helper gets there
	for s.word.Load() != 1<<slotBits|slotReady {
		require.True(t, time.Now().Before(deadline), "the helper never handled run 1")
		runtime.Gosched()
	}
	require.Empty(t, s.r.ends, "a helper copied a record of %d bytes", size)
	require.Less(t, cap(s.r.buf), runBytes, "a helper's run buffer grew to a large record")
	p.close()

	next := uint64(1)
	require.NoError(t, w.Replay(1, func(seq uint64, b []byte) error {
		require.Equal(t, next, seq)
		require.Equal(t, recV(seq, 1, size), b)
		next++
		return nil
	}))
	require.Equal(t, uint64(n+1), next)
}
