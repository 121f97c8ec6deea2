package mmapwal

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Read-only access: the Reader on a read-only WAL (Next, Wait), which
// checks its anchor so that a cut ends it with ErrTruncated.

// ROPollInterval is how often a Reader.Wait on a read-only WAL looks for
// records the writer process appended: Wait returns within about this delay
// (plus the time to check the new records) after the writer published them.
// Nothing polls while no one waits.
const ROPollInterval = 5 * time.Millisecond

// newReader is NewReader on a read-only WAL: its anchor is the record
// before from, if the log holds it.
func (ro *roLog) newReader(from uint64) (*Reader, error) {
	ro.poll()
	v := ro.view.Load()
	if from == 0 {
		from = v.first
	}
	if from < v.first || from > v.last+1 {
		return nil, fmt.Errorf("%w: reader from seq %d outside [%d, %d]", ErrNotFound, from, v.first, v.last+1)
	}
	r := &Reader{w: ro.w, next: from}
	if from > v.first {
		if _, fr, err := ro.read(nil, from-1); err == nil {
			r.anchor = fr
		}
	}
	return r, nil
}

// anchorHolds reports whether the Reader's anchor is still in the log: true
// if it has none, or if it was dropped from the front (not a cut).
func (r *Reader) anchorHolds() bool {
	a := r.anchor
	if a.s == nil || a.seq < r.w.ro.view.Load().first {
		return true
	}
	if err := r.w.ro.pin(a.s); err != nil {
		return false
	}
	ok := a.still() && a.s.linked()
	a.s.mu.RUnlock()
	return ok
}

func (r *Reader) roTruncatedErr() error {
	return fmt.Errorf("%w: record %d, which this Reader returned, is no longer in the log; this Reader was at seq %d",
		ErrTruncated, r.anchor.seq, r.next)
}

// roNext is Next on a read-only WAL: one record at a time, each checked
// after its copy, and the anchor checked after that (a record read after a
// cut must not follow records the cut removed).
func (r *Reader) roNext() bool {
	ro := r.w.ro
	if ro.closed.Load() {
		r.err = ErrClosed
		return false
	}
	v := ro.view.Load()
	if r.next > v.last {
		ro.poll()
		v = ro.view.Load()
	}
	if r.next < v.first {
		r.err = ro.notFound(v, r.next)
		return false
	}
	if r.next > v.last {
		if !r.anchorHolds() {
			r.err = r.roTruncatedErr()
		}
		return false
	}
	buf, fr, err := ro.read(r.buf[:0], r.next)
	if err != nil {
		switch {
		case !r.anchorHolds():
			r.err = r.roTruncatedErr()
		case errors.Is(err, ErrNotFound) && r.next >= ro.view.Load().first:
			// the log now ends before r.next, and no record returned was cut
		default:
			r.err = err
		}
		return false
	}
	r.buf = buf
	if !r.anchorHolds() {
		r.err = r.roTruncatedErr()
		return false
	}
	r.val = buf[:len(buf):len(buf)]
	r.seq = r.next
	r.next++
	r.anchor = fr
	return true
}

// roWait is Wait on a read-only WAL: the writer is another process, so it
// polls every ROPollInterval while it waits.
func (r *Reader) roWait(ctx context.Context) error {
	t := time.NewTimer(ROPollInterval)
	defer t.Stop()
	for {
		if done, err := r.roReady(); done {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.w.done:
			return ErrClosed
		case <-t.C:
			t.Reset(ROPollInterval)
		}
	}
}

func (r *Reader) roReady() (bool, error) {
	ro := r.w.ro
	if r.closed || ro.closed.Load() {
		return true, ErrClosed
	}
	if r.err != nil {
		return true, r.err
	}
	ro.poll()
	v := ro.view.Load()
	if r.next < v.first {
		return true, ro.notFound(v, r.next)
	}
	if !r.anchorHolds() {
		return true, r.roTruncatedErr()
	}
	return r.next <= v.last, nil
}
