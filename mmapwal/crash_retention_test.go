package mmapwal

// Crash during MaxSegments retention: a log of hundreds of small segments
// is reopened by a child process with a small MaxSegments: its Open drops
// almost every segment, and each rotation of its appends one more. The child is killed at
// a chosen point of retention (wal.meta written, right after the first
// unlink) or at a random moment. Open must then succeed, with every
// acknowledged record from the recovered FirstSeq on, and the newest one.

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const (
	retEnvDir    = "MMAPWAL_RETENTION_CHILD_DIR"
	retEnvPolicy = "MMAPWAL_RETENTION_CHILD_POLICY"
	retEnvCycle  = "MMAPWAL_RETENTION_CHILD_CYCLE"
	retEnvKillAt = "MMAPWAL_RETENTION_CHILD_KILL_AT" // a hookPoint, or 0: the parent kills
	retKeep      = 10                                // MaxSegments of the child
)

// crashSelf kills the calling process as abruptly as the parent's SIGKILL
// would (Process.Kill on itself works on every platform).
func crashSelf() {
	if p, err := os.FindProcess(os.Getpid()); err == nil {
		_ = p.Kill()
	}
	time.Sleep(time.Minute)
	os.Exit(9)
}

// TestCrashRetentionHelper is the child process of TestCrashRetention.
func TestCrashRetentionHelper(t *testing.T) {
	dir := os.Getenv(retEnvDir)
	if dir == "" {
		t.Skip("helper process for TestCrashRetention: runs only when re-executed by it")
	}
	policy, _ := strconv.Atoi(os.Getenv(retEnvPolicy))
	cycle, _ := strconv.Atoi(os.Getenv(retEnvCycle))
	killAt, _ := strconv.Atoi(os.Getenv(retEnvKillAt))
	var outMu sync.Mutex
	fail := func(err error) {
		outMu.Lock()
		fmt.Fprintf(os.Stderr, "crash child error: %v\n", err)
		os.Exit(3)
	}
	o := crashChildOpts(SyncPolicy(policy))
	o.MaxSegments = retKeep
	if killAt != 0 {
		o.crashAt = func(p hookPoint) {
			if p == hookPoint(killAt) {
				outMu.Lock() // no report after this point
				crashSelf()
			}
		}
	}
	w, err := Open(dir, o)
	if err != nil {
		fail(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for c := uint64(1); time.Now().Before(deadline); c++ {
		id := crashRecID{Cycle: uint32(cycle), Writer: 1, Counter: c, N: 1}
		seq, err := w.Append(crashPayload(id))
		if err != nil {
			fail(err)
		}
		outMu.Lock()
		os.Stdout.WriteString(crashPrefix + crashEvent{Kind: 'A', Seq: seq, ID: id}.String() + "\n")
		outMu.Unlock()
	}
	fail(fmt.Errorf("not killed within a minute"))
}

func TestCrashRetention(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary; skipped with -short")
	}
	// make test: a few cycles; make crash (MMAPWAL_CRASH_CYCLES=1000): 100.
	cycles := max(3, crashEnvInt("MMAPWAL_CRASH_CYCLES", 30)/10)
	segs := 150
	if cycles > 3 {
		segs = 300
	}
	seed := time.Now().UnixNano()
	t.Logf("retention crash seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	points := []struct {
		name   string
		killAt hookPoint
	}{
		{"after first unlink", hookReapUnlinked},
		{"after wal.meta", hookRetentionMeta},
		{"random", 0},
	}
	var acked, checked int
	for pi, p := range allPolicies {
		t.Run(p.String(), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "wal")
			base := map[uint64]crashRecID{}
			for cycle := 1; cycle <= cycles; cycle++ {
				kp := points[(cycle-1+pi)%len(points)]
				retFill(t, dir, p, uint32(1000+cycle), segs, base)
				target, delay := 1<<30, time.Duration(0)
				if kp.killAt == 0 {
					target, delay = 1+rng.Intn(200), time.Duration(rng.Intn(3000))*time.Microsecond
				}
				evs, stderr := retRunChild(t, dir, p, cycle, kp.killAt, target, delay)
				acked += len(evs)
				w, err := Open(dir, crashChildOpts(p))
				require.NoError(t, err, "cycle %d (kill %s): Open after kill; child stderr:\n%s", cycle, kp.name, stderr)
				res, err := crashVerifyFront(w, base, evs, true)
				if err != nil {
					w.Close()
					require.NoError(t, err, "cycle %d (kill %s, %v, seed %d)", cycle, kp.name, p, seed)
				}
				require.GreaterOrEqual(t, len(w.segs.Load().segs), min(retKeep, segs), "cycle %d: retention dropped more than MaxSegments allows", cycle)
				checked += res.Checked
				require.NoError(t, w.Close())
				base = res.Present
			}
		})
	}
	t.Logf("TOTAL retention crash: cycles=%d acked=%d checked=%d lost=0", cycles*len(allPolicies), acked, checked)
}

// retFill appends checkable records until the log has at least n segments
// (SyncNone, then Close: all of them durable and acknowledged), adding
// them to base.
func retFill(t *testing.T, dir string, p SyncPolicy, cycle uint32, n int, base map[uint64]crashRecID) {
	o := crashChildOpts(SyncNone)
	w := mustOpen(t, dir, o)
	for c := uint64(1); len(w.segs.Load().segs) < n; c++ {
		batch := make([][]byte, 32)
		ids := make([]crashRecID, len(batch))
		for i := range batch {
			ids[i] = crashRecID{Cycle: cycle, Writer: 7, Counter: c*64 + uint64(i), N: 1}
			batch[i] = crashPayload(ids[i])
		}
		// Separate records, not a batch, so that any of them may be the
		// first of a segment.
		for i, b := range batch {
			seq, err := w.Append(b)
			require.NoError(t, err)
			base[seq] = ids[i]
		}
	}
	require.NoError(t, w.Close())
}

func retRunChild(t *testing.T, dir string, p SyncPolicy, cycle int, killAt hookPoint, target int, delay time.Duration) ([]crashEvent, string) {
	return crashRunChildTest(t, "^TestCrashRetentionHelper$", []string{
		retEnvDir + "=" + dir, retEnvPolicy + "=" + strconv.Itoa(int(p)),
		retEnvCycle + "=" + strconv.Itoa(cycle), retEnvKillAt + "=" + strconv.Itoa(int(killAt)),
	}, cycle, target, delay)
}
