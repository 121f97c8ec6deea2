package mmapwal

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recV is a checkable record of a given version: after a TruncateBack the
// same seq is rewritten with another version, so a stale read shows.
func recV(seq uint64, v, size int) []byte {
	b := rec(seq, size)
	copy(b, fmt.Sprintf("v%d:", v))
	return b
}

func appendN(t *testing.T, w *WAL, from uint64, n, v, size int) {
	t.Helper()
	for i := 0; i < n; i++ {
		seq, err := w.Append(recV(from+uint64(i), v, size))
		require.NoError(t, err)
		require.Equal(t, from+uint64(i), seq)
	}
}

// readerAt returns a Reader that has returned records from..upto (checked
// against version v) and has read ahead beyond.
func readerAt(t *testing.T, w *WAL, from, upto uint64, v, size int) *Reader {
	t.Helper()
	r, err := w.NewReader(from)
	require.NoError(t, err)
	for s := from; s <= upto; s++ {
		require.True(t, r.Next(), "Next at %d: %v", s, r.Err())
		require.Equal(t, s, r.Seq())
		require.Equal(t, recV(s, v, size), r.Value())
	}
	require.Greater(t, len(r.ends), r.i, "the Reader should have read ahead")
	return r
}

func TestReader_TruncateBackBelowReturnedRecord_StopsWithErrTruncated(t *testing.T) {
	for _, p := range []SyncPolicy{SyncAlways, SyncPeriodic, SyncNone} {
		t.Run(p.String(), func(t *testing.T) {
			w := mustOpen(t, t.TempDir(), smallOpts(p))
			defer w.Close()
			appendN(t, w, 1, 100, 1, 50)
			r := readerAt(t, w, 1, 40, 1, 50)
			require.NoError(t, w.TruncateBack(30))
			appendN(t, w, 31, 70, 2, 50) // the same seqs again, other bytes
			assert.False(t, r.Next(), "Next after its records 31..40 were replaced returned seq %d", r.Seq())
			assert.ErrorIs(t, r.Err(), ErrTruncated)
			assert.False(t, r.Next(), "Next after ErrTruncated")
			assert.ErrorIs(t, r.Err(), ErrTruncated)
		})
	}
}

func TestReader_TruncateBackWithoutNewAppends_StopsWithErrTruncated(t *testing.T) {
	w := mustOpen(t, t.TempDir(), smallOpts(SyncNone))
	defer w.Close()
	appendN(t, w, 1, 100, 1, 50)
	r := readerAt(t, w, 1, 40, 1, 50)
	require.NoError(t, w.TruncateBack(39))
	assert.False(t, r.Next())
	assert.ErrorIs(t, r.Err(), ErrTruncated)
}

func TestReader_TruncateBackAtItsPosition_Continues(t *testing.T) {
	w := mustOpen(t, t.TempDir(), smallOpts(SyncNone))
	defer w.Close()
	appendN(t, w, 1, 100, 1, 50)
	r := readerAt(t, w, 1, 40, 1, 50)
	require.NoError(t, w.TruncateBack(40)) // keeps every record the Reader returned
	assert.False(t, r.Next(), "at the new end")
	require.NoError(t, r.Err())
	appendN(t, w, 41, 60, 2, 50)
	for s := uint64(41); s <= 100; s++ {
		require.True(t, r.Next(), "Next at %d: %v", s, r.Err())
		require.Equal(t, s, r.Seq())
		require.Equal(t, recV(s, 2, 50), r.Value(), "seq %d: a record read ahead before the truncation", s)
	}
	assert.False(t, r.Next())
	assert.NoError(t, r.Err())
}

func TestReader_TruncateBackAheadOfIt_ReturnsOnlyKeptThenNew(t *testing.T) {
	w := mustOpen(t, t.TempDir(), smallOpts(SyncNone))
	defer w.Close()
	appendN(t, w, 1, 100, 1, 50)
	r := readerAt(t, w, 1, 40, 1, 50)
	require.NoError(t, w.TruncateBack(45))
	appendN(t, w, 46, 55, 2, 50)
	for s := uint64(41); s <= 100; s++ {
		v := 1
		if s > 45 {
			v = 2
		}
		require.True(t, r.Next(), "Next at %d: %v", s, r.Err())
		require.Equal(t, recV(s, v, 50), r.Value(), "seq %d", s)
	}
}

func TestReader_AtTailBeyondTruncation_StopsWithErrTruncated(t *testing.T) {
	// A follower waiting at LastSeq+1 knew the log went that far.
	w := mustOpen(t, t.TempDir(), smallOpts(SyncNone))
	defer w.Close()
	appendN(t, w, 1, 50, 1, 50)
	r, err := w.NewReader(51)
	require.NoError(t, err)
	require.False(t, r.Next())
	require.NoError(t, w.TruncateBack(20))
	appendN(t, w, 21, 40, 2, 50)
	assert.False(t, r.Next(), "returned seq %d", r.Seq())
	assert.ErrorIs(t, r.Err(), ErrTruncated)
}

func TestReader_TruncateFrontPastPosition_StopsWithErrNotFound(t *testing.T) {
	w := mustOpen(t, t.TempDir(), smallOpts(SyncNone))
	defer w.Close()
	appendN(t, w, 1, 100, 1, 50)
	r := readerAt(t, w, 1, 10, 1, 50)
	require.NoError(t, w.TruncateFront(30))
	assert.False(t, r.Next(), "returned seq %d, before FirstSeq %d", r.Seq(), w.FirstSeq())
	assert.ErrorIs(t, r.Err(), ErrNotFound)
	_, err := w.Read(11)
	assert.ErrorIs(t, err, ErrNotFound, "Read agrees")
}

func TestReader_TruncateFrontBehindPosition_Continues(t *testing.T) {
	w := mustOpen(t, t.TempDir(), smallOpts(SyncNone))
	defer w.Close()
	appendN(t, w, 1, 100, 1, 50)
	r := readerAt(t, w, 1, 10, 1, 50)
	require.NoError(t, w.TruncateFront(11))
	for s := uint64(11); s <= 100; s++ {
		require.True(t, r.Next(), "Next at %d: %v", s, r.Err())
		require.Equal(t, recV(s, 1, 50), r.Value())
	}
}

func TestReader_RetentionDeletedReadAhead_StopsWithErrNotFound(t *testing.T) {
	o := smallOpts(SyncAlways)
	o.MaxSegments = 2
	w := mustOpen(t, t.TempDir(), o)
	defer w.Close()
	appendN(t, w, 1, 100, 1, 100) // about a quarter of the first segment
	r := readerAt(t, w, 1, 1, 1, 100)
	// Fill segments until retention drops the first one.
	next := uint64(101)
	deadline := time.Now().Add(30 * time.Second)
	for w.FirstSeq() <= 2 {
		require.True(t, time.Now().Before(deadline), "retention never dropped the first segment")
		appendN(t, w, next, 50, 1, 100)
		next += 50
	}
	_, err := w.Read(2)
	require.ErrorIs(t, err, ErrNotFound)
	assert.False(t, r.Next(), "the Reader returned seq %d that retention deleted (FirstSeq %d)", r.Seq(), w.FirstSeq())
	assert.ErrorIs(t, r.Err(), ErrNotFound)
}

func TestReplay_AfterTruncateBack_ReturnsNewRecords(t *testing.T) {
	w := mustOpen(t, t.TempDir(), smallOpts(SyncNone))
	defer w.Close()
	appendN(t, w, 1, 100, 1, 50)
	require.NoError(t, w.TruncateBack(60))
	appendN(t, w, 61, 40, 2, 50)
	var n uint64
	require.NoError(t, w.Replay(0, func(seq uint64, b []byte) error {
		n++
		v := 1
		if seq > 60 {
			v = 2
		}
		if !bytes.Equal(recV(seq, v, 50), b) {
			return fmt.Errorf("seq %d: wrong bytes %q", seq, b[:8])
		}
		return nil
	}))
	assert.Equal(t, uint64(100), n)
}

// runWithDeadline runs fn and returns its errors, or fails the test with
// every goroutine's stack if fn does not return within d. fn must not use t:
// after a timeout it keeps running, stuck.
func runWithDeadline(t *testing.T, d time.Duration, fn func() []error) []error {
	t.Helper()
	done := make(chan []error, 1)
	go func() { done <- fn() }()
	select {
	case errs := <-done:
		return errs
	case <-time.After(d):
		buf := make([]byte, 1<<22)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("calls still running after %v:\n%s", d, buf)
		return nil
	}
}

func TestAppendRacingTruncateBack_EveryCallReturns(t *testing.T) {
	for _, p := range []SyncPolicy{SyncAlways, SyncPeriodic, SyncNone} {
		t.Run(p.String(), func(t *testing.T) {
			o := smallOpts(p)
			o.SyncInterval = time.Millisecond
			w := mustOpen(t, t.TempDir(), o)
			errs := runWithDeadline(t, 60*time.Second, func() []error {
				var wg sync.WaitGroup
				stop := make(chan struct{})
				var mu sync.Mutex
				var errs []error
				for g := 0; g < 6; g++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := 0; ; i++ {
							select {
							case <-stop:
								return
							default:
							}
							var err error
							if i%3 == 0 {
								_, err = w.AppendBatch([][]byte{rec(1, 40), rec(2, 40)})
							} else {
								_, err = w.Append(rec(uint64(i), 40))
							}
							if err != nil {
								mu.Lock()
								errs = append(errs, err)
								mu.Unlock()
							}
						}
					}()
				}
				for i := 0; i < 200; i++ {
					if last := w.LastSeq(); last > 3 {
						if err := w.TruncateBack(last - 3); err != nil {
							mu.Lock()
							errs = append(errs, err)
							mu.Unlock()
						}
					}
					runtime.Gosched()
				}
				close(stop)
				wg.Wait()
				return errs
			})
			assert.Empty(t, errs)
			require.NoError(t, w.Close())
		})
	}
}

func TestSyncBesideTruncateBack_ReturnsNil(t *testing.T) {
	for _, p := range []SyncPolicy{SyncAlways, SyncPeriodic, SyncNone} {
		t.Run(p.String(), func(t *testing.T) {
			o := smallOpts(p)
			o.SyncInterval = time.Millisecond
			w := mustOpen(t, t.TempDir(), o)
			errs := runWithDeadline(t, 60*time.Second, func() []error {
				var wg sync.WaitGroup
				stop := make(chan struct{})
				var mu sync.Mutex
				var errs []error
				note := func(err error) {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
				for g := 0; g < 4; g++ {
					wg.Add(1)
					go func(g int) {
						defer wg.Done()
						for i := 0; ; i++ {
							select {
							case <-stop:
								return
							default:
							}
							if g%2 == 0 {
								if _, err := w.Append(rec(uint64(i), 40)); err != nil {
									note(err)
								}
							} else if err := w.Sync(); err != nil {
								note(err)
							}
						}
					}(g)
				}
				for i := 0; i < 300; i++ {
					if last := w.LastSeq(); last > 3 {
						if err := w.TruncateBack(last - 2); err != nil {
							note(err)
						}
					}
					runtime.Gosched()
				}
				close(stop)
				wg.Wait()
				return errs
			})
			assert.Empty(t, errs)
			assert.NoError(t, w.Sync())
			assert.Equal(t, w.LastSeq(), w.Stats().SyncedSeq, "Sync made everything that remains durable")
			require.NoError(t, w.Close())
		})
	}
}

// failDirHooks fails the next n directory syncs as opening the directory
// would with too many open files.
type failDirHooks struct {
	durability
	mu    sync.Mutex
	n     int
	calls int
}

func (h *failDirHooks) syncDir(dir string) error {
	h.mu.Lock()
	h.calls++
	fail := h.n > 0
	if fail {
		h.n--
	}
	h.mu.Unlock()
	if fail {
		return &os.PathError{Op: "open", Path: dir, Err: syscall.EMFILE}
	}
	return h.durability.syncDir(dir)
}

func (h *failDirHooks) failNext(n int) {
	h.mu.Lock()
	h.n = n
	h.mu.Unlock()
}

func TestSyncDirEMFILE_IsNotSticky(t *testing.T) {
	h := &failDirHooks{durability: osDurability{}}
	o := smallOpts(SyncNone)
	o.hooks = h
	w := mustOpen(t, t.TempDir(), o)
	m := newModel(1)
	m.fill(t, w, 20, 100)
	h.failNext(1)
	err := w.Sync()
	require.ErrorIs(t, err, syscall.EMFILE)
	require.NoError(t, w.Stats().Failed, "a failure to open the directory lost nothing: not sticky")
	require.NoError(t, w.Sync())
	assert.Equal(t, uint64(20), w.Stats().SyncedSeq)
	m.fill(t, w, 5, 100)
	m.check(t, w)
	require.NoError(t, w.Close())
}

func TestSyncSegmentEIO_StaysSticky(t *testing.T) {
	// Counterpart: an fsync/msync error may mean lost pages, so it stays.
	h := &eioSegmentHooks{durability: osDurability{}}
	o := smallOpts(SyncNone)
	o.hooks = h
	w := mustOpen(t, t.TempDir(), o)
	m := newModel(1)
	m.fill(t, w, 700, 100) // crosses a segment: the sealed one's index is synced
	h.fail.Store(true)
	err := w.Sync()
	require.ErrorIs(t, err, syscall.EIO)
	h.fail.Store(false)
	assert.ErrorIs(t, w.Sync(), syscall.EIO, "sticky")
	assert.ErrorIs(t, w.Close(), syscall.EIO)
	assert.ErrorIs(t, w.Close(), ErrClosed)
}

type eioSegmentHooks struct {
	durability
	fail atomic.Bool
}

func (h *eioSegmentHooks) syncSegment(s *segment, off, n int64) error {
	if h.fail.Load() {
		return syscall.EIO
	}
	return h.durability.syncSegment(s, off, n)
}
