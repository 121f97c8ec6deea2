package mmapwal

import (
	"context"
	"iter"
	"sync"
	"sync/atomic"
)

// Followers: a Reader at the tail waits in Wait for the next publication.
//
// The append path pays one atomic load for this when nobody waits: publish
// checks n after advancing the watermark, and only when a follower is
// registered does it take mu and close the current channel. A follower
// registers (n.Add) before it takes the channel and before it checks the
// watermark; a publisher advances the watermark before it loads n. Both are
// sequentially consistent atomics in opposite order, so either the
// publisher sees the follower and closes the channel the follower holds (or
// an older one, after which the follower's check sees the new watermark), or
// the follower's check sees the publication. No timer, no polling.
type followers struct {
	n  atomic.Int64 // goroutines inside Wait
	mu sync.Mutex
	ch chan struct{} // guarded by mu: closed and cleared by wake; nil until a follower asks
}

// channel returns the channel the next wake closes.
func (f *followers) channel() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ch == nil {
		f.ch = make(chan struct{})
	}
	return f.ch
}

// wake wakes every waiting follower. Called after records are published and
// after truncations (a follower may have to stop); cheap when nobody waits.
func (w *WAL) wakeFollowers() {
	f := &w.follow
	if f.n.Load() == 0 {
		return
	}
	f.mu.Lock()
	if f.ch != nil {
		close(f.ch)
		f.ch = nil
	}
	f.mu.Unlock()
}

// Wait blocks until Next would return true, ctx is done (ctx.Err()), the WAL
// is closed (ErrClosed), or the Reader can no longer continue (an error
// wrapping ErrTruncated or ErrNotFound, as Err would report after Next). It
// does not advance the Reader. It is woken by the publication of new records
// and by truncations; it does not poll. Like every Reader method it must not
// be called concurrently with other methods of the same Reader; any number
// of Readers may wait at once.
func (r *Reader) Wait(ctx context.Context) error {
	w := r.w
	if w.ro != nil {
		return r.roWait(ctx)
	}
	f := &w.follow
	f.n.Add(1)
	defer f.n.Add(-1)
	for {
		ch := f.channel()
		if done, err := r.ready(); done {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-w.done:
			return ErrClosed
		}
	}
}

// ready reports whether Wait can return: with a nil error when Next would
// return true, else with the reason Next would return false for good.
func (r *Reader) ready() (bool, error) {
	if r.closed || r.w.isClosed() {
		return true, ErrClosed
	}
	if r.err != nil {
		return true, r.err
	}
	w := r.w
	gen := w.truncGen.Load()
	if gen != r.gen {
		if low, cut, _ := w.cutSince(r.gen); cut && low+1 < r.next {
			return true, r.truncatedErr(low)
		}
	}
	if r.next < w.first.Load() {
		return true, w.notFound(r.next)
	}
	if gen == r.gen && r.i < len(r.ends) {
		return true, nil // read ahead and still valid
	}
	return r.next <= w.published.Load(), nil
}

// All returns the records from the Reader's position to the end of the log
// as a sequence of (seq, record) pairs, advancing the Reader as it goes. The
// record is valid until the next iteration, as with Value; copy it to keep
// it. The sequence ends at the end of the log or at an error: check Err
// after the loop.
func (r *Reader) All() iter.Seq2[uint64, []byte] {
	return func(yield func(uint64, []byte) bool) {
		for r.Next() {
			if !yield(r.Seq(), r.Value()) {
				return
			}
		}
	}
}
