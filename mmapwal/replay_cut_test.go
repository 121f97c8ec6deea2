package mmapwal

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recVersion reads the version recV wrote into b.
func recVersion(b []byte) (v int, ok bool) {
	_, err := fmt.Sscanf(string(b), "v%d:", &v)
	return v, err == nil
}

// While a writer keeps cutting the tail just ahead of (or behind) a
// replaying caller and rewriting it with a new version, a Replay reading
// ahead on helpers never returns a record that a cut completed before the
// callback's previous call returned had replaced, and never a version
// older than one it returned before. (Removing the generation check of a
// taken run makes it fail within a second.) Runs for 2 s per helper count.
func TestReplayReadAheadNeverReturnsARecordACompletedCutReplaced(t *testing.T) {
	const N = 3000
	const size = 64
	for _, helpers := range []int{2, 1} {
		dir := t.TempDir()
		o := &Options{SegmentSize: MinSegmentSize, Sync: SyncNone, replayStride: 4, ReplayReadAhead: helpers, MaxMappedSegments: 2}
		w := mustOpen(t, dir, o)
		for s := uint64(1); s <= N; s++ {
			if _, err := w.Append(recV(s, 0, size)); err != nil {
				t.Fatal(err)
			}
		}
		var stop atomic.Bool
		var wg sync.WaitGroup
		var cuts atomic.Int64
		var cutAt [1 << 16]atomic.Uint64
		var done atomic.Int64
		var pos atomic.Uint64
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(helpers)))
			for v := 1; !stop.Load(); v++ {
				last := w.LastSeq()
				c := last - uint64(1+rng.Intn(600))
				if p := pos.Load(); p > 0 && rng.Intn(4) != 0 {
					c = min(p+uint64(rng.Intn(48)), last-1)
				}
				if v >= len(cutAt) {
					return
				}
				cutAt[v].Store(c)
				if err := w.TruncateBack(c); err != nil {
					t.Error(err)
					return
				}
				cuts.Add(1)
				done.Store(int64(v))
				for s := c + 1; s <= N; s++ {
					if _, err := w.Append(recV(s, v, size)); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
		deadline := time.Now().Add(2 * time.Second)
		replays, truncErrs, full := 0, 0, 0
		for time.Now().Before(deadline) && !t.Failed() {
			prev := -1
			var prevSeq uint64
			seen := done.Load()
			err := w.Replay(0, func(seq uint64, b []byte) error {
				v, ok := recVersion(b)
				if !ok || !bytes.Equal(b, recV(seq, v, size)) {
					return fmt.Errorf("seq %d: bad record %q", seq, b[:16])
				}
				for u := int64(v) + 1; u <= seen; u++ {
					if cutAt[u].Load() < seq {
						return fmt.Errorf("STALE: seq %d version %d returned after cut %d (version %d at %d) completed", seq, v, cutAt[u].Load(), u, seq)
					}
				}
				defer func() { seen = done.Load() }()
				pos.Store(seq)
				if v < prev {
					return fmt.Errorf("seq %d version %d after seq %d version %d", seq, v, prevSeq, prev)
				}
				prev, prevSeq = v, seq
				return nil
			})
			replays++
			switch {
			case err == nil:
				full++
			case errors.Is(err, ErrTruncated):
				truncErrs++
			default:
				t.Errorf("replay: %v", err)
			}
		}
		stop.Store(true)
		wg.Wait()
		t.Logf("helpers=%d replays=%d full=%d truncated=%d cuts=%d live=%d", helpers, replays, full, truncErrs, cuts.Load(), w.replayHelpersLive.Load())
		w.Close()
	}
}
