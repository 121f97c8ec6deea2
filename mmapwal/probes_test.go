package mmapwal

// Corruption probes: each test damages a closed log in one specific way and
// states the outcome in its name. The outcomes allowed are: a torn tail is
// cut and appends continue; an index problem is repaired exactly; anything
// else fails Open or Read with ErrCorrupt naming file, offset and seq, and
// recovery.Repair then gets the log open again, saying what it dropped.
// Never a panic, wrong bytes, or silently dropped acknowledged data.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/internal/scan"
	"github.com/mmapwal/wal/recovery"
)

const probeRecords = 250 // about 3.5 segments of 64 KiB

func probeOpts() *Options {
	return &Options{SegmentSize: MinSegmentSize, MaxRecordSize: 4096, Sync: SyncAlways}
}

func probePayload(seq uint64) []byte {
	b := make([]byte, 300+int(seq*37%500))
	for i := range b {
		b[i] = byte(seq*131 + uint64(i)*7)
	}
	copy(b, fmt.Sprintf("probe record %d|", seq))
	return b
}

type probeFrame struct {
	off int64
	seq uint64
	len int
}

type probeSeg struct {
	path, idx string
	first     uint64
	frames    []probeFrame
}

// probeLog writes probeRecords records under SyncAlways, closes the log and
// returns its segments with the offset of every frame.
func probeLog(t *testing.T) (string, []probeSeg) {
	t.Helper()
	dir := t.TempDir()
	w, err := Open(dir, probeOpts())
	require.NoError(t, err)
	for i := uint64(1); i <= probeRecords; i++ {
		seq, err := w.Append(probePayload(i))
		require.NoError(t, err)
		require.Equal(t, i, seq)
	}
	require.NoError(t, w.Close())
	return dir, probeSegs(t, dir)
}

func probeSegs(t *testing.T, dir string) []probeSeg {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*"+format.SegmentExt))
	require.NoError(t, err)
	sort.Strings(names)
	var segs []probeSeg
	for _, p := range names {
		first, ok := format.ParseSegmentName(filepath.Base(p))
		require.True(t, ok)
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		h, err := format.DecodeSegmentHeader(data)
		require.NoError(t, err)
		r := scan.Scan(data, format.SegmentSeed(h.ID), format.SegmentHeaderSize, first, 1<<20, true)
		s := probeSeg{path: p, idx: p[:len(p)-len(format.SegmentExt)] + format.IndexExt, first: first}
		for i, off := range r.Offsets {
			fh := format.ParseFrameHeader(data[off:])
			s.frames = append(s.frames, probeFrame{off: off, seq: first + uint64(i), len: int(fh.Length)})
		}
		segs = append(segs, s)
	}
	require.GreaterOrEqual(t, len(segs), 3, "probe log should span at least 3 segments")
	return segs
}

func probePatch(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt(b, off)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

func probeFlip(t *testing.T, path string, off int64) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	probePatch(t, path, off, []byte{data[off] ^ 0x40})
}

// probeCheckRecords checks that the log holds exactly records [first, last].
func probeCheckRecords(t *testing.T, w *WAL, first, last uint64) {
	t.Helper()
	assert.Equal(t, first, w.FirstSeq())
	require.Equal(t, last, w.LastSeq())
	for s := first; s <= last; s++ {
		b, err := w.Read(s)
		require.NoError(t, err, "seq %d", s)
		require.Equal(t, probePayload(s), b, "seq %d", s)
	}
}

// probeCorrupt checks err is a *CorruptError naming file, offset and seq.
func probeCorrupt(t *testing.T, err error, file string, off int64, seq uint64) {
	t.Helper()
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrCorrupt)
	var ce *CorruptError
	require.True(t, errors.As(err, &ce), "want *CorruptError, got %T: %v", err, err)
	assert.Equal(t, filepath.Base(file), filepath.Base(ce.File), "file in %v", err)
	if off >= 0 {
		assert.Equal(t, off, ce.Offset, "offset in %v", err)
	}
	if seq != 0 {
		assert.Equal(t, seq, ce.Seq, "seq in %v", err)
	}
}

// probeRepair runs Repair and checks it reports the cut at seq end with
// dropped valid records after it, and that the log then opens with records
// [1, end-1] intact and takes appends at end.
func probeRepair(t *testing.T, dir string, end uint64, dropped int) *recovery.RepairReport {
	t.Helper()
	rep, err := recovery.Repair(dir, &recovery.Options{})
	require.NoError(t, err)
	assert.True(t, rep.Damaged)
	assert.Equal(t, end, rep.Seq, "repair report: %+v", rep)
	assert.Equal(t, dropped, rep.RecordsDropped, "records dropped; repair report: %+v", rep)
	assert.NotEmpty(t, rep.MovedAside)
	for _, dst := range rep.MovedAside {
		assert.FileExists(t, dst)
	}
	t.Logf("repair: %s at offset %d, log ends at seq %d, dropped %d, moved aside %d: %s", filepath.Base(rep.File), rep.Offset, rep.Seq-1, rep.RecordsDropped, len(rep.MovedAside), rep.Reason)
	w, err := Open(dir, probeOpts())
	require.NoError(t, err, "Open after Repair")
	defer w.Close()
	probeCheckRecords(t, w, 1, end-1)
	seq, err := w.Append(probePayload(end))
	require.NoError(t, err)
	assert.Equal(t, end, seq)
	return rep
}

// probeTornCut: Open cuts the tail after record last (and says so in its
// recovery stats if reported); appends continue.
func probeTornCut(t *testing.T, dir string, last uint64, reported bool) {
	t.Helper()
	w, err := Open(dir, probeOpts())
	require.NoError(t, err)
	probeCheckRecords(t, w, 1, last)
	st := w.Stats()
	t.Logf("recovery: %+v", st.Recovery)
	if reported {
		assert.NotEmpty(t, st.Recovery.TornFile)
	}
	seq, err := w.Append(probePayload(last + 1))
	require.NoError(t, err)
	assert.Equal(t, last+1, seq)
	require.NoError(t, w.Close())
	w, err = Open(dir, probeOpts())
	require.NoError(t, err)
	probeCheckRecords(t, w, 1, last+1)
	require.NoError(t, w.Close())
}

func probeExact(t *testing.T, dir string) {
	t.Helper()
	w, err := Open(dir, probeOpts())
	require.NoError(t, err)
	probeCheckRecords(t, w, 1, probeRecords)
	seq, err := w.Append(probePayload(probeRecords + 1))
	require.NoError(t, err)
	assert.Equal(t, uint64(probeRecords+1), seq)
	require.NoError(t, w.Close())
}

func TestProbeTornFinalRecord_IsCutAndAppendsContinue(t *testing.T) {
	dir, segs := probeLog(t)
	last := segs[len(segs)-1]
	f := last.frames[len(last.frames)-1]
	probePatch(t, last.path, f.off+format.FrameHeaderSize+int64(f.len)/2, make([]byte, f.len-f.len/2)) // second half never written
	probeTornCut(t, dir, probeRecords-1, true)
}

func TestProbePartialFrameHeader_IsCutAndAppendsContinue(t *testing.T) {
	dir, segs := probeLog(t)
	last := segs[len(segs)-1]
	f := last.frames[len(last.frames)-1]
	end := f.off + format.FrameSize(f.len)
	hdr := make([]byte, format.FrameSize(1))
	format.EncodeFrame(hdr, 12345, format.KindFull, probeRecords+1, probeRecords, []byte("x"))
	probePatch(t, last.path, end, hdr[:12]) // CRC, kind and part of the length reached the disk
	probeTornCut(t, dir, probeRecords, true)
}

func TestProbeZeroFilledTail_IsCutLikeATornTail(t *testing.T) {
	// Zeros at the end look exactly like records that never reached the
	// disk; with nothing after them there is no proof they were synced. (An
	// all-zero header is the clean end of the data, so Open need not report
	// a cut.)
	dir, segs := probeLog(t)
	last := segs[len(segs)-1]
	f := last.frames[len(last.frames)-3]
	probePatch(t, last.path, f.off, make([]byte, MinSegmentSize-f.off))
	probeTornCut(t, dir, f.seq-1, false)
}

func TestProbeZeroFilledHoleBeforeSyncedFrames_FailsOpenWithErrCorrupt(t *testing.T) {
	dir, segs := probeLog(t)
	last := segs[len(segs)-1]
	f := last.frames[5]
	probePatch(t, last.path, f.off, make([]byte, format.FrameSize(f.len)))
	require.NoError(t, os.Remove(last.idx)) // no checkpoint: Open scans the segment
	_, err := Open(dir, probeOpts())
	probeCorrupt(t, err, last.path, f.off, f.seq)
	probeRepair(t, dir, f.seq, probeRecords-int(f.seq))
}

func TestProbeFlippedByte_FailsReadOrOpenWithErrCorrupt(t *testing.T) {
	for _, seg := range []string{"sealed", "tail"} {
		for _, where := range []string{"payload", "header"} {
			for _, idx := range []string{"index kept: Open ok, Read fails", "index removed: Open fails"} {
				t.Run(seg+"/"+where+"/"+idx, func(t *testing.T) {
					dir, segs := probeLog(t)
					s := segs[1]
					if seg == "tail" {
						s = segs[len(segs)-1]
					}
					f := s.frames[len(s.frames)/2]
					at := f.off + format.FrameHeaderSize + int64(f.len)/2
					if where == "header" {
						at = f.off + 16 // the seq field
					}
					probeFlip(t, s.path, at)
					if idx[:10] == "index kept" {
						w, err := Open(dir, probeOpts())
						require.NoError(t, err)
						for q := uint64(1); q < f.seq; q++ {
							b, err := w.Read(q)
							require.NoError(t, err)
							require.Equal(t, probePayload(q), b)
						}
						_, err = w.Read(f.seq)
						probeCorrupt(t, err, s.path, f.off, f.seq)
						err = w.Replay(0, func(uint64, []byte) error { return nil })
						probeCorrupt(t, err, s.path, f.off, f.seq)
						require.NoError(t, w.Close())
					} else {
						require.NoError(t, os.Remove(s.idx))
						_, err := Open(dir, probeOpts())
						probeCorrupt(t, err, s.path, f.off, f.seq)
					}
					probeRepair(t, dir, f.seq, probeRecords-int(f.seq))
				})
			}
		}
	}
}

func TestProbeHugeSizeField_FailsReadWithErrCorruptWithoutAllocating(t *testing.T) {
	for _, size := range []uint64{1 << 62, uint64(probeOpts().MaxRecordSize) + 1} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			dir, segs := probeLog(t)
			s := segs[1]
			f := s.frames[10]
			var b [8]byte
			binary.LittleEndian.PutUint64(b[:], size)
			probePatch(t, s.path, f.off+8, b[:])
			w, err := Open(dir, probeOpts())
			require.NoError(t, err)
			_, err = w.Read(f.seq)
			probeCorrupt(t, err, s.path, f.off, f.seq)
			require.NoError(t, w.Close())
			require.NoError(t, os.Remove(s.idx))
			_, err = Open(dir, probeOpts())
			probeCorrupt(t, err, s.path, f.off, f.seq)
			probeRepair(t, dir, f.seq, probeRecords-int(f.seq))
		})
	}
}

func TestProbeSegmentShorterThanHeader_FailsOpenWithErrCorrupt(t *testing.T) {
	dir, segs := probeLog(t)
	s := segs[1]
	require.NoError(t, os.Truncate(s.path, 10))
	_, err := Open(dir, probeOpts())
	probeCorrupt(t, err, s.path, 0, s.first)
	probeRepair(t, dir, s.first, probeRecords-int(segs[2].first)+1) // the damaged segment cannot be read
}

func probeRewriteHeader(t *testing.T, path string, fn func(*format.SegmentHeader)) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	h, err := format.DecodeSegmentHeader(data)
	require.NoError(t, err)
	fn(&h)
	b := make([]byte, format.SegmentHeaderSize)
	h.Encode(b) // a valid header, checksum and all
	probePatch(t, path, 0, b)
}

func TestProbeSegmentHeaderSeqDisagreesWithName_FailsOpenWithErrCorrupt(t *testing.T) {
	dir, segs := probeLog(t)
	s := segs[1]
	probeRewriteHeader(t, s.path, func(h *format.SegmentHeader) { h.FirstSeq++ })
	_, err := Open(dir, probeOpts())
	probeCorrupt(t, err, s.path, 0, s.first)
	probeRepair(t, dir, s.first, probeRecords-int(segs[2].first)+1)
}

func TestProbeSegmentHeaderIDChanged_FailsOpenWithErrCorrupt(t *testing.T) {
	// The ID seeds every frame checksum: with another ID no frame of the
	// segment validates, and the durable-seq hints of the next segment prove
	// its records had been synced.
	dir, segs := probeLog(t)
	s := segs[1]
	probeRewriteHeader(t, s.path, func(h *format.SegmentHeader) { h.ID ^= 0xdead })
	_, err := Open(dir, probeOpts())
	probeCorrupt(t, err, s.path, format.SegmentHeaderSize, s.first)
	probeRepair(t, dir, s.first, probeRecords-int(segs[2].first)+1)
}

func TestProbeIndexFile_IsRebuiltExactly(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, s probeSeg)
	}{
		{"missing", func(t *testing.T, s probeSeg) { require.NoError(t, os.Remove(s.idx)) }},
		{"truncated", func(t *testing.T, s probeSeg) { require.NoError(t, os.Truncate(s.idx, 100)) }},
		{"garbage", func(t *testing.T, s probeSeg) {
			b := make([]byte, 8248)
			for i := range b {
				b[i] = byte(i*7 + 3)
			}
			require.NoError(t, os.WriteFile(s.idx, b, 0o644))
		}},
		{"entries zeroed", func(t *testing.T, s probeSeg) { probePatch(t, s.idx, format.IndexHeaderSize, make([]byte, 400)) }},
		{"stale: checkpoint points past the data", func(t *testing.T, s probeSeg) {
			b, err := os.ReadFile(s.idx)
			require.NoError(t, err)
			h, err := format.DecodeIndexHeader(b)
			require.NoError(t, err)
			h.Count += 5
			h.EndOffset += 5 * 512
			h.Encode(b)
			require.NoError(t, os.WriteFile(s.idx, b, 0o644))
		}},
	}
	for _, c := range cases {
		for _, which := range []string{"sealed", "tail"} {
			t.Run(c.name+"/"+which, func(t *testing.T) {
				dir, segs := probeLog(t)
				s := segs[1]
				if which == "tail" {
					s = segs[len(segs)-1]
				}
				c.damage(t, s)
				probeExact(t, dir)
			})
		}
	}
}

func TestProbeLeftoverTempSegment_IsRemovedOnOpen(t *testing.T) {
	dir, _ := probeLog(t)
	for _, name := range []string{"prepared-1-1.seg.tmp", "prepared-1-1.idx.tmp", format.MetaName + format.TempExt} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("half-prepared"), 0o644))
	}
	probeExact(t, dir)
	left, err := filepath.Glob(filepath.Join(dir, "*.tmp"))
	require.NoError(t, err)
	assert.Empty(t, left)
}

func TestProbeMissingMiddleSegment_FailsOpenWithErrCorrupt(t *testing.T) {
	dir, segs := probeLog(t)
	s := segs[1]
	require.NoError(t, os.Remove(s.path))
	require.NoError(t, os.Remove(s.idx))
	prev := segs[0]
	f := prev.frames[len(prev.frames)-1]
	_, err := Open(dir, probeOpts())
	probeCorrupt(t, err, prev.path, -1, s.first)
	rep := probeRepair(t, dir, s.first, probeRecords-int(segs[2].first)+1)
	assert.Equal(t, f.off+format.FrameSize(f.len), rep.Offset)
}

func TestProbeUnknownFile_IsIgnored(t *testing.T) {
	dir, _ := probeLog(t)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "NOTES.txt"), []byte("hello"), 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "subdir.seg"), 0o755))
	probeExact(t, dir)
	assert.FileExists(t, filepath.Join(dir, "NOTES.txt"))
}

func TestProbeReadOnlyDirectory_OpensAndReadsAndFailsRotationCleanly(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows ignores the read-only attribute on directories; a deny-create ACL would be needed")
	}
	dir, segs := probeLog(t)
	// Root ignores permission bits; the immutable attribute binds root too.
	if os.Geteuid() == 0 {
		if out, err := exec.Command("chattr", "+i", dir).CombinedOutput(); err != nil {
			t.Skipf("chattr +i not available here: %v: %s", err, out)
		}
		t.Cleanup(func() { _ = exec.Command("chattr", "-i", dir).Run() })
	} else {
		require.NoError(t, os.Chmod(dir, 0o555))
		t.Cleanup(func() { _ = os.Chmod(dir, 0o755) })
	}
	w, err := Open(dir, probeOpts())
	require.NoError(t, err)
	probeCheckRecords(t, w, 1, probeRecords)
	// Appends go into the active segment's preallocated space; the first
	// rotation needs a new file and fails with a clear error, not a crash.
	last := segs[len(segs)-1]
	var appended uint64
	for i := 0; i < 1000; i++ {
		seq, err := w.Append(probePayload(probeRecords + appended + 1))
		if err != nil {
			assert.True(t, errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EROFS), "rotation error: %v", err)
			break
		}
		appended++
		require.Equal(t, probeRecords+appended, seq)
	}
	require.Less(t, appended, uint64(1000), "rotation into a read-only directory never failed")
	t.Logf("appended %d records into %s, then rotation failed", appended, filepath.Base(last.path))
	probeCheckRecords(t, w, 1, probeRecords+appended)
	require.NoError(t, w.Close())
	w, err = Open(dir, probeOpts())
	require.NoError(t, err)
	probeCheckRecords(t, w, 1, probeRecords+appended)
	require.NoError(t, w.Close())
}
