package index

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mmapwal/wal/format"
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
	x, err := Create(path, 77, 5, 100)
	require.NoError(t, err)
	for i := 0; i < 100; i++ {
		x.Set(i, int64(format.SegmentHeaderSize+i*40))
	}
	x.Checkpoint(100, 4064, format.IndexClosed)
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
	x, err := Create(short, 1, 1, 10)
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
	x, err := Create(filepath.Join(dir, "p.idx.tmp"), 9, 0, 10)
	require.NoError(t, err)
	x.Init(9, 33)
	require.NoError(t, x.Rename(filepath.Join(dir, format.IndexName(33))))
	assert.Equal(t, uint64(33), x.Header().FirstSeq)
	assert.FileExists(t, filepath.Join(dir, format.IndexName(33)))
	require.NoError(t, x.Remove())
	assert.NoFileExists(t, filepath.Join(dir, format.IndexName(33)))
}
