package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"golang.org/x/perf/benchfmt"
	"golang.org/x/perf/benchmath"
)

// results holds every value of a benchmark run: workload → peer → unit
// (as the benchmark reported it, e.g. "p50-ns") → one value per run.
type results map[string]map[string]map[string][]float64

func parseResults(r io.Reader, name string) (results, error) {
	res := results{}
	rd := benchfmt.NewReader(r, name)
	for rd.Scan() {
		switch rec := rd.Result().(type) {
		case *benchfmt.SyntaxError:
			return nil, rec
		case *benchfmt.Result:
			base, parts := rec.Name.Parts()
			peer := ""
			for _, p := range parts {
				if v, ok := strings.CutPrefix(string(p), "/peer="); ok {
					peer = v
				}
			}
			w := strings.TrimPrefix(string(base), "Benchmark")
			for _, v := range rec.Values {
				unit, val := v.Unit, v.Value
				if v.OrigUnit != "" {
					unit, val = v.OrigUnit, v.OrigValue
				}
				p := peer
				if p == "" {
					// An interleaved workload: every peer's figures in one
					// benchmark, as "<unit>@<peer>".
					var ok bool
					if unit, p, ok = strings.Cut(unit, "@"); !ok {
						continue
					}
				}
				res.add(w, p, unit, val)
			}
		}
	}
	return res, rd.Err()
}

func (res results) add(w, peer, unit string, v float64) {
	if res[w] == nil {
		res[w] = map[string]map[string][]float64{}
	}
	if res[w][peer] == nil {
		res[w][peer] = map[string][]float64{}
	}
	res[w][peer][unit] = append(res[w][peer][unit], v)
}

// median is benchstat's center of the values of peer in workload w.
func (res results) median(w, peer, unit string) (float64, bool) {
	vals := res[w][peer][unit]
	if len(vals) == 0 {
		return 0, false
	}
	s := benchmath.AssumeNothing.Summary(benchmath.NewSample(vals, &benchmath.DefaultThresholds), 0.95)
	return s.Center, true
}

// fastestPeer is the best median among the other WALs' configurations
// (not mmapwal, not the raw limits).
func (res results) fastestPeer(w, unit string, lowerIsBetter bool) (string, float64, bool) {
	best, bestV, found := "", 0.0, false
	for peer := range res[w] {
		if peer == "mmapwal" || strings.HasPrefix(peer, "raw") {
			continue
		}
		v, ok := res.median(w, peer, unit)
		if !ok || v <= 0 {
			continue
		}
		if !found || (lowerIsBetter && v < bestV) || (!lowerIsBetter && v > bestV) || (v == bestV && peer < best) {
			best, bestV, found = peer, v, true
		}
	}
	return best, bestV, found
}

type verdict struct {
	measured string
	met      bool
}

// target is one row of issue 12's table of targets.
type target struct {
	workload, goal string
	check          func(res results) (verdict, bool) // false: not measured in this run
	context        bool                              // not a target: the bound beside one
}

// vsFastest: mmapwal's median over the fastest other configuration's; met
// when the ratio is ≤ limit (times) or ≥ limit (rates).
func vsFastest(w, unit string, lowerIsBetter bool, limit float64, f func(float64) string) func(results) (verdict, bool) {
	return func(res results) (verdict, bool) {
		m, ok1 := res.median(w, "mmapwal", unit)
		peer, p, ok2 := res.fastestPeer(w, unit, lowerIsBetter)
		if !ok1 || !ok2 || m <= 0 {
			return verdict{}, false
		}
		r := m / p
		return verdict{fmt.Sprintf("%s vs %s %s: %.2fx", f(m), peer, f(p), r), lowerIsBetter == (r <= limit)}, true
	}
}

// vsRaw: mmapwal against a raw limit of the same run.
func vsRaw(w, unit, raw string, lowerIsBetter bool, limit float64, f func(float64) string) func(results) (verdict, bool) {
	return func(res results) (verdict, bool) {
		m, ok1 := res.median(w, "mmapwal", unit)
		l, ok2 := res.median(w, raw, unit)
		if !ok1 || !ok2 || m <= 0 || l <= 0 {
			return verdict{}, false
		}
		if lowerIsBetter {
			r := m / l
			return verdict{fmt.Sprintf("%s vs %s %s: %.2fx", f(m), raw, f(l), r), r <= limit}, true
		}
		r := m / l
		return verdict{fmt.Sprintf("%s vs %s %s: %.0f%%", f(m), raw, f(l), 100*r), r >= limit}, true
	}
}

func ns(v float64) string   { return fmt.Sprintf("%.0f ns", v) }
func us(v float64) string   { return fmt.Sprintf("%.1f µs", v/1e3) }
func rate(v float64) string { return fmt.Sprintf("%.3gM rec/s", v/1e6) }

var targets = []target{
	{"RandomRead", "≤ 0.8x the fastest peer's ns/read, every record checked",
		vsFastest("RandomRead", "ns/read", true, 0.8, ns), false},
	{"DurableAppend", "p50 ≤ the fastest peer's p50",
		vsFastest("DurableAppend", "p50-ns", true, 1, us), false},
	{"DurableAppend", "p50 ≤ 1.1x raw pwrite+fdatasync",
		vsRaw("DurableAppend", "p50-ns", "raw-pwrite", true, 1.1, us), false},
	{"AppendNoSync", "≥ 75% of the raw framed copy",
		vsRaw("AppendNoSync", "rec/s", "raw", false, 0.75, rate), false},
	{"AppendNoSync", "0 allocs/op", func(res results) (verdict, bool) {
		v, ok := res.median("AppendNoSync", "mmapwal", "allocs/op")
		return verdict{fmt.Sprintf("%.0f allocs/op", v), v == 0}, ok
	}, false},
	{"Replay", "≥ 3x the fastest peer, every CRC checked",
		vsFastest("Replay", "rec/s", false, 3, rate), false},
	{"Batch1000Sync", "≥ 90% of raw copy into a map + msync",
		vsRaw("Batch1000Sync", "rec/s", "raw-msync", false, 0.9, rate), false},
	{"Batch1000Sync", "≥ 1.5x the fastest peer",
		vsFastest("Batch1000Sync", "rec/s", false, 1.5, rate), false},
	// The same durable targets with every peer (and the raw route) taking
	// one operation in turn, so the device's drift falls on all alike.
	{"DurableAppendInterleaved", "p50 ≤ the fastest peer's p50 (interleaved)",
		vsFastest("DurableAppendInterleaved", "p50-ns", true, 1, us), false},
	{"DurableAppendInterleaved", "p50 ≤ 1.1x raw pwrite+fdatasync (interleaved)",
		vsRaw("DurableAppendInterleaved", "p50-ns", "raw-pwrite", true, 1.1, us), false},
	{"Batch1000SyncInterleaved", "≥ 1.5x the fastest peer (interleaved)",
		vsFastest("Batch1000SyncInterleaved", "rec/s", false, 1.5, rate), false},
	{"Durable64Writers", "≥ 20x the fastest peer",
		vsFastest("Durable64Writers", "rec/s", false, 20, rate), false},
	{"AtRest", "open, at rest: heap and RSS reported; RSS well below the log's size (< 25%)", func(res results) (verdict, bool) {
		heap, ok1 := res.median("AtRest", "mmapwal", "heap-MiB")
		rss, ok2 := res.median("AtRest", "mmapwal", "rss-MiB")
		size, ok3 := res.median("AtRest", "mmapwal", "log-MiB")
		if !ok1 || !ok2 || !ok3 || size <= 0 {
			return verdict{}, false
		}
		return verdict{fmt.Sprintf("heap %.1f MiB, RSS %.1f MiB for %.0f MiB of files (%.0f%%)", heap, rss, size, 100*rss/size), rss < size/4}, true
	}, false},
	// The bounds beside the targets above, from the same run.
	{"RandomRead", "the raw floor: offsets in memory, frame mapped, CRC checked",
		vsRaw("RandomRead", "ns/read", "raw", true, 0, ns), true},
	{"Replay", "the raw floor: walk the same frames, CRC checked",
		vsRaw("Replay", "rec/s", "raw", false, 0, rate), true},
	{"Batch1000Sync", "raw pwrite + fdatasync of the same frames",
		vsRaw("Batch1000Sync", "rec/s", "raw-pwrite", false, 0, rate), true},
	{"Batch1000SyncInterleaved", "raw pwrite + fdatasync of the same frames (interleaved)",
		vsRaw("Batch1000SyncInterleaved", "rec/s", "raw-pwrite", false, 0, rate), true},
	{"AtRest", "RSS after reading the whole log once (mapped file pages count)", func(res results) (verdict, bool) {
		rss, ok1 := res.median("AtRest", "mmapwal", "rss-read-MiB")
		size, ok2 := res.median("AtRest", "mmapwal", "log-MiB")
		if !ok1 || !ok2 || size <= 0 {
			return verdict{}, false
		}
		return verdict{fmt.Sprintf("RSS %.1f MiB for %.0f MiB of files", rss, size), true}, true
	}, true},
}

// writeTargets prints issue 12's targets against this run's medians.
func writeTargets(w io.Writer, res results) {
	fmt.Fprintln(w, "targets of issue 12 (\"fastest peer\" = the fastest other WAL configuration in this run):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "workload\ttarget\tmmapwal, measured\tresult")
	for _, t := range targets {
		v, ok := t.check(res)
		status := "not measured"
		switch {
		case ok && t.context:
			status = "(context)"
		case ok && v.met:
			status = "met"
		case ok:
			status = "MISSED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.workload, t.goal, v.measured, status)
	}
	tw.Flush()
}
