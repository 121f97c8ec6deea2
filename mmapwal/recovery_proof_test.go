package mmapwal_test

// Recovery as an operator meets it: logs written under SyncNone or
// SyncPeriodic (frames carry no useful durable-seq hints) with a middle
// segment missing or damaged, and logs reopened with a lower MaxRecordSize.

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand"
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

func proofRecord(i int) []byte { return []byte(fmt.Sprintf("record %d %0300d", i, i)) }

// closedLog writes n records under policy into small segments, closes the
// log cleanly and returns its segment paths in order.
func closedLog(t *testing.T, dir string, policy mmapwal.SyncPolicy, n int) []string {
	t.Helper()
	w, err := mmapwal.Open(dir, &mmapwal.Options{SegmentSize: mmapwal.MinSegmentSize, Sync: policy})
	require.NoError(t, err)
	for i := 1; i <= n; i++ {
		_, err := w.Append(proofRecord(i))
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	segs, err := filepath.Glob(filepath.Join(dir, "*"+format.SegmentExt))
	require.NoError(t, err)
	sort.Strings(segs)
	return segs
}

// treeHash maps every file of dir (LOCK aside) to a hash of its contents.
func treeHash(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		if e.Name() == format.LockName {
			continue
		}
		if e.IsDir() {
			out[e.Name()] = "directory"
			continue
		}
		// Whole files, but for a huge sparse one its size and first MiB.
		f, err := os.Open(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		fi, err := f.Stat()
		require.NoError(t, err)
		h := sha256.New()
		_, err = io.Copy(h, io.LimitReader(f, 64<<20))
		require.NoError(t, f.Close())
		require.NoError(t, err)
		out[e.Name()] = fmt.Sprintf("%d:%x", fi.Size(), h.Sum(nil))
	}
	return out
}

func TestRecoveryMissingMiddleSegmentIsCorruptUnderEveryPolicy(t *testing.T) {
	for _, policy := range []mmapwal.SyncPolicy{mmapwal.SyncNone, mmapwal.SyncPeriodic, mmapwal.SyncAlways} {
		t.Run(policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			segs := closedLog(t, dir, policy, 1000)
			require.GreaterOrEqual(t, len(segs), 4)
			gone := segs[len(segs)/2]
			first, _ := format.ParseSegmentName(filepath.Base(gone))
			next, _ := format.ParseSegmentName(filepath.Base(segs[len(segs)/2+1]))
			require.NoError(t, os.Remove(gone))
			before := treeHash(t, dir)

			_, err := mmapwal.Open(dir, &mmapwal.Options{SegmentSize: mmapwal.MinSegmentSize, Sync: policy})
			require.ErrorIs(t, err, format.ErrCorrupt, "a missing middle segment is never a torn tail")
			var ce *format.CorruptError
			require.True(t, errors.As(err, &ce))
			assert.Equal(t, first, ce.Seq)
			assert.Contains(t, ce.Reason, fmt.Sprintf("%d..%d", first, next-1), "names the missing seq range")
			assert.Equal(t, before, treeHash(t, dir), "nothing changed")
		})
	}
}

// Random damage to an older segment of a cleanly closed SyncNone log never
// yields a silently shorter log: Open fails with ErrCorrupt, or (damage
// where Open does not look: inside checkpointed records, or in the unused
// tail of a segment) opens the whole log.
func TestRecoveryDamagedOlderSegmentNeverShortensTheLog(t *testing.T) {
	const n = 1000
	master := t.TempDir()
	segs := closedLog(t, master, mmapwal.SyncNone, n)
	require.GreaterOrEqual(t, len(segs), 4)
	rng := rand.New(rand.NewSource(8))
	counts := map[string]int{}
	for trial := 0; trial < 60; trial++ {
		dir := t.TempDir()
		for _, name := range filesOf(t, master) {
			b, err := os.ReadFile(filepath.Join(master, name))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
		}
		victim := filepath.Join(dir, filepath.Base(segs[rng.Intn(len(segs)-1)])) // any but the last
		b, err := os.ReadFile(victim)
		require.NoError(t, err)
		var kind string
		switch rng.Intn(3) {
		case 0:
			kind = "flipped byte"
			b[rng.Intn(len(b))] ^= byte(1 + rng.Intn(255))
		case 1:
			kind = "zeroed sector"
			off := rng.Intn(len(b)/512) * 512
			clear(b[off : off+512])
		case 2:
			kind = "truncated file"
			b = b[:rng.Intn(len(b))]
		}
		require.NoError(t, os.WriteFile(victim, b, 0o644))
		if rng.Intn(2) == 0 {
			// Without its index (lost, or never checkpointed) the segment is
			// scanned and the damage found.
			kind += " (index gone)"
			require.NoError(t, os.Remove(victim[:len(victim)-len(format.SegmentExt)]+format.IndexExt))
		}
		before := treeHash(t, dir)
		w, err := mmapwal.Open(dir, &mmapwal.Options{SegmentSize: mmapwal.MinSegmentSize, Sync: mmapwal.SyncNone})
		if err != nil {
			require.ErrorIs(t, err, format.ErrCorrupt, "trial %d (%s of %s)", trial, kind, filepath.Base(victim))
			assert.Equal(t, before, treeHash(t, dir), "trial %d: nothing changed", trial)
			counts[kind+": ErrCorrupt"]++
			continue
		}
		first, last := w.FirstSeq(), w.LastSeq()
		require.NoError(t, w.Close())
		require.Equal(t, uint64(1), first, "trial %d (%s of %s)", trial, kind, filepath.Base(victim))
		require.Equal(t, uint64(n), last, "trial %d (%s of %s): a silently shorter log", trial, kind, filepath.Base(victim))
		counts[kind+": opened whole"]++
	}
	t.Logf("outcomes: %v", counts)
}

func filesOf(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		if e.Type().IsRegular() && e.Name() != format.LockName {
			out = append(out, e.Name())
		}
	}
	return out
}

// Records written under a higher MaxRecordSize are valid log records: a
// recovery that scans them (no index checkpoint, as after a crash that lost
// the index files) keeps every one whatever the limit at reopen.
func TestRecoveryIgnoresALowerMaxRecordSizeAtReopen(t *testing.T) {
	dir := t.TempDir()
	const n = 12
	rec := func(i int) []byte { return append([]byte(fmt.Sprintf("%d:", i)), make([]byte, 600<<10)...) }
	w, err := mmapwal.Open(dir, &mmapwal.Options{SegmentSize: 2 << 20, MaxRecordSize: 1 << 20})
	require.NoError(t, err)
	for i := 1; i <= n; i++ {
		_, err := w.Append(rec(i))
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	idxs, err := filepath.Glob(filepath.Join(dir, "*"+format.IndexExt))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(idxs), 3)
	for _, p := range idxs {
		require.NoError(t, os.Remove(p)) // no checkpoint: every frame is scanned
	}

	rep, err := recovery.Recover(dir, &recovery.Options{ReadOnly: true})
	require.NoError(t, err)
	assert.Empty(t, rep.TornFile, "nothing is cut")
	assert.Zero(t, rep.RecordsDropped)
	assert.Empty(t, rep.FilesRemoved)
	var count uint64
	for _, s := range rep.Segments {
		count += s.Count
	}
	assert.Equal(t, uint64(n), count)
	assert.Equal(t, uint64(n+1), rep.NextSeq)

	w, err = mmapwal.Open(dir, &mmapwal.Options{SegmentSize: 2 << 20, MaxRecordSize: 4 << 10})
	require.NoError(t, err)
	assert.Equal(t, uint64(n), w.LastSeq(), "no record dropped at reopen")
	assert.Zero(t, w.Stats().Recovery.RecordsDropped)
	require.NoError(t, w.Close())
}
