package mmapwal

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSmoke(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(dir, &Options{SegmentSize: 64 << 10, Sync: SyncNone})
	require.NoError(t, err)
	for i := 1; i <= 5000; i++ {
		seq, err := w.Append([]byte(fmt.Sprintf("rec-%d", i)))
		require.NoError(t, err)
		require.Equal(t, uint64(i), seq)
	}
	for i := 1; i <= 5000; i++ {
		b, err := w.Read(uint64(i))
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("rec-%d", i), string(b))
	}
	require.NoError(t, w.Close())
	w, err = Open(dir, &Options{SegmentSize: 64 << 10})
	require.NoError(t, err)
	require.Equal(t, uint64(1), w.FirstSeq())
	require.Equal(t, uint64(5000), w.LastSeq())
	t.Logf("%+v", w.Stats())
	for i := 1; i <= 5000; i++ {
		b, err := w.Read(uint64(i))
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("rec-%d", i), string(b))
	}
	seq, err := w.Append([]byte("x"))
	require.NoError(t, err)
	require.Equal(t, uint64(5001), seq)
	require.NoError(t, w.Close())
}
