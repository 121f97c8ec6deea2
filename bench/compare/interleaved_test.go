package compare

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mmapwal/wal/format"
)

// Interleaved durable workloads. The per-peer sub-benchmarks run each peer
// for a second or more in turn; on a shared VM a device flush can take
// twice as long one minute as the next, and within one run of
// Batch1000Sync raw pwrite + fdatasync has measured 0.74 ms and 1.83 ms a
// batch. There, the drift can decide a ratio between peers. Here every
// iteration makes one operation durable on every peer in turn (and on a raw
// pwrite + fdatasync of the same frames), so the drift falls on all alike.
// Each peer's figures are reported as "<metric>@<peer>"; cmd/compare reads
// them as that peer's figures of the workload.

type interleavedWorkload struct {
	name    string
	batch   func(r *run) int // records per operation
	metrics []string         // per peer
	smoke   int
}

var interleavedWorkloads = []interleavedWorkload{
	{name: "DurableAppendInterleaved", batch: func(*run) int { return 1 }, metrics: []string{"p50-ns", "p99-ns"}, smoke: 5},
	{name: "Batch1000SyncInterleaved", batch: batchSize, metrics: []string{"rec/s", "p50-ns"}, smoke: 3},
}

// interleavedPeers: every peer, then the raw limit of the same frames.
func interleavedPeers() []*Peer {
	var ps []*Peer
	for i := range peers {
		ps = append(ps, &peers[i])
	}
	return append(ps, &Peer{Name: "raw-pwrite", Open: openRawPwrite})
}

// BenchmarkDurableAppendInterleaved: per iteration, one durable Append on
// every peer in turn; each peer's p50 and p99.
func BenchmarkDurableAppendInterleaved(b *testing.B) {
	interleaved(newBenchRun(b), &interleavedWorkloads[0])
}

// BenchmarkBatch1000SyncInterleaved: per iteration, one durable batch of
// 1000 records on every peer in turn; each peer's records per second of
// its own batch time, and its p50 batch time.
func BenchmarkBatch1000SyncInterleaved(b *testing.B) {
	interleaved(newBenchRun(b), &interleavedWorkloads[1])
}

func interleaved(r *run, w *interleavedWorkload) {
	recs := pool(r.size)
	batch := w.batch(r)
	perLog := r.size / batch
	type state struct {
		p    *Peer
		logs *freshLogs
		s    Store
		lat  []time.Duration
	}
	var st []*state
	for _, p := range interleavedPeers() {
		logs := newFreshLogs(r, p, true)
		defer logs.close()
		st = append(st, &state{p: p, logs: logs, s: logs.s, lat: make([]time.Duration, 0, r.n)})
	}
	r.reset()
	for i := 0; i < r.n; i++ {
		k := i % perLog
		for _, x := range st {
			if i > 0 && k == 0 {
				x.s = x.logs.next()
			}
			var first uint64
			var err error
			t := time.Now()
			if batch == 1 {
				first, err = x.s.Append(recs[k])
			} else {
				first, err = x.s.AppendBatch(recs[k*batch : (k+1)*batch])
			}
			x.lat = append(x.lat, time.Since(t))
			if err != nil {
				r.Fatalf("%s: append: %v", x.p.Name, err)
			}
			if first != uint64(k*batch+1) {
				r.Fatalf("%s: append returned seq %d, want %d", x.p.Name, first, k*batch+1)
			}
		}
	}
	r.stop()
	for _, x := range st {
		var sum time.Duration
		for _, d := range x.lat {
			sum += d
		}
		for _, m := range w.metrics {
			switch m {
			case "p50-ns":
				r.metric(float64(percentile(x.lat, 50)), m+"@"+x.p.Name)
			case "p99-ns":
				r.metric(float64(percentile(x.lat, 99)), m+"@"+x.p.Name)
			case "rec/s":
				r.metric(float64(len(x.lat)*batch)/sum.Seconds(), m+"@"+x.p.Name)
			}
		}
	}
}

// rawPwriteStore is the raw limit as a Store: mmapwal's frames (one, or a
// batch's First/Middle/Last) pwritten into a fallocated file and
// fdatasynced, nothing else. Only the appends are implemented.
type rawPwriteStore struct {
	f     *os.File
	off   int64
	next  uint64
	syncs uint64
	buf   []byte
}

func openRawPwrite(dir string, durable bool, n int) (Store, error) {
	if !durable {
		return nil, errors.New("raw-pwrite: only durable appends")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "raw.dat"), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Fallocate(int(f.Fd()), 0, 0, int64(n*rawFrameSize)); err != nil {
		f.Close()
		return nil, fmt.Errorf("fallocate: %w", err)
	}
	return &rawPwriteStore{f: f, next: 1}, nil
}

func (s *rawPwriteStore) Append(rec []byte) (uint64, error) {
	return s.write([][]byte{rec})
}

func (s *rawPwriteStore) AppendBatch(recs [][]byte) (uint64, error) { return s.write(recs) }

func (s *rawPwriteStore) write(recs [][]byte) (uint64, error) {
	first := s.next
	total := int64(0)
	for _, rec := range recs {
		total += format.FrameSize(len(rec))
	}
	if int64(cap(s.buf)) < total {
		s.buf = make([]byte, total)
	}
	s.buf = s.buf[:total]
	n := int64(0)
	for j, rec := range recs {
		n += format.EncodeFrame(s.buf[n:], rawSeed, rawKind(j, len(recs)), first+uint64(j), first-1, rec)
	}
	if _, err := unix.Pwrite(int(s.f.Fd()), s.buf, s.off); err != nil {
		return 0, err
	}
	if err := unix.Fdatasync(int(s.f.Fd())); err != nil {
		return 0, err
	}
	s.syncs++
	s.off += int64(len(s.buf))
	s.next += uint64(len(recs))
	return first, nil
}

var errRawOnlyAppends = errors.New("raw-pwrite: only appends")

func (s *rawPwriteStore) Read(uint64) ([]byte, error)             { return nil, errRawOnlyAppends }
func (s *rawPwriteStore) LastSeq() uint64                         { return s.next - 1 }
func (s *rawPwriteStore) Replay(func(uint64, []byte) error) error { return errRawOnlyAppends }
func (s *rawPwriteStore) Syncs() uint64                           { return s.next - 1 }
func (s *rawPwriteStore) Close() error                            { return s.f.Close() }

// TestSmokeInterleaved runs the interleaved workloads at a tiny size.
func TestSmokeInterleaved(t *testing.T) {
	for i := range interleavedWorkloads {
		w := &interleavedWorkloads[i]
		t.Run(w.name, func(t *testing.T) {
			r := newSmokeRun(t, w.smoke)
			interleaved(r, w)
			var units []string
			for _, p := range interleavedPeers() {
				for _, m := range w.metrics {
					units = append(units, m+"@"+p.Name)
				}
			}
			checkMetrics(t, r, units)
		})
	}
}
