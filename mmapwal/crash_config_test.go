package mmapwal

// Config-change crash cycles: the crash loop of crash_test.go, but each
// cycle's child (and the reopen that checks it) runs with other Options:
// SegmentSize, a MaxRecordSize lower than earlier cycles wrote with, the
// Sync policy, MaxSegments retention — and records larger than a segment
// right after a TruncateBack to a segment's start. Every acknowledged
// record must survive (retention may drop records before the recovered
// FirstSeq, never the newest).

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// crashConfig is one cycle's options, passed to the child in crashEnvOpts.
type crashConfig struct {
	segSize     int64
	maxRec      int
	sync        SyncPolicy
	maxSegments int
	big         bool // records larger than a segment after TruncateBack
}

func (c crashConfig) String() string {
	big := 0
	if c.big {
		big = 1
	}
	return fmt.Sprintf("%d,%d,%d,%d,%d", c.segSize, c.maxRec, int(c.sync), c.maxSegments, big)
}

func parseCrashConfig(v string) (crashConfig, error) {
	f := strings.Split(v, ",")
	if len(f) != 5 {
		return crashConfig{}, fmt.Errorf("bad %s %q", crashEnvOpts, v)
	}
	var n [5]int64
	for i, s := range f {
		x, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return crashConfig{}, fmt.Errorf("bad %s %q: %v", crashEnvOpts, v, err)
		}
		n[i] = x
	}
	return crashConfig{segSize: n[0], maxRec: int(n[1]), sync: SyncPolicy(n[2]), maxSegments: int(n[3]), big: n[4] == 1}, nil
}

func (c crashConfig) options() *Options {
	return &Options{SegmentSize: c.segSize, MaxRecordSize: c.maxRec, Sync: c.sync,
		SyncInterval: 2 * time.Millisecond, MaxSegments: c.maxSegments}
}

// lowMaxRecordSizeReadable reports whether records larger than today's
// MaxRecordSize stay readable, after a clean reopen and after a crash
// (MaxRecordSize limits writes only).
func lowMaxRecordSizeReadable(t *testing.T) bool {
	dir := t.TempDir()
	o := &Options{SegmentSize: MinSegmentSize, Sync: SyncNone}
	w := mustOpen(t, dir, o)
	big, small := rec(1, 10000), rec(2, 10)
	_, err := w.Append(big)
	require.NoError(t, err)
	_, err = w.Append(small)
	require.NoError(t, err)
	// The files as a process crash leaves them (page cache, not closed).
	img := filepath.Join(t.TempDir(), "img")
	require.NoError(t, os.MkdirAll(img, 0o755))
	for name, b := range copyLogFiles(t, dir) {
		require.NoError(t, os.WriteFile(filepath.Join(img, name), b, 0o644))
	}
	require.NoError(t, w.Close())
	low := &Options{SegmentSize: MinSegmentSize, Sync: SyncNone, MaxRecordSize: 4096}
	for _, d := range []string{dir, img} {
		w, err := Open(d, low)
		if err != nil {
			return false
		}
		b1, err1 := w.Read(1)
		b2, err2 := w.Read(2)
		w.Close()
		if err1 != nil || err2 != nil || string(b1) != string(big) || string(b2) != string(small) {
			return false
		}
	}
	return true
}

func TestCrashConfigChange(t *testing.T) {
	if testing.Short() {
		t.Skip("crash loop re-executes the test binary; skipped with -short")
	}
	// make test: a few cycles; make crash (MMAPWAL_CRASH_CYCLES=1000): 200.
	cycles := max(6, crashEnvInt("MMAPWAL_CRASH_CYCLES", 30)/5)
	// Records above a lower MaxRecordSize must stay readable (after a clean
	// reopen and after a crash): otherwise the cycles below would lose them.
	require.True(t, lowMaxRecordSizeReadable(t), "records above a lower MaxRecordSize are not readable")
	seed := crashSeed()
	t.Logf("config-change crash seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	dir := filepath.Join(t.TempDir(), "wal")
	base := map[uint64]crashRecID{}
	var tot crashTotals
	for cycle := 1; cycle <= cycles; cycle++ {
		cfg := crashConfig{
			segSize:     []int64{MinSegmentSize, 2 * MinSegmentSize}[rng.Intn(2)],
			maxRec:      []int{0, 2 * crashBigLen}[rng.Intn(2)],
			sync:        allPolicies[rng.Intn(len(allPolicies))],
			maxSegments: []int{0, 0, 4, 16}[rng.Intn(4)],
			big:         rng.Intn(3) != 0,
		}
		if rng.Intn(3) == 0 {
			cfg.maxRec = 8192 // below records of earlier cycles (up to 13 KiB, and the big ones)
		}
		target := 1 + rng.Intn(300)
		evs, stderr := crashRunChildTest(t, "^TestCrashHelperWriter$", []string{crashEnvDir + "=" + dir,
			crashEnvPolicy + "=" + strconv.Itoa(int(cfg.sync)), crashEnvCycle + "=" + strconv.Itoa(cycle),
			crashEnvOpts + "=" + cfg.String()}, cycle, target, time.Duration(rng.Intn(3000))*time.Microsecond)
		for _, e := range evs {
			switch e.Kind {
			case 'A':
				tot.acked++
			case 'B':
				tot.acked += int(e.N)
			}
		}
		w, err := Open(dir, cfg.options())
		require.NoError(t, err, "cycle %d (%+v): Open after kill; child stderr:\n%s", cycle, cfg, stderr)
		res, err := crashVerifyFront(w, base, evs, cfg.maxSegments > 0)
		if err != nil {
			w.Close()
			require.NoError(t, err, "cycle %d (%+v, seed %d, %d events, last %v)\nevents:\n%s", cycle, cfg, seed, len(evs), crashLast(evs), crashTrace(evs))
		}
		last := w.LastSeq()
		id := crashRecID{Cycle: uint32(cycle), Writer: 999, Counter: 1, N: 1}
		for len(crashPayload(id)) > 4096 { // within every cycle's MaxRecordSize
			id.Counter++
		}
		seq, err := w.Append(crashPayload(id))
		require.NoError(t, err)
		if last != 0 {
			require.Equal(t, last+1, seq, "cycle %d: first append after recovery", cycle)
		}
		res.Present[seq] = id
		require.NoError(t, w.Close())
		base = res.Present
		if cfg.maxSegments > 0 {
			// Retention went on after the check, until Close: the next
			// cycle (perhaps without MaxSegments) expects what is left.
			ro, err := Open(dir, &Options{ReadOnly: true})
			require.NoError(t, err)
			first := ro.FirstSeq()
			require.NoError(t, ro.Close())
			require.LessOrEqual(t, first, seq, "cycle %d: retention dropped the newest record", cycle)
			for s := range base {
				if s < first {
					delete(base, s)
				}
			}
		}
		tot.cycles++
		tot.checked += res.Checked
		tot.required += res.Required
	}
	t.Logf("TOTAL config-change crash: cycles=%d acked=%d checked=%d required=%d lost=0",
		tot.cycles, tot.acked, tot.checked, tot.required)
}
