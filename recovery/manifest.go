package recovery

import (
	"errors"
	"io/fs"
	"log/slog"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/internal/scan"
)

// The clean-close manifest (format.CleanName, see format's documentation)
// lets a clean reopen skip reading every segment's header and checkpoint:
// two fstatat calls per segment prove that the files are the ones Close
// described. It is an optimisation only: any doubt, including an error
// while reading or checking it, falls back to the full analysis, which
// then judges the directory exactly as if there were no manifest.

// stamper is a directory that can stamp its files without opening them
// (fdDir on Linux). Other directories (and the tests' error-injecting
// wrapper) never use the manifest.
type stamper interface {
	// stamp returns name's stamp; ok false if it is not a regular file,
	// or the stamp could not be taken.
	stamp(name string) (format.FileStamp, bool)
}

// analyseManifest is analyse for a directory a clean Close described in
// wal.clean. ok false: the manifest is absent, or not to be trusted, and
// nothing was concluded from it. err is an I/O error of the last segment's
// analysis, which the full analysis would have met as well.
func analyseManifest(fsys fileSystem, d dirHandle, dir string, f *dirFacts, segs []segName, o Options, strict bool) (ok bool, err error) {
	st, isStamper := d.(stamper)
	if strict || o.Full || o.LogID == 0 || !isStamper || !f.names[format.CleanName] || len(segs) == 0 ||
		len(f.temps) > 0 || len(f.beforeMeta) > 0 || f.metaErr != nil {
		return false, nil
	}
	b, err := fsys.ReadFile(filepath.Join(dir, format.CleanName))
	if err != nil {
		return false, nil //nolint:nilerr // an unreadable manifest is no manifest
	}
	m, err := format.DecodeManifest(b)
	if err != nil || m.LogID != o.LogID || m.MetaFirst != f.metaFirst || len(m.Segments) != len(segs) {
		return false, nil //nolint:nilerr // a damaged or stale manifest is no manifest
	}
	n := len(segs)
	facts := make([]segFacts, n-1, n)
	for i, sn := range segs {
		ms := &m.Segments[i]
		if ms.FirstSeq != sn.seq || !f.names[indexName(sn.name)] || ms.Size != ms.Seg.Size ||
			ms.End < format.SegmentHeaderSize || ms.End > ms.Size || ms.End%format.FrameAlign != 0 ||
			(ms.Count == 0) != (ms.End == format.SegmentHeaderSize) {
			return false, nil
		}
		if i == n-1 {
			break
		}
		if ms.FirstSeq+ms.Count != segs[i+1].seq {
			return false, nil // not continuous: the full analysis judges it
		}
		facts[i] = segFacts{
			path: sn.path, indexPath: indexPath(sn.path), seq: sn.seq, size: ms.Size,
			header: headerOK, id: ms.ID,
			// logID 0: not read here. mmapwal checks every segment's header
			// (first seq, segment ID, log ID) when it maps it, and the stamp
			// proves the file is the one Close saw, which belonged to the log.
			ck:    ckptFacts{state: indexValid, count: ms.Count, end: ms.End, id: ms.ID},
			start: ms.End, trusted: ms.Count,
			scan:    scan.Result{End: ms.End, Next: sn.seq + ms.Count, Stop: scan.StopZero, StopAt: ms.End},
			tailEnd: ms.End, proofOff: -1, hintOff: -1,
		}
	}
	if !stampsMatch(st, segs[:n-1], m.Segments[:n-1]) {
		return false, nil
	}
	// The last segment is analysed as always (its closed checkpoint is
	// written after the manifest): it must be the closed end the manifest
	// describes.
	ms := &m.Segments[n-1]
	last, err := analyseSegment(d, segs[n-1], true, 0, o, false)
	if err != nil {
		return false, err
	}
	if last.header != headerOK || !last.closed || last.id != ms.ID || last.size != ms.Size ||
		last.ck.count != ms.Count || last.ck.end != ms.End || (last.logID != 0 && last.logID != m.LogID) {
		return false, nil
	}
	f.segs = append(facts, last)
	f.stop = n
	f.manifest = true
	return true, nil
}

// stampsMatch reports whether every segment file and index file of segs
// has the stamp ms records. Two fstatat calls per segment are most of a
// trusted manifest's cost (~1 µs each): above prefetchMin segments they
// are spread over the processors, as prefetch spreads the full analysis.
func stampsMatch(st stamper, segs []segName, ms []format.ManifestSegment) bool {
	check := func(from, to int) bool {
		for i := from; i < to; i++ {
			if s, ok := st.stamp(segs[i].name); !ok || s != ms[i].Seg {
				return false
			}
			if s, ok := st.stamp(indexName(segs[i].name)); !ok || s != ms[i].Index {
				return false
			}
		}
		return true
	}
	workers := min(runtime.GOMAXPROCS(0), 8)
	if len(segs) < prefetchMin || workers < 2 {
		return check(0, len(segs))
	}
	var failed atomic.Bool
	var wg sync.WaitGroup
	chunk := (len(segs) + workers - 1) / workers
	for from := 0; from < len(segs); from += chunk {
		wg.Add(1)
		go func(from, to int) {
			defer wg.Done()
			if !check(from, to) {
				failed.Store(true)
			}
		}(from, min(from+chunk, len(segs)))
	}
	wg.Wait()
	return !failed.Load()
}

// indexName is the name of the index of the segment named segName.
func indexName(segName string) string {
	return segName[:len(segName)-len(format.SegmentExt)] + format.IndexExt
}

// dropManifest removes wal.clean before Recover changes anything, and
// syncs the directory: from then on the log may change (appends clear the
// closed checkpoint, truncations rewrite or delete files), and a manifest
// that describes an earlier state should not be found by a later Open.
// That is hygiene, not what makes the manifest safe: a stale one is refused
// by analyseManifest's checks (the last segment's closed checkpoint, the
// stamps, the directory's segments, wal.meta's first seq no longer match),
// so a failure here (a read-only or immutable directory, where a clean log
// opens today) is logged and Open goes on.
func dropManifest(fsys fileSystem, dir string, f *dirFacts, log *slog.Logger) {
	if !f.names[format.CleanName] {
		return
	}
	p := filepath.Join(dir, format.CleanName)
	err := fsys.Remove(p)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err == nil {
		err = fsys.SyncDir(dir)
	}
	if err != nil {
		log.Warn("recover: could not remove the clean-close manifest; it stays unused once the log changes", "file", p, "err", err)
	}
}
