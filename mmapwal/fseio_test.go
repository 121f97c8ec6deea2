//go:build linux

package mmapwal

// I/O errors at write-back (the "fsyncgate" case) on a real ext4 filesystem
// (root only; skips with a message when it cannot set its filesystems up, and
// always unmounts, detaches and deletes in t.Cleanup).
//
// Recipe (see FAULTS.md): an ext4 image lives on a small tmpfs, fully
// allocated; the WAL's active segment (the victim) gets some of its physical
// blocks punched out of the backing image, and the tmpfs is filled so the
// holes cannot be re-allocated. A write-back to those blocks then fails in
// the loop device ("Buffer I/O error"), and the next msync/fdatasync of the
// victim reports the error exactly once: a second fdatasync succeeds
// although the data never reached the device. On kernel 6.18 the errno is
// ENOSPC rather than EIO (see step 4).

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mmapwal/wal/format"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// eioMount mounts and registers the unmount (lazy as a fallback). With
// skipOnErr a failing mount skips the test (the environment cannot do it);
// otherwise it fails it.
func eioMount(t *testing.T, skipOnErr bool, mnt string, args ...string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(mnt, 0o755))
	if err := fsfRun(t, "mount", append(args, mnt)...); err != nil {
		if skipOnErr {
			t.Skipf("mount not available here: %v", err)
		}
		require.NoError(t, err)
	}
	t.Cleanup(func() { eioUnmount(mnt) })
}

// eioUnmount unmounts mnt if it is a mount point; it reports whether mnt is
// no longer mounted.
func eioUnmount(mnt string) bool {
	if !eioMounted(mnt) {
		return true
	}
	if exec.Command("umount", mnt).Run() != nil {
		_ = exec.Command("umount", "-l", mnt).Run()
	}
	return !eioMounted(mnt)
}

func eioMounted(mnt string) bool {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == mnt {
			return true
		}
	}
	return false
}

// eioDetachLoops detaches any loop device still backed by img (mount -o
// loop normally autoclears on umount; this is the safety net).
func eioDetachLoops(img string) {
	out, err := exec.Command("losetup", "-j", img).Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		if dev, _, ok := strings.Cut(line, ":"); ok && strings.HasPrefix(dev, "/dev/loop") {
			_ = exec.Command("losetup", "-d", dev).Run()
		}
	}
}

type eioExtent struct {
	logical, physical, length int64 // in filesystem blocks
}

var eioExtentLine = regexp.MustCompile(`^\s*\d+:\s+(\d+)\.\.\s*(\d+):\s+(\d+)\.\.\s*(\d+):`)
var eioBlockSize = regexp.MustCompile(`\((\d+) blocks? of (\d+) bytes\)`)

// eioExtents runs filefrag -v on path and returns its extents and the unit
// (the filesystem block size) they are counted in.
func eioExtents(t *testing.T, path string) ([]eioExtent, int64) {
	t.Helper()
	out, err := exec.Command("filefrag", "-v", path).CombinedOutput()
	require.NoError(t, err, "filefrag -v %s: %s", path, out)
	var exts []eioExtent
	var bs int64
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if m := eioBlockSize.FindStringSubmatch(line); m != nil {
			bs, _ = strconv.ParseInt(m[2], 10, 64)
			continue
		}
		m := eioExtentLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		n := make([]int64, 4)
		for i := range n {
			n[i], err = strconv.ParseInt(m[i+1], 10, 64)
			require.NoError(t, err, "filefrag line %q", line)
		}
		require.Equal(t, n[1]-n[0], n[3]-n[2], "filefrag line %q", line)
		exts = append(exts, eioExtent{logical: n[0], physical: n[2], length: n[1] - n[0] + 1})
	}
	require.NotEmpty(t, exts, "no extents in filefrag output:\n%s", out)
	require.Positive(t, bs, "no block size in filefrag output:\n%s", out)
	return exts, bs
}

// eioFill writes zeros to path until the filesystem is full; it must end in
// ENOSPC.
func eioFill(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	buf := make([]byte, 1<<20)
	var n int64
	for {
		k, err := f.Write(buf)
		n += int64(k)
		if err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC, "filling %s", path)
			return n
		}
		require.Less(t, n, int64(1<<30), "filling %s never hit ENOSPC", path)
	}
}

func eioSyncfs(t *testing.T, mnt string) {
	t.Helper()
	d, err := os.Open(mnt)
	require.NoError(t, err)
	defer d.Close()
	require.NoError(t, unix.Syncfs(int(d.Fd())))
}

// eioLastSegment is the active segment by the on-disk naming: the last *.seg
// by name (prepared segments are *.seg.tmp).
func eioLastSegment(t *testing.T, dir string) string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	require.NoError(t, err)
	require.NotEmpty(t, segs)
	sort.Strings(segs)
	return segs[len(segs)-1]
}

func TestFSFaultEIOAtWriteBack_SyncErrorIsStickyAndReopenRecoversPrefix(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount tmpfs and a loop ext4 image")
	}
	for _, tool := range []string{"mount", "umount", "losetup", "mkfs.ext4", "filefrag", "fallocate"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not available: %v", tool, err)
		}
	}
	page := int64(os.Getpagesize())
	if page > 16<<10 {
		t.Skipf("page size %d: a 64 KiB segment has too few pages for this test", page)
	}
	start := time.Now()

	// 1. A 40 MiB tmpfs holding a fully allocated 32 MiB ext4 image, mounted.
	base := t.TempDir()
	tmnt := filepath.Join(base, "tmpfs")
	eioMount(t, true, tmnt, "-t", "tmpfs", "-o", "size=40m", "tmpfs")
	img := filepath.Join(tmnt, "img.ext4")
	fill := filepath.Join(tmnt, "fill")
	t.Cleanup(func() { eioDetachLoops(img) }) // runs after the ext4 unmount
	// allocate backs every block of the image with tmpfs pages.
	allocate := func() error {
		f, err := os.OpenFile(img, os.O_RDWR|os.O_CREATE, 0o644)
		require.NoError(t, err)
		defer f.Close()
		return unix.Fallocate(int(f.Fd()), 0, 0, 32<<20)
	}
	if err := allocate(); err != nil {
		t.Skipf("fallocate on tmpfs not available: %v", err)
	}
	// mkfs discards (punches) a file image by default: ask it not to, and
	// allocate again anyway, or journal and metadata writes would hit holes
	// once the tmpfs is full and abort the journal.
	if err := fsfRun(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-E", "nodiscard", img); err != nil {
		t.Skipf("mkfs.ext4 not available: %v", err)
	}
	require.NoError(t, allocate())
	var st unix.Stat_t
	require.NoError(t, unix.Stat(img, &st))
	require.Equal(t, int64(32<<20), st.Blocks*512, "image not fully allocated on the tmpfs")
	mnt := filepath.Join(base, "mnt")
	eioMount(t, true, mnt, "-o", "loop", img)

	// 2. A WAL with acknowledged records in two segments; the active one
	// is the victim. A last record sized to end exactly on a page boundary
	// makes the next append start a fresh page.
	dir := filepath.Join(mnt, "wal")
	opts := &Options{SegmentSize: MinSegmentSize, Sync: SyncAlways}
	w, err := Open(dir, opts)
	require.NoError(t, err)
	t.Cleanup(func() { // before the unmounts (cleanups run LIFO)
		if w != nil {
			_ = w.Close()
		}
	})
	want := map[uint64][]byte{}
	var acked uint64 // every seq <= acked was acknowledged by Append
	appendOK := func(rec []byte) {
		t.Helper()
		seq, err := w.Append(rec)
		require.NoError(t, err, "append before the fault")
		require.Equal(t, acked+1, seq)
		acked, want[seq] = seq, rec
	}
	for i := 0; i < 120; i++ { // ~70 KiB: the second segment is active
		appendOK(fsfRecord(acked + 1))
	}
	writeOff := func() int64 {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.writeOff
	}
	cut := (writeOff() + page) &^ (page - 1) // leaves at least a frame header of room
	pad := int(cut - writeOff() - format.FrameHeaderSize)
	require.Equal(t, cut-writeOff(), format.FrameSize(pad))
	appendOK(bytes.Repeat([]byte{'p'}, pad))
	require.Equal(t, cut, writeOff(), "the padding record must end on a page boundary")
	victim := eioLastSegment(t, dir)
	w.mu.Lock()
	activePath, activeFirst, victim0 := w.active.path, w.active.firstSeq, w.active
	w.mu.Unlock()
	require.Equal(t, activePath, victim, "the last *.seg is the active segment")
	require.Greater(t, activeFirst, uint64(1), "the victim should not be the first segment")
	require.Less(t, cut+2*page, int64(MinSegmentSize), "victim too full: append fewer records first")
	eioSyncfs(t, mnt) // the FAULTS.md "sync", limited to this filesystem

	// 3. Punch the victim's blocks from cut to its end out of the image, then
	// fill the tmpfs so the holes stay holes.
	//
	// Not all of the victim: its first pages hold acknowledged records and
	// its header; punching them would destroy acknowledged data on the
	// "device" behind the WAL's back, which no WAL can survive. Not from the
	// middle of a page either, and the next write must start on the cut:
	// the loop driver completes a WRITE that its backing file wrote short
	// with success (lo_complete_rq only fails negative returns), so a
	// write-back of blocks [intact, hole] is acknowledged while the part in
	// the hole is silently dropped. Observed here before the padding record
	// existed: the record straddling the cut was acknowledged by msync and
	// was gone after remount, with no error anywhere; an 8 KiB O_DIRECT dd
	// onto the loop device across such a boundary also "succeeds". A write
	// that starts in a hole fails whole.
	exts, bs := eioExtents(t, victim)
	require.Zero(t, page%bs, "page size %d not a multiple of the block size %d", page, bs)
	var punched int64
	for _, e := range exts {
		from := max(e.logical, cut/bs)
		if from >= e.logical+e.length {
			continue
		}
		off := (e.physical + from - e.logical) * bs
		n := (e.logical + e.length - from) * bs
		require.NoError(t, fsfRun(t, "fallocate", "-p", "-o", strconv.FormatInt(off, 10), "-l", strconv.FormatInt(n, 10), img))
		punched += n
	}
	require.Equal(t, int64(MinSegmentSize)-cut, punched, "punched bytes (extents %+v, block size %d)", exts, bs)
	filled := eioFill(t, fill)
	t.Logf("victim %s: %d records acked, end at %d; punched [%d, %d) (%d extents, block %d); tmpfs filled with %d bytes",
		filepath.Base(victim), acked, cut, cut, MinSegmentSize, len(exts), bs, filled)

	// 4. The next append writes only punched pages: its write-back fails in
	// the loop device, and the sync error surfaces from Append. On this
	// kernel the errno is ENOSPC, not EIO: the loop driver turns the backing
	// file's ENOSPC into BLK_STS_NOSPC ("critical space allocation error",
	// "I/O error 3 writing to inode" in the kernel log), which ext4 records
	// as the mapping's write-back error. On a real disk it would be EIO.
	// Either way it is a write-back error reported once (see 5).
	faultSeq := acked + 1
	_, faultErr := w.Append(fsfRecord(faultSeq))
	require.Error(t, faultErr, "an append into punched blocks was acknowledged")
	t.Logf("append of seq %d failed after %d acked records: %v", faultSeq, acked, faultErr)
	assert.True(t, errors.Is(faultErr, syscall.EIO) || errors.Is(faultErr, syscall.ENOSPC),
		"want a write-back error (EIO, or ENOSPC from the loop device), got %v", faultErr)
	w.mu.Lock()
	require.Same(t, victim0, w.active, "the fault must hit the victim, not a rotated segment")
	w.mu.Unlock()

	// 5. Linux reports a write-back error once: a second fdatasync on the
	// same open file succeeds although the page never reached the device.
	// The WAL must not be fooled: it stays failed.
	// The WAL holds no descriptor of a mapped segment (mapcache.go): use one
	// of our own; it may report the error itself, once.
	victimFile, err := os.Open(activePath)
	require.NoError(t, err)
	defer victimFile.Close()
	osErr := unix.Fdatasync(int(victimFile.Fd()))
	t.Logf("second fdatasync of the victim at the OS level: %v", osErr)
	_, err = w.Append(fsfRecord(faultSeq + 1))
	assert.Error(t, err, "Append after a sync failure must fail (sticky)")
	_, err = w.AppendBatch([][]byte{fsfRecord(faultSeq + 1), fsfRecord(faultSeq + 2)})
	assert.Error(t, err, "AppendBatch after a sync failure must fail (sticky)")
	assert.Error(t, w.Sync(), "Sync after a sync failure must fail (sticky)")
	assert.Error(t, w.Sync(), "Sync must keep failing")
	// Reads still work (page cache): every acknowledged record is exact.
	// The failed record is in the mapping and may be visible, never acked.
	require.GreaterOrEqual(t, w.LastSeq(), acked)
	require.LessOrEqual(t, w.LastSeq(), faultSeq, "nothing was appended after the failure")
	for s := uint64(1); s <= acked; s++ {
		b, err := w.Read(s)
		require.NoError(t, err, "Read(%d) after the fault", s)
		require.Equal(t, want[s], b, "Read(%d) after the fault", s)
	}
	cerr := w.Close()
	t.Logf("Close after the fault: %v", cerr)

	// 6. Unmount (write-back of anything left fails or succeeds; ext4 must
	// let go), free the tmpfs, check the image, remount.
	require.True(t, eioUnmount(mnt), "unmount %s", mnt)
	eioDetachLoops(img)
	require.NoError(t, os.Remove(fill))
	if _, err := exec.LookPath("e2fsck"); err == nil {
		out, err := exec.Command("e2fsck", "-f", "-y", img).CombinedOutput()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		// 0: clean, 1: errors corrected. Anything else: the image is broken
		// beyond what this test is about.
		require.LessOrEqual(t, code, 1, "e2fsck -fy: %v\n%s", err, out)
		t.Logf("e2fsck -fy exit %d", code)
	}
	eioMount(t, false, mnt, "-o", "loop", img)

	// 7. Reopen: a gapless prefix from 1 holding every acknowledged record
	// exactly. The failed record's page never reached the device (the hole
	// reads as zeros; the index file may still point there), so recovery
	// must end the log at the last acknowledged record. The failed record
	// may only appear if it is intact, and nothing after it can exist.
	w, err = Open(dir, opts)
	require.NoError(t, err, "reopen after the write-back error")
	require.Equal(t, uint64(1), w.FirstSeq())
	last := w.LastSeq()
	require.GreaterOrEqual(t, last, acked, "acknowledged records lost")
	require.LessOrEqual(t, last, faultSeq, "records beyond the failed one")
	want[faultSeq] = fsfRecord(faultSeq)
	for s := uint64(1); s <= last; s++ { // anything present must be exact
		b, err := w.Read(s)
		require.NoError(t, err, "Read(%d) after reopen", s)
		require.Equal(t, want[s], b, "Read(%d) after reopen", s)
	}
	t.Logf("reopen: LastSeq %d (acked %d, failed seq %d), recovery %+v", last, acked, faultSeq, w.rec)
	// The reopened log is writable again and durable on the healed device.
	seq, err := w.Append(fsfRecord(last + 1))
	require.NoError(t, err, "append after reopen")
	require.Equal(t, last+1, seq)
	require.NoError(t, w.Close())

	// 8. Beyond write-back errors: the device now loses the victim's first
	// pages, which hold its header and acknowledged records (punched and
	// read back as zeros). No WAL can return those records; what it must
	// do is refuse to hand out a log that silently lacks them, or a wrong
	// byte. Acceptable: Open fails with ErrCorrupt naming the victim, or it
	// succeeds with a gapless prefix from 1 that still holds every record of
	// the sealed segments, all exact. (Observed here: ErrCorrupt, "segment
	// header is zero but a frame ... at offset 16384 proves record N was
	// synced".)
	require.True(t, eioUnmount(mnt), "unmount %s", mnt)
	eioDetachLoops(img)
	for _, e := range exts {
		to := min(e.logical+e.length, cut/bs)
		if to <= e.logical {
			continue
		}
		require.NoError(t, fsfRun(t, "fallocate", "-p", "-o", strconv.FormatInt(e.physical*bs, 10),
			"-l", strconv.FormatInt((to-e.logical)*bs, 10), img))
	}
	eioMount(t, false, mnt, "-o", "loop", img)
	want[last+1] = fsfRecord(last + 1)
	w, err = Open(dir, opts)
	if err != nil {
		t.Logf("open after losing the victim's acknowledged blocks: %v", err)
		require.ErrorIs(t, err, ErrCorrupt)
		var ce *CorruptError
		require.True(t, errors.As(err, &ce), "want a *CorruptError, got %T", err)
		require.Equal(t, filepath.Base(victim), filepath.Base(ce.File), "the error must name the damaged segment")
	} else {
		t.Logf("open after losing the victim's acknowledged blocks: LastSeq %d, recovery %+v", w.LastSeq(), w.rec)
		require.Equal(t, uint64(1), w.FirstSeq())
		require.GreaterOrEqual(t, w.LastSeq(), activeFirst-1, "records of sealed segments lost")
		for s := uint64(1); s <= w.LastSeq(); s++ {
			b, err := w.Read(s)
			require.NoError(t, err, "Read(%d) after losing the victim's blocks", s)
			require.Equal(t, want[s], b, "Read(%d) after losing the victim's blocks", s)
		}
		require.NoError(t, w.Close())
	}
	t.Logf("took %v", time.Since(start))
}
