package mmapwal

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/platform"
)

// Another process shrinking an index file under the mapping used to kill
// the process with SIGBUS (in TruncateBack, and in Close's final
// checkpoint). Now both return errors, and a reopen rebuilds the index with
// every acknowledged record.
func TestShrunkIndexFileIsAnErrorNotACrash(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SIGBUS on a shrunk file is Linux behaviour")
	}
	for _, p := range []SyncPolicy{SyncAlways, SyncNone} {
		t.Run(p.String(), func(t *testing.T) {
			dir := t.TempDir()
			o := smallOpts(p)
			w := mustOpen(t, dir, o)
			m := newModel(1)
			m.fill(t, w, 40, 100)
			require.NoError(t, w.Sync())
			require.NoError(t, os.Truncate(filepath.Join(dir, format.IndexName(1)), 0))

			err := w.TruncateBack(20)
			require.Error(t, err)
			assert.ErrorIs(t, err, platform.ErrFault)
			assert.Contains(t, err.Error(), format.IndexName(1), "the error names the index file")

			err = w.Close()
			require.Error(t, err, "Close's final checkpoint cannot be written")
			assert.ErrorIs(t, err, platform.ErrFault)

			w = mustOpen(t, dir, o)
			assert.Positive(t, w.Stats().Recovery.IndexesRebuilt, "the shrunk index is rebuilt")
			m.check(t, w)
			m.fill(t, w, 5, 100)
			require.NoError(t, w.TruncateBack(30))
			m.truncateBack(30)
			m.check(t, w)
			require.NoError(t, w.Close())
		})
	}
}
