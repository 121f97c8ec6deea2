package mmapwal

// Process crash loop: the test binary re-executes itself as a writer
// (TestCrashHelperWriter), which appends checkable records from 4 goroutines
// and truncates now and then, reporting on stdout each ack only after the
// call returned. The parent kills it with SIGKILL at a random moment,
// reopens the log and checks it against the reports (crashVerify). The page
// cache survives a process crash, so under every policy every acknowledged
// record must survive.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const (
	crashEnvDir    = "MMAPWAL_CRASH_CHILD_DIR"
	crashEnvPolicy = "MMAPWAL_CRASH_CHILD_POLICY"
	crashEnvCycle  = "MMAPWAL_CRASH_CHILD_CYCLE"
	// crashEnvOpts, if set, overrides the child's options (config-change
	// cycles): see crashConfig.
	crashEnvOpts = "MMAPWAL_CRASH_CHILD_OPTS"
	crashPrefix  = "@@ "
)

func crashChildOpts(p SyncPolicy) *Options {
	return &Options{SegmentSize: MinSegmentSize, Sync: p, SyncInterval: 2 * time.Millisecond}
}

// TestCrashHelperWriter is the child process of TestCrash.
func TestCrashHelperWriter(t *testing.T) {
	dir := os.Getenv(crashEnvDir)
	if dir == "" {
		t.Skip("helper process for TestCrash: runs only when re-executed by it")
	}
	policy, _ := strconv.Atoi(os.Getenv(crashEnvPolicy))
	cycle, _ := strconv.Atoi(os.Getenv(crashEnvCycle))
	var outMu sync.Mutex
	emit := func(e crashEvent) {
		outMu.Lock()
		defer outMu.Unlock()
		os.Stdout.WriteString(crashPrefix + e.String() + "\n") // one write: a kill leaves whole lines or a torn last one
	}
	fail := func(err error) {
		outMu.Lock()
		fmt.Fprintf(os.Stderr, "crash child error: %v\n", err)
		os.Exit(3)
	}
	o := crashChildOpts(SyncPolicy(policy))
	var cfg crashConfig
	if v := os.Getenv(crashEnvOpts); v != "" {
		var err error
		if cfg, err = parseCrashConfig(v); err != nil {
			fail(err)
		}
		o = cfg.options()
	}
	maxRec := o.MaxRecordSize
	if maxRec == 0 {
		maxRec = DefaultMaxRecordSize
	}
	w, err := Open(dir, o)
	if err != nil {
		fail(err)
	}
	// Appends hold trunc shared for the call and its report, truncations
	// exclusively, so the report order is the order of the log.
	var trunc sync.RWMutex
	var unitsMu sync.Mutex
	var units [][2]uint64
	addUnit := func(first, last uint64) {
		unitsMu.Lock()
		units = append(units, [2]uint64{first, last})
		unitsMu.Unlock()
	}
	for wr := 0; wr < 4; wr++ {
		go func(wr int) {
			rng := rand.New(rand.NewSource(int64(cycle)*131 + int64(wr)))
			for c := uint64(1); ; c++ {
				id := crashRecID{Cycle: uint32(cycle), Writer: uint16(wr), Counter: c, N: 1}
				if crashMaxLen(id, 5) > maxRec {
					continue // a lower MaxRecordSize than earlier cycles wrote with
				}
				trunc.RLock()
				if rng.Intn(4) == 0 {
					n := 2 + rng.Intn(4)
					first, err := w.AppendBatch(crashBatch(id, n))
					if err != nil {
						fail(err)
					}
					emit(crashEvent{Kind: 'B', Seq: first, N: uint64(n), ID: id})
					addUnit(first, first+uint64(n)-1)
				} else {
					seq, err := w.Append(crashPayload(id))
					if err != nil {
						fail(err)
					}
					emit(crashEvent{Kind: 'A', Seq: seq, ID: id})
					addUnit(seq, seq)
				}
				trunc.RUnlock()
			}
		}(wr)
	}
	rng := rand.New(rand.NewSource(int64(cycle)))
	deadline := time.Now().Add(60 * time.Second) // safety net: the parent kills long before
	for time.Now().Before(deadline) {
		time.Sleep(time.Duration(1+rng.Intn(5)) * time.Millisecond)
		trunc.Lock()
		unitsMu.Lock()
		if n := len(units); n > 8 {
			if rng.Intn(3) == 0 { // TruncateBack to the end of a recent record or batch
				k := units[n-1-rng.Intn(8)][1]
				big := cfg.big && rng.Intn(2) == 0 && crashBigLen <= maxRec
				if big {
					// To just before the last segment's first record (the
					// end of a record or batch: batches never span
					// segments), then a record larger than a segment: the
					// case of a dedicated segment under the name of the
					// emptied active one.
					segs := w.segs.Load().segs
					if s := segs[len(segs)-1]; s.firstSeq > w.FirstSeq() {
						k = s.firstSeq - 1
					}
				}
				emit(crashEvent{Kind: 'b', Seq: k})
				if err := w.TruncateBack(k); err != nil {
					if !errors.Is(err, ErrNotFound) || k+1 >= w.FirstSeq() {
						fail(err)
					}
					// Retention moved FirstSeq past k+1 meanwhile: nothing
					// was truncated.
					emit(crashEvent{Kind: 'x', Seq: k})
					unitsMu.Unlock()
					trunc.Unlock()
					continue
				}
				emit(crashEvent{Kind: 'T', Seq: k})
				units = slicesDeleteFunc(units, func(u [2]uint64) bool { return u[0] > k })
				if big {
					id := crashRecID{Cycle: uint32(cycle), Writer: crashBigWriter, Counter: uint64(len(units)) + uint64(rng.Int63n(1<<40)), N: 1}
					seq, err := w.Append(crashPayload(id))
					if err != nil {
						fail(err)
					}
					emit(crashEvent{Kind: 'A', Seq: seq, ID: id})
					units = append(units, [2]uint64{seq, seq})
				}
			} else { // TruncateFront to the start of an older record or batch
				k := units[rng.Intn(n/2)][0]
				emit(crashEvent{Kind: 'f', Seq: k})
				if err := w.TruncateFront(k); err != nil {
					fail(err)
				}
				emit(crashEvent{Kind: 'F', Seq: k})
				units = slicesDeleteFunc(units, func(u [2]uint64) bool { return u[1] < k })
			}
		}
		unitsMu.Unlock()
		trunc.Unlock()
	}
	fail(fmt.Errorf("not killed within a minute"))
}

type crashTotals struct {
	cycles, acked, checked, required int
}

func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("crash loop re-executes the test binary; skipped with -short")
	}
	total := crashEnvInt("MMAPWAL_CRASH_CYCLES", 30)
	policies := []SyncPolicy{SyncAlways, SyncPeriodic, SyncNone}
	seed := crashSeed()
	t.Logf("crash seed %d", seed)
	var all crashTotals
	start := time.Now()
	for i, p := range policies {
		n := total / len(policies)
		if i < total%len(policies) {
			n++
		}
		t.Run(p.String(), func(t *testing.T) {
			tot := crashLoop(t, p, n, seed+int64(i))
			t.Logf("TOTAL crash %v: cycles=%d acked=%d checked=%d required=%d lost=0", p, tot.cycles, tot.acked, tot.checked, tot.required)
			all.cycles += tot.cycles
			all.acked += tot.acked
			all.checked += tot.checked
			all.required += tot.required
		})
	}
	t.Logf("TOTAL crash: cycles=%d acked=%d checked=%d lost=0 in %v", all.cycles, all.acked, all.checked, time.Since(start).Round(time.Millisecond))
}

func crashLoop(t *testing.T, policy SyncPolicy, cycles int, seed int64) crashTotals {
	dir := filepath.Join(t.TempDir(), "wal")
	rng := rand.New(rand.NewSource(seed))
	var tot crashTotals
	base := map[uint64]crashRecID{}
	for cycle := 1; cycle <= cycles; cycle++ {
		target := 1 + rng.Intn(300) // kill after this many reports (and a random delay)
		evs, stderr := crashRunChild(t, dir, policy, cycle, target, time.Duration(rng.Intn(3000))*time.Microsecond)
		for _, e := range evs {
			switch e.Kind {
			case 'A':
				tot.acked++
			case 'B':
				tot.acked += int(e.N)
			}
		}
		w, err := Open(dir, crashChildOpts(policy))
		require.NoError(t, err, "cycle %d: Open after kill; child stderr:\n%s", cycle, stderr)
		res, err := crashVerify(w, base, evs)
		if err != nil {
			w.Close()
			require.NoError(t, err, "cycle %d (%v, seed %d, %d events, last %v)\nevents:\n%s", cycle, policy, seed, len(evs), crashLast(evs), crashTrace(evs))
		}
		// Appending continues where the log ends.
		last := w.LastSeq()
		seq, err := w.Append(crashPayload(crashRecID{Cycle: uint32(cycle), Writer: 999, Counter: 1, N: 1}))
		require.NoError(t, err)
		if last != 0 {
			require.Equal(t, last+1, seq, "cycle %d: first append after recovery", cycle)
		}
		res.Present[seq] = crashRecID{Cycle: uint32(cycle), Writer: 999, Counter: 1, N: 1}
		require.NoError(t, w.Close())
		base = res.Present
		tot.cycles++
		tot.checked += res.Checked
		tot.required += res.Required
	}
	return tot
}

func crashLast(evs []crashEvent) string {
	if len(evs) == 0 {
		return "none"
	}
	return evs[len(evs)-1].String()
}

// crashTrace is a failed cycle's events, for the failure message: every
// truncation and the appends on either side of it, the rest counted.
func crashTrace(evs []crashEvent) string {
	var b strings.Builder
	skipped := 0
	for i, e := range evs {
		near := false
		for j := max(0, i-2); j <= min(len(evs)-1, i+2); j++ {
			near = near || !strings.ContainsRune("AaBc", rune(evs[j].Kind))
		}
		if !near && i != len(evs)-1 {
			skipped++
			continue
		}
		if skipped > 0 {
			fmt.Fprintf(&b, "  ... %d appends\n", skipped)
			skipped = 0
		}
		fmt.Fprintf(&b, "  %d: %v\n", i, e)
	}
	return b.String()
}

// crashSeed is the seed of a crash loop: MMAPWAL_CRASH_SEED replays a
// failed run's choices (the kill timing still varies).
func crashSeed() int64 {
	if v, err := strconv.ParseInt(os.Getenv("MMAPWAL_CRASH_SEED"), 10, 64); err == nil {
		return v
	}
	return time.Now().UnixNano()
}

// crashRunChild starts the writer, lets it report target events, waits
// delay, kills it with SIGKILL and returns the complete event lines.
func crashRunChild(t *testing.T, dir string, policy SyncPolicy, cycle, target int, delay time.Duration) ([]crashEvent, string) {
	t.Helper()
	return crashRunChildTest(t, "^TestCrashHelperWriter$", []string{crashEnvDir + "=" + dir,
		crashEnvPolicy + "=" + strconv.Itoa(int(policy)), crashEnvCycle + "=" + strconv.Itoa(cycle)}, cycle, target, delay)
}

// crashRunChildTest runs the helper test run (a -test.run pattern) as a
// child with env added, as crashRunChild does; a child that kills itself
// (target never reached) is waited for.
func crashRunChildTest(t *testing.T, run string, env []string, cycle, target int, delay time.Duration) ([]crashEvent, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run="+run, "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	var evs []crashEvent
	var parseErr error
	reached := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := bufio.NewReader(out)
		n := 0
		for {
			line, err := r.ReadString('\n')
			if err != nil { // EOF: a line without its newline was torn by the kill
				if err != io.EOF && parseErr == nil {
					parseErr = err
				}
				return
			}
			if !strings.HasPrefix(line, crashPrefix) {
				continue
			}
			e, err := parseCrashEvent(strings.TrimSpace(strings.TrimPrefix(line, crashPrefix)))
			if err != nil && parseErr == nil {
				parseErr = err
			}
			evs = append(evs, e)
			if n++; n == target {
				close(reached)
			}
		}
	}()
	select {
	case <-reached:
	case <-done: // the child exited by itself: an error, reported below
	case <-time.After(20 * time.Second): // safety net only
	}
	time.Sleep(delay)
	_ = cmd.Process.Kill()
	<-done
	werr := cmd.Wait()
	require.NoError(t, parseErr)
	se := stderr.String()
	require.NotContains(t, se, "DATA RACE", "child reported a data race")
	require.NotContains(t, se, "panic:", "child panicked")
	require.NotContains(t, se, "crash child error", "child failed")
	// Killed by the signal: exit code -1 on Unix; on Windows Process.Kill is
	// TerminateProcess(h, 1).
	killedCode := -1
	if runtime.GOOS == "windows" {
		killedCode = 1
	}
	if ee, ok := werr.(*exec.ExitError); !ok || ee.ExitCode() != killedCode {
		t.Fatalf("cycle %d: child was not killed by the signal (%v); stderr:\n%s", cycle, werr, se)
	}
	return evs, se
}
