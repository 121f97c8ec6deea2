package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/mmapwal"
)

// checkDir turns the usual operator mistakes into one clear error before the
// log is opened: a missing path, a file, or a directory holding files but
// none of a WAL. An empty directory is an empty log.
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: no such directory", dir)
		}
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s: not a directory", dir)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(ents) == 0 {
		return nil
	}
	for _, de := range ents {
		if isWALFile(de.Name()) {
			return nil
		}
	}
	return fmt.Errorf("%s: not a WAL directory (no segment, wal.meta, wal.id or LOCK file)", dir)
}

func isWALFile(name string) bool {
	if _, ok := format.ParseSegmentName(name); ok {
		return true
	}
	if _, ok := format.ParseIndexName(name); ok {
		return true
	}
	switch name {
	case format.MetaName, format.LockName, format.IdentityName:
		return true
	}
	return strings.HasSuffix(name, format.SegmentExt+".broken") || strings.HasSuffix(name, format.SegmentExt+format.TempExt)
}

// openRO opens dir read-only, with errors worded for an operator.
func openRO(dir string) (*mmapwal.WAL, error) {
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	w, err := mmapwal.Open(dir, &mmapwal.Options{ReadOnly: true})
	if err != nil {
		return nil, describe(err)
	}
	return w, nil
}

// describe prefixes the classes of failure an operator acts on differently.
func describe(err error) error {
	var ce *format.CorruptError
	switch {
	case errors.As(err, &ce):
		return fmt.Errorf("damaged log: %s (walctl verify lists the damage, walctl repair cuts it)", corruptLine(ce))
	case errors.Is(err, format.ErrCorrupt):
		return fmt.Errorf("damaged log: %v", err)
	case errors.Is(err, format.ErrLocked):
		return fmt.Errorf("log is locked by a running writer: %v", err)
	}
	return err
}

func corruptLine(ce *format.CorruptError) string {
	return fmt.Sprintf("file %s offset %d seq %d: %s", filepath.Base(ce.File), ce.Offset, ce.Seq, ce.Reason)
}

// diskUsage is the size of every regular file in dir: apparent sizes
// (segments are preallocated, so this is what they hold on disk too).
func diskUsage(dir string) (int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, de := range ents {
		if !de.Type().IsRegular() {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted by the writer meanwhile
			}
			return 0, err
		}
		n += fi.Size()
	}
	return n, nil
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
