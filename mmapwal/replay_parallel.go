package mmapwal

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Replay with read-ahead on other cores.
//
// A replay is bounded by the copy and CRC check of each frame (about 90% of
// its time), work that does not depend on the caller: helper goroutines do
// it for the runs ahead of the caller while the caller's goroutine calls fn
// for the run before. The records from the replay's first seq on are cut
// into runs of stride records (run k starts at base+k*stride; a run also
// ends at its segment's end). Each run has a slot in a ring of
// preSlotsPerGoroutine slots per goroutine (helpers and the caller);
// whoever claims run k's slot first fills it: a helper, taking the next run
// in turn, or the caller on reaching run k unclaimed. So the caller never
// waits for a helper to be scheduled (a wake-up costs tens of µs on a busy
// VM, more than a run's fill): it waits only for a run a helper is filling
// now, and fills the next unclaimed run meanwhile (helpOne).
//
// A run a helper filled is the Reader's own fill done earlier: the helper
// loads truncGen before it reads, as a Reader's gen check precedes its
// fill, and the Reader takes the run only under that same gen. So Next's
// checks (truncation, retention, the published bound) apply to it
// unchanged, and every frame in it was checked (seq and CRC) in the copy.
// A run that cannot be taken (another gen, nothing read) is read again by
// the Reader itself, the careful path reporting any error.
//
// Memory: the ring's runs, each of at most runBytes (a record larger than
// that is never read ahead: the Reader reads it itself when it gets there).
// Goroutines: helpers, stopped and waited for before Replay returns.

const (
	// runBytes bounds a read-ahead run's copy: 512 records up to 2 KiB
	// fit; larger records make shorter runs, the rest read by the caller.
	runBytes = 1 << 20
	// preSlotsPerGoroutine sizes the ring of runs: enough that a helper
	// rarely finds the next run's slot still in use and parks (its wake-up
	// costs more than a run's fill on a busy VM).
	preSlotsPerGoroutine = 4
	// maxReplayHelpers bounds the helpers one Replay starts by default.
	maxReplayHelpers = 3
)

// Slot states, in the low bits of a slot's word; the run index is above.
const (
	slotFree    = iota // empty, for the run in the word
	slotClaimed        // being filled (by a helper), or the caller's
	slotReady          // filled by a helper
	slotBits    = 2
)

// slotWord is the word of a slot holding run k in state st.
func slotWord(k, st uint64) uint64 { return k<<slotBits | st }

type preSlot struct {
	word atomic.Uint64 // run<<slotBits | state
	gen  uint64        // truncGen loaded before the fill
	r    Reader        // buf, starts, ends, hint: the run
	_    [64]byte      // no false sharing between slots' words
}

// prefetch is the read-ahead of one Replay.
type prefetch struct {
	w         *WAL
	base      uint64 // first seq of run 0
	stride    uint64
	runs      uint64 // runs 0..runs-1 start at or before the replay's last seq
	slots     []preSlot
	nextClaim atomic.Uint64 // the next run a helper tries to claim
	space     chan struct{} // a slot was freed
	stop      chan struct{}
	wg        sync.WaitGroup
	stopped   bool
}

// replayHelpers returns how many helpers a replay of n records gets.
func (w *WAL) replayHelpers(n uint64) int {
	h := w.opts.ReplayReadAhead
	if h < 0 || w.ro != nil || n < 4*w.replayStride() {
		return 0
	}
	if h == 0 {
		h = min(runtime.GOMAXPROCS(0)-1, maxReplayHelpers)
	}
	return max(h, 0)
}

func (w *WAL) replayStride() uint64 {
	if s := w.opts.replayStride; s > 0 {
		return uint64(s)
	}
	return readAheadRecords
}

// startPrefetch starts helpers reading the runs of [base, last] ahead.
func (w *WAL) startPrefetch(base, last uint64, helpers int) *prefetch {
	stride := w.replayStride()
	p := &prefetch{w: w, base: base, stride: stride, runs: (last-base)/stride + 1,
		slots: make([]preSlot, preSlotsPerGoroutine*(helpers+1)), space: make(chan struct{}, helpers), stop: make(chan struct{})}
	for j := range p.slots {
		p.slots[j].word.Store(slotWord(uint64(j), slotFree))
	}
	p.nextClaim.Store(1) // run 0: the caller is there now
	for range helpers {
		p.wg.Add(1)
		w.replayHelpersLive.Add(1)
		go p.help()
	}
	return p
}

func (p *prefetch) slot(k uint64) *preSlot { return &p.slots[k%uint64(len(p.slots))] }

// help claims and fills runs ahead of the caller until none is left.
func (p *prefetch) help() {
	defer p.wg.Done()
	defer p.w.replayHelpersLive.Add(-1)
	for {
		select {
		case <-p.stop: // Replay is returning: claim nothing more
			return
		default:
		}
		k := p.nextClaim.Add(1) - 1
		if k >= p.runs {
			return
		}
		s := p.slot(k)
		free := slotWord(k, slotFree)
		// Wait for the caller to release the slot's previous run (k-len).
		for s.word.Load() < free {
			select {
			case <-p.space:
			case <-p.stop:
				return
			}
		}
		if s.word.CompareAndSwap(free, slotWord(k, slotClaimed)) {
			p.fill(k, s)
		} // else the caller got there first
	}
}

// fill reads run k into its claimed slot s and marks it ready.
func (p *prefetch) fill(k uint64, s *preSlot) {
	w := p.w
	start := p.base + k*p.stride
	s.gen = w.truncGen.Load() // before the read, as Next's check
	s.r.w, s.r.next, s.r.hint = w, start, readHint{}
	s.r.dropRun()
	if !w.readRunTo(&s.r, start+p.stride, runBytes, false) {
		s.r.dropRun() // the caller reads it itself
	}
	s.word.Store(slotWord(k, slotReady))
}

// helpOne is the caller's turn at a helper's work while a helper fills the
// run it needs: it fills the next unclaimed run if that run's slot is free
// now (it never waits for a slot: only the caller frees them). It returns
// false if there was nothing to do.
func (p *prefetch) helpOne() bool {
	k := p.nextClaim.Load()
	if k >= p.runs {
		return false
	}
	s := p.slot(k)
	free := slotWord(k, slotFree)
	if s.word.Load() != free || !p.nextClaim.CompareAndSwap(k, k+1) {
		return false
	}
	if s.word.CompareAndSwap(free, slotWord(k, slotClaimed)) {
		p.fill(k, s)
	}
	return true
}

// take gives r the run that starts at r.next if a helper filled it under
// r's gen, and returns where r's own read must stop otherwise (the next
// run's start): off a run boundary (after a short run), for a run nobody
// claimed yet (now the caller's), or for a run filled under another gen.
func (p *prefetch) take(r *Reader) (ok bool, stop uint64) {
	d := r.next - p.base
	k := d / p.stride
	stop = p.base + (k+1)*p.stride
	if d%p.stride != 0 || k >= p.runs {
		return false, stop
	}
	s := p.slot(k)
	for {
		switch word := s.word.Load(); {
		case word == slotWord(k, slotFree):
			if !s.word.CompareAndSwap(word, slotWord(k, slotClaimed)) {
				continue // a helper claimed it meanwhile
			}
			p.release(k, s)
			return false, stop
		case word == slotWord(k, slotReady):
			ok = s.gen == r.gen && len(s.r.ends) > 0
			if ok {
				// Swap buffers: r gets the run, the slot r's old buffers.
				r.buf, s.r.buf = s.r.buf, r.buf
				r.starts, s.r.starts = s.r.starts, r.starts
				r.ends, s.r.ends = s.r.ends, r.ends
				r.i, r.hint = 0, s.r.hint
			}
			p.release(k, s)
			return ok, stop
		case word == slotWord(k, slotClaimed):
			// A helper is filling it: fill one ahead meanwhile, or yield.
			if !p.helpOne() {
				runtime.Gosched()
			}
		default:
			// Already released: r is at run k again (it read part of the
			// run, then a truncation made it read again). Read it itself.
			return false, stop
		}
	}
}

// release frees run k's slot for run k+len(slots), and wakes a helper.
func (p *prefetch) release(k uint64, s *preSlot) {
	s.r.dropRun()
	if cap(s.r.buf) > runBytes {
		s.r.buf = nil // the Reader's buffer of a record larger than a run: do not keep it
	}
	s.word.Store(slotWord(k+uint64(len(p.slots)), slotFree))
	select {
	case p.space <- struct{}{}:
	default:
	}
}

// close stops the helpers and waits for them.
func (p *prefetch) close() {
	if p.stopped {
		return
	}
	p.stopped = true
	close(p.stop)
	p.wg.Wait()
}
