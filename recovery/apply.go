package recovery

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
)

// Apply: the only code that writes. Order (every step a crash may
// interrupt leaves a state the rules recover):
//
//  1. copy the damaged segment aside and sync the copy (Repair);
//  2. sync the directory, so the copy's name is durable too (Repair);
//  3. zero the torn tail and sync it;
//  4. delete (Recover) or move aside (Repair) later segments, newest first,
//     so that a crash leaves a prefix of the log; then temporary files and
//     index files;
//  5. sync the directory.

// applyRecover carries out Recover's plan.
func applyRecover(fsys fileSystem, dir string, p *plan, log *slog.Logger) error {
	if c := p.cut; c != nil && !c.wholeFile && c.zeroTo > c.off {
		if err := zeroRange(fsys, c.file, c.off, c.zeroTo); err != nil {
			return err
		}
		log.Warn("mmapwal: cut torn tail", "file", c.file, "offset", c.off, "seq", c.seq,
			"bytes_zeroed", c.zeroTo-c.off, "records_dropped", p.dropped)
	}
	for _, path := range p.remove {
		if err := removeFile(fsys, path); err != nil {
			return err
		}
	}
	for _, path := range p.temps {
		if err := removeFile(fsys, path); err != nil {
			return err
		}
	}
	if len(p.temps)+len(p.remove) > 0 {
		if err := fsys.SyncDir(dir); err != nil {
			return fmt.Errorf("recover: %w", err)
		}
		log.Info("mmapwal: removed files", "temporary", len(p.temps), "segments_and_indexes", len(p.remove))
	}
	return nil
}

func removeFile(fsys fileSystem, path string) error {
	if err := fsys.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("recover: remove %s: %w", path, err)
	}
	return nil
}

// zeroRange writes zeros over [from, to) of the segment at path and syncs
// it, so that stale bytes can never be read as records and new appends
// start on zeros. The analysis found the last non-zero byte (to).
func zeroRange(fsys fileSystem, path string, from, to int64) (err error) {
	f, err := fsys.OpenWrite(path)
	if err != nil {
		return fmt.Errorf("recover: zero tail of %s: %w", path, err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("recover: zero tail of %s: %w", path, cerr)
		}
	}()
	zeros := make([]byte, min(1<<20, to-from))
	for p := from; p < to; {
		n := min(int64(len(zeros)), to-p)
		if _, err := f.WriteAt(zeros[:n], p); err != nil {
			return fmt.Errorf("recover: zero tail of %s at %d: %w", path, p, err)
		}
		p += n
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("recover: sync %s: %w", path, err)
	}
	return nil
}

// freeName returns path+BrokenExt, or with a counter if that exists.
func freeName(fsys fileSystem, path string) (string, error) {
	for i := 0; i < 10000; i++ {
		p := path + BrokenExt
		if i > 0 {
			p = fmt.Sprintf("%s%s.%d", path, BrokenExt, i)
		}
		if _, err := fsys.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			return p, nil
		} else if err != nil {
			return "", fmt.Errorf("repair: %w", err)
		}
	}
	return "", fmt.Errorf("repair: no free %s name for %s", BrokenExt, path)
}

func moveAside(fsys fileSystem, path string) (string, error) {
	dst, err := freeName(fsys, path)
	if err != nil {
		return "", err
	}
	if err := fsys.Rename(path, dst); err != nil {
		return "", fmt.Errorf("repair: move %s aside: %w", path, err)
	}
	return dst, nil
}

// copyAside copies path to a free .broken name and syncs the copy (its
// directory entry is the caller's to sync).
func copyAside(fsys fileSystem, path string) (dst string, err error) {
	if dst, err = freeName(fsys, path); err != nil {
		return "", err
	}
	src, err := fsys.Open(path)
	if err != nil {
		return "", fmt.Errorf("repair: open %s: %w", path, err)
	}
	defer src.Close()
	out, err := fsys.CreateExcl(dst)
	if err != nil {
		return "", fmt.Errorf("repair: create %s: %w", dst, err)
	}
	_, err = io.Copy(out, src)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = fsys.Remove(dst)
		return "", fmt.Errorf("repair: copy %s to %s: %w", path, dst, err)
	}
	return dst, nil
}
