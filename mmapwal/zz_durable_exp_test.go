package mmapwal

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/mmapwal/wal/format"
	"golang.org/x/sys/unix"
)

func p50of(d []time.Duration) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}

func BenchmarkExpDurable(b *testing.B) {
	rec := make([]byte, 100)
	for _, v := range []struct {
		name string
		pw   prefaultWindow
	}{{"default", prefaultWindow{}}, {"tinyprefault", prefaultWindow{ahead: 8 << 10, chunk: 4 << 10}}} {
		b.Run(v.name, func(b *testing.B) {
			w, err := Open(b.TempDir(), &Options{Sync: SyncAlways, prefault: v.pw})
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			w.Append(rec)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t := time.Now()
				if _, err := w.Append(rec); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t))
			}
			b.ReportMetric(float64(p50of(lat).Nanoseconds()), "p50-ns")
		})
	}
	b.Run("raw-msync", func(b *testing.B) {
		f, _ := os.OpenFile(filepath.Join(b.TempDir(), "x"), os.O_RDWR|os.O_CREATE, 0600)
		defer f.Close()
		unix.Fallocate(int(f.Fd()), 0, 0, 64<<20)
		m, _ := unix.Mmap(int(f.Fd()), 0, 64<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		defer unix.Munmap(m)
		lat := make([]time.Duration, 0, b.N)
		off := int64(0)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			t := time.Now()
			n := format.EncodeFrame(m[off:], 1, format.KindFull, uint64(i+1), 0, rec)
			lo := off &^ 4095
			unix.Msync(m[lo:off+n], unix.MS_SYNC)
			off += n
			lat = append(lat, time.Since(t))
		}
		b.ReportMetric(float64(p50of(lat).Nanoseconds()), "p50-ns")
	})
}
