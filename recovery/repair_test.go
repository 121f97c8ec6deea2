package recovery_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/mmapwal"
	"github.com/mmapwal/wal/recovery"
)

func repairOpts() *mmapwal.Options {
	return &mmapwal.Options{SegmentSize: mmapwal.MinSegmentSize, Sync: mmapwal.SyncNone}
}

func repairRecord(i int) []byte { return []byte(fmt.Sprintf("record %d %0400d", i, i)) }

// repairLog writes n records, closes the log and returns its segments.
func repairLog(t *testing.T, n int) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	w, err := mmapwal.Open(dir, repairOpts())
	require.NoError(t, err)
	for i := 1; i <= n; i++ {
		_, err := w.Append(repairRecord(i))
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	segs, err := filepath.Glob(filepath.Join(dir, "*"+format.SegmentExt))
	require.NoError(t, err)
	sort.Strings(segs)
	if n >= 400 {
		require.GreaterOrEqual(t, len(segs), 3)
	}
	return dir, segs
}

func dirNames(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	out := map[string]int64{}
	for _, e := range ents {
		fi, err := e.Info()
		require.NoError(t, err)
		out[e.Name()] = fi.ModTime().UnixNano()
	}
	return out
}

func TestRepair_UndamagedLogIsLeftUnchanged(t *testing.T) {
	dir, _ := repairLog(t, 400)
	before := dirNames(t, dir)
	rep, err := recovery.Repair(dir, nil)
	require.NoError(t, err)
	assert.False(t, rep.Damaged)
	assert.Empty(t, rep.MovedAside)
	assert.Equal(t, before, dirNames(t, dir))
}

func TestRepair_RefusesWhileTheLogIsOpen(t *testing.T) {
	dir, _ := repairLog(t, 10)
	w, err := mmapwal.Open(dir, repairOpts())
	require.NoError(t, err)
	defer w.Close()
	_, err = recovery.Repair(dir, nil)
	assert.ErrorIs(t, err, format.ErrLocked)
}

func TestRepair_CutsAtDamageKeepsCopiesAndNeverOverwritesThem(t *testing.T) {
	dir, segs := repairLog(t, 400)
	data, err := os.ReadFile(segs[1])
	require.NoError(t, err)
	first, _ := format.ParseSegmentName(filepath.Base(segs[1]))
	damaged := append([]byte(nil), data...)
	damaged[format.SegmentHeaderSize+3000] ^= 0xff // inside the first records of segment 2
	require.NoError(t, os.WriteFile(segs[1], damaged, 0o644))
	require.NoError(t, os.WriteFile(segs[1]+recovery.BrokenExt, []byte("an earlier repair"), 0o644))

	rep, err := recovery.Repair(dir, nil)
	require.NoError(t, err)
	require.True(t, rep.Damaged)
	assert.Equal(t, segs[1], rep.File)
	assert.Greater(t, rep.Seq, first)
	assert.Equal(t, 400-int(rep.Seq), rep.RecordsDropped, "valid records after the damaged one")
	// The earlier .broken file is untouched; the copy is byte for byte the damaged file.
	old, err := os.ReadFile(segs[1] + recovery.BrokenExt)
	require.NoError(t, err)
	assert.Equal(t, "an earlier repair", string(old))
	cp, err := os.ReadFile(rep.MovedAside[segs[1]])
	require.NoError(t, err)
	assert.Equal(t, damaged, cp)
	for _, later := range segs[2:] {
		assert.NoFileExists(t, later)
		assert.FileExists(t, rep.MovedAside[later])
	}
	for _, p := range rep.IndexesRemoved {
		assert.NoFileExists(t, p)
	}

	w, err := mmapwal.Open(dir, repairOpts())
	require.NoError(t, err)
	require.Equal(t, rep.Seq-1, w.LastSeq())
	for i := uint64(1); i < rep.Seq; i++ {
		b, err := w.Read(i)
		require.NoError(t, err)
		require.Equal(t, repairRecord(int(i)), b)
	}
	seq, err := w.Append([]byte("after repair"))
	require.NoError(t, err)
	assert.Equal(t, rep.Seq, seq)
	require.NoError(t, w.Close())

	// A second Repair finds nothing to do.
	rep2, err := recovery.Repair(dir, nil)
	require.NoError(t, err)
	assert.False(t, rep2.Damaged, "%+v", rep2)
}

func TestRepair_BadHeaderMovesTheSegmentAsideWhole(t *testing.T) {
	dir, segs := repairLog(t, 400)
	first, _ := format.ParseSegmentName(filepath.Base(segs[1]))
	f, err := os.OpenFile(segs[1], os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("XX"), 0)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	_, err = mmapwal.Open(dir, repairOpts())
	var ce *format.CorruptError
	require.True(t, errors.As(err, &ce), "%v", err)

	rep, err := recovery.Repair(dir, nil)
	require.NoError(t, err)
	assert.Equal(t, first, rep.Seq)
	assert.Equal(t, int64(0), rep.Offset)
	assert.NoFileExists(t, segs[1])
	assert.FileExists(t, segs[1]+recovery.BrokenExt)
	w, err := mmapwal.Open(dir, repairOpts())
	require.NoError(t, err)
	assert.Equal(t, first-1, w.LastSeq())
	require.NoError(t, w.Close())
}
