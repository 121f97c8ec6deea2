package mmapwal

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReopenWithSmallerMaxRecordSize_ReadsEveryRecordExactly(t *testing.T) {
	dir := t.TempDir()
	w := mustOpen(t, dir, &Options{SegmentSize: 4 << 20, MaxRecordSize: 1 << 20, Sync: SyncNone})
	m := newModel(1)
	for i := 0; i < 12; i++ { // about two segments
		m.fill(t, w, 1, 600<<10)
		m.fill(t, w, 3, 100)
	}
	require.NoError(t, w.Close())

	w = mustOpen(t, dir, &Options{SegmentSize: 4 << 20, MaxRecordSize: 4 << 10, Sync: SyncNone})
	defer w.Close()
	require.Zero(t, w.Stats().Recovery.ScannedBytes, "a cleanly closed log")
	m.check(t, w) // Read, ReadAppend, Reader
	n := 0
	require.NoError(t, w.Replay(0, func(seq uint64, b []byte) error {
		n++
		if !bytes.Equal(m.recs[seq], b) {
			return fmt.Errorf("Replay: seq %d has wrong bytes", seq)
		}
		return nil
	}))
	assert.Equal(t, len(m.recs), n)

	_, err := w.Append(make([]byte, 4<<10+1))
	assert.ErrorIs(t, err, ErrTooLarge, "the option still bounds writes")
	_, err = w.AppendBatch([][]byte{nil, make([]byte, 4<<10+1)})
	assert.ErrorIs(t, err, ErrTooLarge)
	m.fill(t, w, 3, 4<<10)
	require.NoError(t, w.Sync())
	m.check(t, w)
}
