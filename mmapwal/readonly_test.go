package mmapwal

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// dirFingerprint is every file of dir with its size, mode, mtime and
// content hash: a read-only Open must leave it identical.
func dirFingerprint(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %v %d %d", p, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if !d.IsDir() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		lines = append(lines, line)
		return nil
	})
	require.NoError(t, err)
	sort.Strings(lines)
	return fmt.Sprint(lines)
}

func roOpts() *Options { return &Options{ReadOnly: true} }

func TestReadOnly_WriteMethodsReturnErrReadOnly(t *testing.T) {
	dir := t.TempDir()
	w := mustOpen(t, dir, smallOpts(SyncNone))
	for i := 0; i < 10; i++ {
		_, err := w.Append(rec(uint64(i+1), 100))
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())

	r, err := Open(dir, roOpts())
	require.NoError(t, err)
	defer r.Close()
	_, err = r.Append([]byte("x"))
	require.ErrorIs(t, err, ErrReadOnly)
	_, err = r.AppendBatch([][]byte{[]byte("x"), []byte("y")})
	require.ErrorIs(t, err, ErrReadOnly)
	require.ErrorIs(t, r.TruncateFront(5), ErrReadOnly)
	require.ErrorIs(t, r.TruncateBack(5), ErrReadOnly)
	require.ErrorIs(t, r.Sync(), ErrReadOnly)
	require.Equal(t, uint64(1), r.FirstSeq())
	require.Equal(t, uint64(10), r.LastSeq())
}

func TestReadOnly_ChangesNoFile(t *testing.T) {
	dir := t.TempDir()
	m := newModel(1)
	w := mustOpen(t, dir, smallOpts(SyncNone))
	m.fill(t, w, 400, 700) // several segments
	require.NoError(t, w.TruncateFront(30))
	m.truncateFront(30)
	require.NoError(t, w.Close())
	// Leftovers an Open would remove or repair: a temporary file and a
	// missing index.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "x"+".seg.tmp"), []byte("junk"), 0o600))
	idxs, _ := filepath.Glob(filepath.Join(dir, "*.idx"))
	require.NotEmpty(t, idxs)
	require.NoError(t, os.Remove(idxs[0]))
	before := dirFingerprint(t, dir)
	time.Sleep(10 * time.Millisecond) // a write now would show in an mtime

	r, err := Open(dir, roOpts())
	require.NoError(t, err)
	m.check(t, r)
	var n int
	require.NoError(t, r.Replay(0, func(seq uint64, data []byte) error {
		n++
		require.Equal(t, m.recs[seq], data)
		return nil
	}))
	require.Equal(t, len(m.recs), n)
	_ = r.Stats()
	require.NoError(t, r.Close())
	require.Equal(t, before, dirFingerprint(t, dir))
}

func TestReadOnly_MissingAndEmptyDirectory(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	_, err := Open(missing, roOpts())
	require.Error(t, err)
	_, serr := os.Stat(missing)
	require.True(t, errors.Is(serr, fs.ErrNotExist), "read-only Open created the directory")

	empty := t.TempDir()
	r, err := Open(empty, roOpts())
	require.NoError(t, err)
	require.Equal(t, uint64(0), r.LastSeq())
	require.Equal(t, uint64(0), r.FirstSeq())
	_, err = r.Read(1)
	require.ErrorIs(t, err, ErrNotFound)
	require.NoError(t, r.Close())
	ents, err := os.ReadDir(empty)
	require.NoError(t, err)
	require.Empty(t, ents)
	require.ErrorIs(t, r.Close(), ErrClosed)
}

// A writer in the same process holds the lock: a read-only Open works
// beside it and follows appends, rotations and truncations.
func TestReadOnly_BesideWriterInSameProcess(t *testing.T) {
	dir := t.TempDir()
	m := newModel(1)
	w := mustOpen(t, dir, smallOpts(SyncNone))
	defer w.Close()
	m.fill(t, w, 50, 300)

	r, err := Open(dir, roOpts())
	require.NoError(t, err, "read-only Open beside a writer")
	defer r.Close()
	m.check(t, r)

	// Wait returns once the writer appends.
	rd, err := r.NewReader(r.LastSeq() + 1)
	require.NoError(t, err)
	got := make(chan error, 1)
	go func() { got <- rd.Wait(context.Background()) }()
	m.fill(t, w, 1, 10)
	require.NoError(t, <-got)
	require.True(t, rd.Next())
	require.Equal(t, m.recs[51], rd.Value())

	// Rotations: many segments later, everything reads back.
	m.fill(t, w, 500, 900)
	m.check(t, r)
	for rd.Next() {
		require.Equal(t, m.recs[rd.Seq()], rd.Value(), "seq %d", rd.Seq())
	}
	require.NoError(t, rd.Err())
	require.Equal(t, w.LastSeq(), rd.Seq())

	// TruncateFront: gone from the read-only view too.
	require.NoError(t, w.TruncateFront(100))
	m.truncateFront(100)
	_, err = r.Read(99)
	require.ErrorIs(t, err, ErrNotFound)
	m.check(t, r)

	// TruncateBack across segments, then new records at the same seqs:
	// the reader that returned cut records stops with ErrTruncated, and
	// reads return the new records, never the old.
	cut := w.LastSeq() - 300
	require.NoError(t, w.TruncateBack(cut))
	m.truncateBack(cut)
	for i := 0; i < 5; i++ {
		seq, err := w.Append([]byte(fmt.Sprintf("new %d", i)))
		require.NoError(t, err)
		m.append(seq, []byte(fmt.Sprintf("new %d", i)))
	}
	m.check(t, r)
	require.False(t, rd.Next())
	require.ErrorIs(t, rd.Err(), ErrTruncated)
	for seq := cut + 1; seq <= cut+5; seq++ {
		b, err := r.Read(seq)
		require.NoError(t, err)
		require.Equal(t, m.recs[seq], b)
	}
	_, err = r.Read(cut + 6)
	require.ErrorIs(t, err, ErrNotFound)
}

// A Reader of a read-only WAL whose position is at or before the cut goes
// on; Replay and All see the writer's records.
func TestReadOnly_ReaderBeforeCutContinues(t *testing.T) {
	dir := t.TempDir()
	w := mustOpen(t, dir, smallOpts(SyncNone))
	defer w.Close()
	for i := 1; i <= 20; i++ {
		_, err := w.Append(rec(uint64(i), 50))
		require.NoError(t, err)
	}
	r, err := Open(dir, roOpts())
	require.NoError(t, err)
	defer r.Close()
	rd, err := r.NewReader(1)
	require.NoError(t, err)
	for i := 0; i < 10; i++ {
		require.True(t, rd.Next())
	}
	require.NoError(t, w.TruncateBack(12))
	_, err = w.Append([]byte("thirteen"))
	require.NoError(t, err)
	var seqs []uint64
	for seq, v := range rd.All() {
		seqs = append(seqs, seq)
		if seq == 13 {
			require.Equal(t, []byte("thirteen"), v)
		} else {
			require.Equal(t, rec(seq, 50), v)
		}
	}
	require.NoError(t, rd.Err())
	require.Equal(t, []uint64{11, 12, 13}, seqs)
	require.True(t, bytes.Equal(mustRead(t, r, 13), []byte("thirteen")))
}

func mustRead(t *testing.T, w *WAL, seq uint64) []byte {
	t.Helper()
	b, err := w.Read(seq)
	require.NoError(t, err)
	return b
}
