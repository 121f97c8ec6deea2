package mmapwal

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// waitResult runs r.Wait(ctx) in a goroutine and returns its result channel.
func waitResult(r *Reader, ctx context.Context) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- r.Wait(ctx) }()
	return ch
}

// within fails the test if nothing arrives on ch for a long time (a hang,
// not a timing assertion: every wait here is woken by an event).
func within(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Wait did not return")
		return nil
	}
}

func TestReaderWait_ReturnsAtOnceWhenRecordsAreThere(t *testing.T) {
	w := mustOpen(t, t.TempDir(), smallOpts(SyncNone))
	defer w.Close()
	_, err := w.Append(rec(1, 10))
	require.NoError(t, err)
	r, err := w.NewReader(0)
	require.NoError(t, err)
	require.NoError(t, r.Wait(context.Background()))
	require.True(t, r.Next())
	assert.Equal(t, uint64(1), r.Seq())
	// Wait does not advance: after a Next that read ahead, Wait still sees
	// the record Next will return.
	_, err = w.AppendBatch([][]byte{rec(2, 10), rec(3, 10)})
	require.NoError(t, err)
	require.NoError(t, r.Wait(context.Background()))
	require.True(t, r.Next())
	require.NoError(t, r.Wait(context.Background()))
	require.True(t, r.Next())
	assert.Equal(t, uint64(3), r.Seq())
}

func TestReaderWait_BlocksUntilAnAppend(t *testing.T) {
	for _, p := range allPolicies {
		t.Run(p.String(), func(t *testing.T) {
			w := mustOpen(t, t.TempDir(), smallOpts(p))
			defer w.Close()
			r, err := w.NewReader(w.LastSeq() + 1)
			require.NoError(t, err)
			require.False(t, r.Next())
			ch := waitResult(r, context.Background())
			seq, err := w.Append(rec(1, 100))
			require.NoError(t, err)
			require.NoError(t, within(t, ch))
			require.True(t, r.Next())
			assert.Equal(t, seq, r.Seq())
			assert.Equal(t, rec(1, 100), r.Value())
		})
	}
}

// With nothing appended, Wait can only end by its context: it never
// returns nil without a record.
func TestReaderWait_ReturnsContextErrorWithoutRecords(t *testing.T) {
	w := mustOpen(t, t.TempDir(), smallOpts(SyncNone))
	defer w.Close()
	r, err := w.NewReader(0)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	ch := waitResult(r, ctx)
	cancel()
	assert.ErrorIs(t, within(t, ch), context.Canceled)
	ctx, cancel = context.WithDeadline(context.Background(), time.Now())
	defer cancel()
	assert.ErrorIs(t, r.Wait(ctx), context.DeadlineExceeded)
}

func TestReaderWait_ReturnsErrClosedWhenTheWALCloses(t *testing.T) {
	w := mustOpen(t, t.TempDir(), smallOpts(SyncAlways))
	r, err := w.NewReader(0)
	require.NoError(t, err)
	ch := waitResult(r, context.Background())
	require.NoError(t, w.Close())
	assert.ErrorIs(t, within(t, ch), ErrClosed)
	assert.ErrorIs(t, r.Wait(context.Background()), ErrClosed)
}

func TestReaderWait_ReturnsErrTruncatedWhenReturnedRecordsAreCut(t *testing.T) {
	w := mustOpen(t, t.TempDir(), smallOpts(SyncNone))
	defer w.Close()
	for i := uint64(1); i <= 5; i++ {
		_, err := w.Append(rec(i, 10))
		require.NoError(t, err)
	}
	r, err := w.NewReader(0)
	require.NoError(t, err)
	for r.Next() {
	}
	require.NoError(t, r.Err())
	ch := waitResult(r, context.Background())
	require.NoError(t, w.TruncateBack(3)) // records 4 and 5, already returned, are gone
	err = within(t, ch)
	require.ErrorIs(t, err, ErrTruncated)
	assert.False(t, r.Next())
	assert.ErrorIs(t, r.Err(), ErrTruncated)
}

func TestReaderWait_ReturnsErrNotFoundWhenTruncateFrontPassesIt(t *testing.T) {
	w := mustOpen(t, t.TempDir(), smallOpts(SyncNone))
	defer w.Close()
	for i := uint64(1); i <= 5; i++ {
		_, err := w.Append(rec(i, 10))
		require.NoError(t, err)
	}
	r, err := w.NewReader(0)
	require.NoError(t, err)
	for r.Next() {
	}
	ch := waitResult(r, context.Background())
	require.NoError(t, w.TruncateFront(10)) // empties the log past the Reader
	require.ErrorIs(t, within(t, ch), ErrNotFound)
}

// Any number of followers see every record in order, each exactly once,
// with its exact bytes, while an appender writes single records and batches.
func TestReaderWait_FollowersSeeEveryRecordOnceInOrder(t *testing.T) {
	for _, p := range allPolicies {
		t.Run(p.String(), func(t *testing.T) {
			w := mustOpen(t, t.TempDir(), smallOpts(p))
			defer w.Close()
			const n, followers = 2000, 8
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			got := make([][]uint64, followers)
			errs := make(chan error, followers)
			var wg sync.WaitGroup
			for f := 0; f < followers; f++ {
				r, err := w.NewReader(w.LastSeq() + 1)
				require.NoError(t, err)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for len(got[f]) < n {
						if err := r.Wait(ctx); err != nil {
							errs <- err
							return
						}
						for r.Next() {
							if string(r.Value()) != string(rec(r.Seq(), int(r.Seq()%300))) {
								errs <- errors.New("wrong bytes")
								return
							}
							got[f] = append(got[f], r.Seq())
						}
						if r.Err() != nil {
							errs <- r.Err()
							return
						}
					}
				}()
			}
			for seq := uint64(1); seq <= n; {
				if seq%7 == 0 && seq+3 <= n {
					_, err := w.AppendBatch([][]byte{rec(seq, int(seq%300)), rec(seq+1, int((seq+1)%300)), rec(seq+2, int((seq+2)%300))})
					require.NoError(t, err)
					seq += 3
					continue
				}
				_, err := w.Append(rec(seq, int(seq%300)))
				require.NoError(t, err)
				seq++
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				t.Fatal("followers did not finish")
			}
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			for f := range got {
				require.Len(t, got[f], n, "follower %d", f)
				for i, s := range got[f] {
					require.Equal(t, uint64(i+1), s, "follower %d", f)
				}
			}
		})
	}
}

func TestReaderAll(t *testing.T) {
	w := mustOpen(t, t.TempDir(), smallOpts(SyncNone))
	defer w.Close()
	for i := uint64(1); i <= 100; i++ {
		_, err := w.Append(rec(i, int(i)))
		require.NoError(t, err)
	}
	r, err := w.NewReader(10)
	require.NoError(t, err)
	want := uint64(10)
	for seq, v := range r.All() {
		require.Equal(t, want, seq)
		require.Equal(t, rec(seq, int(seq)), v)
		want++
		if seq == 50 {
			break
		}
	}
	require.NoError(t, r.Err())
	// The Reader continues where the loop stopped.
	for seq := range r.All() {
		require.Equal(t, want, seq)
		want++
	}
	require.NoError(t, r.Err())
	assert.Equal(t, uint64(101), want)
	require.NoError(t, r.Close())
	for range r.All() {
		t.Fatal("a closed Reader yields nothing")
	}
	assert.ErrorIs(t, r.Err(), ErrClosed)
}

// BenchmarkFollowerLatency measures delivery: from Append returning to a
// follower's Next returning the record, for 1 and 64 followers waiting in
// Wait (SyncNone, so no sync is counted). The appender waits until every
// follower has the record before it appends the next, so this is the
// wake-up latency, not a backlog. Reported as p50/p99 in µs.
func BenchmarkFollowerLatency(b *testing.B) {
	for _, followers := range []int{1, 64} {
		b.Run("followers="+strconv.Itoa(followers), func(b *testing.B) {
			w, err := Open(b.TempDir(), &Options{Sync: SyncNone})
			require.NoError(b, err)
			defer w.Close()
			n := b.N
			start := time.Now()
			appended := make([]atomic.Int64, n+1) // by seq: when Append returned
			seen := make([][]int64, followers)    // by follower, by seq-1: when Next returned it
			var got atomic.Int64                  // deliveries so far
			var wg sync.WaitGroup
			for f := 0; f < followers; f++ {
				r, err := w.NewReader(w.LastSeq() + 1)
				require.NoError(b, err)
				seen[f] = make([]int64, 0, n)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for len(seen[f]) < n && r.Wait(context.Background()) == nil {
						for r.Next() {
							seen[f] = append(seen[f], int64(time.Since(start)))
							got.Add(1)
						}
					}
				}()
			}
			b.ResetTimer()
			var payload [64]byte
			for i := 1; i <= n; i++ {
				seq, err := w.Append(payload[:])
				if err != nil {
					b.Fatal(err)
				}
				appended[seq].Store(int64(time.Since(start)))
				for got.Load() < int64(i*followers) {
					runtime.Gosched()
				}
			}
			wg.Wait()
			b.StopTimer()
			var lat []int64
			for f := range seen {
				for i, t := range seen[f] {
					lat = append(lat, max(0, t-appended[i+1].Load()))
				}
			}
			slices.Sort(lat)
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2])/1e3, "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100])/1e3, "p99-µs")
			}
		})
	}
}
