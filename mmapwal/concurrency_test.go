package mmapwal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestConcurrentModel runs goroutines calling every method at once (Append,
// AppendBatch, TruncateFront, TruncateBack, Read, ReadAppend, Readers,
// Replay, Sync, Stats, FirstSeq/LastSeq), then Close beside them, under every
// sync policy, and checks every returned record against a model. A watchdog
// fails the test with every goroutine's stack if a call runs for 30 s.
//
// The model. Every appended payload is a token (unique per append) followed
// by bytes derived from it, registered before the call; operations are
// stamped with a global logical clock at start and end. Then:
//
//  1. A record returned for seq s (by Read, ReadAppend, a Reader, Replay) is
//     exactly the payload of some append, and that append returned
//     successfully with seq s (records of a batch: first+i). No torn or mixed
//     bytes, no record at the wrong seq, none from a failed append.
//  2. Never a record cut before the read began: if TruncateBack(p) began
//     after the append of the returned record had returned (so the record
//     was in the log, and p < s cut it) and ended before the read began, the
//     read is wrong. Likewise a record below q after TruncateFront(q) ended,
//     and below the FirstSeq observed before the read (retention).
//  3. A Reader returns consecutive seqs; and after a TruncateBack(p) that
//     began after the Reader returned seq L > p and ended before a later
//     Next began, that Next returns false (ErrTruncated): it never continues
//     silently.
//  4. Appends, batches and Sync succeed while the log is open; TruncateBack
//     succeeds or returns ErrNotFound (a TruncateFront moved FirstSeq past
//     it); reads fail only with ErrNotFound (or ErrTruncated for Readers);
//     once Close has begun, anything may return ErrClosed, nothing else.
//  5. Quiescent (after the first phase) and after Close and reopen: every
//     seq in [FirstSeq, LastSeq] holds, by Read and by Replay, the payload
//     of an append that returned that seq and was not followed by another
//     append of the same seq that began after it returned (that one was
//     reserved after a TruncateBack cut the first).
func TestConcurrentModel(t *testing.T) {
	for _, p := range []SyncPolicy{SyncAlways, SyncPeriodic, SyncNone} {
		for _, maxSegs := range []int{0, 3} {
			t.Run(fmt.Sprintf("%v/MaxSegments=%d", p, maxSegs), func(t *testing.T) {
				cmRun(t, p, maxSegs, time.Duration(crashEnvInt("MMAPWAL_MODEL_MS", 300))*time.Millisecond)
			})
		}
	}
}

type cmAppend struct {
	seq        uint64 // seq of this record, once the append returned
	ok         bool
	start, end int64
}

type cmTrunc struct {
	back       bool
	at         uint64
	start, end int64
}

type cmObs struct {
	seq, token uint64
	start      int64 // clock when the read began
	what       string
}

type cmState struct {
	w       *WAL
	clk     atomic.Int64
	closing atomic.Int64 // clock when Close began (0: not yet)
	tokens  atomic.Uint64

	mu      sync.Mutex
	appends map[uint64]*cmAppend
	truncs  []cmTrunc
	obs     []cmObs
	bad     []string
	// readerCuts: Reader Next calls that returned a record, with the seq
	// and clock of the record the Reader returned before.
	readerNexts []cmReaderNext

	busy [16]atomic.Int64 // per worker: wall-clock start of its current call (0: idle)
}

type cmReaderNext struct {
	prevSeq uint64
	prevAt  int64 // clock after the previous Next returned
	start   int64 // clock when this Next began
	seq     uint64
}

func (c *cmState) now() int64 { return c.clk.Add(1) }

func (c *cmState) failf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.bad) < 50 {
		c.bad = append(c.bad, fmt.Sprintf(format, args...))
	}
}

func cmPayload(token uint64) []byte {
	n := 8 + int(token*2654435761%701)
	b := make([]byte, n)
	binary.LittleEndian.PutUint64(b, token)
	for i := 8; i < n; i++ {
		b[i] = byte(token>>(uint(i)%8*8)) ^ byte(i*7)
	}
	return b
}

// okAfterClose: err is acceptable if Close has begun.
func (c *cmState) closedOK(err error, start int64) bool {
	cs := c.closing.Load()
	return errors.Is(err, ErrClosed) && cs != 0
}

// seen checks a returned record's bytes at once and records it for the
// checks that need every append's result.
func (c *cmState) seen(what string, seq uint64, data []byte, start int64, minFirst uint64) {
	if len(data) < 8 {
		c.failf("%s: seq %d: %d bytes, no append wrote such a record", what, seq, len(data))
		return
	}
	token := binary.LittleEndian.Uint64(data)
	if !bytes.Equal(data, cmPayload(token)) {
		c.failf("%s: seq %d: bytes are not exactly the payload of token %x", what, seq, token)
		return
	}
	if minFirst != 0 && seq < minFirst {
		c.failf("%s: seq %d below FirstSeq %d observed before the read", what, seq, minFirst)
	}
	c.mu.Lock()
	c.obs = append(c.obs, cmObs{seq: seq, token: token, start: start, what: what})
	c.mu.Unlock()
}

func (c *cmState) register(tokens []uint64) []*cmAppend {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*cmAppend, len(tokens))
	for i, tk := range tokens {
		out[i] = &cmAppend{}
		c.appends[tk] = out[i]
	}
	return out
}

func cmRun(t *testing.T, policy SyncPolicy, maxSegs int, d time.Duration) {
	dir := t.TempDir()
	// One mapped sealed segment: reads, syncs and truncations map evicted
	// segments again beside the reaper and retention (mapcache.go).
	o := &Options{SegmentSize: MinSegmentSize, Sync: policy, SyncInterval: time.Millisecond, MaxSegments: maxSegs,
		MaxMappedSegments: 1,
		// Replays read ahead on two helpers in runs of 4 records, so that
		// even these small logs take that path beside every truncation.
		replayStride: 4, ReplayReadAhead: 2}
	w := mustOpen(t, dir, o)
	c := &cmState{w: w, appends: map[uint64]*cmAppend{}}

	// Phase 1: everything but Close; then the quiescent check.
	c.phase(t, d, false)
	c.verify(t)
	c.checkLog(t, w)

	// Phase 2: the same, with Close beside them.
	c.phase(t, d/2, true)
	c.verify(t)
	w2 := mustOpen(t, dir, o)
	c.checkLog(t, w2)
	require.NoError(t, w2.Close())
}

// phase runs the workers for about d; with close, Close is called halfway.
func (c *cmState) phase(t *testing.T, d time.Duration, withClose bool) {
	w := c.w
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var slot atomic.Int32
	worker := func(seed int64, body func(rng *rand.Rand, busy *atomic.Int64) bool) {
		wg.Add(1)
		busy := &c.busy[slot.Add(1)-1]
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(seed))
			for {
				select {
				case <-stop:
					return
				default:
				}
				busy.Store(time.Now().UnixNano())
				more := body(rng, busy)
				busy.Store(0)
				if !more {
					return
				}
			}
		}()
	}
	seed := time.Now().UnixNano()
	newToken := func(g int) uint64 { return uint64(g)<<40 | c.tokens.Add(1) }

	for g := 1; g <= 3; g++ { // appenders
		worker(seed+int64(g), func(rng *rand.Rand, _ *atomic.Int64) bool {
			n := 1
			if rng.Intn(4) == 0 {
				n = 1 + rng.Intn(5)
			}
			tokens := make([]uint64, n)
			recs := make([][]byte, n)
			for i := range tokens {
				tokens[i] = newToken(g)
				recs[i] = cmPayload(tokens[i])
			}
			as := c.register(tokens)
			start := c.now()
			var seq uint64
			var err error
			if n == 1 && rng.Intn(2) == 0 {
				seq, err = w.Append(recs[0])
			} else {
				seq, err = w.AppendBatch(recs)
			}
			end := c.now()
			c.mu.Lock()
			for i, a := range as {
				a.start, a.end = start, end
				if err == nil {
					a.seq, a.ok = seq+uint64(i), true
				}
			}
			c.mu.Unlock()
			if err != nil && !c.closedOK(err, start) {
				c.failf("append of %d records: %v", n, err)
			}
			return err == nil
		})
	}
	worker(seed+10, func(rng *rand.Rand, _ *atomic.Int64) bool { // truncations
		time.Sleep(time.Duration(rng.Intn(300)) * time.Microsecond)
		first, last := w.FirstSeq(), w.LastSeq()
		if last == 0 {
			return true
		}
		back := rng.Intn(3) != 0
		var at uint64
		if back {
			at = last - min(last-first+1, uint64(rng.Intn(30)))
		} else {
			at = first + uint64(rng.Intn(40))
			if rng.Intn(20) == 0 {
				at = last + 1 + uint64(rng.Intn(3)) // empty the log
			}
		}
		start := c.now()
		var err error
		if back {
			err = w.TruncateBack(at)
		} else {
			err = w.TruncateFront(at)
		}
		end := c.now()
		switch {
		case err == nil:
			c.mu.Lock()
			c.truncs = append(c.truncs, cmTrunc{back: back, at: at, start: start, end: end})
			c.mu.Unlock()
		case back && errors.Is(err, ErrNotFound):
		case c.closedOK(err, start):
			return false
		default:
			c.failf("truncate (back %v) at %d: %v", back, at, err)
		}
		return true
	})
	for g := 0; g < 2; g++ { // Read / ReadAppend
		worker(seed+20+int64(g), func(rng *rand.Rand, _ *atomic.Int64) bool {
			first, last := w.FirstSeq(), w.LastSeq()
			if last == 0 {
				runtime.Gosched()
				return true
			}
			seq := first + uint64(rng.Int63n(int64(last-first+2)))
			start := c.now()
			var b []byte
			var err error
			what := "Read"
			if g == 0 {
				b, err = w.Read(seq)
			} else {
				what = "ReadAppend"
				b, err = w.ReadAppend(make([]byte, 0, 16), seq)
			}
			switch {
			case err == nil:
				c.seen(what, seq, b, start, first)
			case errors.Is(err, ErrNotFound):
			case c.closedOK(err, start):
				return false
			default:
				c.failf("%s(%d): %v", what, seq, err)
			}
			return true
		})
	}
	worker(seed+30, func(rng *rand.Rand, busy *atomic.Int64) bool { // a follower
		start := c.now()
		r, err := w.NewReader(0)
		if err != nil {
			if !errors.Is(err, ErrNotFound) && !c.closedOK(err, start) {
				c.failf("NewReader: %v", err)
			}
			return !errors.Is(err, ErrClosed)
		}
		defer r.Close()
		var prevSeq uint64
		var prevAt int64
		for {
			select {
			case <-stop:
				return false
			default:
			}
			busy.Store(time.Now().UnixNano())
			first := w.FirstSeq()
			start := c.now()
			if !r.Next() {
				if err := r.Err(); err != nil {
					if !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrTruncated) && !c.closedOK(err, start) {
						c.failf("Reader: %v", err)
					}
					return !errors.Is(err, ErrClosed)
				}
				runtime.Gosched()
				continue
			}
			if prevAt != 0 && r.Seq() != prevSeq+1 {
				c.failf("Reader: seq %d after %d", r.Seq(), prevSeq)
			}
			c.seen("Reader", r.Seq(), r.Value(), start, first)
			if prevAt != 0 {
				c.mu.Lock()
				c.readerNexts = append(c.readerNexts, cmReaderNext{prevSeq: prevSeq, prevAt: prevAt, start: start, seq: r.Seq()})
				c.mu.Unlock()
			}
			prevSeq, prevAt = r.Seq(), c.now()
		}
	})
	worker(seed+40, func(rng *rand.Rand, _ *atomic.Int64) bool { // Replay, Sync, Stats, bounds
		start := c.now()
		first := w.FirstSeq()
		var err error
		switch rng.Intn(4) {
		case 0:
			err = w.Replay(0, func(seq uint64, data []byte) error {
				c.seen("Replay", seq, data, start, first)
				return nil
			})
			if errors.Is(err, ErrNotFound) || errors.Is(err, ErrTruncated) {
				err = nil
			}
		case 1:
			err = w.Sync()
		case 2:
			st := w.Stats()
			if st.LastSeq != 0 && st.FirstSeq > st.LastSeq {
				c.failf("Stats: FirstSeq %d > LastSeq %d", st.FirstSeq, st.LastSeq)
			}
			err = st.Failed
		default:
			// first only grows, and LastSeq is 0 or at least the first it sees.
			if f, l := w.FirstSeq(), w.LastSeq(); l != 0 && f > l {
				c.failf("FirstSeq %d > LastSeq %d", f, l)
			}
		}
		if err != nil && !c.closedOK(err, start) {
			c.failf("Replay/Sync/Stats: %v", err)
		}
		return !errors.Is(err, ErrClosed)
	})

	done := make(chan struct{})
	go func() {
		if withClose {
			time.Sleep(d / 2)
			c.closing.Store(c.now())
			if err := w.Close(); err != nil {
				c.failf("Close: %v", err)
			}
		}
		time.Sleep(d)
		close(stop)
		wg.Wait()
		close(done)
	}()
	const stuck = 30 * time.Second
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
			for i := range c.busy {
				if s := c.busy[i].Load(); s != 0 && time.Since(time.Unix(0, s)) > stuck {
					buf := make([]byte, 1<<22)
					buf = buf[:runtime.Stack(buf, true)]
					t.Fatalf("a call has run for more than %v:\n%s", stuck, buf)
				}
			}
		}
	}
}

// verify applies rules 1 to 3 to everything observed so far.
func (c *cmState) verify(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	bad := c.bad
	for _, o := range c.obs {
		a := c.appends[o.token]
		switch {
		case a == nil:
			bad = append(bad, fmt.Sprintf("%s: seq %d: token %x was never appended", o.what, o.seq, o.token))
			continue
		case !a.ok:
			bad = append(bad, fmt.Sprintf("%s: seq %d: record of a failed append", o.what, o.seq))
			continue
		case a.seq != o.seq:
			bad = append(bad, fmt.Sprintf("%s: seq %d holds the record appended as seq %d", o.what, o.seq, a.seq))
			continue
		}
		for _, x := range c.truncs {
			if x.end >= o.start {
				continue
			}
			if x.back && o.seq > x.at && a.end < x.start {
				bad = append(bad, fmt.Sprintf("%s: seq %d: record cut by TruncateBack(%d), which ended before the read began",
					o.what, o.seq, x.at))
			}
			if !x.back && o.seq < x.at {
				bad = append(bad, fmt.Sprintf("%s: seq %d: dropped by TruncateFront(%d), which ended before the read began",
					o.what, o.seq, x.at))
			}
		}
		if len(bad) > 50 {
			break
		}
	}
	for _, n := range c.readerNexts {
		for _, x := range c.truncs {
			if x.back && x.at < n.prevSeq && x.start > n.prevAt && x.end < n.start {
				bad = append(bad, fmt.Sprintf("Reader: returned seq %d after TruncateBack(%d) cut seq %d it had returned",
					n.seq, x.at, n.prevSeq))
			}
		}
	}
	nt := 0
	for _, x := range c.truncs {
		if x.back {
			nt++
		}
	}
	t.Logf("checked %d records read, %d Reader steps; %d appends, %d TruncateBack, %d TruncateFront so far",
		len(c.obs), len(c.readerNexts), len(c.appends), nt, len(c.truncs)-nt)
	c.obs, c.readerNexts = c.obs[:0], c.readerNexts[:0]
	if len(bad) > 0 {
		t.Fatalf("%d violations, first: %s", len(bad), bad[:min(len(bad), 20)])
	}
}

// checkLog applies rule 5 to a quiescent log. Which append returned a seq
// last is known from the clock only when their calls did not overlap: an
// append that began after another returned was reserved after it. A seq may
// hold any append not followed in that sense by another of the same seq.
func (c *cmState) checkLog(t *testing.T, w *WAL) {
	t.Helper()
	c.mu.Lock()
	maxStart := map[uint64]int64{}
	for _, a := range c.appends {
		if a.ok && a.start > maxStart[a.seq] {
			maxStart[a.seq] = a.start
		}
	}
	live := map[uint64]map[uint64]bool{} // seq -> tokens it may hold
	for tk, a := range c.appends {
		if a.ok && a.end >= maxStart[a.seq] {
			if live[a.seq] == nil {
				live[a.seq] = map[uint64]bool{}
			}
			live[a.seq][tk] = true
		}
	}
	c.mu.Unlock()
	holds := func(seq uint64, b []byte) bool {
		return len(b) >= 8 && live[seq][binary.LittleEndian.Uint64(b)] && bytes.Equal(b, cmPayload(binary.LittleEndian.Uint64(b)))
	}
	first, last := w.FirstSeq(), w.LastSeq()
	if last == 0 {
		return
	}
	// MaxSegments retention runs in the background (the flusher handles the
	// last rotation's kick whenever it gets to it), so FirstSeq may still
	// move forward during this check; nothing else changes the log now.
	for s := first; s <= last; s++ {
		require.NotEmpty(t, live[s], "seq %d in [%d, %d] was never appended", s, first, last)
		b, err := w.Read(s)
		if errors.Is(err, ErrNotFound) && s < w.FirstSeq() {
			continue // dropped by retention meanwhile
		}
		require.NoError(t, err, "Read(%d)", s)
		require.True(t, holds(s, b), "Read(%d): not the last record appended at that seq", s)
	}
	next := uint64(0)
	require.NoError(t, w.Replay(0, func(seq uint64, b []byte) error {
		if next == 0 {
			if seq < first {
				return fmt.Errorf("Replay: starts at seq %d, before FirstSeq %d", seq, first)
			}
			next = seq // FirstSeq at the Replay call (retention may have moved it)
		}
		if seq != next || !holds(seq, b) {
			return fmt.Errorf("Replay: seq %d (want %d) wrong", seq, next)
		}
		next++
		return nil
	}))
	require.Equal(t, last+1, next, "Replay stopped early")
}
