//go:build linux

package mmapwal

// Real filesystem faults (root only; each test skips with a message when it
// cannot set its filesystem up, and always unmounts in t.Cleanup).

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func fsfRequireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount filesystems")
	}
}

func fsfRun(t *testing.T, name string, args ...string) error {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// fsfMount mounts and registers the unmount; it skips the test if the mount
// fails.
func fsfMount(t *testing.T, mnt string, args ...string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(mnt, 0o755))
	if err := fsfRun(t, "mount", append(args, mnt)...); err != nil {
		t.Skipf("mount not available here: %v", err)
	}
	t.Cleanup(func() {
		if err := fsfRun(t, "umount", mnt); err != nil {
			_ = fsfRun(t, "umount", "-l", mnt)
		}
	})
}

func fsfRecord(i uint64) []byte { return bytes.Repeat([]byte(fmt.Sprintf("<%d>", i)), 150) }

func fsfCheck(t *testing.T, w *WAL, last uint64) {
	t.Helper()
	require.Equal(t, last, w.LastSeq())
	for s := uint64(1); s <= last; s++ {
		b, err := w.Read(s)
		require.NoError(t, err, "seq %d", s)
		require.Equal(t, fsfRecord(s), b, "seq %d", s)
	}
}

func TestFSFaultDiskFull_AppendFailsWithENOSPCAndContinuesAfterSpaceIsFreed(t *testing.T) {
	fsfRequireRoot(t)
	mnt := filepath.Join(t.TempDir(), "tmnt")
	fsfMount(t, mnt, "-t", "tmpfs", "-o", "size=1m", "tmpfs")
	ballast := filepath.Join(mnt, "ballast")
	require.NoError(t, os.WriteFile(ballast, make([]byte, 300<<10), 0o644))
	dir := filepath.Join(mnt, "wal")
	w, err := Open(dir, &Options{SegmentSize: MinSegmentSize, Sync: SyncAlways})
	require.NoError(t, err)
	defer func() { w.Close() }()
	var last uint64
	var appendErr error
	for i := 0; i < 10000 && appendErr == nil; i++ {
		var seq uint64
		if seq, appendErr = w.Append(fsfRecord(last + 1)); appendErr == nil {
			last = seq
		}
	}
	require.Error(t, appendErr, "the 1 MiB filesystem never filled up")
	assert.ErrorIs(t, appendErr, syscall.ENOSPC)
	t.Logf("disk full after %d records: %v", last, appendErr)
	fsfCheck(t, w, last) // still alive (no SIGBUS) and every acked record readable
	// Not sticky: once space is freed, the next append rotates and succeeds.
	require.NoError(t, os.Remove(ballast))
	seq, err := w.Append(fsfRecord(last + 1))
	require.NoError(t, err)
	require.Equal(t, last+1, seq)
	last = seq
	require.NoError(t, w.Close())
	w, err = Open(dir, &Options{SegmentSize: MinSegmentSize, Sync: SyncAlways})
	require.NoError(t, err)
	fsfCheck(t, w, last)
}

// fsfLoopExt4 makes and mounts an ext4 image of size MiB; it returns the
// mount point and the loop device's name (loopN).
func fsfLoopExt4(t *testing.T, size int, opts string) (string, string) {
	t.Helper()
	fsfRequireRoot(t)
	tmp := t.TempDir()
	img := filepath.Join(tmp, "img.ext4")
	require.NoError(t, os.WriteFile(img, nil, 0o644))
	require.NoError(t, os.Truncate(img, int64(size)<<20))
	if err := fsfRun(t, "mkfs.ext4", "-q", "-F", img); err != nil {
		t.Skipf("mkfs.ext4 not available: %v", err)
	}
	mnt := filepath.Join(tmp, "mnt")
	fsfMount(t, mnt, "-o", "loop,"+opts, img)
	mounts, err := os.ReadFile("/proc/self/mounts")
	require.NoError(t, err)
	for _, line := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == mnt {
			return mnt, filepath.Base(f[0])
		}
	}
	t.Skip("loop device of the mount not found")
	return "", ""
}

func TestFSFaultReadOnlyRemount_AppendFailsStickyAndNothingIsLost(t *testing.T) {
	mnt, loop := fsfLoopExt4(t, 32, "errors=remount-ro")
	trigger := filepath.Join("/sys/fs/ext4", loop, "trigger_fs_error")
	if _, err := os.Stat(trigger); err != nil {
		t.Skipf("no %s: %v", trigger, err)
	}
	dir := filepath.Join(mnt, "wal")
	opts := &Options{SegmentSize: MinSegmentSize, Sync: SyncAlways}
	w, err := Open(dir, opts)
	require.NoError(t, err)
	var last uint64
	for i := 0; i < 300; i++ {
		seq, err := w.Append(fsfRecord(last + 1))
		require.NoError(t, err)
		last = seq
	}
	require.NoError(t, os.WriteFile(trigger, []byte("mmapwal test\n"), 0o200))
	// The remount makes the next sync fail; the WAL then refuses writes.
	var failErr error
	for i := 0; i < 300 && failErr == nil; i++ {
		var seq uint64
		if seq, failErr = w.Append(fsfRecord(last + 1)); failErr == nil {
			last = seq
		}
	}
	require.Error(t, failErr, "appends kept succeeding on a read-only filesystem")
	t.Logf("after %d acked records: %v", last, failErr)
	assert.True(t, errors.Is(failErr, syscall.EROFS) || errors.Is(failErr, syscall.EIO), "want EROFS or EIO, got %v", failErr)
	_, err = w.Append(fsfRecord(last + 1))
	assert.Error(t, err, "a sync failure must be sticky")
	// The record whose sync failed may be visible (it is in the mapping) but
	// was not acknowledged; every acknowledged one reads back.
	require.GreaterOrEqual(t, w.LastSeq(), last)
	for s := uint64(1); s <= last; s++ {
		b, err := w.Read(s)
		require.NoError(t, err, "seq %d", s)
		require.Equal(t, fsfRecord(s), b, "seq %d", s)
	}
	_ = w.Close()
	// Remount read-write (the image stays marked with an error, which ext4
	// allows) and check nothing acknowledged was lost.
	require.NoError(t, fsfRun(t, "umount", mnt))
	img := filepath.Join(filepath.Dir(mnt), "img.ext4")
	_ = exec.Command("e2fsck", "-f", "-y", img).Run()
	fsfMount(t, mnt, "-o", "loop", img)
	w, err = Open(dir, opts)
	require.NoError(t, err)
	defer w.Close()
	require.GreaterOrEqual(t, w.LastSeq(), last)
	for s := uint64(1); s <= last; s++ {
		b, err := w.Read(s)
		require.NoError(t, err, "seq %d", s)
		require.Equal(t, fsfRecord(s), b, "seq %d", s)
	}
}
