package mmapwal

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// model is what the log must hold: records first..last, exact bytes.
type model struct {
	first, next uint64 // next = seq the next append gets
	recs        map[uint64][]byte
}

func newModel(first uint64) *model {
	return &model{first: first, next: first, recs: map[uint64][]byte{}}
}

func (m *model) append(seq uint64, b []byte) { m.recs[seq] = bytes.Clone(b); m.next = seq + 1 }

// fill appends n checkable records of size bytes to w and to the model.
func (m *model) fill(t *testing.T, w *WAL, n, size int) {
	t.Helper()
	for i := 0; i < n; i++ {
		b := rec(m.next, size)
		seq, err := w.Append(b)
		require.NoError(t, err)
		require.Equal(t, m.next, seq, "Append's seq")
		m.append(seq, b)
	}
}

func (m *model) truncateFront(seq uint64) {
	if seq <= m.first {
		return
	}
	for s := m.first; s < seq && s < m.next; s++ {
		delete(m.recs, s)
	}
	m.first = seq
	if seq > m.next {
		m.next = seq
	}
}

func (m *model) truncateBack(seq uint64) {
	for s := seq + 1; s < m.next; s++ {
		delete(m.recs, s)
	}
	if seq+1 < m.next {
		m.next = seq + 1
	}
}

// check verifies every observable property of w against m: bounds, every
// record by Read, ReadAppend and a Reader, and ErrNotFound just outside.
func (m *model) check(t *testing.T, w *WAL) {
	t.Helper()
	if m.next == m.first {
		assert.Zero(t, w.FirstSeq(), "FirstSeq of empty log")
		assert.Zero(t, w.LastSeq(), "LastSeq of empty log")
	} else {
		require.Equal(t, m.first, w.FirstSeq(), "FirstSeq")
		require.Equal(t, m.next-1, w.LastSeq(), "LastSeq")
	}
	for s := m.first; s < m.next; s++ {
		got, err := w.Read(s)
		require.NoError(t, err, "Read(%d)", s)
		require.Equal(t, m.recs[s], got, "Read(%d)", s)
	}
	buf := make([]byte, 0, 64)
	for s := m.first; s < m.next; s++ {
		got, err := w.ReadAppend(buf[:0], s)
		require.NoError(t, err)
		require.Equal(t, m.recs[s], got)
	}
	if m.first > 1 {
		_, err := w.Read(m.first - 1)
		require.ErrorIs(t, err, ErrNotFound)
	}
	_, err := w.Read(m.next)
	require.ErrorIs(t, err, ErrNotFound)
	r, err := w.NewReader(0)
	require.NoError(t, err)
	want := m.first
	for r.Next() {
		require.Equal(t, want, r.Seq())
		require.Equal(t, m.recs[want], r.Value(), "Reader at %d", want)
		want++
	}
	require.NoError(t, r.Err())
	require.Equal(t, m.next, want, "Reader stopped early")
	require.NoError(t, r.Close())
}

// rec is a checkable record: its bytes derive from seq and a size.
func rec(seq uint64, size int) []byte {
	b := make([]byte, size)
	s := fmt.Sprintf("<%d>", seq)
	for i := range b {
		b[i] = s[i%len(s)]
	}
	return b
}

func smallOpts(p SyncPolicy) *Options {
	return &Options{SegmentSize: MinSegmentSize, Sync: p}
}

func mustOpen(t *testing.T, dir string, o *Options) *WAL {
	t.Helper()
	w, err := Open(dir, o)
	require.NoError(t, err)
	return w
}

// reopen closes w and opens the same directory again with o.
func reopen(t *testing.T, w *WAL, o *Options) *WAL {
	t.Helper()
	require.NoError(t, w.Close())
	return mustOpen(t, w.dir, o)
}
