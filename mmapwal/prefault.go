package mmapwal

import (
	"sync"
	"sync/atomic"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/platform"
)

// Prefaulting keeps the pages just ahead of the writer mapped and writable,
// so that first-touch page faults (a page-cache page allocated and zeroed,
// and the filesystem's page_mkwrite: about a microsecond each) are taken by
// a background goroutine instead of on the append path.
//
// It runs a window ahead of the write offset, not over a whole segment at
// once: faulting all of a 64 MiB segment costs ~40 ms of CPU (on a 2-core
// machine, half the machine for that long) and dirties 72 MiB of zero pages
// that the kernel then writes back, the moment a log opens or rotates,
// even if the log only ever receives a few records.
//
// The window and chunk are per-WAL settings (prefaultWindow in Options), so
// that tests can use windows smaller than a segment.
const (
	defaultPrefaultAhead int64 = 8 << 20 // bytes kept faulted ahead of the write offset
	defaultPrefaultChunk int64 = 1 << 20 // one madvise call; the loop checks for stop between chunks
)

// prefaultWindow sizes the prefault loops of one WAL.
type prefaultWindow struct {
	ahead int64 // bytes kept faulted ahead of the write offset
	chunk int64 // one madvise call; the loop checks for stop between chunks
}

// kick is how far the writer moves between pokes of its loop.
func (pw prefaultWindow) kick() int64 { return pw.ahead / 4 }

// prefaulter is a segment's link to its prefault loop.
type prefaulter struct {
	kick chan struct{} // cap 1: the writer has moved on (see mark)
	stop chan struct{} // closed once: sealed, retired or discarded
	once sync.Once
	mark atomic.Int64 // the write offset at the last kick
}

func newPrefaulter() *prefaulter {
	return &prefaulter{kick: make(chan struct{}, 1), stop: make(chan struct{})}
}

// poke tells the loop the writer has reached off. It never blocks. A nil
// prefaulter (a segment that never had a loop: one left unmapped at Open)
// ignores it.
func (p *prefaulter) poke(off int64) {
	if p == nil {
		return
	}
	p.mark.Store(off)
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// halt ends the loop (idempotent): the segment no longer takes appends.
func (p *prefaulter) halt() {
	if p != nil {
		p.once.Do(func() { close(p.stop) })
	}
}

// halted reports whether the loop must end: halt was called or quit closed.
func (p *prefaulter) halted(quit <-chan struct{}) bool {
	select {
	case <-p.stop:
		return true
	case <-quit:
		return true
	default:
		return false
	}
}

// prefaultLoop faults s's pages in, front to back, up to pw.ahead bytes
// past the last poked write offset (starting at from), and the matching
// prefix of its index, until the segment is fully faulted, halted, or quit
// is closed. It works on copies of the slices, taken before activation may
// replace s.data (RenameMapped on Windows, where prefaulting is a no-op),
// and holds a reference only while faulting a chunk, so it never delays a
// retirement. Best effort: errors only mean the writer takes the faults.
func prefaultLoop(s *segment, data, idxMap []byte, from int64, pw prefaultWindow, quit <-chan struct{}) {
	pf := s.prefault
	pf.mark.Store(from)
	done, idone := int64(0), int64(0)
	if from > format.SegmentHeaderSize {
		// A reopened segment: the pages before the writer are touched.
		done = from &^ (4096 - 1)
		idone = min(int64(len(idxMap)), format.IndexHeaderSize+done/8) &^ (4096 - 1)
	}
	size := int64(len(data))
	for {
		target := min(size, pf.mark.Load()+pw.ahead)
		for done < target {
			if pf.halted(quit) || !s.pinIfMapped() {
				return
			}
			if pf.halted(quit) { // sealed: it may have been unmapped and mapped again since data was copied
				s.unpin()
				return
			}
			end := min(done+pw.chunk, size)
			_ = platform.Prefault(data[done:end])
			if lo, hi := indexAhead(idone, end, int64(len(idxMap))); hi > lo {
				_ = platform.Prefault(idxMap[lo:hi])
				idone = hi
			}
			s.unpin()
			done = end
		}
		if done >= size {
			return
		}
		select {
		case <-pf.kick:
		case <-pf.stop:
			return
		case <-quit:
			return
		}
	}
}

// indexAhead returns the range of the index to fault in once the segment
// is faulted up to end, when the index is faulted up to done: an index
// entry (4 bytes) per frame of at least 32 bytes, so the entries for
// data[:end] lie in the first end/8 index bytes. The start is rounded down
// to a page: madvise fails with EINVAL on an unaligned address (which
// Prefault takes for a kernel without MADV_POPULATE_WRITE and ignores).
func indexAhead(done, end, size int64) (lo, hi int64) {
	hi = min(size, format.IndexHeaderSize+end/8)
	if hi <= done {
		return 0, 0
	}
	return done &^ (4096 - 1), hi
}
