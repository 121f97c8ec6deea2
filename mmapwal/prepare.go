package mmapwal

import (
	"log/slog"
	"os"
	"sync"
)

// preparer keeps one segment of the default size created, preallocated,
// mapped and its first pages prefaulted ahead of need, so that rotation is a
// header write and two renames instead of a fallocate and page faults.
type preparer struct {
	dir   string
	size  int64
	logID uint64
	perm  os.FileMode
	pw    prefaultWindow
	log   *slog.Logger

	mu     sync.Mutex
	cond   sync.Cond
	ready  *segment
	busy   bool
	closed bool
	quit   chan struct{} // closed by close: prefault loops end
	wg     sync.WaitGroup
}

func newPreparer(dir string, size int64, logID uint64, perm os.FileMode, pw prefaultWindow, log *slog.Logger) *preparer {
	p := &preparer{dir: dir, size: size, logID: logID, perm: perm, pw: pw, log: log, quit: make(chan struct{})}
	p.cond.L = &p.mu
	return p
}

// startLocked begins preparing the next segment. REQUIRES: p.mu held.
func (p *preparer) startLocked() {
	if p.busy || p.ready != nil || p.closed {
		return
	}
	p.busy = true
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		s, err := prepareSegment(p.dir, p.size, p.logID, p.perm)
		if err != nil {
			p.log.Warn("mmapwal: preparing next segment failed; will retry at rotation", "dir", p.dir, "err", err)
		}
		p.mu.Lock()
		p.busy = false
		p.offerLocked(s)
		p.cond.Broadcast()
		p.mu.Unlock()
	}()
}

// prepareNow prepares the first segment of an empty log synchronously (it
// is part of creating the log, like any WAL's Open creating its file), so
// the first Append does not wait for a fallocate. The prefault still runs in
// the background. A failure is left to the first Append to report.
func (p *preparer) prepareNow() {
	s, err := prepareSegment(p.dir, p.size, p.logID, p.perm)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.startLocked()
		return
	}
	p.offerLocked(s)
}

// offerLocked makes s (if not nil) the ready segment and starts its
// prefault. REQUIRES: p.mu held; no segment ready.
func (p *preparer) offerLocked(s *segment) {
	if s == nil {
		return
	}
	if p.closed {
		s.discard()
		return
	}
	p.ready = s
	// Ready as soon as it is mapped: the prefault of its first window runs
	// on, ahead of the appenders that may already be writing at its start,
	// and follows them once it is active.
	p.startPrefault(s, 0)
}

// startPrefault runs s's prefault loop from write offset from until s is
// sealed or retired, or the preparer closes.
func (p *preparer) startPrefault(s *segment, from int64) {
	data, idxMap := s.data, s.idx.Mapping()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		prefaultLoop(s, data, idxMap, from, p.pw, p.quit)
	}()
}

// take returns a prepared segment of at least size bytes, waiting for one
// in preparation, or creating one now if none fits (first segment, a
// record larger than a segment, or a failed background preparation).
func (p *preparer) take(size int64) (*segment, error) {
	p.mu.Lock()
	for p.busy && size <= p.size {
		p.cond.Wait()
	}
	if s := p.ready; s != nil && s.size >= size {
		p.ready = nil
		p.startLocked()
		p.mu.Unlock()
		return s, nil
	}
	p.mu.Unlock()
	s, err := prepareSegment(p.dir, size, p.logID, p.perm)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.startLocked()
	p.mu.Unlock()
	return s, nil
}

// close waits for a preparation in progress and deletes the prepared file.
func (p *preparer) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	close(p.quit)
	p.wg.Wait()
	p.mu.Lock()
	if p.ready != nil {
		p.ready.discard()
		p.ready = nil
	}
	p.mu.Unlock()
}
