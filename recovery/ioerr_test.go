package recovery

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/platform"
)

// writeIndex writes the index file of the segment starting at first with a
// checkpoint of count records ending at end.
func writeIndex(t *testing.T, dir string, first, id, count uint64, end int64, flags uint32, offs []int64) string {
	t.Helper()
	capacity := format.IndexCapacity(segSize)
	b := make([]byte, format.IndexFileSize(capacity))
	format.IndexHeader{SegmentID: id, FirstSeq: first, Count: count, EndOffset: uint64(end), Flags: flags}.Encode(b)
	for i, off := range offs {
		binary.LittleEndian.PutUint32(b[format.IndexHeaderSize+4*i:], uint32(off/format.FrameAlign))
	}
	p := filepath.Join(dir, format.IndexName(first))
	require.NoError(t, os.WriteFile(p, b, 0o644))
	return p
}

func frameEnd(offs []int64, i int) int64 { return offs[i] + format.FrameSize(len("record")) }

// threeSegments builds 1..5, 6..10, 11..15 with index checkpoints on the
// first two and a damaged, unproven record 15 in the last: a torn tail
// Recover would cut (so it has something to change).
func threeSegments(t *testing.T) (dir string, segs, idxs []string) {
	t.Helper()
	dir = t.TempDir()
	for i, first := range []uint64{1, 6, 11} {
		id := 11 + uint64(i)
		p, offs := writeSegment(t, dir, first, id, fulls(first, first+4, 0))
		segs = append(segs, p)
		count := uint64(5)
		if first == 11 {
			count = 2
			patch(t, p, offs[4]+format.FrameHeaderSize, []byte("!!"))
		}
		idxs = append(idxs, writeIndex(t, dir, first, id, count, frameEnd(offs, int(count)-1), 0, offs[:count]))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, format.MetaName), format.EncodeMeta(1), 0o644))
	return dir, segs, idxs
}

func TestIOErrorsDuringAnalysisAbortAndChangeNothing(t *testing.T) {
	eio, eacces, emfile := syscall.EIO, syscall.EACCES, syscall.EMFILE
	for _, tc := range []struct {
		name string
		rule fsRule
		want error
	}{
		{"directory unreadable", fsRule{op: "readdir", err: eio}, eio},
		{"meta unreadable", fsRule{op: "readfile", path: format.MetaName, err: eio}, eio},
		{"middle segment cannot be opened", fsRule{op: "open", path: format.SegmentName(6), err: eacces}, eacces},
		{"no descriptor left for the last segment", fsRule{op: "open", path: format.SegmentName(11), err: emfile}, emfile},
		{"segment stat fails", fsRule{op: "stat", path: format.SegmentName(6), err: eio}, eio},
		{"segment cannot be mapped", fsRule{op: "map", path: format.SegmentName(1), err: syscall.ENOMEM}, syscall.ENOMEM},
		{"fault reading a mapped segment", fsRule{op: "fault", path: format.SegmentName(6)}, platform.ErrFault},
		{"fault reading the torn segment", fsRule{op: "fault", path: format.SegmentName(11)}, platform.ErrFault},
		{"index cannot be opened", fsRule{op: "open", path: format.IndexName(6), err: eacces}, eacces},
		{"index stat fails", fsRule{op: "stat", path: format.IndexName(1), err: eio}, eio},
		{"index header read fails", fsRule{op: "readat", path: format.IndexName(6), nth: 1, err: eio}, eio},
		{"last checkpointed entry read fails", fsRule{op: "readat", path: format.IndexName(11), nth: 2, err: eio}, eio},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _, _ := threeSegments(t)
			rep, err := Recover(dir, &Options{ReadOnly: true})
			require.NoError(t, err, "without the fault the log is recoverable")
			require.NotEmpty(t, rep.TornFile)
			before := dirHash(t, dir)
			rule := tc.rule
			if rule.err == nil {
				rule.err = eio // unused by "fault"
			}
			for _, mode := range []string{"Recover", "Recover ReadOnly", "Repair"} {
				efs := newErrFS(t, rule)
				switch mode {
				case "Recover":
					_, err = Recover(dir, &Options{fs: efs})
				case "Recover ReadOnly":
					_, err = Recover(dir, &Options{fs: efs, ReadOnly: true})
				case "Repair":
					_, err = Repair(dir, &Options{fs: efs})
				}
				require.Error(t, err, mode)
				assert.ErrorIs(t, err, tc.want, mode)
				assert.NotErrorIs(t, err, format.ErrCorrupt, mode)
				if rule.path != "" {
					assert.Contains(t, err.Error(), rule.path, "%s: the error names the file", mode)
				}
				assert.Equal(t, before, dirHash(t, dir), "%s changed the directory", mode)
			}
		})
	}
}

// A later segment proving that a damaged record had been synced must not be
// skipped because it could not be read: without it the damage would look
// like a torn tail and the later segment, synced records included, would be
// deleted with nothing reported dropped.
func TestUnreadableProofIsAnErrorNotATornTail(t *testing.T) {
	for _, op := range []string{"open", "stat", "map", "fault"} {
		t.Run(op, func(t *testing.T) {
			dir := t.TempDir()
			p1, offs := writeSegment(t, dir, 1, 11, fulls(1, 5, 0))
			patch(t, p1, offs[4]+format.FrameHeaderSize, []byte("!!"))
			p2, _ := writeSegment(t, dir, 6, 12, fulls(6, 8, 5)) // 5 was durable
			_, err := Recover(dir, &Options{ReadOnly: true})
			require.ErrorIs(t, err, format.ErrCorrupt, "readable, the later segment proves corruption")

			before := dirHash(t, dir)
			efs := newErrFS(t, fsRule{op: op, path: filepath.Base(p2), err: syscall.EIO})
			_, err = Recover(dir, &Options{fs: efs})
			require.Error(t, err)
			assert.NotErrorIs(t, err, format.ErrCorrupt)
			assert.Contains(t, err.Error(), p2)
			assert.FileExists(t, p2)
			assert.Equal(t, before, dirHash(t, dir))
		})
	}
}

// Real OS, no seam: an index file name taken by a directory cannot be read
// (EISDIR). That is not "no checkpoint": Recover fails naming it.
func TestIndexThatIsADirectoryIsAnError(t *testing.T) {
	dir, _, idxs := threeSegments(t)
	require.NoError(t, os.Remove(idxs[1]))
	require.NoError(t, os.Mkdir(idxs[1], 0o755))
	before := dirHash(t, dir)
	_, err := Recover(dir, nil)
	require.Error(t, err)
	assert.NotErrorIs(t, err, format.ErrCorrupt)
	assert.Contains(t, err.Error(), idxs[1])
	assert.Equal(t, before, dirHash(t, dir))
}

// A missing index is a fact, not an error: the segment is scanned and its
// index rebuilt by the caller.
func TestMissingIndexIsAFact(t *testing.T) {
	dir, _, idxs := threeSegments(t)
	require.NoError(t, os.Remove(idxs[1]))
	rep, err := Recover(dir, &Options{ReadOnly: true})
	require.NoError(t, err)
	assert.Equal(t, 1, rep.IndexesInvalid)
	assert.False(t, rep.Segments[1].IndexOK)
	assert.Equal(t, uint64(15), rep.NextSeq)
}

// Repair makes its copy of the damaged segment durable, and the copy's
// directory entry, before it changes the original.
func TestRepairCopyAndItsNameAreDurableBeforeTheOriginalChanges(t *testing.T) {
	dir := t.TempDir()
	writeSegment(t, dir, 1, 11, fulls(1, 5, 0))
	p2, offs := writeSegment(t, dir, 6, 12, fulls(6, 10, 0))
	patch(t, p2, offs[2]+format.FrameHeaderSize, []byte("!!"))
	efs := newErrFS(t)
	rep, err := Repair(dir, &Options{fs: efs})
	require.NoError(t, err)
	require.True(t, rep.Damaged)
	copyPath := rep.MovedAside[p2]
	require.NotEmpty(t, copyPath)
	ops := efs.log()
	pos := func(op string) int {
		for i, o := range ops {
			if o == op {
				return i
			}
		}
		t.Fatalf("no %q in %v", op, ops)
		return -1
	}
	seg, cp := filepath.Base(p2), filepath.Base(copyPath)
	assert.Less(t, pos("create "+cp), pos("sync "+cp))
	assert.Less(t, pos("sync "+cp), pos("syncdir "+filepath.Base(dir)))
	assert.Less(t, pos("syncdir "+filepath.Base(dir)), pos("openwrite "+seg), "%v", ops)

	// A failing directory sync stops Repair before the original changes.
	dir2 := t.TempDir()
	writeSegment(t, dir2, 1, 11, fulls(1, 5, 0))
	q2, offs := writeSegment(t, dir2, 6, 12, fulls(6, 10, 0))
	patch(t, q2, offs[2]+format.FrameHeaderSize, []byte("!!"))
	orig, err := os.ReadFile(q2)
	require.NoError(t, err)
	_, err = Repair(dir2, &Options{fs: newErrFS(t, fsRule{op: "syncdir", nth: 1, err: syscall.EIO})})
	require.ErrorIs(t, err, syscall.EIO)
	now, err := os.ReadFile(q2)
	require.NoError(t, err)
	assert.Equal(t, orig, now, "the original is unchanged")
	// and a failing sync of the copy too (the first file sync Repair does).
	_, err = Repair(dir2, &Options{fs: newErrFS(t, fsRule{op: "sync", nth: 1, err: syscall.EIO})})
	require.ErrorIs(t, err, syscall.EIO)
	now, err = os.ReadFile(q2)
	require.NoError(t, err)
	assert.Equal(t, orig, now, "the original is unchanged")
}

// dirHash maps every entry of dir (but LOCK, which Repair creates) to a
// hash of its contents, so that "nothing changed" compares small values.
func dirHash(t *testing.T, dir string) map[string]string {
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
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		out[e.Name()] = fmt.Sprintf("%d bytes, sha256 %x", len(b), sha256.Sum256(b))
	}
	return out
}

// Item: a later checkpoint is proof that the log went on, like a hint.
func TestLaterCheckpointProvesTheLogWentOn(t *testing.T) {
	for _, tc := range []struct {
		name  string
		count uint64
		flags uint32
		proof bool
	}{
		{"checkpoint of records", 3, 0, true},
		{"clean-close mark", 0, format.IndexClosed, true},
		{"empty checkpoint proves nothing", 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeSegment(t, dir, 1, 11, fulls(1, 5, 0))
			_, offs := writeSegment(t, dir, 11, 13, fulls(11, 15, 0)) // 6..10 missing, no hints
			end := int64(format.SegmentHeaderSize)
			if tc.count > 0 {
				end = frameEnd(offs, int(tc.count)-1)
			}
			writeIndex(t, dir, 11, 13, tc.count, end, tc.flags, offs[:tc.count])
			before := dirHash(t, dir)
			rep, err := Recover(dir, nil)
			if !tc.proof {
				require.NoError(t, err)
				assert.Equal(t, uint64(6), rep.NextSeq, "without proof: a torn tail")
				return
			}
			var ce *format.CorruptError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, uint64(6), ce.Seq)
			assert.Contains(t, ce.Reason, "6..10")
			assert.Equal(t, before, dirHash(t, dir))
		})
	}
}
