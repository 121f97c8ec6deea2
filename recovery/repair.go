package recovery

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/platform"
)

// BrokenExt is appended to the name of a file Repair moves aside.
const BrokenExt = ".broken"

// RepairReport says what Repair found and did.
type RepairReport struct {
	Dir string
	// Damaged is false when a full scan found nothing wrong; Repair then
	// changed nothing.
	Damaged bool
	Reason  string // what was wrong at the damaged point
	// File and Offset locate the damaged point; the log now ends there:
	// Seq is the first seq no longer in the log (LastSeq is Seq-1).
	File   string
	Offset int64
	Seq    uint64
	// RecordsDropped counts the valid frames found after the damaged point
	// (in the cut segment and in the segments moved aside).
	RecordsDropped int
	BytesZeroed    int64
	// MovedAside maps each original path to where it is now (a copy of the
	// damaged segment, or a later segment renamed aside).
	MovedAside     map[string]string
	IndexesRemoved []string
}

// Repair gets a damaged log open again by cutting it at the first damage. It
// scans every segment in full (every frame verified, index checkpoints
// ignored) and finds the first damaged point: a bad segment header, a frame
// that fails its checks where the log should go on, or a gap (a missing
// segment). It then copies the damaged segment aside to <name>.broken (a
// header-damaged one is renamed aside whole), zeroes it from the end of its
// last valid record or complete batch and syncs it, renames every later
// segment aside to <name>.broken, deletes the index files of the segments it
// touched (Open rebuilds them), and syncs the directory. Existing .broken
// files are never overwritten: a counter is added.
//
// A directory without damage is left unchanged (RepairReport.Damaged false).
// A torn tail counts as damage here too: Repair cuts it as Open would, but
// keeps a copy. Repair fails with format.ErrLocked while a WAL has the
// directory open.
func Repair(dir string, opts *Options) (*RepairReport, error) {
	o := opts.withDefaults()
	maxLen := uint64(o.MaxRecordSize)
	lk, err := platform.LockFile(filepath.Join(dir, format.LockName))
	if err != nil {
		if errors.Is(err, platform.ErrLockHeld) {
			return nil, fmt.Errorf("repair %s: %w", dir, format.ErrLocked)
		}
		return nil, err
	}
	defer lk.Unlock()

	rep := &RepairReport{Dir: dir, MovedAside: map[string]string{}}
	// A bad meta file, and segments wholly before the logical first seq,
	// are Recover's to report and remove.
	l, err := listDir(dir)
	if err != nil {
		return nil, err
	}
	segs := l.segs

	var d *repairDamage
	for i, sf := range segs {
		var next uint64
		if i+1 < len(segs) {
			next = segs[i+1].seq
		}
		d, err = repairScan(sf, next, i == len(segs)-1, maxLen)
		if err != nil {
			return nil, err
		}
		if d != nil {
			d.idx = i
			break
		}
	}
	if d == nil {
		return rep, nil
	}
	rep.Damaged, rep.Reason = true, d.reason
	rep.File, rep.Offset, rep.Seq = segs[d.idx].path, d.off, d.seq
	rep.RecordsDropped = d.dropped

	later := segs[d.idx+1:]
	for _, s := range later {
		rep.RecordsDropped += countValid(s, maxLen)
	}
	// Keep a copy (or the whole file) of the damaged segment, then cut it.
	cur := segs[d.idx]
	if d.whole {
		dst, err := moveAside(cur.path)
		if err != nil {
			return nil, err
		}
		rep.MovedAside[cur.path] = dst
	} else if d.cut {
		dst, err := copyAside(cur.path)
		if err != nil {
			return nil, err
		}
		rep.MovedAside[cur.path] = dst
		n, err := zeroTail(cur.path, d.off)
		if err != nil {
			return nil, err
		}
		rep.BytesZeroed = n
	}
	for i := len(later) - 1; i >= 0; i-- { // newest first: a crash leaves a prefix
		dst, err := moveAside(later[i].path)
		if err != nil {
			return nil, err
		}
		rep.MovedAside[later[i].path] = dst
	}
	for _, s := range segs[d.idx:] {
		p := indexPath(s.path)
		if err := os.Remove(p); err == nil {
			rep.IndexesRemoved = append(rep.IndexesRemoved, p)
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	if err := platform.SyncDir(dir); err != nil {
		return nil, err
	}
	return rep, nil
}

type repairDamage struct {
	idx     int
	off     int64  // where the log now ends in the segment
	seq     uint64 // first seq no longer in the log
	whole   bool   // the segment itself is moved aside
	cut     bool   // the segment is copied aside and zeroed from off
	dropped int    // valid frames after off in this segment
	reason  string
}

// repairScan verifies one segment completely. next is the first seq of the
// following segment (0 if sf is the last).
func repairScan(sf segFile, next uint64, last bool, maxLen uint64) (*repairDamage, error) {
	f, err := os.Open(sf.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() < format.SegmentHeaderSize {
		return &repairDamage{off: 0, seq: sf.seq, whole: true,
			reason: fmt.Sprintf("segment is %d bytes, shorter than its header", fi.Size())}, nil
	}
	data, err := platform.MapReadOnly(f, int(fi.Size()))
	if err != nil {
		return nil, err
	}
	defer platform.Unmap(data)
	var d *repairDamage
	ferr := platform.CatchFault(func() {
		h, err := format.DecodeSegmentHeader(data)
		switch {
		case err != nil:
			d = &repairDamage{seq: sf.seq, whole: true, reason: "segment header: " + err.Error()}
			return
		case h.FirstSeq != sf.seq:
			d = &repairDamage{seq: sf.seq, whole: true,
				reason: fmt.Sprintf("header says first seq %d, file name says %d", h.FirstSeq, sf.seq)}
			return
		}
		seed := format.SegmentSeed(h.ID)
		r := Scan(data, seed, format.SegmentHeaderSize, sf.seq, maxLen, false)
		clean := (r.Stop == StopZero || r.Stop == StopEnd) && r.Dropped == 0 && (last || r.Next == next)
		if clean && r.Stop == StopZero && lastNonZero(data, r.End) > r.End {
			clean = false // stale bytes after the end: cut them too
		}
		if clean {
			return
		}
		reason := r.Stop.String()
		if r.Stop == StopBadFrame {
			reason += " (" + r.Frame.String() + ")"
		}
		if r.Dropped > 0 {
			reason = "unfinished batch"
		}
		if !last && r.Next != next && (r.Stop == StopZero || r.Stop == StopEnd) {
			reason = fmt.Sprintf("log ends at seq %d but the next segment starts at %d (missing or damaged segment)", r.Next-1, next)
		}
		_, valid := FindProof(data, seed, r.End, r.Next, maxLen)
		d = &repairDamage{off: r.End, seq: r.Next, cut: lastNonZero(data, r.End) > r.End, dropped: valid,
			reason: fmt.Sprintf("%s at offset %d", reason, r.StopAt)}
	})
	if ferr != nil {
		return nil, fmt.Errorf("repair %s: %w", sf.path, ferr)
	}
	return d, nil
}

// freeName returns path+BrokenExt, or with a counter if that exists.
func freeName(path string) (string, error) {
	for i := 0; i < 10000; i++ {
		p := path + BrokenExt
		if i > 0 {
			p = fmt.Sprintf("%s%s.%d", path, BrokenExt, i)
		}
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			return p, nil
		} else if err != nil {
			return "", err
		}
	}
	return "", fmt.Errorf("repair: no free %s name for %s", BrokenExt, path)
}

func moveAside(path string) (string, error) {
	dst, err := freeName(path)
	if err != nil {
		return "", err
	}
	return dst, os.Rename(path, dst)
}

// copyAside copies path to a free .broken name and syncs the copy.
func copyAside(path string) (string, error) {
	dst, err := freeName(path)
	if err != nil {
		return "", err
	}
	src, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer src.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", err
	}
	_, err = io.Copy(out, src)
	if err == nil {
		err = platform.SyncFile(out)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
		return "", err
	}
	return dst, nil
}
