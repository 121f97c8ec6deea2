//go:build unix

package recovery

import (
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mmapwal/wal/format"
)

// A segment before the last whose checkpoint reaches the next segment's
// first seq is judged from its header and checkpoint alone: the frame
// header after the checkpoint's end is not read (a system call per segment
// at 10,000 segments). The last segment's still is, unless closed cleanly.
func TestMiddleSegmentEndIsNotReadWhenTheChainIsProven(t *testing.T) {
	dir := t.TempDir()
	var segs []string
	for i, first := range []uint64{1, 6, 11} {
		id := 11 + uint64(i)
		p, offs := writeSegment(t, dir, first, id, fulls(first, first+4, 0))
		writeIndex(t, dir, first, id, 5, frameEnd(offs, 4), 0, offs)
		segs = append(segs, p)
	}
	efs := newErrFS(t)
	rep, err := Recover(dir, &Options{fs: efs, ReadOnly: true})
	require.NoError(t, err)
	assert.Equal(t, uint64(16), rep.NextSeq)
	reads := func(p string) int {
		n := 0
		for _, op := range efs.log() {
			if op == "readat "+filepath.Base(p) {
				n++
			}
		}
		return n
	}
	assert.Equal(t, 1, reads(segs[0]), "the header only")
	assert.Equal(t, 1, reads(segs[1]), "the header only")
	assert.Contains(t, efs.log(), "map "+filepath.Base(segs[2]), "the last segment's tail is checked")

	// A read failure on what is still read aborts, naming the file.
	_, err = Recover(dir, &Options{fs: newErrFS(t, fsRule{op: "readat", path: filepath.Base(segs[1]), err: syscall.EIO})})
	require.ErrorIs(t, err, syscall.EIO)
	assert.Contains(t, err.Error(), segs[1])
}

// The directory listing read from getdents64 is os.ReadDir's: every name,
// and only regular files as regular (a directory, FIFO or symlink under a
// segment's name is not a segment).
func TestDirListingMatchesReadDir(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, format.SegmentName(1)), []byte("x"), 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(dir, format.SegmentName(2)), 0o755))
	require.NoError(t, os.Symlink(format.SegmentName(1), filepath.Join(dir, format.SegmentName(3))))
	require.NoError(t, syscall.Mkfifo(filepath.Join(dir, format.SegmentName(4)), 0o644))
	for i := range 3000 { // more than one getdents64 buffer
		require.NoError(t, os.WriteFile(filepath.Join(dir, format.IndexName(uint64(100+i))), nil, 0o644))
	}
	d, err := osFS{}.OpenDir(dir)
	require.NoError(t, err)
	got, err := d.List()
	require.NoError(t, err)
	require.NoError(t, d.Close())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var want []dirEntry
	for _, e := range entries {
		want = append(want, dirEntry{name: e.Name(), regular: e.Type().IsRegular()})
	}
	cmp := func(a, b dirEntry) int {
		if a.name < b.name {
			return -1
		}
		if a.name > b.name {
			return 1
		}
		return 0
	}
	slices.SortFunc(got, cmp)
	assert.Equal(t, want, got)
	assert.Len(t, got, 3004)
}
