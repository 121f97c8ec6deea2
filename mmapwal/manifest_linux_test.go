//go:build linux

package mmapwal

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/index"
	"github.com/mmapwal/wal/internal/recoveryhook"
	"github.com/mmapwal/wal/recovery"
)

// cleanLog writes a log of several segments, closes it cleanly and returns
// its directory and model.
func cleanLog(t *testing.T, o *Options) (string, *model) {
	t.Helper()
	dir := t.TempDir()
	m := newModel(1)
	w := mustOpen(t, dir, o)
	m.fill(t, w, 1500, 100)
	require.NoError(t, w.Close())
	require.GreaterOrEqual(t, len(segNames(t, dir)), 4)
	require.FileExists(t, filepath.Join(dir, format.CleanName), "a clean Close writes the manifest")
	return dir, m
}

func TestCleanReopenUsesManifest(t *testing.T) {
	o := smallOpts(SyncNone)
	dir, m := cleanLog(t, o)
	clean := filepath.Join(dir, format.CleanName)

	// The manifest's facts are the full analysis's, exactly.
	logID, _, err := loadIdentity(dir)
	require.NoError(t, err)
	ro := &recovery.Options{ReadOnly: true, LogID: logID}
	recoveryhook.WithOffsets(ro)
	withManifest, err := recovery.Recover(dir, ro)
	require.NoError(t, err)
	assert.True(t, withManifest.Manifest)
	b, err := os.ReadFile(clean)
	require.NoError(t, err)
	require.NoError(t, os.Rename(clean, clean+".aside"))
	without, err := recovery.Recover(dir, ro)
	require.NoError(t, err)
	assert.False(t, without.Manifest)
	withManifest.Manifest = false
	assert.Equal(t, without, withManifest)
	require.NoError(t, os.WriteFile(clean, b, 0o644))
	require.NoError(t, os.Remove(clean+".aside"))

	// A read-only Open uses it and leaves it.
	r, err := Open(dir, &Options{SegmentSize: MinSegmentSize, ReadOnly: true})
	require.NoError(t, err)
	require.NoError(t, r.Close())
	require.FileExists(t, clean)

	w := mustOpen(t, dir, o)
	assert.True(t, w.Stats().Recovery.Manifest)
	assert.NoFileExists(t, clean, "a read-write Open removes the manifest before anything changes")
	m.check(t, w)
	m.fill(t, w, 50, 100)
	w = reopen(t, w, o)
	assert.True(t, w.Stats().Recovery.Manifest, "every clean Close writes a new one")
	m.check(t, w)
	require.NoError(t, w.TruncateFront(m.next-300))
	m.truncateFront(m.next - 300)
	w = reopen(t, w, o)
	assert.True(t, w.Stats().Recovery.Manifest)
	m.check(t, w)
	require.NoError(t, w.Close())
}

// Every doubt about the manifest falls back to the full analysis, which
// judges the directory as if there were no manifest.
func TestManifestMismatchFallsBack(t *testing.T) {
	middle := func(t *testing.T, dir string) uint64 { return segNames(t, dir)[1] }
	for _, tc := range []struct {
		name    string
		mutate  func(t *testing.T, dir string)
		corrupt bool // Open must fail with ErrCorrupt, as without a manifest
	}{
		{"truncated manifest", func(t *testing.T, dir string) {
			p := filepath.Join(dir, format.CleanName)
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(p, b[:len(b)-10], 0o644))
		}, false},
		{"bad checksum", func(t *testing.T, dir string) {
			p := filepath.Join(dir, format.CleanName)
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			b[40] ^= 1
			require.NoError(t, os.WriteFile(p, b, 0o644))
		}, false},
		{"middle segment touched", func(t *testing.T, dir string) {
			p := filepath.Join(dir, format.SegmentName(middle(t, dir)))
			fi, err := os.Stat(p)
			require.NoError(t, err)
			require.NoError(t, os.Chmod(p, fi.Mode())) // same bytes, new ctime
		}, false},
		{"middle index touched", func(t *testing.T, dir string) {
			p := filepath.Join(dir, format.IndexName(middle(t, dir)))
			fi, err := os.Stat(p)
			require.NoError(t, err)
			require.NoError(t, os.Chmod(p, fi.Mode()))
		}, false},
		{"middle segment missing", func(t *testing.T, dir string) {
			seq := middle(t, dir)
			require.NoError(t, os.Remove(filepath.Join(dir, format.SegmentName(seq))))
			require.NoError(t, os.Remove(filepath.Join(dir, format.IndexName(seq))))
		}, true},
		{"middle index missing", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, format.IndexName(middle(t, dir)))))
		}, false},
		{"closed checkpoint never reached the disk", func(t *testing.T, dir string) {
			// A crash after the manifest, before the last index's closed
			// checkpoint was synced.
			seqs := segNames(t, dir)
			p := filepath.Join(dir, format.IndexName(seqs[len(seqs)-1]))
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			require.NoError(t, err)
			defer f.Close()
			b := make([]byte, format.IndexHeaderSize)
			_, err = f.ReadAt(b, 0)
			require.NoError(t, err)
			h, err := format.DecodeIndexHeader(b)
			require.NoError(t, err)
			require.NotZero(t, h.Flags&format.IndexClosed)
			h.Flags &^= format.IndexClosed
			h.Encode(b)
			_, err = f.WriteAt(b, 0)
			require.NoError(t, err)
		}, false},
		{"leftover temporary file", func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, format.CleanName+format.TempExt), []byte("x"), 0o644))
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := smallOpts(SyncNone)
			dir, m := cleanLog(t, o)
			tc.mutate(t, dir)
			w, err := Open(dir, o)
			if tc.corrupt {
				require.ErrorIs(t, err, ErrCorrupt)
				return
			}
			require.NoError(t, err)
			assert.False(t, w.Stats().Recovery.Manifest)
			m.check(t, w)
			require.NoError(t, w.Close())
		})
	}
}

// killAtClosedSync kills the process when Close syncs the last index's
// closed checkpoint, after it wrote the manifest.
type killAtClosedSync struct {
	osDurability
	dir string
}

func (k killAtClosedSync) syncIndex(x *index.Index) error {
	if _, err := os.Stat(filepath.Join(k.dir, format.CleanName)); err == nil {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // never returns
	}
	return k.osDurability.syncIndex(x)
}

// TestManifestHelperKilledInClose is the child of
// TestManifestKilledBeforeClosedCheckpoint.
func TestManifestHelperKilledInClose(t *testing.T) {
	dir := os.Getenv("MMWAL_MANIFEST_KILL_DIR")
	if dir == "" {
		t.Skip("helper process")
	}
	o := smallOpts(SyncNone)
	o.hooks = killAtClosedSync{dir: dir}
	w := mustOpen(t, dir, o)
	newModel(1).fill(t, w, 1500, 100)
	_ = w.Close()
	t.Fatal("not killed")
}

// A process killed between writing the manifest and syncing the closed
// checkpoint: the page cache holds the checkpoint (the manifest is true),
// so Open may use it; a power loss that lost the checkpoint is the
// "closed checkpoint never reached the disk" case above. Either way every
// record is there.
func TestManifestKilledBeforeClosedCheckpoint(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestManifestHelperKilledInClose$", "-test.count=1")
	cmd.Env = append(os.Environ(), "MMWAL_MANIFEST_KILL_DIR="+dir)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "%s", out)
	require.False(t, ee.Exited(), "the helper must die of SIGKILL: %s", out)
	require.FileExists(t, filepath.Join(dir, format.CleanName))

	m := newModel(1)
	for seq := uint64(1); seq <= 1500; seq++ {
		m.append(seq, rec(seq, 100))
	}
	o := smallOpts(SyncNone)
	w := mustOpen(t, dir, o)
	m.check(t, w)
	m.fill(t, w, 10, 100)
	w = reopen(t, w, o)
	m.check(t, w)
	require.NoError(t, w.Close())
}

// Above prefetchMin segments the stamps are checked in parallel: a change
// in any part of the log is still seen.
func TestManifestManySegments(t *testing.T) {
	o := smallOpts(SyncNone)
	dir := t.TempDir()
	m := newModel(1)
	w := mustOpen(t, dir, o)
	m.fill(t, w, 700, 30000) // two records a segment
	require.NoError(t, w.Close())
	seqs := segNames(t, dir)
	require.Greater(t, len(seqs), 300)

	w = mustOpen(t, dir, o)
	assert.True(t, w.Stats().Recovery.Manifest)
	require.NoError(t, w.Close())
	for _, i := range []int{0, len(seqs) / 2, len(seqs) - 2} {
		p := filepath.Join(dir, format.IndexName(seqs[i]))
		require.NoError(t, os.Chmod(p, 0o644))
		w = mustOpen(t, dir, o)
		assert.False(t, w.Stats().Recovery.Manifest, "index of segment %d of %d touched", i, len(seqs))
		require.NoError(t, w.Close())
	}
	w = mustOpen(t, dir, o)
	assert.True(t, w.Stats().Recovery.Manifest)
	m.check(t, w)
	require.NoError(t, w.Close())
}
