package recovery

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mmapwal/wal/format"
)

// stamp rewrites the header of the segment at path with log ID logID.
func stamp(t *testing.T, path string, logID uint64) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	h, err := format.DecodeSegmentHeader(b)
	require.NoError(t, err)
	h.LogID = logID
	h.Encode(b)
	require.NoError(t, os.WriteFile(path, b, 0o644))
}

const ourLog, theirLog = 0x1111, 0x2222

// A segment of another log is refused by the analysis, before any rule
// could judge it (here: as part of a torn tail, which Recover would delete,
// or as a file before wal.meta's first seq, which rule 6 would delete):
// ErrCorrupt naming the file, nothing changed, in every mode.
func TestForeignSegmentIsRefusedByAnalysis(t *testing.T) {
	for _, tc := range []struct {
		name    string
		want    uint64 // Options.LogID
		foreign int    // index in threeSegments' segments
		meta    uint64 // wal.meta's first seq
	}{
		{"given log ID, middle segment", ourLog, 1, 1},
		{"given log ID, first segment", ourLog, 0, 1},
		{"first segment defines it, torn last segment", 0, 2, 1},
		{"first segment defines it, middle segment", 0, 1, 1},
		{"given log ID, segment before wal.meta", ourLog, 0, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, segs, _ := threeSegments(t)
			require.NoError(t, os.WriteFile(filepath.Join(dir, format.MetaName), format.EncodeMeta(tc.meta), 0o644))
			for i, p := range segs {
				id := uint64(ourLog)
				if i == tc.foreign {
					id = theirLog
				}
				stamp(t, p, id)
			}
			before := dirHash(t, dir)
			for _, mode := range []string{"Recover", "Recover ReadOnly", "Repair"} {
				o := &Options{LogID: tc.want, ReadOnly: mode == "Recover ReadOnly"}
				var err error
				if mode == "Repair" {
					_, err = Repair(dir, o)
				} else {
					_, err = Recover(dir, o)
				}
				var ce *format.CorruptError
				require.ErrorAs(t, err, &ce, mode)
				assert.Equal(t, segs[tc.foreign], ce.File, mode)
				assert.Equal(t, int64(32), ce.Offset, mode)
				assert.Contains(t, ce.Reason, "another log", mode)
				assert.Equal(t, before, dirHash(t, dir), "%s changed the directory", mode)
			}
		})
	}
}

// The report carries the log ID checked: the one given, or the one the
// segments carry. Segments written before identities (log ID 0) are
// accepted unchecked.
func TestRecoverReportsLogID(t *testing.T) {
	dir, segs, _ := threeSegments(t)
	rep, err := Recover(dir, &Options{ReadOnly: true})
	require.NoError(t, err)
	assert.Zero(t, rep.LogID, "no segment carries one")
	rep, err = Recover(dir, &Options{ReadOnly: true, LogID: ourLog})
	require.NoError(t, err)
	assert.Equal(t, uint64(ourLog), rep.LogID, "legacy segments pass any log ID")

	stamp(t, segs[1], ourLog)
	stamp(t, segs[2], ourLog)
	rep, err = Recover(dir, &Options{ReadOnly: true})
	require.NoError(t, err)
	assert.Equal(t, uint64(ourLog), rep.LogID, "adopted from the first stamped segment")
	rep, err = Recover(dir, &Options{ReadOnly: true, LogID: ourLog})
	require.NoError(t, err)
	assert.Equal(t, uint64(ourLog), rep.LogID)
	_, err = Recover(dir, &Options{ReadOnly: true, LogID: theirLog})
	var ce *format.CorruptError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, segs[1], ce.File, "the first segment that disagrees")
}
