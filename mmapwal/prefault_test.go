package mmapwal

import (
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A prefault loop belongs to the prepared or active segment only: rotation,
// truncation and Close must end it, or every sealed segment would keep a
// goroutine for the life of the WAL.
func TestPrefaultLoopsEnd(t *testing.T) {
	// Windows smaller than a segment, so loops wait for the writer.
	base := runtime.NumGoroutine()
	dir := t.TempDir()
	w, err := Open(dir, &Options{SegmentSize: 64 << 10, Sync: SyncNone, prefault: prefaultWindow{ahead: 8 << 10, chunk: 4 << 10}})
	require.NoError(t, err)
	// One 40 KiB record per 64 KiB segment: each rotation leaves a segment
	// whose loop is still waiting for the writer to come closer to its end.
	rec := make([]byte, 40<<10)
	for i := 0; i < 45; i++ {
		_, err := w.Append(rec)
		require.NoError(t, err)
	}
	require.Greater(t, w.Stats().Rotations, uint64(40))
	settled := func(limit int) {
		t.Helper()
		// Loops exit asynchronously after halt; give them a moment.
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > limit && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		require.LessOrEqual(t, runtime.NumGoroutine(), limit, "prefault loops of sealed segments still running")
	}
	// flusher, preparer, the active and the prepared segment's loops, and
	// a little slack for the runtime
	settled(base + 8)
	require.NoError(t, w.TruncateBack(0))
	for i := 0; i < 10; i++ {
		_, err := w.Append(rec)
		require.NoError(t, err)
	}
	settled(base + 8)
	require.NoError(t, w.Close())
	settled(base + 2)

	// A reopened log's active segment gets a loop, which Close ends too.
	w, err = Open(dir, &Options{SegmentSize: 64 << 10, Sync: SyncNone})
	require.NoError(t, err)
	_, err = w.Append(rec)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	settled(base + 2)
}

// Every index range the prefault loop asks for starts on a page boundary
// (madvise rejects anything else), and the ranges cover the index of the
// faulted segment bytes without gaps.
func TestIndexAheadAligned(t *testing.T) {
	const size = 8<<20 + 64
	done := int64(0)
	for end := int64(1 << 20); end <= 64<<20; end += 1 << 20 {
		lo, hi := indexAhead(done, end, size)
		require.Greater(t, hi, lo)
		require.Zero(t, lo%4096, "unaligned start %d", lo)
		require.LessOrEqual(t, lo, done, "gap between %d and %d", done, lo)
		require.Equal(t, min(size, 64+end/8), hi)
		done = hi
	}
	lo, hi := indexAhead(done, 64<<20, size)
	require.Equal(t, lo, hi, "nothing left")
}
