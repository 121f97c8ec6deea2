package main

import (
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/mmapwal/wal/mmapwal"
	"github.com/mmapwal/wal/platform"
	"github.com/spf13/cobra"
)

type benchOpts struct {
	duration    time.Duration
	size        int
	segmentSize int64
	writers     []int
}

type benchResult struct {
	name    string
	writers int
	lat     []time.Duration // sorted
	elapsed time.Duration
}

func (r benchResult) rate() float64 { return float64(len(r.lat)) / r.elapsed.Seconds() }

func (r benchResult) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, int(float64(len(r.lat))*p))]
}

func benchCmd(e *env) *cobra.Command {
	o := benchOpts{}
	c := &cobra.Command{
		Use:   "bench DIR",
		Short: "Measure append latency and throughput per sync policy, and raw fdatasync, on DIR's disk",
		Long: `Measure, in a temporary log under DIR (removed afterwards), what is needed to
choose a sync policy on this disk: durable append latency (SyncAlways) p50,
p99 and max for 1 and 16 writers, records/s under each policy, and the raw
fdatasync latency of a plain file beside it. Each run lasts --duration.`,
		Args: oneDir,
		RunE: func(_ *cobra.Command, args []string) error {
			if o.size < 0 || o.duration <= 0 {
				return &usageError{fmt.Errorf("--size must be >= 0 and --duration > 0")}
			}
			return bench(e.stdout, args[0], o)
		},
	}
	c.Flags().DurationVar(&o.duration, "duration", 400*time.Millisecond, "length of each run (7 runs)")
	c.Flags().IntVar(&o.size, "size", 128, "record size in bytes")
	c.Flags().Int64Var(&o.segmentSize, "segment-size", 16<<20, "segment size of the temporary log")
	c.Flags().IntSliceVar(&o.writers, "writers", []int{1, 16}, "concurrent writer counts")
	return c
}

func bench(out io.Writer, dir string, o benchOpts) error {
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return fmt.Errorf("%s: no such directory", dir)
	}
	tmp, err := os.MkdirTemp(dir, "walctl-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	fmt.Fprintf(out, "bench in %s (removed afterwards): %d-byte records, %s per run\n\n", dir, o.size, o.duration)

	fsync, err := benchFdatasync(tmp, o)
	if err != nil {
		return err
	}
	var results []benchResult
	for _, pol := range []struct {
		name string
		p    mmapwal.SyncPolicy
	}{{"SyncAlways", mmapwal.SyncAlways}, {"SyncPeriodic", mmapwal.SyncPeriodic}, {"SyncNone", mmapwal.SyncNone}} {
		for _, n := range o.writers {
			r, err := benchAppend(filepath.Join(tmp, fmt.Sprintf("%s-%d", pol.name, n)), pol.p, n, o)
			if err != nil {
				return err
			}
			r.name = pol.name
			results = append(results, r)
		}
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "what\twriters\trecords/s\tp50\tp99\tmax\t")
	fmt.Fprintf(tw, "raw fdatasync (4 KiB write)\t1\t%.0f\t%s\t%s\t%s\t\n", fsync.rate(), fmtDur(fsync.pct(0.5)), fmtDur(fsync.pct(0.99)), fmtDur(fsync.lat[len(fsync.lat)-1]))
	for _, r := range results {
		note := ""
		if r.name == "SyncAlways" {
			note = " (durable)"
		}
		fmt.Fprintf(tw, "Append %s%s\t%d\t%.0f\t%s\t%s\t%s\t\n", r.name, note, r.writers, r.rate(), fmtDur(r.pct(0.5)), fmtDur(r.pct(0.99)), fmtDur(r.lat[len(r.lat)-1]))
	}
	tw.Flush()
	fmt.Fprintln(out, "\nSyncAlways: an Append returns when its record is durable; concurrent writers share a flush.")
	fmt.Fprintln(out, "SyncPeriodic/SyncNone: latency is the copy into the mapping; a power loss may lose the last interval.")
	for _, r := range results {
		if r.name == "SyncAlways" {
			fmt.Fprintf(out, "\ndurable Append latency, %d writer(s), %d appends:\n", r.writers, len(r.lat))
			histogram(out, r.lat)
		}
	}
	fmt.Fprintf(out, "\nraw fdatasync latency, %d calls:\n", len(fsync.lat))
	histogram(out, fsync.lat)
	return nil
}

func benchFdatasync(dir string, o benchOpts) (benchResult, error) {
	f, err := os.Create(filepath.Join(dir, "fdatasync.tmp"))
	if err != nil {
		return benchResult{}, err
	}
	defer f.Close()
	buf := make([]byte, 4096)
	var lat []time.Duration
	start := time.Now()
	for i := 0; time.Since(start) < o.duration || i == 0; i++ {
		t := time.Now()
		if _, err := f.WriteAt(buf, int64(i%256)*4096); err != nil {
			return benchResult{}, err
		}
		if err := platform.SyncFile(f); err != nil {
			return benchResult{}, err
		}
		lat = append(lat, time.Since(t))
	}
	el := time.Since(start)
	slices.Sort(lat)
	return benchResult{writers: 1, lat: lat, elapsed: el}, nil
}

func benchAppend(dir string, p mmapwal.SyncPolicy, writers int, o benchOpts) (benchResult, error) {
	w, err := mmapwal.Open(dir, &mmapwal.Options{Sync: p, SegmentSize: o.segmentSize})
	if err != nil {
		return benchResult{}, err
	}
	defer w.Close()
	rec := make([]byte, o.size)
	lats := make([][]time.Duration, writers)
	errs := make([]error, writers)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(o.duration)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				t := time.Now()
				if _, err := w.Append(rec); err != nil {
					errs[i] = err
					return
				}
				lats[i] = append(lats[i], time.Since(t))
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return benchResult{}, err
		}
	}
	all := slices.Concat(lats...)
	if len(all) == 0 {
		return benchResult{}, fmt.Errorf("bench: no append completed in %s", o.duration)
	}
	slices.Sort(all)
	return benchResult{writers: writers, lat: all, elapsed: el}, w.Close()
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < time.Millisecond:
		return fmt.Sprintf("%.1fµs", float64(d.Nanoseconds())/1e3)
	default:
		return fmt.Sprintf("%.2fms", float64(d.Nanoseconds())/1e6)
	}
}

// histogram draws power-of-two latency buckets as bars, scaled to the
// fullest bucket.
func histogram(out io.Writer, lat []time.Duration) {
	var counts [64]int
	lo, hi := 63, 0
	for _, d := range lat {
		b := bits.Len64(uint64(max(d, 1)))
		counts[b]++
		lo, hi = min(lo, b), max(hi, b)
	}
	top := slices.Max(counts[:])
	for b := lo; b <= hi; b++ {
		from, to := time.Duration(1)<<(b-1), time.Duration(1)<<b
		n := counts[b] * 40 / max(top, 1)
		if counts[b] > 0 && n == 0 {
			n = 1
		}
		fmt.Fprintf(out, "  %9s - %-9s %-40s %d\n", fmtDur(from), fmtDur(to), strings.Repeat("█", n), counts[b])
	}
}
