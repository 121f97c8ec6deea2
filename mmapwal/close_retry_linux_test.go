//go:build linux

package mmapwal

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// plDurableImage writes into a fresh directory what a power cut right now
// would leave in the worst case: synced bytes only, under the names of the
// last directory sync.
func plDurableImage(t *testing.T, h *plHooks) string {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	out := t.TempDir()
	for name, id := range h.durDir {
		data := make([]byte, max(int64(len(h.durable[id])), h.sizes[id]))
		copy(data, h.durable[id])
		require.NoError(t, os.WriteFile(filepath.Join(out, name), data, 0o644))
	}
	return out
}

func TestCloseFailingToOpenDirectory_CanBeRetriedAndKeepsEveryRecord(t *testing.T) {
	for _, tc := range []struct {
		name      string
		syncFirst bool
	}{{"Close again", false}, {"Sync then Close", true}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			pl := newPLHooks(t, dir, 1, func() []crashEvent { return nil })
			pl.prob = 0 // no captures: only the disk model is used
			h := &failDirHooks{durability: pl}
			o := smallOpts(SyncNone)
			o.hooks = h
			w := mustOpen(t, dir, o)
			m := newModel(1)
			m.fill(t, w, 300, 100) // the segment's name has never been synced
			h.failNext(1)
			err := w.Close()
			require.ErrorIs(t, err, syscall.EMFILE)
			if tc.syncFirst {
				require.NoError(t, w.Sync(), "Sync after a Close that lost nothing")
			}
			require.NoError(t, w.Close(), "Close again once the cause is gone")
			assert.ErrorIs(t, w.Close(), ErrClosed)
			assert.ErrorIs(t, w.Sync(), ErrClosed)

			img := plDurableImage(t, pl)
			w2 := mustOpen(t, img, smallOpts(SyncNone))
			m.check(t, w2)
			assert.Zero(t, w2.Stats().Recovery.ScannedBytes, "closed cleanly")
			require.NoError(t, w2.Close())

			w3 := mustOpen(t, dir, smallOpts(SyncNone)) // the directory lock was released
			m.check(t, w3)
			require.NoError(t, w3.Close())
		})
	}
}
