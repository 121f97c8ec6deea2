package index

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

func TestCapacityCoversSmallestFrames(t *testing.T) {
	for _, size := range []int64{64 << 10, 64 << 20} {
		c := format.IndexCapacity(size)
		assert.GreaterOrEqual(t, int64(c)*format.FrameHeaderSize+format.SegmentHeaderSize, size-format.FrameHeaderSize+1,
			"an index must hold an entry for every frame a segment of %d bytes can hold", size)
	}
}

func TestCreateSetGetCheckpointReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), format.IndexName(5))
	x, err := Create(path, 77, 5, 100, 0o600)
	require.NoError(t, err)
	for i := 0; i < 100; i++ {
		x.Set(i, int64(format.SegmentHeaderSize+i*40))
	}
	require.NoError(t, x.Checkpoint(100, 4064, format.IndexClosed))
	require.NoError(t, x.Sync())
	require.NoError(t, x.Close())

	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, format.IndexFileSize(100), fi.Size(), "preallocated to capacity")

	y, err := Open(path, 100)
	require.NoError(t, err)
	defer y.Close()
	assert.Equal(t, format.IndexHeader{SegmentID: 77, FirstSeq: 5, Count: 100, EndOffset: 4064, Flags: format.IndexClosed}, y.Header())
	for i := uint64(0); i < 100; i++ {
		off, ok := y.Get(i)
		require.True(t, ok)
		assert.Equal(t, int64(format.SegmentHeaderSize)+int64(i)*40, off)
	}
	_, ok := y.Get(100)
	assert.False(t, ok, "outside the file")
}

func TestOpenRejectsShortOrGarbageFiles(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short.idx")
	x, err := Create(short, 1, 1, 10, 0o600)
	require.NoError(t, err)
	require.NoError(t, x.Close())
	_, err = Open(short, 1000) // needs more entries than the file has
	assert.Error(t, err)

	garbage := filepath.Join(dir, "garbage.idx")
	require.NoError(t, os.WriteFile(garbage, make([]byte, format.IndexFileSize(10)), 0o644))
	_, err = Open(garbage, 10)
	assert.Error(t, err)
}

func TestInitRenameRemove(t *testing.T) {
	dir := t.TempDir()
	x, err := Create(filepath.Join(dir, "p.idx.tmp"), 9, 0, 10, 0o600)
	require.NoError(t, err)
	require.NoError(t, x.Init(9, 33))
	require.NoError(t, x.Rename(filepath.Join(dir, format.IndexName(33))))
	assert.Equal(t, uint64(33), x.Header().FirstSeq)
	assert.FileExists(t, filepath.Join(dir, format.IndexName(33)))
	require.NoError(t, x.Remove())
	assert.NoFileExists(t, filepath.Join(dir, format.IndexName(33)))
}

// Another process may shrink an index file under its mapping: every method
// that touches the lost pages returns an error instead of crashing the
// process with SIGBUS.
func TestShrunkFileFaultsBecomeErrors(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SIGBUS on a shrunk file is Linux behaviour")
	}
	path := filepath.Join(t.TempDir(), format.IndexName(5))
	x, err := Create(path, 77, 5, 4096, 0o600)
	require.NoError(t, err)
	defer x.Close()
	require.NoError(t, x.SetOffsets(0, []int64{64, 128}))
	require.NoError(t, x.Checkpoint(2, 192, 0))
	require.NoError(t, os.Truncate(path, 0))

	err = x.Checkpoint(3, 256, format.IndexClosed)
	assert.ErrorIs(t, err, platform.ErrFault)
	assert.Contains(t, err.Error(), path)
	assert.Equal(t, uint64(2), x.Header().Count, "a failed checkpoint leaves the last one in place")
	assert.ErrorIs(t, x.Init(77, 9), platform.ErrFault)
	assert.ErrorIs(t, x.SetOffsets(4000, []int64{64}), platform.ErrFault)
	_, _, err = x.Lookup(4000)
	assert.ErrorIs(t, err, platform.ErrFault)
	assert.ErrorIs(t, platform.CatchFault(func() { x.Set(4000, 64) }), platform.ErrFault,
		"Set is guarded by its caller")
}

func TestCheckpointDoesNotAllocate(t *testing.T) {
	x, err := Create(filepath.Join(t.TempDir(), format.IndexName(5)), 77, 5, 100, 0o600)
	require.NoError(t, err)
	defer x.Close()
	n := uint64(0)
	allocs := testing.AllocsPerRun(100, func() {
		n++
		_ = x.Checkpoint(n, 64, 0)
	})
	assert.Zero(t, allocs, "Checkpoint runs once per flush round")
}
