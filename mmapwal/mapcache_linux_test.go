//go:build linux

package mmapwal

import (
	"cmp"
	"encoding/binary"
	"errors"
	"math/rand"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// The bounds a WAL of any size holds while open (Linux): no descriptor per
// segment (the lock file, the prepared segment and its index, and a
// transient one for a directory sync or a segment being mapped), and two
// mappings per mapped segment: at most MaxMappedSegments sealed ones, plus
// the active and the prepared segment, plus segments not yet synced (the
// flusher syncs them once they outnumber the cache, even under SyncNone).
const (
	scaleMaxFDs      = 8
	scaleExtraMapped = 4 // active, prepared, and slack for the flusher's lag
)

// dirResources counts this process's descriptors and mapping lines that
// refer to files under dir.
func dirResources(t *testing.T, dir string) (fds, maps int) {
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, dir+"/") {
			fds++
		}
	}
	b, err := os.ReadFile("/proc/self/maps")
	require.NoError(t, err)
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, dir+"/") {
			maps++
		}
	}
	return fds, maps
}

func rssBytes(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	require.NoError(t, err)
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var kb int64
			for _, c := range strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")) {
				kb = kb*10 + int64(c-'0')
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// withFDLimit runs the rest of the test with the soft RLIMIT_NOFILE at n
// (the default `ulimit -n` of most systems).
func withFDLimit(t *testing.T, n uint64) {
	var old syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old))
	lim := old
	lim.Cur = min(n, old.Max)
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim))
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
}

type scaleConfig struct {
	segments  int
	maxMapped int // 0: the default
	reads     int
	sync      SyncPolicy // the zero value: SyncNone
	batches   bool       // build with AppendBatch of two records (pwritten under SyncAlways)
	checkEach uint64     // check resources every checkEach records while building (0: 20,000)
}

// runScale builds a log of cfg.segments 64 KiB segments under `ulimit -n
// 1024`, then reopens it, appends, reads at random across all segments,
// runs a Reader, truncates at both ends and closes, checking after each
// step that descriptors, mappings and RSS stay within constant bounds.
func runScale(t *testing.T, cfg scaleConfig) {
	withFDLimit(t, 1024)
	dir := t.TempDir()
	mapped := cfg.maxMapped
	if mapped == 0 {
		mapped = DefaultMaxMappedSegments
	}
	maxMaps := 2 * (mapped + scaleExtraMapped)
	sync := cfg.sync
	if sync == 0 {
		sync = SyncNone
	}
	opts := &Options{SegmentSize: MinSegmentSize, Sync: sync, MaxMappedSegments: cfg.maxMapped}
	checkEach := cmp.Or(cfg.checkEach, 20000)
	rssBase := rssBytes(t)
	// What may be resident beyond the base: every mapped segment fully
	// touched (data and index), and the heap's share per segment (the
	// segment list and recovery's report: well under 2 KiB a segment).
	rssBound := rssBase + int64(mapped+scaleExtraMapped)*2*MinSegmentSize + int64(cfg.segments)*2048 + 64<<20
	check := func(step string) {
		t.Helper()
		fds, maps := dirResources(t, dir)
		rss := rssBytes(t)
		t.Logf("%s: %d fds, %d mappings, RSS %d MiB", step, fds, maps, rss>>20)
		require.LessOrEqual(t, fds, scaleMaxFDs, "%s: descriptors into the log directory", step)
		require.LessOrEqual(t, maps, maxMaps, "%s: mappings of the log's files", step)
		require.LessOrEqual(t, rss, rssBound, "%s: RSS (base %d MiB)", step, rssBase>>20)
	}

	w, err := Open(dir, opts)
	require.NoError(t, err)
	var last uint64
	for w.Stats().Segments < cfg.segments {
		if cfg.batches {
			first, err := w.AppendBatch([][]byte{scaleRecord(last + 1), scaleRecord(last + 2)})
			require.NoError(t, err, "batch at %d segments", w.Stats().Segments)
			last = first + 1
		} else {
			seq, err := w.Append(scaleRecord(last + 1))
			require.NoError(t, err, "append at %d segments", w.Stats().Segments)
			last = seq
		}
		if last%checkEach < 2 {
			check("building")
		}
	}
	check("built")
	require.NoError(t, w.Close())

	w, err = Open(dir, opts)
	require.NoError(t, err)
	defer w.Close()
	require.Equal(t, last, w.LastSeq())
	require.GreaterOrEqual(t, w.Stats().Segments, cfg.segments)
	check("reopened")

	for i := 0; i < 100; i++ {
		seq, err := w.Append(scaleRecord(last + 1))
		require.NoError(t, err)
		last = seq
	}
	rng := rand.New(rand.NewSource(1))
	var buf []byte
	for i := 0; i < cfg.reads; i++ {
		seq := 1 + uint64(rng.Int63n(int64(last)))
		buf, err = w.ReadAppend(buf[:0], seq)
		require.NoError(t, err, "read %d", seq)
		checkScaleRecord(t, seq, buf)
	}
	check("random reads")

	from := 1 + uint64(rng.Int63n(int64(last-1000)))
	n := 0
	err = w.Replay(from, func(seq uint64, b []byte) error {
		checkScaleRecord(t, seq, b)
		if n++; n == 1000 {
			return errStopReplay
		}
		return nil
	})
	require.ErrorIs(t, err, errStopReplay)
	check("replay")

	front := last / 10
	require.NoError(t, w.TruncateFront(front))
	back := last - 50
	require.NoError(t, w.TruncateBack(back))
	require.Equal(t, front, w.FirstSeq())
	require.Equal(t, back, w.LastSeq())
	for i := 0; i < 20; i++ {
		seq, err := w.Append(scaleRecord(back + 1))
		require.NoError(t, err)
		back = seq
	}
	for i := 0; i < cfg.reads/10; i++ {
		seq := front + uint64(rng.Int63n(int64(back-front+1)))
		buf, err = w.ReadAppend(buf[:0], seq)
		require.NoError(t, err, "read %d", seq)
		checkScaleRecord(t, seq, buf)
	}
	check("truncated")
	require.NoError(t, w.Close())
	fds, maps := dirResources(t, dir)
	require.Zero(t, fds, "descriptors after Close")
	require.Zero(t, maps, "mappings after Close")
}

var errStopReplay = errors.New("stop")

// TestResourcesBoundedManySegments: a log of 3,000 segments under `ulimit
// -n 1024` with a cache of 8 mapped segments. Before the mapping cache every
// segment held two descriptors and two mappings: appends failed with EMFILE
// at ~508 segments.
func TestResourcesBoundedManySegments(t *testing.T) {
	runScale(t, scaleConfig{segments: 3000, maxMapped: 8, reads: 3000})
}

// TestResourcesBoundedSyncAlwaysBatches: as above under SyncAlways with
// batches, which keep a descriptor on the active segment for their pwrite:
// descriptors stay bounded as segments rotate.
func TestResourcesBoundedSyncAlwaysBatches(t *testing.T) {
	runScale(t, scaleConfig{segments: 600, maxMapped: 8, reads: 600, sync: SyncAlways, batches: true, checkEach: 100})
}

// TestScale100kSegments is the full-size run (make scale): 100,000 segments
// of 64 KiB under `ulimit -n 1024`, default cache.
func TestScale100kSegments(t *testing.T) {
	if os.Getenv("MMAPWAL_SCALE") == "" {
		t.Skip("set MMAPWAL_SCALE=1 (make scale): builds 100,000 segments")
	}
	runScale(t, scaleConfig{segments: 100000, reads: 100000})
}

func TestMaxMappedSegmentsNegative(t *testing.T) {
	_, err := Open(t.TempDir(), &Options{MaxMappedSegments: -1})
	require.ErrorIs(t, err, ErrInvalidOptions)
}

// scaleRecord is record seq: its seq, then a filler; every other record is
// large enough that each 64 KiB segment holds about two records, so that a
// segment costs one rotation and ~33 KiB of writes.
func scaleRecord(seq uint64) []byte {
	n := 16
	if seq%2 == 0 {
		n = 33 << 10
	}
	b := make([]byte, n)
	binary.LittleEndian.PutUint64(b, seq)
	for i := 8; i < n; i++ {
		b[i] = byte(seq) ^ byte(i)
	}
	return b
}

func checkScaleRecord(t *testing.T, seq uint64, b []byte) {
	t.Helper()
	want := scaleRecord(seq)
	if string(b) != string(want) {
		t.Fatalf("record %d: %d bytes, want %d (first bytes %x)", seq, len(b), len(want), b[:min(len(b), 16)])
	}
}
