// Package raftstoretest is a conformance suite for raft.LogStore
// implementations (and, when the store also implements them,
// raft.StableStore, raft.MonotonicLogStore and raft.CommitTrackingLogStore).
// It encodes the semantics hashicorp/raft relies on, and is run against
// raft.InmemStore and hashicorp/raft-wal as well as raftstore.Store, so it
// checks raft's contract rather than one implementation's.
//
//	func TestConformance(t *testing.T) {
//		raftstoretest.Run(t, func(t *testing.T, dir string) raft.LogStore {
//			s, err := mystore.Open(dir)
//			require.NoError(t, err)
//			return s
//		})
//	}
//
// A store that implements io.Closer is closed by the suite. Cases that need
// the contents to survive Close and a new open (reopen) or a SIGKILL of the
// writing process (crash) run unless WithoutReopen / WithoutCrash say the
// store cannot do them. Crash cases re-execute the test binary with
// -test.run naming the calling test, so open must work the same in that
// child process (no state captured from elsewhere in the test).
package raftstoretest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// Option adjusts what Run checks.
type Option func(*config)

type config struct {
	reopen, crash bool
	crashCycles   int
	skip          map[string]string // case name -> reason
}

// SkipCase skips one case (a subtest name of Run, e.g. "Reopen") with a
// reason, for a store known to fail it (say which bug).
func SkipCase(name, reason string) Option {
	return func(c *config) { c.skip[name] = reason }
}

// WithoutReopen: the store does not keep anything across Close and open
// (raft.InmemStore); reopen and crash cases are skipped.
func WithoutReopen() Option { return func(c *config) { c.reopen, c.crash = false, false } }

// WithoutCrash skips the cases that SIGKILL a writing child process.
func WithoutCrash() Option { return func(c *config) { c.crash = false } }

// CrashCycles sets how many kill/reopen cycles the crash case runs (default
// 3, or $RAFTSTORETEST_CRASH_CYCLES).
func CrashCycles(n int) Option { return func(c *config) { c.crashCycles = n } }

// Opener opens (creating if needed) the store kept in dir.
type Opener func(t *testing.T, dir string) raft.LogStore

// Environment of a crash child process.
const (
	envChild = "RAFTSTORETEST_CHILD_DIR"
	envCycle = "RAFTSTORETEST_CRASH_CYCLES"
)

// Run runs the suite as subtests of t.
func Run(t *testing.T, open Opener, opts ...Option) {
	cfg := config{reopen: true, crash: true, crashCycles: 3, skip: map[string]string{}}
	if n, err := strconv.Atoi(os.Getenv(envCycle)); err == nil && n > 0 {
		cfg.crashCycles = n
	}
	for _, o := range opts {
		o(&cfg)
	}
	if dir := os.Getenv(envChild); dir != "" {
		crashChild(t, open, dir) // never returns normally
		return
	}
	h := &harness{open: open, cfg: cfg}
	for _, c := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"Empty", h.testEmpty},
		{"RoundTripAllFields", h.testRoundTrip},
		{"StartAtAnyIndex", h.testStartAnywhere},
		{"Contiguous", h.testContiguous},
		{"DeleteRange", h.testDeleteRange},
		{"DeleteAllThenAnyIndex", h.testDeleteAll},
		{"StableStore", h.testStable},
		{"CommitIndex", h.testCommit},
		{"ConcurrentReads", h.testConcurrent},
		{"Reopen", h.testReopen},
		{"Crash", h.testCrash},
	} {
		t.Run(c.name, func(t *testing.T) {
			if why, ok := cfg.skip[c.name]; ok {
				t.Skip(why)
			}
			c.fn(t)
		})
	}
}

type harness struct {
	open Opener
	cfg  config
}

// fresh opens a store in a new directory, closed at the end of the test.
func (h *harness) fresh(t *testing.T) (raft.LogStore, string) {
	dir := t.TempDir()
	s := h.open(t, dir)
	t.Cleanup(func() { _ = closeStore(s) })
	return s, dir
}

func (h *harness) reopen(t *testing.T, s raft.LogStore, dir string) raft.LogStore {
	t.Helper()
	if err := closeStore(s); err != nil {
		t.Fatalf("close: %v", err)
	}
	s = h.open(t, dir)
	t.Cleanup(func() { _ = closeStore(s) })
	return s
}

// closeStore closes s if it is an io.Closer. The cleanups registered by
// fresh and reopen call it again on stores already closed and ignore the
// error; every explicit close checks it.
func closeStore(s raft.LogStore) error {
	if c, ok := s.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

func monotonic(s raft.LogStore) bool {
	m, ok := s.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

// logFields is every field of raft.Log this suite knows how to fill and
// compare. A field added to raft.Log fails RoundTripAllFields until it is
// added here (and to the stores).
var logFields = []string{"Index", "Term", "Type", "Data", "Extensions", "AppendedAt"}

// Entry returns the deterministic entry the suite stores at index i, every
// field set (Data of a length varying up to 2 KiB).
func Entry(i uint64) *raft.Log {
	data := make([]byte, int(i*37%2048)+1)
	for j := range data {
		data[j] = byte(i) + byte(j)*7
	}
	return &raft.Log{
		Index:      i,
		Term:       i/16 + 1,
		Type:       raft.LogType(i % 6),
		Data:       data,
		Extensions: binary.BigEndian.AppendUint64([]byte("ext"), i),
		AppendedAt: time.Unix(1_700_000_000+int64(i), int64(i%1e9)).Round(0),
	}
}

// SameLog reports how got differs from want, field by field by reflection
// ("" if equivalent): byte slices by content (raft does not distinguish nil
// from empty), times by instant; a field of a kind it does not know is a
// difference, so a new raft.Log field cannot pass unnoticed.
func SameLog(want, got *raft.Log) string {
	wv, gv := reflect.ValueOf(want).Elem(), reflect.ValueOf(got).Elem()
	var diffs []string
	for i := 0; i < wv.NumField(); i++ {
		f := wv.Type().Field(i)
		a, b := wv.Field(i).Interface(), gv.Field(i).Interface()
		same := false
		switch av := a.(type) {
		case uint64, raft.LogType:
			same = a == b
		case []byte:
			same = bytes.Equal(av, b.([]byte))
		case time.Time:
			same = av.Equal(b.(time.Time))
		default:
			diffs = append(diffs, fmt.Sprintf("field %s of unknown type %T", f.Name, a))
			continue
		}
		if !same {
			diffs = append(diffs, fmt.Sprintf("%s: want %v, got %v", f.Name, short(a), short(b)))
		}
	}
	return strings.Join(diffs, "; ")
}

func short(v any) any {
	if b, ok := v.([]byte); ok && len(b) > 16 {
		return fmt.Sprintf("%x… (%d bytes)", b[:16], len(b))
	}
	return v
}

func storeRange(t *testing.T, s raft.LogStore, from, to uint64) {
	t.Helper()
	var logs []*raft.Log
	for i := from; i <= to; i++ {
		logs = append(logs, Entry(i))
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatalf("StoreLogs(%d..%d): %v", from, to, err)
	}
}

func wantBounds(t *testing.T, s raft.LogStore, first, last uint64) {
	t.Helper()
	f, err := s.FirstIndex()
	if err != nil {
		t.Fatalf("FirstIndex: %v", err)
	}
	l, err := s.LastIndex()
	if err != nil {
		t.Fatalf("LastIndex: %v", err)
	}
	if f != first || l != last {
		t.Fatalf("FirstIndex, LastIndex = %d, %d; want %d, %d", f, l, first, last)
	}
}

func wantEntries(t *testing.T, s raft.LogStore, from, to uint64) {
	t.Helper()
	for i := from; i <= to; i++ {
		var l raft.Log
		if err := s.GetLog(i, &l); err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
		if d := SameLog(Entry(i), &l); d != "" {
			t.Fatalf("GetLog(%d): %s", i, d)
		}
	}
}

func wantMissing(t *testing.T, s raft.LogStore, idx ...uint64) {
	t.Helper()
	for _, i := range idx {
		var l raft.Log
		if err := s.GetLog(i, &l); err != raft.ErrLogNotFound {
			t.Fatalf("GetLog(%d) = %v; want exactly raft.ErrLogNotFound", i, err)
		}
	}
}

// wantGone: after a prefix delete, raft never reads below FirstIndex; a
// store may keep serving such an entry until its space is reclaimed
// (raft-wal does) but must never return anything else.
func wantGone(t *testing.T, s raft.LogStore, from, to uint64) {
	t.Helper()
	for i := from; i <= to; i++ {
		var l raft.Log
		err := s.GetLog(i, &l)
		if err == raft.ErrLogNotFound {
			continue
		}
		if err != nil {
			t.Fatalf("GetLog(%d) of a deleted index: %v", i, err)
		}
		if d := SameLog(Entry(i), &l); d != "" {
			t.Fatalf("GetLog(%d) of a deleted index returned another entry: %s", i, d)
		}
	}
}

func (h *harness) testEmpty(t *testing.T) {
	s, _ := h.fresh(t)
	wantBounds(t, s, 0, 0)
	wantMissing(t, s, 0, 1, 2, 1<<40)
	if err := s.StoreLogs(nil); err != nil {
		t.Fatalf("StoreLogs(nil): %v", err)
	}
	wantBounds(t, s, 0, 0)
	if err := s.DeleteRange(1, 10); err != nil {
		t.Fatalf("DeleteRange on an empty store: %v", err)
	}
}

func (h *harness) testRoundTrip(t *testing.T) {
	typ := reflect.TypeOf(raft.Log{})
	var names []string
	for i := 0; i < typ.NumField(); i++ {
		names = append(names, typ.Field(i).Name)
	}
	if !reflect.DeepEqual(names, logFields) {
		t.Fatalf("raft.Log fields are %v; the suite knows %v: extend it (and the stores)", names, logFields)
	}
	s, _ := h.fresh(t)
	if err := s.StoreLog(Entry(1)); err != nil {
		t.Fatal(err)
	}
	storeRange(t, s, 2, 20)
	// Empty and zero fields as well as full ones.
	zero := &raft.Log{Index: 21}
	if err := s.StoreLog(zero); err != nil {
		t.Fatal(err)
	}
	wantBounds(t, s, 1, 21)
	wantEntries(t, s, 1, 20)
	var l raft.Log
	if err := s.GetLog(21, &l); err != nil {
		t.Fatal(err)
	}
	if d := SameLog(zero, &l); d != "" {
		t.Fatalf("zero entry: %s", d)
	}
	wantMissing(t, s, 0, 22)
}

func (h *harness) testStartAnywhere(t *testing.T) {
	for _, start := range []uint64{1, 2, 1000, 1 << 40} {
		t.Run(strconv.FormatUint(start, 10), func(t *testing.T) {
			s, _ := h.fresh(t)
			storeRange(t, s, start, start+9)
			wantBounds(t, s, start, start+9)
			wantEntries(t, s, start, start+9)
			wantMissing(t, s, start-1, start+10)
			if err := s.StoreLog(Entry(start + 10)); err != nil {
				t.Fatal(err)
			}
			wantBounds(t, s, start, start+10)
		})
	}
}

func (h *harness) testContiguous(t *testing.T) {
	s, _ := h.fresh(t)
	if !monotonic(s) {
		t.Skip("store does not implement raft.MonotonicLogStore: gaps are allowed")
	}
	storeRange(t, s, 1, 10)
	for _, tc := range []struct {
		name  string
		batch []uint64
		names []uint64 // indexes the error must name
	}{
		{"gap after last", []uint64{12, 13}, []uint64{12, 10}},
		{"overlap", []uint64{10, 11}, []uint64{10}},
		{"gap inside batch", []uint64{11, 13}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs []*raft.Log
			for _, i := range tc.batch {
				logs = append(logs, Entry(i))
			}
			err := s.StoreLogs(logs)
			if err == nil {
				t.Fatalf("StoreLogs(%v) after last index 10 succeeded", tc.batch)
			}
			for _, n := range tc.names {
				if !strings.Contains(err.Error(), strconv.FormatUint(n, 10)) {
					t.Errorf("error %q does not name index %d", err, n)
				}
			}
			wantBounds(t, s, 1, 10)
			wantMissing(t, s, 11, 12)
		})
	}
	storeRange(t, s, 11, 12)
	wantEntries(t, s, 1, 12)
}

func (h *harness) testDeleteRange(t *testing.T) {
	t.Run("prefix", func(t *testing.T) {
		s, _ := h.fresh(t)
		storeRange(t, s, 1, 100)
		must(t, s.DeleteRange(1, 40))
		wantBounds(t, s, 41, 100)
		wantGone(t, s, 1, 40)
		wantEntries(t, s, 41, 100)
		// raft compacts with min below the first index too.
		must(t, s.DeleteRange(0, 50))
		wantBounds(t, s, 51, 100)
		storeRange(t, s, 101, 110)
		wantEntries(t, s, 51, 110)
	})
	t.Run("suffix", func(t *testing.T) {
		s, _ := h.fresh(t)
		storeRange(t, s, 1, 100)
		must(t, s.DeleteRange(61, 100))
		wantBounds(t, s, 1, 60)
		wantMissing(t, s, 61, 100)
		// Appends continue right after the cut (raft replacing a conflict).
		storeRange(t, s, 61, 70)
		wantEntries(t, s, 1, 70)
		must(t, s.DeleteRange(65, 1000))
		wantBounds(t, s, 1, 64)
	})
	t.Run("outside or empty range", func(t *testing.T) {
		s, _ := h.fresh(t)
		storeRange(t, s, 10, 20)
		must(t, s.DeleteRange(1, 9))
		must(t, s.DeleteRange(21, 30))
		must(t, s.DeleteRange(15, 14))
		wantBounds(t, s, 10, 20)
		wantEntries(t, s, 10, 20)
	})
	t.Run("middle", func(t *testing.T) {
		s, _ := h.fresh(t)
		if !monotonic(s) {
			t.Skip("store allows gaps")
		}
		storeRange(t, s, 1, 100)
		if err := s.DeleteRange(40, 60); err == nil {
			t.Fatal("DeleteRange(40, 60) of 1..100 succeeded; a monotonic store cannot have a hole")
		}
		wantBounds(t, s, 1, 100)
		wantEntries(t, s, 1, 100)
	})
}

func (h *harness) testDeleteAll(t *testing.T) {
	if s, _ := h.fresh(t); !monotonic(s) {
		t.Skip("raft deletes everything only in a raft.MonotonicLogStore")
	}
	for _, next := range []uint64{1, 50, 101, 5000} {
		t.Run(fmt.Sprintf("next=%d", next), func(t *testing.T) {
			s, _ := h.fresh(t)
			storeRange(t, s, 20, 100)
			must(t, s.DeleteRange(20, 100))
			wantBounds(t, s, 0, 0)
			wantMissing(t, s, 20, 50, 100)
			storeRange(t, s, next, next+9)
			wantBounds(t, s, next, next+9)
			wantEntries(t, s, next, next+9)
			// raft's removeOldLogs passes the whole known range and beyond.
			must(t, s.DeleteRange(0, next+1000))
			wantBounds(t, s, 0, 0)
		})
	}
}

func (h *harness) testStable(t *testing.T) {
	s, dir := h.fresh(t)
	ss, ok := s.(raft.StableStore)
	if !ok {
		t.Skip("not a raft.StableStore")
	}
	checkStable := func(ss raft.StableStore) {
		t.Helper()
		// raft accepts nil or an error reading exactly "not found" for a
		// missing key (api.go, raft.go); raft.InmemStore gives the latter.
		v, err := ss.Get([]byte("missing"))
		if err != nil && err.Error() != "not found" || len(v) != 0 {
			t.Fatalf("Get(missing) = %q, %v; want empty, nil", v, err)
		}
		n, err := ss.GetUint64([]byte("missing-u"))
		if err != nil && err.Error() != "not found" || n != 0 {
			t.Fatalf("GetUint64(missing) = %d, %v; want 0, nil", n, err)
		}
		v, err = ss.Get([]byte("k1"))
		if err != nil || string(v) != "v1-new" {
			t.Fatalf("Get(k1) = %q, %v; want v1-new", v, err)
		}
		v, err = ss.Get([]byte("k2"))
		if err != nil || string(v) != "" {
			t.Fatalf("Get(k2) = %q, %v; want empty", v, err)
		}
		n, err = ss.GetUint64([]byte("CurrentTerm"))
		if err != nil || n != 1<<40+3 {
			t.Fatalf("GetUint64(CurrentTerm) = %d, %v", n, err)
		}
	}
	must(t, ss.Set([]byte("k1"), []byte("v1")))
	must(t, ss.Set([]byte("k1"), []byte("v1-new")))
	must(t, ss.Set([]byte("k2"), []byte{}))
	for i := uint64(0); i <= 3; i++ {
		must(t, ss.SetUint64([]byte("CurrentTerm"), 1<<40+i))
	}
	checkStable(ss)
	if h.cfg.reopen {
		s = h.reopen(t, s, dir)
		checkStable(s.(raft.StableStore))
	}
}

func (h *harness) testCommit(t *testing.T) {
	s, dir := h.fresh(t)
	if _, ok := s.(raft.CommitTrackingLogStore); !ok {
		t.Skip("not a raft.CommitTrackingLogStore")
	}
	get := func(s raft.LogStore) uint64 {
		t.Helper()
		c, err := s.(raft.CommitTrackingLogStore).GetCommitIndex()
		if err != nil {
			t.Fatalf("GetCommitIndex: %v", err)
		}
		last, _ := s.LastIndex()
		if c > last {
			t.Fatalf("GetCommitIndex = %d above LastIndex %d", c, last)
		}
		return c
	}
	stage := func(s raft.LogStore, i uint64) {
		t.Helper()
		must(t, s.(raft.CommitTrackingLogStore).StageCommitIndex(i))
	}
	if c := get(s); c != 0 {
		t.Fatalf("empty store: GetCommitIndex = %d", c)
	}
	storeRange(t, s, 1, 10)
	stage(s, 5)
	storeRange(t, s, 11, 20)
	if c := get(s); c != 5 {
		t.Fatalf("GetCommitIndex = %d; want 5 (staged before StoreLogs 11..20)", c)
	}
	stage(s, 100) // above what the next batch reaches: capped
	storeRange(t, s, 21, 22)
	if c := get(s); c != 22 {
		t.Fatalf("GetCommitIndex = %d; want 22 (100 capped at LastIndex)", c)
	}
	stage(s, 22)
	storeRange(t, s, 23, 30)
	must(t, s.DeleteRange(26, 30)) // the cut keeps the commit index carried
	if c := get(s); c != 22 {
		t.Fatalf("after DeleteRange(26, 30): GetCommitIndex = %d; want 22", c)
	}
	if !h.cfg.reopen {
		return
	}
	stage(s, 25) // staged, never followed by StoreLogs: must not persist
	s = h.reopen(t, s, dir)
	if c := get(s); c != 22 {
		t.Fatalf("after reopen: GetCommitIndex = %d; want 22 (25 was staged without StoreLogs)", c)
	}
	must(t, s.DeleteRange(0, 100))
	s = h.reopen(t, s, dir)
	if c := get(s); c != 0 {
		t.Fatalf("empty store after reopen: GetCommitIndex = %d; want 0", c)
	}
}

func (h *harness) testConcurrent(t *testing.T) {
	s, _ := h.fresh(t)
	storeRange(t, s, 1, 10)
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, 4)
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				first, err1 := s.FirstIndex()
				last, err2 := s.LastIndex()
				if err := errors.Join(err1, err2); err != nil {
					errs <- err
					return
				}
				for i := first; i <= last && i != 0; i += 7 {
					var l raft.Log
					err := s.GetLog(i, &l)
					if err == raft.ErrLogNotFound {
						continue // compacted meanwhile
					}
					if err != nil {
						errs <- fmt.Errorf("GetLog(%d): %w", i, err)
						return
					}
					if d := SameLog(Entry(i), &l); d != "" {
						errs <- fmt.Errorf("GetLog(%d): %s", i, d)
						return
					}
				}
			}
		}()
	}
	for i := uint64(11); i <= 400; i += 10 {
		storeRange(t, s, i, i+9)
		if i%50 == 1 {
			must(t, s.DeleteRange(0, i-20))
		}
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func (h *harness) testReopen(t *testing.T) {
	if !h.cfg.reopen {
		t.Skip("store does not survive reopen (WithoutReopen)")
	}
	s, dir := h.fresh(t)
	storeRange(t, s, 7, 300)
	s = h.reopen(t, s, dir)
	wantBounds(t, s, 7, 300)
	wantEntries(t, s, 7, 300)
	must(t, s.DeleteRange(0, 99))
	must(t, s.DeleteRange(251, 300))
	s = h.reopen(t, s, dir)
	wantBounds(t, s, 100, 250)
	wantEntries(t, s, 100, 250)
	storeRange(t, s, 251, 260)
	s = h.reopen(t, s, dir)
	wantEntries(t, s, 100, 260)
	must(t, s.DeleteRange(1, 10_000))
	s = h.reopen(t, s, dir)
	wantBounds(t, s, 0, 0)
	storeRange(t, s, 3, 5) // lower than ever before
	s = h.reopen(t, s, dir)
	wantBounds(t, s, 3, 5)
	wantEntries(t, s, 3, 5)
	must(t, s.DeleteRange(3, 5))
	storeRange(t, s, 9000, 9010)
	s = h.reopen(t, s, dir)
	wantBounds(t, s, 9000, 9010)
	wantEntries(t, s, 9000, 9010)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// testCrash: a child process writes batches (and stable values, and staged
// commit indexes), printing an acknowledgement after each call returns; it
// is killed with SIGKILL after a varying number of them; the store reopened
// here must hold every acknowledged batch, and a whole number of batches
// (each entry's Extensions carry its batch's bounds). Repeated: each child
// continues the log of the last.
func (h *harness) testCrash(t *testing.T) {
	if !h.cfg.crash {
		t.Skip("crash cases disabled (WithoutCrash / WithoutReopen)")
	}
	dir := t.TempDir()
	pattern := runPattern(t)
	var acked, stableAcked uint64
	for cycle := 0; cycle < h.cfg.crashCycles; cycle++ {
		killAfter := 3 + cycle*7%40
		a, sa := runChild(t, pattern, dir, killAfter)
		acked, stableAcked = max(acked, a), max(stableAcked, sa)
		s := h.open(t, dir)
		checkCrashed(t, s, acked, stableAcked)
		if err := closeStore(s); err != nil {
			t.Fatalf("close: %v", err)
		}
	}
	t.Logf("%d crash cycles, %d entries acknowledged", h.cfg.crashCycles, acked)
}

// runPattern anchors every level of t's name for -test.run (it names the
// test that called Run: the crash child runs Run again from there).
func runPattern(t *testing.T) string {
	parts := strings.Split(t.Name(), "/")
	parts = parts[:len(parts)-1] // drop "Crash": Run's caller is the parent
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}

func runChild(t *testing.T, pattern, dir string, killAfter int) (acked, stableAcked uint64) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run", pattern, "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), envChild+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	n, killed := 0, false
	timer := time.AfterFunc(90*time.Second, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "ack":
			acked = v
			n++
		case "stable":
			stableAcked = v
		default:
			continue
		}
		if n >= killAfter && !killed {
			_ = cmd.Process.Kill() // SIGKILL on Unix: no deferred work runs
			killed = true
		}
	}
	werr := cmd.Wait()
	if !killed {
		t.Fatalf("crash child ended before it was killed (%d acks): %v\n%s", n, werr, stderr.String())
	}
	if n == 0 {
		t.Fatalf("crash child acknowledged nothing: %v\n%s", werr, stderr.String())
	}
	return acked, stableAcked
}

// crashBatch is the size of the batch that starts at index i.
func crashBatch(i uint64) uint64 { return i*7%13 + 1 }

// crashEntry is Entry(i) with its batch bounds in Extensions.
func crashEntry(i, from, to uint64) *raft.Log {
	l := Entry(i)
	l.Extensions = binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, from), to)
	return l
}

func crashChild(t *testing.T, open Opener, dir string) {
	s := open(t, dir)
	ss, _ := s.(raft.StableStore)
	ct, _ := s.(raft.CommitTrackingLogStore)
	last, err := s.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(os.Stdout)
	for b := 0; b < 100_000; b++ {
		from := last + 1
		to := from + crashBatch(from) - 1
		var logs []*raft.Log
		for i := from; i <= to; i++ {
			logs = append(logs, crashEntry(i, from, to))
		}
		if ct != nil {
			must(t, ct.StageCommitIndex(last))
		}
		if err := s.StoreLogs(logs); err != nil {
			t.Fatalf("StoreLogs(%d..%d): %v", from, to, err)
		}
		fmt.Fprintf(w, "ack %d\n", to)
		w.Flush()
		last = to
		if ss != nil {
			must(t, ss.SetUint64([]byte("crash-last"), to))
			fmt.Fprintf(w, "stable %d\n", to)
			w.Flush()
		}
	}
	t.Fatal("crash child was not killed")
}

func checkCrashed(t *testing.T, s raft.LogStore, acked, stableAcked uint64) {
	t.Helper()
	first, err := s.FirstIndex()
	must(t, err)
	last, err := s.LastIndex()
	must(t, err)
	if first != 1 || last < acked {
		t.Fatalf("after crash: log %d..%d; acknowledged 1..%d", first, last, acked)
	}
	var l raft.Log
	for i := first; i <= last; {
		must(t, s.GetLog(i, &l))
		if len(l.Extensions) != 16 {
			t.Fatalf("index %d: extensions %x", i, l.Extensions)
		}
		from, to := binary.BigEndian.Uint64(l.Extensions), binary.BigEndian.Uint64(l.Extensions[8:])
		if from != i || to > last {
			t.Fatalf("after crash: batch %d..%d found at index %d, log ends at %d: a batch is not whole", from, to, i, last)
		}
		for j := from; j <= to; j++ {
			must(t, s.GetLog(j, &l))
			if d := SameLog(crashEntry(j, from, to), &l); d != "" {
				t.Fatalf("after crash: index %d: %s", j, d)
			}
		}
		i = to + 1
	}
	if ss, ok := s.(raft.StableStore); ok {
		v, err := ss.GetUint64([]byte("crash-last"))
		must(t, err)
		if v < stableAcked {
			t.Fatalf("after crash: stable value %d, acknowledged %d", v, stableAcked)
		}
	}
	if ct, ok := s.(raft.CommitTrackingLogStore); ok {
		c, err := ct.GetCommitIndex()
		must(t, err)
		must(t, s.GetLog(last, &l))
		want := binary.BigEndian.Uint64(l.Extensions) - 1 // staged before the last batch
		if c != want {
			t.Fatalf("after crash: GetCommitIndex = %d; want %d (staged with the batch ending at %d)", c, want, last)
		}
	}
}
