package main

import (
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"
)

type config struct {
	dir        string
	runs       int
	n          int           // records for workloads 1, 5, 6, 7
	recSize    int           // payload bytes per record
	durableN   int           // workload 2 records
	writers    int           // workload 3 goroutines
	perWriter  int           // workload 3 records per goroutine
	batches    int           // workload 4 batch count
	batchSize  int           // workload 4 records per batch
	reads      int           // workload 5 random reads
	readBudget time.Duration // workload 5 per peer/run time cap (slow peers)
	only       map[int]bool  // nil = all
	peers      []string      // nil = all registered
	log        io.Writer     // progress
}

func defaultConfig() config {
	return config{
		runs: 3, n: 1_000_000, recSize: 100, durableN: 2000, writers: 64, perWriter: 100,
		batches: 100, batchSize: 1000, reads: 100_000, readBudget: 5 * time.Second,
		log: io.Discard,
	}
}

// quickConfig is for CI smoke runs: tiny counts, one run.
func quickConfig() config {
	c := defaultConfig()
	c.runs, c.n, c.durableN, c.perWriter, c.batches, c.reads, c.readBudget = 1, 5000, 50, 2, 3, 2000, 2*time.Second
	return c
}

func (c *config) selected(w int) bool { return c.only == nil || c.only[w] }

type bench struct {
	cfg   config
	recs  [][]byte // recs[i] carries key i+1
	reads []uint64 // random seqs for workload 5
	res   *results
}

func (b *bench) logf(format string, args ...any) { fmt.Fprintf(b.cfg.log, format+"\n", args...) }

// run executes all selected workloads cfg.runs times on every peer.
func run(cfg config) (*results, error) {
	need := cfg.n
	need = max(need, cfg.durableN, cfg.writers*cfg.perWriter, cfg.batches*cfg.batchSize)
	b := &bench{cfg: cfg, recs: genRecords(1, need, cfg.recSize), res: newResults()}
	rng := rand.New(rand.NewSource(42))
	b.reads = make([]uint64, cfg.reads)
	for i := range b.reads {
		b.reads[i] = 1 + uint64(rng.Intn(cfg.n))
	}
	var list []Peer
	for _, p := range peers {
		if cfg.peers == nil || contains(cfg.peers, p.Name) {
			list = append(list, p)
		}
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("no peers selected")
	}
	// Workload-major order: each step runs on every peer back to back, with
	// its raw limit measured right before, so a noisy (shared) machine
	// disturbs the compared numbers alike.
	steps := []struct {
		on  bool
		raw func() error
		fn  func(Peer, string) error
	}{
		{cfg.selected(1) || cfg.selected(5) || cfg.selected(6) || cfg.selected(7), b.rawCopy, b.bulk},
		{cfg.selected(2), b.rawSync, b.durableSerial},
		{cfg.selected(3), nil, b.durableConcurrent},
		{cfg.selected(4), b.rawBatches, b.durableBatches},
	}
	for r := 0; r < cfg.runs; r++ {
		b.logf("run %d/%d", r+1, cfg.runs)
		for i, st := range steps {
			if !st.on {
				continue
			}
			if st.raw != nil {
				settle()
				if err := st.raw(); err != nil {
					return nil, fmt.Errorf("raw limits: %w", err)
				}
			}
			for _, p := range list {
				settle()
				dir := filepath.Join(cfg.dir, fmt.Sprintf("run%d-step%d-%s", r, i, sanitize(p.Name)))
				err := st.fn(p, dir)
				if rerr := os.RemoveAll(dir); err == nil {
					err = rerr
				}
				if err != nil {
					return nil, fmt.Errorf("%s: %w", p.Name, err)
				}
			}
		}
	}
	return b.res, nil
}

// rawCopy measures the framed-copy limit (workload 1's raw column) and the
// floor of workload 5: copy the record of a random seq out of the in-memory
// array of all records and verify it.
func (b *bench) rawCopy() error {
	c := b.cfg
	if c.selected(1) {
		d, err := rawCopy(c.dir, b.recs[:c.n])
		if err != nil {
			return err
		}
		b.res.add(1, "rec/s", rawName, float64(c.n)/d.Seconds())
		b.res.add(1, "MB/s", rawName, float64(c.n*c.recSize)/1e6/d.Seconds())
		b.logf("  raw copy: %.0f rec/s", float64(c.n)/d.Seconds())
	}
	if c.selected(5) {
		var buf []byte
		start := time.Now()
		for _, seq := range b.reads {
			buf = append(buf[:0], b.recs[seq-1]...)
			if err := verify(buf, seq, c.recSize); err != nil {
				return err
			}
		}
		ns := float64(time.Since(start).Nanoseconds()) / float64(len(b.reads))
		b.res.add(5, "read", rawName, ns)
		b.res.add(5, "readappend", rawName, ns)
	}
	return nil
}

// rawBatches measures workload 4's limits: durable batches through a mapping
// (msync) and through pwrite + fdatasync.
func (b *bench) rawBatches() error {
	c := b.cfg
	recs := b.recs[:c.batches*c.batchSize]
	for _, v := range []struct {
		name     string
		viaWrite bool
	}{{rawName, false}, {rawWriteName, true}} {
		d, err := rawBatches(c.dir, recs, c.batchSize, v.viaWrite)
		if err != nil {
			return err
		}
		b.res.add(4, "rec/s", v.name, float64(len(recs))/d.Seconds())
		b.logf("  %s batches: %.0f rec/s", v.name, float64(len(recs))/d.Seconds())
	}
	return nil
}

// rawSync measures 4 KiB write + fdatasync latency (workload 2's raw column).
func (b *bench) rawSync() error {
	for _, v := range []struct {
		name      string
		overwrite bool
	}{{rawName, true}, {rawAppendName, false}} {
		lat, err := rawFdatasync(b.cfg.dir, b.cfg.durableN, v.overwrite)
		if err != nil {
			return err
		}
		b.res.add(2, "p50", v.name, float64(percentile(lat, 50)))
		b.res.add(2, "p99", v.name, float64(percentile(lat, 99)))
		b.logf("  %s fdatasync p50 %v", v.name, percentile(lat, 50))
	}
	return nil
}

// bulk: workload 1 (append n, no per-write sync), then on the same data
// 6 (reopen clean / after crash), 7 (full replay), 5 (random reads).
func (b *bench) bulk(p Peer, dir string) error {
	c := b.cfg
	s, err := p.Open(dir, false)
	if err != nil {
		return err
	}
	start := time.Now()
	if p.NoSyncBatch > 0 {
		for i := 0; i < c.n; i += p.NoSyncBatch {
			recs := b.recs[i:min(i+p.NoSyncBatch, c.n)]
			first, err := s.AppendBatch(recs)
			if err != nil {
				s.Close()
				return err
			}
			if first != uint64(i+1) {
				s.Close()
				return fmt.Errorf("AppendBatch returned first seq %d, want %d", first, i+1)
			}
		}
	} else {
		for i, r := range b.recs[:c.n] {
			seq, err := s.Append(r)
			if err != nil {
				s.Close()
				return err
			}
			if seq != uint64(i+1) {
				s.Close()
				return fmt.Errorf("Append returned seq %d, want %d", seq, i+1)
			}
		}
	}
	d := time.Since(start)
	if c.selected(1) {
		b.res.add(1, "rec/s", p.Name, float64(c.n)/d.Seconds())
		b.res.add(1, "MB/s", p.Name, float64(c.n*c.recSize)/1e6/d.Seconds())
		b.logf("  %s w1: %.0f rec/s", p.Name, float64(c.n)/d.Seconds())
	}
	crashDir := dir + "-crash"
	if c.selected(6) {
		// simulated crash: a copy of the directory taken while the WAL is open
		if err := copyDir(dir, crashDir); err != nil {
			s.Close()
			return err
		}
		defer os.RemoveAll(crashDir)
	}
	if err := s.Close(); err != nil {
		return err
	}

	if c.selected(6) {
		settle()
		for _, v := range []struct {
			metric, dir string
			crash       bool
		}{{"clean", dir, false}, {"crash", crashDir, true}} {
			t := time.Now()
			s, err := p.Open(v.dir, false)
			if err != nil {
				return fmt.Errorf("reopen (%s): %w", v.metric, err)
			}
			d := time.Since(t)
			if err := b.checkReopened(s, v.crash); err != nil {
				s.Close()
				return fmt.Errorf("reopen (%s): %w", v.metric, err)
			}
			if err := s.Close(); err != nil {
				return err
			}
			b.res.add(6, v.metric, p.Name, float64(d)/1e6)
			b.logf("  %s w6 %s: %v", p.Name, v.metric, d)
		}
	}
	if !c.selected(5) && !c.selected(7) {
		return nil
	}
	s, err = p.Open(dir, false)
	if err != nil {
		return err
	}
	defer s.Close()
	// workload 7 (or an untimed pass to warm the page cache for 5)
	settle()
	t := time.Now()
	next := uint64(1)
	err = s.Replay(1, func(seq uint64, data []byte) error {
		if seq != next {
			return fmt.Errorf("replay: got seq %d, want %d", seq, next)
		}
		next++
		return verify(data, seq, c.recSize)
	})
	d = time.Since(t)
	if err != nil {
		return err
	}
	if next != uint64(c.n)+1 {
		return fmt.Errorf("replay: saw %d records, want %d", next-1, c.n)
	}
	if c.selected(7) {
		b.res.add(7, "rec/s", p.Name, float64(c.n)/d.Seconds())
		b.logf("  %s w7: %.0f rec/s", p.Name, float64(c.n)/d.Seconds())
	}
	if c.selected(5) {
		settle()
		return b.randomReads(p, s)
	}
	return nil
}

// settle starts a timed phase on a quiet machine: the dirty pages earlier
// phases (or the previous peer) left behind are written back first, so no
// peer's numbers include the kernel flushing somebody else's data, and the
// previous phase's garbage is collected.
func settle() {
	syscall.Sync()
	runtime.GC()
}

func (b *bench) checkReopened(s Store, crash bool) error {
	last := s.LastSeq()
	if last != uint64(b.cfg.n) && !(crash && last > 0 && last < uint64(b.cfg.n)) {
		return fmt.Errorf("LastSeq %d, want %d", last, b.cfg.n)
	}
	if last < uint64(b.cfg.n) {
		b.res.note(fmt.Sprintf("crash copy kept %d of %d records", last, b.cfg.n))
	}
	for _, seq := range []uint64{1, last} {
		data, err := s.Read(seq)
		if err != nil {
			return err
		}
		if err := verify(data, seq, b.cfg.recSize); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) randomReads(p Peer, s Store) error {
	c := b.cfg
	timed := func(read func(seq uint64) ([]byte, error)) (float64, int, error) {
		start := time.Now()
		ops := 0
		for i, seq := range b.reads {
			data, err := read(seq)
			if err != nil {
				return 0, 0, fmt.Errorf("read %d: %w", seq, err)
			}
			if err := verify(data, seq, c.recSize); err != nil {
				return 0, 0, err
			}
			ops = i + 1
			if ops&63 == 0 && time.Since(start) > c.readBudget {
				break
			}
		}
		return float64(time.Since(start).Nanoseconds()) / float64(ops), ops, nil
	}
	ns, ops, err := timed(s.Read)
	if err != nil {
		return err
	}
	b.res.add(5, "reads done", p.Name, float64(ops))
	b.res.add(5, "read", p.Name, ns)
	b.logf("  %s w5 Read: %.0f ns/op", p.Name, ns)
	if ar, ok := s.(appendReader); ok {
		var buf []byte
		ns, _, err := timed(func(seq uint64) ([]byte, error) {
			var err error
			buf, err = ar.ReadAppend(buf[:0], seq)
			return buf, err
		})
		if err != nil {
			return err
		}
		b.res.add(5, "readappend", p.Name, ns)
		b.logf("  %s w5 ReadAppend: %.0f ns/op", p.Name, ns)
	}
	return nil
}

// durableSerial: workload 2, one writer, a sync per record.
func (b *bench) durableSerial(p Peer, dir string) error {
	c := b.cfg
	return withStore(p, dir, true, func(s Store) error {
		lat := make([]time.Duration, c.durableN)
		for i, r := range b.recs[:c.durableN] {
			t := time.Now()
			seq, err := s.Append(r)
			lat[i] = time.Since(t)
			if err != nil {
				return err
			}
			if seq != uint64(i+1) {
				return fmt.Errorf("Append returned seq %d, want %d", seq, i+1)
			}
		}
		b.res.add(2, "p50", p.Name, float64(percentile(lat, 50)))
		b.res.add(2, "p99", p.Name, float64(percentile(lat, 99)))
		b.logf("  %s w2: p50 %v p99 %v", p.Name, percentile(lat, 50), percentile(lat, 99))
		return nil
	})
}

// durableConcurrent: workload 3, many writers, each Append durable on return.
func (b *bench) durableConcurrent(p Peer, dir string) error {
	c := b.cfg
	return withStore(p, dir, true, func(s Store) error {
		total := c.writers * c.perWriter
		keys := make([]uint64, total) // keys[seq-1] = key of the record stored at seq
		errs := make(chan error, c.writers)
		syncs0 := s.Syncs()
		var wg sync.WaitGroup
		start := time.Now()
		for w := 0; w < c.writers; w++ {
			wg.Add(1)
			go func(recs [][]byte, firstKey uint64) {
				defer wg.Done()
				for j, r := range recs {
					seq, err := s.Append(r)
					if err != nil {
						errs <- err
						return
					}
					if seq < 1 || seq > uint64(total) {
						errs <- fmt.Errorf("Append returned seq %d outside 1..%d", seq, total)
						return
					}
					keys[seq-1] = firstKey + uint64(j)
				}
			}(b.recs[w*c.perWriter:(w+1)*c.perWriter], uint64(w*c.perWriter+1))
		}
		wg.Wait()
		d := time.Since(start)
		close(errs)
		if err := <-errs; err != nil {
			return err
		}
		syncs := s.Syncs() - syncs0
		b.res.add(3, "rec/s", p.Name, float64(total)/d.Seconds())
		if syncs > 0 {
			b.res.add(3, "rec/sync", p.Name, float64(total)/float64(syncs))
		}
		b.logf("  %s w3: %.0f rec/s, %d syncs", p.Name, float64(total)/d.Seconds(), syncs)
		// every record must be at the seq its Append returned
		count := 0
		err := s.Replay(1, func(seq uint64, data []byte) error {
			count++
			if seq < 1 || seq > uint64(total) {
				return fmt.Errorf("replay: seq %d outside 1..%d", seq, total)
			}
			return verify(data, keys[seq-1], c.recSize)
		})
		if err != nil {
			return err
		}
		if count != total {
			return fmt.Errorf("replay saw %d records, want %d", count, total)
		}
		return nil
	})
}

// durableBatches: workload 4, batches of batchSize with one sync each.
func (b *bench) durableBatches(p Peer, dir string) error {
	c := b.cfg
	return withStore(p, dir, true, func(s Store) error {
		start := time.Now()
		for i := 0; i < c.batches; i++ {
			first, err := s.AppendBatch(b.recs[i*c.batchSize : (i+1)*c.batchSize])
			if err != nil {
				return err
			}
			if want := uint64(i*c.batchSize + 1); first != want {
				return fmt.Errorf("AppendBatch returned first seq %d, want %d", first, want)
			}
		}
		d := time.Since(start)
		total := c.batches * c.batchSize
		b.res.add(4, "rec/s", p.Name, float64(total)/d.Seconds())
		b.logf("  %s w4: %.0f rec/s", p.Name, float64(total)/d.Seconds())
		for _, seq := range []uint64{1, uint64(total)} {
			data, err := s.Read(seq)
			if err != nil {
				return err
			}
			if err := verify(data, seq, c.recSize); err != nil {
				return err
			}
		}
		return nil
	})
}

// withStore opens a store, runs fn and closes it, returning the first error.
func withStore(p Peer, dir string, durable bool, fn func(Store) error) error {
	s, err := p.Open(dir, durable)
	if err != nil {
		return err
	}
	err = fn(s)
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	return err
}

// copyDir copies the regular files under src to dst.
func copyDir(src, dst string) error {
	// The WAL is live: a file it renames or removes mid-walk is skipped, as
	// it would be missing after a crash at that moment.
	return filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			if os.IsNotExist(err) && path != src {
				return nil
			}
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		in, err := os.Open(path)
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, info.Mode().Perm())
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

func sanitize(name string) string {
	out := []byte(name)
	for i, ch := range out {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-') {
			out[i] = '_'
		}
	}
	return string(out)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
