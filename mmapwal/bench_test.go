package mmapwal

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// Benchmarks of the hot paths. Run: make bench (or go test -run '^$' -bench . -benchmem ./mmapwal/).
// Comparisons against other WALs live in the bench/ module.

var benchSizes = []int{16, 100, 4 << 10, 1 << 20}

func benchOpen(b *testing.B, p SyncPolicy) *WAL {
	b.Helper()
	w, err := Open(b.TempDir(), &Options{Sync: p, MaxRecordSize: 2 << 20})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { w.Close() })
	return w
}

func BenchmarkAppend(b *testing.B) {
	for _, p := range []SyncPolicy{SyncNone, SyncAlways} {
		for _, size := range benchSizes {
			if p == SyncAlways && size > 4<<10 {
				continue
			}
			for _, g := range []int{1, 4, 16, 64} {
				b.Run(fmt.Sprintf("%s/size=%d/goroutines=%d", p, size, g), func(b *testing.B) {
					w := benchOpen(b, p)
					data := make([]byte, size)
					b.SetBytes(int64(size))
					b.ReportAllocs()
					b.ResetTimer()
					// Exactly g appenders share b.N appends.
					var next atomic.Int64
					var wg sync.WaitGroup
					for range g {
						wg.Add(1)
						go func() {
							defer wg.Done()
							for next.Add(1) <= int64(b.N) {
								if _, err := w.Append(data); err != nil {
									b.Error(err)
									return
								}
							}
						}()
					}
					wg.Wait()
					b.StopTimer()
					st := w.Stats()
					if st.Syncs > 0 {
						b.ReportMetric(float64(st.Appended)/float64(st.Syncs), "records/sync")
					}
				})
			}
		}
	}
}

func BenchmarkAppendSingle(b *testing.B) {
	for _, size := range benchSizes[:2] {
		b.Run(fmt.Sprintf("SyncNone/size=%d", size), func(b *testing.B) {
			w := benchOpen(b, SyncNone)
			data := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := w.Append(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAppendBatch1000(b *testing.B) {
	w := benchOpen(b, SyncAlways)
	batch := make([][]byte, 1000)
	for i := range batch {
		batch[i] = make([]byte, 100)
	}
	b.SetBytes(100 * 1000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := w.AppendBatch(batch); err != nil {
			b.Fatal(err)
		}
	}
}

func fill(b *testing.B, w *WAL, n, size int) {
	b.Helper()
	data := make([]byte, size)
	for i := 0; i < n; i++ {
		if _, err := w.Append(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRead(b *testing.B) {
	for _, size := range benchSizes[:3] {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			w := benchOpen(b, SyncNone)
			const n = 100_000
			fill(b, w, n, size)
			b.Run("Read", func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					if _, err := w.Read(uint64(i*7919%n) + 1); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("ReadAppend", func(b *testing.B) {
				buf := make([]byte, 0, size)
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					var err error
					if buf, err = w.ReadAppend(buf[:0], uint64(i*7919%n)+1); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("ReadAppend/parallel", func(b *testing.B) {
				var ctr atomic.Uint64
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					buf := make([]byte, 0, size)
					for pb.Next() {
						i := ctr.Add(7919)
						var err error
						if buf, err = w.ReadAppend(buf[:0], i%n+1); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		})
	}
}

func BenchmarkReopen1M(b *testing.B) {
	dir := b.TempDir()
	w, err := Open(dir, &Options{Sync: SyncNone})
	if err != nil {
		b.Fatal(err)
	}
	fill(b, w, 1_000_000, 100)
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w, err := Open(dir, &Options{Sync: SyncNone})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if w.LastSeq() != 1_000_000 {
			b.Fatalf("LastSeq %d", w.LastSeq())
		}
		w.Close()
		b.StartTimer()
	}
}

// BenchmarkReplay1M: helpers=0 is the sequential replay, auto reads ahead
// on the spare cores (replay_parallel.go).
func BenchmarkReplay1M(b *testing.B) {
	w := benchOpen(b, SyncNone)
	fill(b, w, 1_000_000, 100)
	for _, h := range []struct {
		name string
		n    int
	}{{"helpers=0", -1}, {"helpers=auto", 0}} {
		b.Run(h.name, func(b *testing.B) {
			w.opts.ReplayReadAhead = h.n
			b.SetBytes(100 * 1_000_000)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				n := 0
				if err := w.Replay(0, func(uint64, []byte) error { n++; return nil }); err != nil || n != 1_000_000 {
					b.Fatal(err, n)
				}
			}
			b.ReportMetric(float64(b.N)*1e6/b.Elapsed().Seconds(), "rec/s")
		})
	}
}
