package recovery

import (
	"errors"
	"fmt"
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
// that fails its checks where the log should go on, non-zero bytes after
// the valid data, or a gap (a missing segment). It then copies the damaged
// segment aside to <name>.broken and makes the copy and its directory entry
// durable, zeroes the original from the end of its last valid record or
// complete batch and syncs it (a header-damaged segment is instead renamed
// aside whole), renames every later segment aside to <name>.broken (newest
// first), deletes the index files of the segments it touched (Open rebuilds
// them), and syncs the directory. Existing .broken files are never
// overwritten: a counter is added.
//
// A directory without damage is left unchanged (RepairReport.Damaged false).
// A torn tail counts as damage here too: Repair cuts it as Open would, but
// keeps a copy. Repair fails with format.ErrLocked while a WAL has the
// directory open. Like Recover, it fails without changing anything when it
// cannot read a file (the error names it).
func Repair(dir string, opts *Options) (*RepairReport, error) {
	o := opts.withDefaults()
	lk, err := platform.LockDir(dir, format.LockName, 0o600)
	if err != nil {
		if errors.Is(err, platform.ErrLockHeld) {
			return nil, fmt.Errorf("repair %s: %w", dir, format.ErrLocked)
		}
		return nil, err
	}
	defer lk.Unlock()

	// Every frame verified, index checkpoints ignored; stale bytes after
	// the data of any segment count as damage. A bad meta file, and
	// segments wholly before the logical first seq, are Recover's to report
	// and remove.
	o.Full, o.offsets = true, false
	facts, err := analyse(o.fs, dir, o, true)
	if err != nil {
		return nil, err
	}
	p := planRepair(facts)
	rep := &RepairReport{Dir: dir, MovedAside: map[string]string{}}
	if p == nil {
		return rep, nil
	}
	rep.Damaged, rep.Reason = true, p.reason
	rep.File, rep.Offset, rep.Seq = p.file, p.off, p.seq
	rep.RecordsDropped = p.dropped
	if err := applyRepair(o.fs, dir, p, rep); err != nil {
		return nil, err
	}
	return rep, nil
}

// repairPlan is Repair's decision: the log is cut at its first damage.
type repairPlan struct {
	file    string
	off     int64  // where the log now ends in file
	seq     uint64 // first seq no longer in the log
	whole   bool   // file itself is moved aside (bad header)
	zeroTo  int64  // > off: file is copied aside, then [off, zeroTo) zeroed
	later   []string
	indexes []string // index files of the segments touched (Open rebuilds them)
	dropped int
	reason  string
}

// planRepair finds the first damaged point: a bad segment header, a frame
// that fails its checks where the log should go on, non-zero bytes after
// the valid data, or a gap (a missing segment). nil: no damage.
func planRepair(f *dirFacts) *repairPlan {
	if f.stop >= len(f.segs) {
		return nil
	}
	s := &f.segs[f.stop]
	p := &repairPlan{file: s.path}
	if s.header != headerOK {
		p.seq, p.whole, p.reason = s.seq, true, s.headerReason
	} else {
		c := ruleEnd(f)
		p.off, p.seq, p.zeroTo = c.off, c.seq, c.zeroTo
		p.dropped = s.afterValid
		p.reason = fmt.Sprintf("%s at offset %d", c.what, s.scan.StopAt)
	}
	for _, l := range f.segs[f.stop+1:] {
		p.later = append(p.later, l.path)
		p.dropped += int(l.chain)
	}
	for _, l := range f.segs[f.stop:] {
		if f.names[filepath.Base(l.indexPath)] {
			p.indexes = append(p.indexes, l.indexPath)
		}
	}
	return p
}

// applyRepair carries out Repair's plan in the order of apply.go: the copy
// of the damaged segment, and its name, are durable before the original is
// changed.
func applyRepair(fsys fileSystem, dir string, p *repairPlan, rep *RepairReport) error {
	if !p.whole && p.zeroTo > p.off {
		dst, err := copyAside(fsys, p.file)
		if err != nil {
			return err
		}
		rep.MovedAside[p.file] = dst
		if err := fsys.SyncDir(dir); err != nil {
			return fmt.Errorf("repair: %w", err)
		}
		if err := zeroRange(fsys, p.file, p.off, p.zeroTo); err != nil {
			return err
		}
		rep.BytesZeroed = p.zeroTo - p.off
	}
	for i := len(p.later) - 1; i >= 0; i-- { // newest first: a crash leaves a prefix
		dst, err := moveAside(fsys, p.later[i])
		if err != nil {
			return err
		}
		rep.MovedAside[p.later[i]] = dst
	}
	if p.whole {
		dst, err := moveAside(fsys, p.file)
		if err != nil {
			return err
		}
		rep.MovedAside[p.file] = dst
	}
	for _, path := range p.indexes {
		if err := removeFile(fsys, path); err != nil {
			return err
		}
		rep.IndexesRemoved = append(rep.IndexesRemoved, path)
	}
	if err := fsys.SyncDir(dir); err != nil {
		return fmt.Errorf("repair: %w", err)
	}
	return nil
}
