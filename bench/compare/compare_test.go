package compare

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	flagN = flag.Int("compare.n", 0, "records in each log (default 1,000,000; 10,000 under -short)")
)

// smokeN is the log size TestSmoke uses: more than one 1000-record batch.
const smokeN = 2000

// logSize is the number of records per log of the benchmarks.
func logSize() int {
	switch {
	case *flagN > 0:
		return *flagN
	case testing.Short():
		return 10_000
	}
	return 1_000_000
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if err := closeFixtures(); err != nil && code == 0 {
		fmt.Fprintln(os.Stderr, "compare: cleaning up fixtures:", err)
		code = 1
	}
	os.Exit(code)
}

// run is one execution of a workload body: one call of a sub-benchmark
// (n = b.N) or one smoke test (a few iterations). It keeps its own
// stopwatch next to b's so that rates come out the same in both.
type run struct {
	testing.TB
	b       *testing.B // nil in TestSmoke
	n       int        // iterations (records, reads, batches: per workload)
	size    int        // records per log
	metrics map[string]float64

	running bool
	began   time.Time
	spent   time.Duration
}

func newBenchRun(b *testing.B) *run {
	return &run{TB: b, b: b, n: b.N, size: logSize(), metrics: map[string]float64{}, running: true, began: time.Now()}
}

func newSmokeRun(t *testing.T, n int) *run {
	return &run{TB: t, n: n, size: smokeN, metrics: map[string]float64{}, running: true, began: time.Now()}
}

// reset zeroes the stopwatch (after building fixtures) and keeps it
// running. It settles first: dirty pages that earlier runs (or another
// peer) left are written back and their garbage collected, so no run pays
// for somebody else's writeback.
func (r *run) reset() {
	syscall.Sync()
	runtime.GC()
	if r.b != nil {
		r.b.ReportAllocs()
		r.b.ResetTimer()
	}
	r.spent, r.began, r.running = 0, time.Now(), true
}

func (r *run) stop() {
	if r.b != nil {
		r.b.StopTimer()
	}
	if r.running {
		r.spent += time.Since(r.began)
		r.running = false
	}
}

func (r *run) start() {
	if r.b != nil {
		r.b.StartTimer()
	}
	if !r.running {
		r.began, r.running = time.Now(), true
	}
}

// elapsed is the timed duration so far (stop first for a final value).
func (r *run) elapsed() time.Duration {
	if r.running {
		return r.spent + time.Since(r.began)
	}
	return r.spent
}

// metric reports one figure of this run.
func (r *run) metric(v float64, unit string) {
	if r.b != nil {
		r.b.ReportMetric(v, unit)
	}
	r.metrics[unit] = v
}

// rate reports count/elapsed as unit (e.g. rec/s).
func (r *run) rate(count int, unit string) {
	if s := r.elapsed().Seconds(); s > 0 {
		r.metric(float64(count)/s, unit)
	}
}

// check stops the run on an error. Not for timed loops: its arguments
// are boxed into a slice on every call, an allocation per op.
func (r *run) check(err error, what string, args ...any) {
	r.Helper()
	if err != nil {
		r.Fatalf("%s: %v", fmt.Sprintf(what, args...), err)
	}
}

// The records of every log, built once per size: pool(n)[i] carries key i+1.
var pools struct {
	sync.Mutex
	m map[int][][]byte
}

func pool(n int) [][]byte {
	pools.Lock()
	defer pools.Unlock()
	if pools.m == nil {
		pools.m = map[int][][]byte{}
	}
	p, ok := pools.m[n]
	if !ok {
		p = genRecords(1, n, recordSize)
		pools.m[n] = p
	}
	return p
}

// TestSmoke runs every workload body a few times at a tiny size for every
// peer and raw limit, so `go test ./...` (and -race) checks the harness.
func TestSmoke(t *testing.T) {
	for _, w := range workloads {
		t.Run(w.name, func(t *testing.T) {
			for i := range peers {
				p := &peers[i]
				t.Run(p.Name, func(t *testing.T) {
					r := newSmokeRun(t, w.smoke)
					w.body(r, p)
					checkMetrics(t, r, w.metrics)
				})
			}
			for _, raw := range w.raws {
				t.Run(raw.name, func(t *testing.T) {
					r := newSmokeRun(t, w.smoke)
					raw.body(r)
					checkMetrics(t, r, raw.metrics)
				})
			}
		})
	}
}

func checkMetrics(t *testing.T, r *run, units []string) {
	t.Helper()
	for _, u := range units {
		if _, ok := r.metrics[u]; !ok {
			t.Errorf("metric %s not reported (got %v)", u, r.metrics)
		}
	}
}

func TestRecordsVerify(t *testing.T) {
	recs := genRecords(7, 3, 100)
	for i, r := range recs {
		if err := verify(r, uint64(7+i), 100); err != nil {
			t.Fatal(err)
		}
	}
	if err := verify(recs[0], 8, 100); err == nil {
		t.Error("record under the wrong seq not caught")
	}
	bad := append([]byte(nil), recs[1]...)
	bad[50] ^= 1
	if err := verify(bad, 8, 100); err == nil {
		t.Error("flipped bit not caught")
	}
	if err := verify(recs[2][:99], 9, 100); err == nil {
		t.Error("short record not caught")
	}
	if err := verifyKey(recs[1], 8, 100); err != nil {
		t.Error(err)
	}
	if err := verifyKey(recs[1], 9, 100); err == nil {
		t.Error("verifyKey: record under the wrong seq not caught")
	}
	if err := verifyKey(recs[2][:99], 9, 100); err == nil {
		t.Error("verifyKey: short record not caught")
	}
}

func TestPercentile(t *testing.T) {
	var v []time.Duration
	for _, x := range []int{5, 1, 4, 2, 3, 6, 7, 8, 9, 10} {
		v = append(v, time.Duration(x))
	}
	if got := percentile(v, 50); got != 5 {
		t.Errorf("p50 = %v, want 5", got)
	}
	if got := percentile(v, 99); got != 10 {
		t.Errorf("p99 = %v, want 10", got)
	}
}
