//go:build linux

package mmapwal

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

// A batch written with pwrite that fails is a sticky error naming the
// file, as a fault on the mapping is: the frames may be half-written, and
// nothing written before is lost.
func TestBatchPwriteFailureIsSticky(t *testing.T) {
	w, err := Open(t.TempDir(), &Options{Sync: SyncAlways})
	require.NoError(t, err)
	defer w.Close()
	require.True(t, w.opts.batchPwrite, "SyncAlways batches are pwritten on Linux")
	_, err = w.AppendBatch([][]byte{[]byte("a"), []byte("b")})
	require.NoError(t, err)
	w.mu.Lock()
	s := w.active
	w.mu.Unlock()
	f := s.wf.Load()
	require.NotNil(t, f, "the active segment keeps its descriptor for pwrite")
	// The next pwrite goes to a read-only descriptor: EBADF.
	ro, err := os.Open(s.path)
	require.NoError(t, err)
	s.wf.Store(ro)
	require.NoError(t, f.Close())

	_, err = w.AppendBatch([][]byte{[]byte("c"), []byte("d")})
	require.Error(t, err)
	require.Contains(t, err.Error(), s.path)
	_, err = w.Append([]byte("e"))
	require.Error(t, err, "the failure is sticky")
	got, err := w.Read(2)
	require.NoError(t, err)
	require.Equal(t, "b", string(got))
	require.Equal(t, uint64(2), w.LastSeq())
}
