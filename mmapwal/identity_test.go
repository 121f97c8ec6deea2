package mmapwal

import (
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mmapwal/wal/format"
)

// snapshotDir returns every file's name and content hash.
func snapshotDir(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	snap := map[string][32]byte{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		snap[e.Name()] = sha256.Sum256(b)
	}
	return snap
}

func segNames(t *testing.T, dir string) []uint64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var seqs []uint64
	for _, e := range entries {
		if s, ok := format.ParseSegmentName(e.Name()); ok {
			seqs = append(seqs, s)
		}
	}
	return seqs
}

// A segment and index of another log, renamed into the directory under a
// name that fits, are refused at Open with ErrCorrupt naming the file, and
// nothing on disk changes — whether or not the foreign records continue the
// log's seqs seamlessly.
func TestForeignSegmentIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name       string
		policy     SyncPolicy
		foreignRec int // record size in the other log (100: same layout as ours)
		pick       func(seqs []uint64) uint64
	}{
		{"same layout, middle segment", SyncAlways, 100, func(s []uint64) uint64 { return s[1] }},
		{"same layout, last segment", SyncAlways, 100, func(s []uint64) uint64 { return s[len(s)-1] }},
		{"same layout, first segment", SyncNone, 100, func(s []uint64) uint64 { return s[0] }},
		// The other log's first segment holds fewer records: recovery alone
		// sees a seam before our second segment and, without proof of a
		// sync, cuts every later segment as a torn tail.
		{"other layout, first segment", SyncNone, 300, func(s []uint64) uint64 { return s[0] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ours, theirs := t.TempDir(), t.TempDir()
			o := smallOpts(tc.policy)
			m := newModel(1)
			w := mustOpen(t, ours, o)
			m.fill(t, w, 1500, 100)
			require.NoError(t, w.Close())
			w2 := mustOpen(t, theirs, o)
			newModel(1).fill(t, w2, 1500, tc.foreignRec)
			require.NoError(t, w2.Close())

			seqs := segNames(t, ours)
			require.GreaterOrEqual(t, len(seqs), 3)
			seq := tc.pick(seqs)
			require.FileExists(t, filepath.Join(theirs, format.SegmentName(seq)), "both logs have a segment of this name")
			foreign := filepath.Join(ours, format.SegmentName(seq))
			require.NoError(t, os.Rename(filepath.Join(theirs, format.SegmentName(seq)), foreign))
			require.NoError(t, os.Rename(filepath.Join(theirs, format.IndexName(seq)), filepath.Join(ours, format.IndexName(seq))))

			before := snapshotDir(t, ours)
			_, err := Open(ours, o)
			require.ErrorIs(t, err, ErrCorrupt)
			var ce *CorruptError
			require.True(t, errors.As(err, &ce), "%v", err)
			assert.Equal(t, foreign, ce.File, "the error names the foreign file")
			assert.Contains(t, err.Error(), "another log")
			assert.Equal(t, before, snapshotDir(t, ours), "nothing changed on disk")
		})
	}
}

// The check also runs when a segment is mapped: a file swapped in after the
// Open-time check is refused too.
func TestOpenSegmentRefusesAnotherLogsFile(t *testing.T) {
	dir := t.TempDir()
	w := mustOpen(t, dir, smallOpts(SyncAlways))
	newModel(1).fill(t, w, 10, 100)
	logID := w.logID
	s := w.segs.Load().segs[0]
	path, id, size := s.path, s.id, s.size
	require.NoError(t, w.Close())

	s, err := openSegment(path, 1, id, logID, size)
	require.NoError(t, err)
	require.NoError(t, s.unmap())

	_, err = openSegment(path, 1, id, logID+1, size)
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), path)
	_, err = openSegment(path, 1, id+1, logID, size)
	require.ErrorIs(t, err, ErrCorrupt, "a header other than the one recovery read")
}

// Every segment the log writes carries its identity, which stays the same
// across reopens and is kept in wal.id while the log has no segments.
func TestIdentityIsStampedAndKept(t *testing.T) {
	dir := t.TempDir()
	o := smallOpts(SyncAlways)
	w := mustOpen(t, dir, o)
	id := w.logID
	require.NotZero(t, id)
	m := newModel(1)
	m.fill(t, w, 1500, 100)
	require.NoError(t, w.Close())
	for _, seq := range segNames(t, dir) {
		h := headerOf(t, filepath.Join(dir, format.SegmentName(seq)))
		assert.Equal(t, id, h.LogID, "segment %d", seq)
	}

	// Emptied by TruncateFront: the identity survives in wal.id.
	w = mustOpen(t, dir, o)
	require.NoError(t, w.TruncateFront(m.next+10))
	m.truncateFront(m.next + 10)
	require.NoError(t, w.Close())
	require.Empty(t, segNames(t, dir))
	w = mustOpen(t, dir, o)
	assert.Equal(t, id, w.logID)
	m.fill(t, w, 10, 100)
	require.NoError(t, w.Close())
	assert.Equal(t, id, headerOf(t, filepath.Join(dir, format.SegmentName(m.first))).LogID)

	// wal.id lost (a copy of the segments only): the segments' ID is adopted.
	require.NoError(t, os.Remove(filepath.Join(dir, format.IdentityName)))
	w = mustOpen(t, dir, o)
	assert.Equal(t, id, w.logID)
	m.check(t, w)
	require.NoError(t, w.Close())
	b, err := os.ReadFile(filepath.Join(dir, format.IdentityName))
	require.NoError(t, err)
	got, err := format.DecodeIdentity(b)
	require.NoError(t, err)
	assert.Equal(t, id, got, "wal.id written again")

	// A damaged wal.id is corruption, named, and nothing changes.
	b[20] ^= 1
	require.NoError(t, os.WriteFile(filepath.Join(dir, format.IdentityName), b, 0o600))
	before := snapshotDir(t, dir)
	_, err = Open(dir, o)
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), format.IdentityName)
	assert.Equal(t, before, snapshotDir(t, dir))
}

// A log written before identities (log ID zero in every header, no wal.id)
// opens with every record; it gets an identity, and its new segments carry
// it while the old ones stay unchecked.
func TestLegacyLogWithoutIdentityOpens(t *testing.T) {
	dir := t.TempDir()
	o := smallOpts(SyncAlways)
	w := mustOpen(t, dir, o)
	m := newModel(1)
	m.fill(t, w, 1000, 100)
	require.NoError(t, w.Close())
	old := segNames(t, dir)
	for _, seq := range old { // rewrite as the previous version did
		path := filepath.Join(dir, format.SegmentName(seq))
		h := headerOf(t, path)
		h.LogID = 0
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		require.NoError(t, err)
		b := make([]byte, format.SegmentHeaderSize)
		h.Encode(b)
		_, err = f.WriteAt(b, 0)
		require.NoError(t, err)
		require.NoError(t, f.Close())
	}
	require.NoError(t, os.Remove(filepath.Join(dir, format.IdentityName)))

	w = mustOpen(t, dir, o)
	id := w.logID
	require.NotZero(t, id)
	m.check(t, w)
	m.fill(t, w, 1000, 100)
	require.NoError(t, w.Close())
	w = mustOpen(t, dir, o)
	assert.Equal(t, id, w.logID)
	m.check(t, w)
	require.NoError(t, w.Close())
	for _, seq := range segNames(t, dir) {
		want := id
		if seq <= old[len(old)-1] {
			want = 0
		}
		assert.Equal(t, want, headerOf(t, filepath.Join(dir, format.SegmentName(seq))).LogID, "segment %d", seq)
	}
}

// The golden segment of the format before identities still opens.
func TestGoldenLegacySegmentOpens(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "golden", "segment-v1.bin"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, format.SegmentName(7)), b, 0o600))
	w, err := Open(dir, nil)
	require.NoError(t, err)
	defer w.Close()
	assert.Equal(t, uint64(7), w.FirstSeq())
	assert.Equal(t, uint64(11), w.LastSeq())
	for seq, want := range map[uint64]string{7: "hello, wal", 8: "", 9: "batch-a", 11: "batch-c, the last one"} {
		got, err := w.Read(seq)
		require.NoError(t, err)
		assert.Equal(t, want, string(got))
	}
}

func headerOf(t *testing.T, path string) format.SegmentHeader {
	t.Helper()
	h, err := readSegmentHeader(path)
	require.NoError(t, err)
	require.NotNil(t, h, path)
	return *h
}
