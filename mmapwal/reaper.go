package mmapwal

import (
	"errors"
	"fmt"
	"os"
	"sync"
)

// The reaper deletes the segments that TruncateFront and MaxSegments
// retention dropped, off the append path. By the time a job is queued the
// cut is already logical and durable: wal.meta holds the new first seq
// (synced), FirstSeq is published, and the segments are out of the list. So
// nothing here decides anything: waiting for readers, unmapping, and
// unlinking thousands of files can take hundreds of milliseconds, and
// appenders must not wait for that. A crash before the reaper finishes
// leaves a suffix of the dropped segments (it deletes oldest first), which
// recovery rule 6 removes at the next Open because wal.meta covers them.
// Close waits for the queue to drain; a file the reaper failed to delete
// (an I/O error) is logged and left for rule 6 at the next Open.

// reapJob is a set of dropped segments, oldest first.
type reapJob struct {
	segs []*segment
	// published: the last seq any of the segments holds. An appender that
	// reserved space in a segment before it was sealed may still be copying
	// into it (appenders hold no reference); the reaper waits until that seq
	// is published before it unmaps (0: nothing to wait for). It is at most
	// the first seq kept minus one, which no TruncateBack can cut below, so
	// the wait always ends.
	published uint64
}

// reaper is usable as its zero value; WAL.reap starts its goroutine on the
// first job.
type reaper struct {
	mu      sync.Mutex
	jobs    []reapJob
	running bool
	wg      sync.WaitGroup
}

// reapLater queues a job. REQUIRES: the segments are no longer in w.segs.
func (w *WAL) reapLater(segs []*segment, published uint64) {
	if len(segs) == 0 {
		return
	}
	r := &w.reap
	r.mu.Lock()
	defer r.mu.Unlock()
	r.jobs = append(r.jobs, reapJob{segs: segs, published: published})
	if r.running {
		return
	}
	r.running = true
	r.wg.Add(1)
	go w.reapLoop()
}

func (w *WAL) reapLoop() {
	r := &w.reap
	defer r.wg.Done()
	for {
		r.mu.Lock()
		if len(r.jobs) == 0 {
			r.running = false
			r.mu.Unlock()
			return
		}
		job := r.jobs[0]
		r.jobs[0] = reapJob{}
		r.jobs = r.jobs[1:]
		r.mu.Unlock()
		if err := w.reapJob(job); err != nil {
			w.log.Warn("mmapwal: deleting dropped segments failed; the next Open removes what is left (wal.meta covers them)",
				"dir", w.dir, "err", err)
		}
	}
}

// reapWait returns once every queued job is done. Close calls it after its
// final flush (no truncation can queue a job after that).
func (w *WAL) reapWait() {
	w.reap.wg.Wait()
}

// reapJob retires, unmaps and deletes the job's segments oldest first, so
// that a crash part-way leaves a suffix of them (never a hole), then syncs
// the directory once.
func (w *WAL) reapJob(job reapJob) error {
	w.opts.testHook(hookReapStart)
	w.waitPublished(job.published)
	var errs []error
	for _, s := range job.segs {
		s.retire()
		if err := s.unmap(); err != nil {
			errs = append(errs, fmt.Errorf("unmap %s: %w", s.path, err))
		}
		// The index goes first: a crash between the two unlinks then leaves
		// a segment that rule 6 removes with its (absent) index, never an
		// index without its segment.
		for _, p := range []string{s.indexPath(), s.path} { // s.idx is nil if s was never mapped
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			w.opts.testHook(hookReapUnlinked)
		}
	}
	if err := w.dur.syncDir(w.dir); err != nil {
		errs = append(errs, fmt.Errorf("sync directory %s: %w", w.dir, err))
	}
	return errors.Join(errs...)
}

// waitPublished waits until seq is published, or the WAL failed. A seq
// reserved in a dropped segment is always published eventually: Close and
// every truncation wait for in-flight appends, and no truncation lowers the
// published seq below a dropped segment (TruncateBack cannot cut before
// FirstSeq-1, and dropped segments end before FirstSeq).
func (w *WAL) waitPublished(seq uint64) {
	if w.published.Load() >= seq {
		return
	}
	w.pubSlow.Add(1)
	defer w.pubSlow.Add(-1)
	w.pubMu.Lock()
	for w.published.Load() < seq && w.failed() == nil {
		w.pubCond.Wait()
	}
	w.pubMu.Unlock()
}
