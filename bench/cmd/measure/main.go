// Command measure reproduces the resource figures of the README's
// "Resources" section on this machine (Linux: it reads /proc/self):
//
//	go run ./cmd/measure -what fds -n 2000     descriptors and mappings per segment while open
//	go run ./cmd/measure -what rss             RSS growth and disk reads after Open of a clean 576 MiB log (drops caches: root)
//	go run ./cmd/measure -what open -n 10000   Open of a cleanly closed log of n segments, warm, best of 5
//	go run ./cmd/measure -what stall -n 2000   longest Append while TruncateFront drops n segments
//	go run ./cmd/measure -what durable -n 68000  ways of making one write of n bytes durable (mapped vs pwrite, fallocated vs zero-filled)
//	go run ./cmd/measure -what memlat           the cost of a dependent random load by working-set size
//
// Logs are built under -dir (default: a directory under the system's
// temporary directory) and reused by later runs of rss and open.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mmapwal/wal/mmapwal"
)

func count(dir string) (fds, maps int) {
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		t, _ := os.Readlink("/proc/self/fd/" + e.Name())
		if strings.HasPrefix(t, dir) {
			fds++
		}
	}
	b, _ := os.ReadFile("/proc/self/maps")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, dir) {
			maps++
		}
	}
	return
}

// procField returns the number after "key" in the /proc file path
// (VmRSS in kB in status, read_bytes in io), times scale.
func procField(path, key string, scale int64) int64 {
	b, _ := os.ReadFile(path)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key); ok {
			var n int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &n)
			return n * scale
		}
	}
	return 0
}

func rss() int64       { return procField("/proc/self/status", "VmRSS:", 1<<10) }
func readBytes() int64 { return procField("/proc/self/io", "read_bytes:", 1) }

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func build(dir string, segs int, segSize int64, rec int) {
	w, err := mmapwal.Open(dir, &mmapwal.Options{SegmentSize: segSize, Sync: mmapwal.SyncNone})
	must(err)
	payload := make([]byte, rec)
	for w.Stats().Segments < segs {
		_, err := w.Append(payload)
		if err != nil {
			fmt.Println("append stopped at", w.Stats().Segments, "segments:", err)
			break
		}
	}
	must(w.Close())
}

func main() {
	what := flag.String("what", "fds", "fds|rss|stall|open|durable|memlat")
	n := flag.Int("n", 2000, "segments")
	base := flag.String("dir", filepath.Join(os.TempDir(), "mmapwal-measure"), "where the logs are built (reused by rss and open)")
	flag.Parse()
	switch *what {
	case "fds":
		dir := filepath.Join(*base, fmt.Sprintf("fds-%d", *n))
		os.RemoveAll(dir)
		build(dir, *n, 64<<10, 4000)
		w, err := mmapwal.Open(dir, &mmapwal.Options{SegmentSize: 64 << 10})
		must(err)
		f, m := count(dir)
		fmt.Printf("segments=%d fds=%d maps=%d per-segment fds=%.2f maps=%.2f\n", w.Stats().Segments, f, m, float64(f)/float64(*n), float64(m)/float64(*n))
		w.Close()
	case "rss":
		dir := filepath.Join(*base, "rss")
		if _, err := os.Stat(dir); err != nil {
			build(dir, 9, 64<<20, 1000)
		}
		os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0)
		r0, io0 := rss(), readBytes()
		t := time.Now()
		w, err := mmapwal.Open(dir, nil)
		must(err)
		d := time.Since(t)
		time.Sleep(5 * time.Second)
		fmt.Printf("log=%d MiB open=%v rss +%d MiB read_from_disk %d MiB\n", int64(w.Stats().Segments)*64, d, (rss()-r0)>>20, (readBytes()-io0)>>20)
		w.Close()
	case "open":
		dir := filepath.Join(*base, fmt.Sprintf("open-%d", *n))
		if _, err := os.Stat(dir); err != nil {
			build(dir, *n, 64<<10, 4000)
		}
		var best time.Duration
		for i := 0; i < 5; i++ {
			t := time.Now()
			w, err := mmapwal.Open(dir, &mmapwal.Options{SegmentSize: 64 << 10})
			must(err)
			d := time.Since(t)
			if i == 0 || d < best {
				best = d
			}
			w.Close()
		}
		fmt.Printf("open of %d segments (clean, warm): best of 5 %v\n", *n, best)
	case "memlat":
		memLatency()
	case "durable":
		must(os.MkdirAll(*base, 0o700))
		durableWays(*base, *n, 300)
	case "stall":
		dir := filepath.Join(*base, "stall")
		os.RemoveAll(dir)
		build(dir, *n, 64<<10, 4000)
		w, err := mmapwal.Open(dir, &mmapwal.Options{SegmentSize: 64 << 10, Sync: mmapwal.SyncNone})
		must(err)
		last := w.LastSeq()
		var stop atomic.Bool
		var lat []time.Duration
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := make([]byte, 100)
			for !stop.Load() {
				t := time.Now()
				_, err := w.Append(p)
				lat = append(lat, time.Since(t))
				must(err)
			}
		}()
		time.Sleep(50 * time.Millisecond)
		t := time.Now()
		must(w.TruncateFront(last))
		td := time.Since(t)
		time.Sleep(50 * time.Millisecond)
		stop.Store(true)
		wg.Wait()
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		fmt.Printf("TruncateFront dropping %d segments took %v; appends=%d p99=%v max=%v\n", *n, td, len(lat), lat[len(lat)*99/100], lat[len(lat)-1])
		w.Close()
	}
}
