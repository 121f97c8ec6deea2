package mmapwal

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/platform"
)

// replaceFile durably replaces the small file name in the log's directory
// with b: a temporary file, synced, renamed over name, then a directory
// sync. A crash at any point leaves the old file or the new one, never a
// mix: the rename is atomic and the new contents were durable before it.
// On an error the temporary file is removed and the old file is untouched.
func (w *WAL) replaceFile(name string, b []byte) error {
	path := filepath.Join(w.dir, name)
	tmp := path + format.TempExt
	f, err := platform.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, w.opts.FileMode)
	if err != nil {
		return fmt.Errorf("mmapwal: write %s: %w", path, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = w.dur.syncFile(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = w.dur.syncDir(w.dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("mmapwal: write %s: %w", path, err)
	}
	return nil
}

// writeMeta durably records the logical first seq (wal.meta).
func (w *WAL) writeMeta(first uint64) error {
	return w.replaceFile(format.MetaName, format.EncodeMeta(first))
}

// writeIdentity durably records the log ID (wal.id). It runs before the
// first segment carrying the ID exists.
func (w *WAL) writeIdentity(logID uint64) error {
	return w.replaceFile(format.IdentityName, format.EncodeIdentity(logID))
}
