package raftstore

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/mmapwal/wal/mmapwal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, &Options{WAL: &mmapwal.Options{SegmentSize: mmapwal.MinSegmentSize}})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func reopen(t *testing.T, s *Store, dir string) *Store {
	t.Helper()
	require.NoError(t, s.Close())
	return open(t, dir)
}

// randomLog fills every field of raft.Log by reflection; a field of a kind
// it does not know (one added to raft.Log later) fails the test, so the
// codec cannot silently drop it.
func randomLog(t *testing.T, r *rand.Rand, index uint64) *raft.Log {
	t.Helper()
	l := &raft.Log{}
	v := reflect.ValueOf(l).Elem()
	for i := 0; i < v.NumField(); i++ {
		f, name := v.Field(i), v.Type().Field(i).Name
		switch {
		case name == "Index":
			f.SetUint(index)
		case f.Type() == reflect.TypeOf(time.Time{}):
			// time.Now carries a monotonic reading; the store keeps the
			// wall clock only (Round(0) strips it).
			f.Set(reflect.ValueOf(time.Now().Add(time.Duration(r.Int64N(1e15))).Round(0)))
		case f.Kind() == reflect.Uint64 || f.Kind() == reflect.Uint8:
			f.SetUint(r.Uint64()>>1 + 1)
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Uint8:
			b := make([]byte, r.IntN(300)+1)
			for j := range b {
				b[j] = byte(r.Uint32())
			}
			f.SetBytes(b)
		default:
			t.Fatalf("raft.Log.%s has type %s the test (and the codec) do not know", name, f.Type())
		}
	}
	return l
}

func TestRoundTripEveryFieldExactly(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	r := rand.New(rand.NewPCG(1, 2))
	var want []*raft.Log
	for i := uint64(1); i <= 50; i++ {
		want = append(want, randomLog(t, r, i))
	}
	// Edge values: nil and empty slices, UTC, the zero time, another zone,
	// times before 1970 and far ahead.
	edge := []raft.Log{
		{Data: nil, Extensions: []byte{}, AppendedAt: time.Time{}},
		{Data: []byte{}, Extensions: nil, AppendedAt: time.Now().UTC().Round(0)},
		{Type: raft.LogConfiguration, AppendedAt: time.Date(1900, 1, 2, 3, 4, 5, 6, time.Local)},
		{Term: ^uint64(0), AppendedAt: time.Date(3000, 1, 2, 3, 4, 5, 999999999, time.UTC)},
	}
	for i := range edge {
		edge[i].Index = uint64(51 + i)
		want = append(want, &edge[i])
	}
	require.NoError(t, s.StoreLogs(want[:30]))
	for _, l := range want[30:] {
		require.NoError(t, s.StoreLog(l))
	}
	check := func(s *Store) {
		t.Helper()
		for _, w := range want {
			var got raft.Log
			require.NoError(t, s.GetLog(w.Index, &got))
			if !reflect.DeepEqual(*w, got) {
				t.Fatalf("index %d:\nwant %#v\ngot  %#v", w.Index, *w, got)
			}
		}
	}
	check(s)
	check(reopen(t, s, dir))

	// Another zone keeps its instant, name and offset.
	zone := time.FixedZone("XYZ", -5*3600-30*60)
	at := time.Date(2024, 5, 6, 7, 8, 9, 10, zone)
	b := appendRecord(nil, &raft.Log{Index: 1, AppendedAt: at}, 0, false)
	var got raft.Log
	_, _, err := decodeRecord(b, &got)
	require.NoError(t, err)
	assert.True(t, got.AppendedAt.Equal(at))
	name, off := got.AppendedAt.Zone()
	assert.Equal(t, "XYZ", name)
	assert.Equal(t, -5*3600-30*60, off)
}

func TestGetLogMissingIsExactlyErrLogNotFound(t *testing.T) {
	s := open(t, t.TempDir())
	var l raft.Log
	for _, i := range []uint64{0, 1, 100} {
		assert.Same(t, raft.ErrLogNotFound, s.GetLog(i, &l), "empty store, index %d", i)
	}
	for i := uint64(10); i <= 30; i++ {
		require.NoError(t, s.StoreLog(&raft.Log{Index: i}))
	}
	require.NoError(t, s.DeleteRange(10, 14))
	for _, i := range []uint64{0, 9, 10, 14, 31, 1 << 50} {
		assert.Equal(t, raft.ErrLogNotFound, s.GetLog(i, &l), "index %d", i) // == comparison
		assert.True(t, s.GetLog(i, &l) == raft.ErrLogNotFound)
	}
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	assert.Equal(t, []uint64{15, 30}, []uint64{first, last})
}

func TestGapErrorNamesBothIndexes(t *testing.T) {
	s := open(t, t.TempDir())
	require.NoError(t, s.StoreLogs([]*raft.Log{{Index: 5}, {Index: 6}}))
	for _, tc := range []struct {
		batch []uint64
		named []string
	}{
		{[]uint64{8}, []string{"8", "6"}},
		{[]uint64{6}, []string{"6"}},
		{[]uint64{7, 9}, []string{"9", "7"}},
		{[]uint64{7, 7}, []string{"7"}},
	} {
		var logs []*raft.Log
		for _, i := range tc.batch {
			logs = append(logs, &raft.Log{Index: i})
		}
		err := s.StoreLogs(logs)
		require.ErrorIs(t, err, ErrNotContiguous, "batch %v", tc.batch)
		for _, n := range tc.named {
			assert.Contains(t, err.Error(), "index "+n, "batch %v", tc.batch)
		}
		last, _ := s.LastIndex()
		assert.EqualValues(t, 6, last, "a rejected batch stores nothing")
	}
	assert.Error(t, s.StoreLog(&raft.Log{Index: 0}))
	assert.Error(t, s.StoreLogs([]*raft.Log{nil}))
}

func TestDeleteRange(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	fill := func(from, to uint64) {
		t.Helper()
		var logs []*raft.Log
		for i := from; i <= to; i++ {
			logs = append(logs, &raft.Log{Index: i, Data: []byte(fmt.Sprint(i))})
		}
		require.NoError(t, s.StoreLogs(logs))
	}
	bounds := func() [2]uint64 {
		f, _ := s.FirstIndex()
		l, _ := s.LastIndex()
		return [2]uint64{f, l}
	}
	fill(1, 2000) // several 64 KiB segments
	err := s.DeleteRange(500, 600)
	require.ErrorIs(t, err, ErrMiddleRange)
	assert.Contains(t, err.Error(), "500..600")
	assert.Equal(t, [2]uint64{1, 2000}, bounds())

	require.NoError(t, s.DeleteRange(1, 999))
	assert.Equal(t, [2]uint64{1000, 2000}, bounds())
	var l raft.Log
	assert.Equal(t, raft.ErrLogNotFound, s.GetLog(999, &l))
	require.NoError(t, s.DeleteRange(1501, 2000))
	assert.Equal(t, [2]uint64{1000, 1500}, bounds())
	fill(1501, 1510)
	require.NoError(t, s.GetLog(1501, &l))
	assert.Equal(t, "1501", string(l.Data))

	s = reopen(t, s, dir)
	assert.Equal(t, [2]uint64{1000, 1510}, bounds())
	require.NoError(t, s.DeleteRange(0, ^uint64(0)))
	assert.Equal(t, [2]uint64{0, 0}, bounds())
	assert.Equal(t, raft.ErrLogNotFound, s.GetLog(1000, &l))
	// After deleting everything the next entries may start anywhere, lower
	// or higher, and survive a reopen.
	fill(7, 9)
	s = reopen(t, s, dir)
	assert.Equal(t, [2]uint64{7, 9}, bounds())
	require.NoError(t, s.DeleteRange(7, 9))
	s = reopen(t, s, dir)
	assert.Equal(t, [2]uint64{0, 0}, bounds())
	fill(1<<40, 1<<40+5)
	s = reopen(t, s, dir)
	assert.Equal(t, [2]uint64{1 << 40, 1<<40 + 5}, bounds())
	require.NoError(t, s.GetLog(1<<40+5, &l))
	assert.Equal(t, fmt.Sprint(uint64(1<<40+5)), string(l.Data))
}

func TestCallersOwnTheirSlices(t *testing.T) {
	s := open(t, t.TempDir())
	in := &raft.Log{Index: 1, Data: []byte("data"), Extensions: []byte("ext")}
	require.NoError(t, s.StoreLog(in))
	in.Data[0] = 'X'
	var a, b raft.Log
	require.NoError(t, s.GetLog(1, &a))
	assert.Equal(t, "data", string(a.Data))
	a.Data = append(a.Data, "more"...) // capacity-limited: never runs into Extensions
	assert.Equal(t, "ext", string(a.Extensions))
	a.Data[0] = 'Y'
	require.NoError(t, s.GetLog(1, &b))
	assert.Equal(t, "data", string(b.Data))
}

func TestStableStore(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	v, err := s.Get([]byte("nope"))
	assert.NoError(t, err)
	assert.Empty(t, v)
	n, err := s.GetUint64([]byte("nope"))
	assert.NoError(t, err)
	assert.Zero(t, n)
	// Enough Sets to compact the stable log several times.
	for i := uint64(1); i <= 3*stableCompactEvery+7; i++ {
		require.NoError(t, s.SetUint64([]byte("CurrentTerm"), i))
		require.NoError(t, s.Set([]byte("LastVoteCand"), []byte(fmt.Sprint("node", i))))
	}
	assert.LessOrEqual(t, s.stable.wal.LastSeq()-s.stable.wal.FirstSeq(), uint64(stableCompactEvery))
	s = reopen(t, s, dir)
	n, err = s.GetUint64([]byte("CurrentTerm"))
	require.NoError(t, err)
	assert.EqualValues(t, 3*stableCompactEvery+7, n)
	v, err = s.Get([]byte("LastVoteCand"))
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprint("node", 3*stableCompactEvery+7), string(v))
	require.NoError(t, s.Set([]byte("raw"), []byte{1, 2, 3}))
	_, err = s.GetUint64([]byte("raw"))
	assert.Error(t, err, "3 bytes are not a uint64")
}

func TestCommitIndex(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	get := func() uint64 {
		c, err := s.GetCommitIndex()
		require.NoError(t, err)
		return c
	}
	assert.Zero(t, get())
	require.NoError(t, s.StageCommitIndex(3))
	assert.Zero(t, get(), "staged, not yet persisted")
	require.NoError(t, s.StoreLogs([]*raft.Log{{Index: 1}, {Index: 2}, {Index: 3}, {Index: 4}}))
	assert.EqualValues(t, 3, get())
	require.NoError(t, s.StageCommitIndex(9))
	require.NoError(t, s.StoreLogs([]*raft.Log{{Index: 5}, {Index: 6}}))
	assert.EqualValues(t, 6, get(), "capped at LastIndex")
	require.NoError(t, s.StoreLogs([]*raft.Log{{Index: 7}, {Index: 8}, {Index: 9}, {Index: 10}}))
	assert.EqualValues(t, 9, get(), "the value carries on into later batches")
	require.NoError(t, s.DeleteRange(8, 10))
	assert.EqualValues(t, 7, get())
	require.NoError(t, s.StageCommitIndex(7))
	s = reopen(t, s, dir)
	assert.EqualValues(t, 7, get(), "carried by record 7 (batch 7..10), capped; staged 7 was never stored")
	require.NoError(t, s.StoreLog(&raft.Log{Index: 8}))
	s = reopen(t, s, dir)
	assert.EqualValues(t, 8, get(), "9 carried on, capped at 8")
}

func TestOpenOptions(t *testing.T) {
	_, err := Open(t.TempDir(), &Options{WAL: &mmapwal.Options{MaxSegments: 3}})
	assert.ErrorIs(t, err, mmapwal.ErrInvalidOptions)
	_, err = Open(t.TempDir(), &Options{WAL: &mmapwal.Options{SegmentSize: 1}})
	assert.ErrorIs(t, err, mmapwal.ErrInvalidOptions)
	dir := t.TempDir()
	s, err := Open(dir, nil)
	require.NoError(t, err)
	_, err = Open(dir, nil)
	assert.ErrorIs(t, err, mmapwal.ErrLocked, "a second Open of the same dir")
	require.NoError(t, s.Close())
	assert.ErrorIs(t, s.Close(), ErrClosed)
	assert.ErrorIs(t, s.StoreLog(&raft.Log{Index: 1}), ErrClosed)
	var l raft.Log
	assert.ErrorIs(t, s.GetLog(1, &l), ErrClosed)
	_, err = s.Get([]byte("k"))
	assert.ErrorIs(t, err, ErrClosed)
}

func TestBadRecordsAreCorruptNotPanics(t *testing.T) {
	good := appendRecord(nil, &raft.Log{Index: 3, Data: []byte("abc"), Extensions: []byte("e"),
		AppendedAt: time.Date(2020, 1, 1, 0, 0, 0, 0, time.FixedZone("Z", 60))}, 7, true)
	var l raft.Log
	_, _, err := decodeRecord(good, &l)
	require.NoError(t, err)
	for n := 0; n < len(good); n++ {
		_, _, err := decodeRecord(good[:n], &l)
		assert.Error(t, err, "truncated to %d bytes", n)
	}
	_, _, err = decodeRecord(append(bytes.Clone(good), 0), &l)
	assert.ErrorContains(t, err, "after the last field")
	bad := bytes.Clone(good)
	bad[0] = 2
	_, _, err = decodeRecord(bad, &l)
	assert.ErrorContains(t, err, "unknown record version 2")
	bad = bytes.Clone(good)
	bad[1] |= 0x80
	_, _, err = decodeRecord(bad, &l)
	assert.ErrorContains(t, err, "flags")

	// A record that is not ours in the log: Open names it, wrapping ErrCorrupt.
	dir := t.TempDir()
	w, err := mmapwal.Open(filepath.Join(dir, logDir), nil)
	require.NoError(t, err)
	_, err = w.Append([]byte("not a raft record"))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	_, err = Open(dir, nil)
	require.ErrorIs(t, err, mmapwal.ErrCorrupt)
	assert.True(t, strings.Contains(err.Error(), "record 1"), err.Error())
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(appendRecord(nil, &raft.Log{Index: 1, Data: []byte("x")}, 0, false))
	f.Add(appendRecord(nil, &raft.Log{Index: 2, AppendedAt: time.Now().In(time.FixedZone("A", 3600))}, 5, true))
	f.Fuzz(func(t *testing.T, b []byte) {
		var l raft.Log
		commit, has, err := decodeRecord(b, &l)
		if err != nil {
			return
		}
		again := appendRecord(nil, &l, commit, has)
		var l2 raft.Log
		if _, _, err := decodeRecord(again, &l2); err != nil || !errors.Is(err, nil) {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
	})
}
