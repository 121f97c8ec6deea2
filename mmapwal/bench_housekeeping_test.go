package mmapwal

// Appends never wait behind housekeeping: Append latency (max and p99)
// while TruncateFront drops 2,000 segments, and while MaxSegments retention
// does. Run:
//
//	go test -run '^$' -bench 'BenchmarkAppendWhileDropping' -benchtime 3x ./mmapwal/

import (
	"sort"
	"sync"
	"testing"
	"time"
)

const benchDropSegments = 2000

// benchDropLog builds a log of 2,000 small segments (SyncNone: quick to
// write), closed and reopened with o.
func benchDropLog(b *testing.B, o *Options) *WAL {
	b.Helper()
	dir := b.TempDir()
	w, err := Open(dir, &Options{SegmentSize: MinSegmentSize, Sync: SyncNone})
	if err != nil {
		b.Fatal(err)
	}
	rec := make([]byte, 4000)
	for len(w.segs.Load().segs) < benchDropSegments {
		if _, err := w.Append(rec); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	w, err = Open(dir, o)
	if err != nil {
		b.Fatal(err)
	}
	return w
}

// benchAppendDuring appends 100-byte records from one goroutine while drop
// runs, and reports the max and p99 latency of those appends.
func benchAppendDuring(b *testing.B, o *Options, drop func(w *WAL) error) {
	var all []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		w := benchDropLog(b, o)
		b.StartTimer()
		stop := make(chan struct{})
		var lat []time.Duration
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := make([]byte, 100)
			for {
				select {
				case <-stop:
					return
				default:
				}
				t0 := time.Now()
				if _, err := w.Append(rec); err != nil {
					b.Error(err)
					return
				}
				lat = append(lat, time.Since(t0))
			}
		}()
		time.Sleep(5 * time.Millisecond)
		if err := drop(w); err != nil {
			b.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
		close(stop)
		wg.Wait()
		b.StopTimer()
		if err := w.Close(); err != nil { // waits for the deletions
			b.Fatal(err)
		}
		b.StartTimer()
		all = append(all, lat...)
	}
	if len(all) == 0 {
		return
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	b.ReportMetric(float64(all[len(all)-1].Microseconds()), "max-µs")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(len(all))/float64(b.N), "appends/op")
}

func BenchmarkAppendWhileDropping(b *testing.B) {
	for _, p := range []SyncPolicy{SyncAlways, SyncNone} {
		b.Run("TruncateFront/"+p.String(), func(b *testing.B) {
			o := &Options{SegmentSize: MinSegmentSize, Sync: p}
			benchAppendDuring(b, o, func(w *WAL) error {
				return w.TruncateFront(w.segs.Load().segs[benchDropSegments-1].firstSeq)
			})
		})
		b.Run("MaxSegments/"+p.String(), func(b *testing.B) {
			o := &Options{SegmentSize: MinSegmentSize, Sync: p, MaxSegments: 10}
			benchAppendDuring(b, o, func(w *WAL) error {
				// Retention runs after the next rotation: wait until it is done.
				for len(w.segs.Load().segs) > 20 {
					time.Sleep(time.Millisecond)
				}
				return nil
			})
		})
	}
}
