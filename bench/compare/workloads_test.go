package compare

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// A workload is run on every peer (its body) and on its raw limits, if any.
type workload struct {
	name    string
	body    func(r *run, p *Peer)
	metrics []string // reported by every peer
	raws    []rawLimit
	smoke   int // iterations in TestSmoke
}

// rawLimit is a pseudo-peer: the same job done without a WAL, in mmapwal's
// own frame layout, so that "% of the limit" compares like with like.
type rawLimit struct {
	name    string
	body    func(r *run)
	metrics []string
}

var workloads = []workload{
	{name: "RandomRead", body: randomRead, metrics: []string{"ns/read"}, smoke: 100, raws: []rawLimit{
		{name: "raw", body: rawRandomRead, metrics: []string{"ns/read"}},
	}},
	{name: "DurableAppend", body: durableAppend, metrics: []string{"p50-ns", "p99-ns"}, smoke: 5, raws: []rawLimit{
		{name: "raw-msync", body: rawDurable(true), metrics: []string{"p50-ns", "p99-ns"}},
		{name: "raw-pwrite", body: rawDurable(false), metrics: []string{"p50-ns", "p99-ns"}},
	}},
	{name: "AppendNoSync", body: appendNoSync, metrics: []string{"rec/s"}, smoke: smokeN + 10, raws: []rawLimit{
		{name: "raw", body: rawAppend, metrics: []string{"rec/s"}},
	}},
	{name: "Replay", body: replay, metrics: []string{"rec/s"}, smoke: 1, raws: []rawLimit{
		{name: "raw", body: rawReplay, metrics: []string{"rec/s"}},
	}},
	{name: "Batch1000Sync", body: batchSync, metrics: []string{"rec/s"}, smoke: 3, raws: []rawLimit{
		{name: "raw-msync", body: rawBatch(true), metrics: []string{"rec/s"}},
		{name: "raw-pwrite", body: rawBatch(false), metrics: []string{"rec/s"}},
	}},
	{name: "Durable64Writers", body: durableWriters, metrics: []string{"rec/s", "rec/fdatasync"}, smoke: 128},
	{name: "AtRest", body: atRest, metrics: []string{"heap-MiB", "rss-MiB", "rss-read-MiB", "log-MiB"}, smoke: 1},
}

// BenchmarkRandomRead: one verified Read (ReadAppend into a reused buffer
// where the WAL has it) of a random seq of a reopened, warm log.
func BenchmarkRandomRead(b *testing.B) { benchmark(b, "RandomRead") }

// BenchmarkDurableAppend: one Append of one writer, durable on return.
func BenchmarkDurableAppend(b *testing.B) { benchmark(b, "DurableAppend") }

// BenchmarkAppendNoSync: one Append of one goroutine without sync.
func BenchmarkAppendNoSync(b *testing.B) { benchmark(b, "AppendNoSync") }

// BenchmarkReplay: one full replay of the reopened log, every record verified.
func BenchmarkReplay(b *testing.B) { benchmark(b, "Replay") }

// BenchmarkBatch1000Sync: one batch of 1000 records made durable.
func BenchmarkBatch1000Sync(b *testing.B) { benchmark(b, "Batch1000Sync") }

// BenchmarkDurable64Writers: one record, appended durably by one of 64 goroutines.
func BenchmarkDurable64Writers(b *testing.B) { benchmark(b, "Durable64Writers") }

// BenchmarkAtRest: reopen and read the whole log; reports the heap and RSS
// the open log holds (its speed is not the point).
func BenchmarkAtRest(b *testing.B) { benchmark(b, "AtRest") }

func benchmark(b *testing.B, name string) {
	var w *workload
	for i := range workloads {
		if workloads[i].name == name {
			w = &workloads[i]
		}
	}
	if w == nil {
		b.Fatalf("no workload %q", name)
	}
	for i := range peers {
		p := &peers[i]
		b.Run("peer="+p.Name, func(b *testing.B) { w.body(newBenchRun(b), p) })
	}
	for _, raw := range w.raws {
		b.Run("peer="+raw.name, func(b *testing.B) { raw.body(newBenchRun(b)) })
	}
}

// --- fixtures: one log of r.size records per peer per process, shared by
// RandomRead, Replay and AtRest (building a million records is the slow
// part, and b.Run calls a sub-benchmark several times while b.N grows).
// RandomRead and Replay share its open store; AtRest closes it to measure
// an Open. TestMain removes them all.

type logFixture struct {
	dir string
	s   Store // reopened and warmed; nil while closed
}

var fixtures struct {
	sync.Mutex
	logs map[string]*logFixture
	raws map[int]*rawFile // rawReplay's frame files, by size
	dirs []string
}

func fixtureDir(name string) (string, error) {
	dir, err := os.MkdirTemp("", "mmapwal-compare-"+name+"-")
	if err == nil {
		fixtures.dirs = append(fixtures.dirs, dir)
	}
	return dir, err
}

// sharedLog returns the peer's log of r.size records, built on first use.
func sharedLog(r *run, p *Peer) *logFixture {
	r.Helper()
	fixtures.Lock()
	defer fixtures.Unlock()
	key := p.Name + "/" + strconv.Itoa(r.size)
	if f, ok := fixtures.logs[key]; ok {
		return f
	}
	root, err := fixtureDir(p.Name)
	r.check(err, "fixture for %s", p.Name)
	dir := filepath.Join(root, "log")
	s, err := p.Open(dir, false, r.size)
	r.check(err, "%s: open", p.Name)
	err = fill(s, p, pool(r.size))
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	r.check(err, "%s: writing the fixture", p.Name)
	if fixtures.logs == nil {
		fixtures.logs = map[string]*logFixture{}
	}
	f := &logFixture{dir: dir}
	fixtures.logs[key] = f
	return f
}

// fill appends recs (record i at seq i+1) without sync, as the peer can.
func fill(s Store, p *Peer, recs [][]byte) error {
	for i := 0; i < len(recs); {
		if p.NoSyncBatch > 0 {
			k := min(p.NoSyncBatch, len(recs)-i)
			first, err := s.AppendBatch(recs[i : i+k])
			if err != nil {
				return err
			}
			if first != uint64(i+1) {
				return fmt.Errorf("AppendBatch returned first seq %d, want %d", first, i+1)
			}
			i += k
			continue
		}
		seq, err := s.Append(recs[i])
		if err != nil {
			return err
		}
		if seq != uint64(i+1) {
			return fmt.Errorf("Append returned seq %d, want %d", seq, i+1)
		}
		i++
	}
	return nil
}

// open returns the fixture's store, reopened (after the close that ended
// its writing) and warmed by one full verified replay.
func (f *logFixture) open(r *run, p *Peer) Store {
	r.Helper()
	fixtures.Lock()
	defer fixtures.Unlock()
	if f.s != nil {
		return f.s
	}
	s, err := p.Open(f.dir, false, r.size)
	r.check(err, "%s: reopen", p.Name)
	if err := replayAll(s, r.size); err != nil {
		s.Close()
		r.Fatalf("%s: warming replay: %v", p.Name, err)
	}
	f.s = s
	return s
}

func (f *logFixture) closeStore() error {
	fixtures.Lock()
	defer fixtures.Unlock()
	if f.s == nil {
		return nil
	}
	err := f.s.Close()
	f.s = nil
	return err
}

func closeFixtures() error {
	fixtures.Lock()
	defer fixtures.Unlock()
	var errs []error
	for _, f := range fixtures.logs {
		if f.s != nil {
			errs = append(errs, f.s.Close())
		}
	}
	for _, rf := range fixtures.raws {
		errs = append(errs, rf.close())
	}
	for _, d := range fixtures.dirs {
		errs = append(errs, os.RemoveAll(d))
	}
	fixtures.logs, fixtures.raws, fixtures.dirs = nil, nil, nil
	return errors.Join(errs...)
}

// replayAll replays s and checks it holds exactly the records 1..n, each
// verified against the generator.
func replayAll(s Store, n int) error { return replayChecked(s, n, verify) }

// replayChecked replays s and checks it holds exactly the records 1..n,
// each passed to check.
func replayChecked(s Store, n int, check func(data []byte, key uint64, size int) error) error {
	next := uint64(1)
	err := s.Replay(func(seq uint64, data []byte) error {
		if seq != next {
			return fmt.Errorf("replay: seq %d, want %d", seq, next)
		}
		next++
		return check(data, seq, recordSize)
	})
	if err == nil && next != uint64(n)+1 {
		err = fmt.Errorf("replay: %d records, want %d", next-1, n)
	}
	return err
}

// freshLogs hands out new, empty logs in the run's temporary directory;
// next closes and deletes the previous one with the timer stopped, so a
// run of b.N records never holds more than r.size of them.
type freshLogs struct {
	r       *run
	p       *Peer
	durable bool
	root    string
	k       int
	dir     string
	s       Store
}

func newFreshLogs(r *run, p *Peer, durable bool) *freshLogs {
	f := &freshLogs{r: r, p: p, durable: durable, root: r.TempDir()}
	f.open()
	return f
}

func (f *freshLogs) open() {
	f.k++
	f.dir = filepath.Join(f.root, strconv.Itoa(f.k))
	s, err := f.p.Open(f.dir, f.durable, f.r.size)
	f.r.check(err, "%s: open", f.p.Name)
	f.s = s
}

func (f *freshLogs) next() Store {
	f.r.stop()
	f.close()
	f.open()
	f.r.start()
	return f.s
}

func (f *freshLogs) close() {
	if f.s == nil {
		return
	}
	err := f.s.Close()
	f.s = nil
	f.r.check(err, "%s: close", f.p.Name)
	f.r.check(os.RemoveAll(f.dir), "%s: remove", f.p.Name)
}

// --- workload bodies

func randomRead(r *run, p *Peer) {
	s := sharedLog(r, p).open(r, p)
	ar, _ := s.(appendReader)
	buf := make([]byte, 0, recordSize)
	state := uint64(r.n) // a different sequence per run, the same per peer
	size := uint64(r.size)
	if r.b != nil {
		r.b.ReportAllocs()
	}
	r.reset()
	for i := 0; i < r.n; i++ {
		seq := 1 + splitmix64(&state)%size
		var data []byte
		var err error
		if ar != nil {
			buf, err = ar.ReadAppend(buf[:0], seq)
			data = buf
		} else {
			data, err = s.Read(seq)
		}
		if err != nil {
			r.Fatalf("%s: read %d: %v", p.Name, seq, err)
		}
		if err := verify(data, seq, recordSize); err != nil {
			r.Fatalf("%s: %v", p.Name, err)
		}
	}
	r.stop()
	r.metric(float64(r.elapsed().Nanoseconds())/float64(r.n), "ns/read")
}

func durableAppend(r *run, p *Peer) {
	recs := pool(r.size)
	logs := newFreshLogs(r, p, true)
	defer logs.close()
	s := logs.s
	lat := make([]time.Duration, r.n)
	r.reset()
	for i := 0; i < r.n; i++ {
		j := i % r.size
		if i > 0 && j == 0 {
			s = logs.next()
		}
		t := time.Now()
		seq, err := s.Append(recs[j])
		lat[i] = time.Since(t)
		if err != nil {
			r.Fatalf("%s: append: %v", p.Name, err)
		}
		if seq != uint64(j+1) {
			r.Fatalf("%s: Append returned seq %d, want %d", p.Name, seq, j+1)
		}
	}
	r.stop()
	r.metric(float64(percentile(lat, 50)), "p50-ns")
	r.metric(float64(percentile(lat, 99)), "p99-ns")
	checkEnds(r, p, s)
}

// checkEnds reads back the first and last record of s.
func checkEnds(r *run, p *Peer, s Store) {
	last := s.LastSeq()
	for _, seq := range []uint64{1, last} {
		data, err := s.Read(seq)
		r.check(err, "%s: read %d", p.Name, seq)
		r.check(verify(data, seq, recordSize), "%s", p.Name)
	}
}

func appendNoSync(r *run, p *Peer) {
	recs := pool(r.size)
	logs := newFreshLogs(r, p, false)
	defer logs.close()
	s := logs.s
	if r.b != nil {
		r.b.ReportAllocs()
	}
	r.reset()
	for i := 0; i < r.n; {
		j := i % r.size
		if i > 0 && j == 0 {
			s = logs.next()
		}
		if p.NoSyncBatch > 0 {
			k := min(p.NoSyncBatch, r.n-i, r.size-j)
			first, err := s.AppendBatch(recs[j : j+k])
			if err != nil {
				r.Fatalf("%s: append: %v", p.Name, err)
			}
			if first != uint64(j+1) {
				r.Fatalf("%s: AppendBatch returned first seq %d, want %d", p.Name, first, j+1)
			}
			i += k
			continue
		}
		seq, err := s.Append(recs[j])
		if err != nil {
			r.Fatalf("%s: append: %v", p.Name, err)
		}
		if seq != uint64(j+1) {
			r.Fatalf("%s: Append returned seq %d, want %d", p.Name, seq, j+1)
		}
		i++
	}
	r.stop()
	r.rate(r.n, "rec/s")
	checkEnds(r, p, s)
}

// replay times full replays. Its callback checks order, length and key
// only (verifyKey): the generator's CRC over every payload would cost the
// harness about as much as a fast WAL's whole replay and flatten every
// ratio. The warming replay before it verified every record in full, and
// each WAL checks its own CRCs where it has them.
func replay(r *run, p *Peer) {
	s := sharedLog(r, p).open(r, p)
	r.reset()
	for i := 0; i < r.n; i++ {
		if err := replayChecked(s, r.size, verifyKey); err != nil {
			r.Fatalf("%s: %v", p.Name, err)
		}
	}
	r.stop()
	r.rate(r.n*r.size, "rec/s")
}

// batchSize is the records per durable batch (fewer in tiny smoke logs).
func batchSize(r *run) int { return min(1000, r.size) }

func batchSync(r *run, p *Peer) {
	recs := pool(r.size)
	batch := batchSize(r)
	perLog := r.size / batch
	logs := newFreshLogs(r, p, true)
	defer logs.close()
	s := logs.s
	r.reset()
	for i := 0; i < r.n; i++ {
		j := i % perLog * batch
		if i > 0 && j == 0 {
			s = logs.next()
		}
		first, err := s.AppendBatch(recs[j : j+batch])
		if err != nil {
			r.Fatalf("%s: append batch: %v", p.Name, err)
		}
		if first != uint64(j+1) {
			r.Fatalf("%s: AppendBatch returned first seq %d, want %d", p.Name, first, j+1)
		}
	}
	r.stop()
	r.rate(r.n*batch, "rec/s")
	checkEnds(r, p, s)
}

const writers = 64

func durableWriters(r *run, p *Peer) {
	recs := pool(r.size)
	logs := newFreshLogs(r, p, true)
	defer logs.close()
	s := logs.s
	total := r.n
	keys := make([]uint64, total) // keys[seq-1]: the key of the record Append put at seq
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	syncs0 := s.Syncs()
	r.reset()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < total; i += writers {
				k := i % len(recs)
				seq, err := s.Append(recs[k])
				if err != nil {
					errs <- err
					return
				}
				if seq < 1 || seq > uint64(total) {
					errs <- fmt.Errorf("Append returned seq %d outside [1, %d]", seq, total)
					return
				}
				keys[seq-1] = uint64(k + 1)
			}
		}()
	}
	wg.Wait()
	r.stop()
	close(errs)
	r.check(<-errs, "%s: append", p.Name)
	r.rate(total, "rec/s")
	if syncs := s.Syncs() - syncs0; syncs > 0 {
		r.metric(float64(total)/float64(syncs), "rec/fdatasync")
	}
	// every record must be at the seq its Append returned
	count := 0
	err := s.Replay(func(seq uint64, data []byte) error {
		count++
		if seq < 1 || seq > uint64(total) {
			return fmt.Errorf("replay: seq %d outside [1, %d]", seq, total)
		}
		return verify(data, keys[seq-1], recordSize)
	})
	r.check(err, "%s", p.Name)
	if count != total {
		r.Fatalf("%s: replay saw %d records, want %d", p.Name, count, total)
	}
}

func atRest(r *run, p *Peer) {
	f := sharedLog(r, p)
	r.check(f.closeStore(), "%s: close", p.Name)
	var heap, rss, rssRead float64
	r.reset()
	for i := 0; i < r.n; i++ {
		var h0, rss0 uint64
		if i == 0 {
			r.stop()
			h0, rss0 = memNow(r)
			r.start()
		}
		s, err := p.Open(f.dir, false, r.size)
		r.check(err, "%s: open", p.Name)
		if i == 0 {
			// At rest: open and idle. Background work Open starts (a
			// prefault of the active tail) is given time to finish.
			r.stop()
			time.Sleep(200 * time.Millisecond)
			h1, rss1 := memNow(r)
			heap = (float64(h1) - float64(h0)) / (1 << 20)
			rss = (float64(rss1) - float64(rss0)) / (1 << 20)
			r.start()
		}
		err = replayAll(s, r.size)
		if err != nil {
			s.Close()
			r.Fatalf("%s: %v", p.Name, err)
		}
		if i == 0 {
			// After reading everything once: a mapped log's resident set
			// now holds the file pages it touched (page cache the kernel
			// can reclaim); a log that caches in its heap holds copies.
			r.stop()
			_, rss2 := memNow(r)
			rssRead = (float64(rss2) - float64(rss0)) / (1 << 20)
			r.start()
		}
		r.check(s.Close(), "%s: close", p.Name)
	}
	r.stop()
	r.metric(heap, "heap-MiB")
	r.metric(rss, "rss-MiB")
	r.metric(rssRead, "rss-read-MiB")
	r.metric(float64(dirSize(r, f.dir))/(1<<20), "log-MiB")
}

// memNow returns the live Go heap and the process's resident set after a
// collection that returns freed memory to the OS, so that what remains is
// what the open log holds.
func memNow(r *run) (heap, rss uint64) {
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	data, err := os.ReadFile("/proc/self/statm")
	r.check(err, "reading RSS")
	f := strings.Fields(string(data))
	if len(f) < 2 {
		r.Fatalf("/proc/self/statm: %q", data)
	}
	pages, err := strconv.ParseUint(f[1], 10, 64)
	r.check(err, "/proc/self/statm")
	return ms.HeapAlloc, pages * uint64(os.Getpagesize())
}

func dirSize(r *run, dir string) int64 {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			total += info.Size()
		}
		return err
	})
	r.check(err, "size of %s", dir)
	return total
}

// percentile returns the p-th percentile (0 < p <= 100) of d, sorting d in place.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	k := int(float64(len(d))*p/100+0.999999) - 1
	return d[max(0, min(k, len(d)-1))]
}
