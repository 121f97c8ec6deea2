package main

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
)

const (
	rawName       = "raw"        // raw limit of this disk/CPU
	rawAppendName = "raw-append" // fdatasync variant on a growing file
	rawWriteName  = "raw-write"  // workload 4 limit through pwrite + fdatasync
)

// results holds every per-run value, keyed by workload, metric and peer.
type results struct {
	vals  map[string][]float64
	notes []string
}

func newResults() *results { return &results{vals: map[string][]float64{}} }

func key(w int, metric, peer string) string { return fmt.Sprintf("%d|%s|%s", w, metric, peer) }

func (r *results) add(w int, metric, peer string, v float64) {
	k := key(w, metric, peer)
	r.vals[k] = append(r.vals[k], v)
}

func (r *results) note(s string) {
	for _, n := range r.notes {
		if n == s {
			return
		}
	}
	r.notes = append(r.notes, s)
}

type stat struct {
	med, min, max float64
	ok            bool
}

func (r *results) stat(w int, metric, peer string) stat {
	v := append([]float64(nil), r.vals[key(w, metric, peer)]...)
	if len(v) == 0 {
		return stat{}
	}
	sort.Float64s(v)
	med := v[len(v)/2]
	if len(v)%2 == 0 {
		med = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return stat{med: med, min: v[0], max: v[len(v)-1], ok: true}
}

// row is one line of the report table.
type row struct {
	w        int
	workload string
	metric   string // results metric key
	unit     string
	scale    float64 // stored value / scale = displayed value
	higher   bool    // higher is better (throughput) vs lower (latency, time)
	peerKey  string  // metric key used for peers (default: metric)
	target   string
	check    func(r *results, c config) (pass, known bool)
}

func (x row) display(v float64) string {
	v /= x.scale
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 100:
		return groupThousands(fmt.Sprintf("%.0f", v))
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

func groupThousands(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

func (x row) cell(r *results, peer string) string {
	m := x.metric
	if peer != mmapwalName && peer != rawName && peer != rawAppendName && peer != rawWriteName && x.peerKey != "" {
		m = x.peerKey
	}
	return x.cellStat(r.stat(x.w, m, peer))
}

func (x row) cellStat(s stat) string {
	if !s.ok {
		return "—"
	}
	if s.min == s.max {
		return x.display(s.med)
	}
	return fmt.Sprintf("%s (%s–%s)", x.display(s.med), x.display(s.min), x.display(s.max))
}

// speedup of mmapwal over peer on this row's metric (>1: mmapwal better).
func (x row) speedup(r *results, peer string) (float64, bool) {
	m := x.metric
	pk := x.metric
	if x.peerKey != "" {
		pk = x.peerKey
	}
	a, b := r.stat(x.w, m, mmapwalName), r.stat(x.w, pk, peer)
	if !a.ok || !b.ok || a.med == 0 || b.med == 0 {
		return 0, false
	}
	if x.higher {
		return a.med / b.med, true
	}
	return b.med / a.med, true
}

func med(r *results, w int, metric, peer string) (float64, bool) {
	s := r.stat(w, metric, peer)
	return s.med, s.ok
}

func speedupAtLeast(x row, r *results, peer string, k float64) (bool, bool) {
	s, ok := x.speedup(r, peer)
	return s >= k, ok
}

func reportRows(c config) []row {
	n := groupThousands(fmt.Sprint(c.n))
	w1 := fmt.Sprintf("append %s × %d B, no per-write sync", n, c.recSize)
	w2 := fmt.Sprintf("durable append, 1 writer, %d records", c.durableN)
	w3 := fmt.Sprintf("durable append, %d writers × %d", c.writers, c.perWriter)
	w4 := fmt.Sprintf("%d batches of %d + one sync", c.batches, c.batchSize)
	w5 := fmt.Sprintf("%s random reads after reopen (warm)", groupThousands(fmt.Sprint(c.reads)))
	w6 := fmt.Sprintf("reopen of %s records", n)
	w7 := fmt.Sprintf("full replay of %s", n)
	var rows []row
	rows = append(rows,
		row{w: 1, workload: w1, metric: "rec/s", unit: "records/s", scale: 1, higher: true,
			target: "≥15x tidwall, ≥75% of raw copy",
			check: func(r *results, c config) (bool, bool) {
				x := row{w: 1, metric: "rec/s", higher: true}
				p1, ok1 := speedupAtLeast(x, r, "tidwall/wal", 15)
				m, ok2 := med(r, 1, "rec/s", mmapwalName)
				raw, ok3 := med(r, 1, "rec/s", rawName)
				return p1 && m >= 0.75*raw, ok1 && ok2 && ok3
			}},
		row{w: 1, workload: "", metric: "MB/s", unit: "MB/s (payload)", scale: 1, higher: true},
		row{w: 2, workload: w2, metric: "p50", unit: "p50 µs", scale: 1e3, higher: false,
			target: "p50 ≤ 1.15x raw fdatasync",
			check: func(r *results, c config) (bool, bool) {
				m, ok1 := med(r, 2, "p50", mmapwalName)
				raw, ok2 := med(r, 2, "p50", rawName)
				return m <= 1.15*raw, ok1 && ok2
			}},
		row{w: 2, metric: "p99", unit: "p99 µs", scale: 1e3, higher: false},
		row{w: 3, workload: w3, metric: "rec/s", unit: "records/s", scale: 1, higher: true,
			target: "≥10x raft-wal, ≥32 rec/fdatasync",
			check: func(r *results, c config) (bool, bool) {
				x := row{w: 3, metric: "rec/s", higher: true}
				p1, ok1 := speedupAtLeast(x, r, "raft-wal", 10)
				rs, ok2 := med(r, 3, "rec/sync", mmapwalName)
				return p1 && rs >= 32, ok1 && ok2
			}},
		row{w: 3, metric: "rec/sync", unit: "records/fdatasync", scale: 1, higher: true},
		row{w: 4, workload: w4, metric: "rec/s", unit: "records/s", scale: 1, higher: true,
			target: "≥4x tidwall",
			check: func(r *results, c config) (bool, bool) {
				return speedupAtLeast(row{w: 4, metric: "rec/s", higher: true}, r, "tidwall/wal", 4)
			}},
	)
	read5 := func(metric string) func(r *results, c config) (bool, bool) {
		return func(r *results, c config) (bool, bool) {
			m, ok := med(r, 5, metric, mmapwalName)
			if !ok {
				return false, false
			}
			best := math.Inf(1)
			for _, p := range []string{"tidwall/wal", "raft-wal"} {
				if v, ok := med(r, 5, "read", p); ok && v < best {
					best = v
				}
			}
			if math.IsInf(best, 1) {
				return false, false
			}
			return best/m >= 30 && m <= 300, true
		}
	}
	rows = append(rows,
		row{w: 5, workload: w5, metric: "read", unit: "Read ns/op", scale: 1, higher: false,
			target: "≥30x faster peer, ≤300 ns", check: read5("read")},
		row{w: 5, metric: "readappend", peerKey: "read", unit: "ReadAppend ns/op", scale: 1, higher: false,
			target: "≥30x faster peer, ≤300 ns", check: read5("readappend")},
		row{w: 6, workload: w6, metric: "clean", unit: "ms after clean close", scale: 1, higher: false,
			target: "clean ≤ 2 ms",
			check: func(r *results, c config) (bool, bool) {
				m, ok := med(r, 6, "clean", mmapwalName)
				return m <= 2, ok
			}},
		row{w: 6, metric: "crash", unit: "ms after crash (copy while open)", scale: 1, higher: false},
		row{w: 7, workload: w7, metric: "rec/s", unit: "records/s", scale: 1, higher: true,
			target: "≥4x tidwall",
			check: func(r *results, c config) (bool, bool) {
				return speedupAtLeast(row{w: 7, metric: "rec/s", higher: true}, r, "tidwall/wal", 4)
			}},
	)
	return rows
}

// writeReport prints the machine, the table of medians (min–max over runs)
// and the notes as markdown.
func writeReport(out io.Writer, r *results, c config, m machine) {
	fmt.Fprintf(out, "## mmapwal vs peers\n\n")
	fmt.Fprintf(out, "Machine: %s\n\n", m)
	fmt.Fprintf(out, "Runs: %d per workload; cells are median (min–max). Speedup = mmapwal/peer for rates, peer/mmapwal for times (>1: mmapwal better). MB = 10^6 bytes of payload.\n\n", c.runs)
	fmt.Fprintln(out, "| # | workload | metric | mmapwal | tidwall/wal | raft-wal | raw limit | vs tidwall | vs raft-wal | target | result |")
	fmt.Fprintln(out, "|---|---|---|--:|--:|--:|--:|--:|--:|---|---|")
	for _, x := range reportRows(c) {
		if !c.selected(x.w) {
			continue
		}
		cells := []string{fmt.Sprint(x.w), x.workload, x.unit}
		for _, p := range []string{mmapwalName, "tidwall/wal", "raft-wal"} {
			if p != mmapwalName && x.metric == "readappend" {
				cells = append(cells, "(Read)")
				continue
			}
			cells = append(cells, x.cell(r, p))
		}
		cells = append(cells, x.cell(r, rawName))
		for _, p := range []string{"tidwall/wal", "raft-wal"} {
			if s, ok := x.speedup(r, p); ok {
				cells = append(cells, formatSpeedup(s))
			} else {
				cells = append(cells, "—")
			}
		}
		cells = append(cells, x.target)
		result := ""
		if x.check != nil {
			result = "n/a"
			if pass, known := x.check(r, c); known && pass {
				result = "PASS"
			} else if known {
				result = "MISS"
			}
		}
		cells = append(cells, result)
		fmt.Fprintf(out, "| %s |\n", strings.Join(cells, " | "))
	}
	fmt.Fprintln(out)
	if c.selected(1) || c.selected(2) || c.selected(4) {
		fmt.Fprintln(out, "Raw limits, same disk, same run (measured right before the workload they bound):")
		if c.selected(1) {
			x := row{w: 1, scale: 1}
			x.metric = "rec/s"
			rs := x.cell(r, rawName)
			x.metric = "MB/s"
			fmt.Fprintf(out, "- framed copy (%d-byte header + %d B payload, 8-byte aligned) + CRC32C into a fallocated mmapped file, %s records: %s records/s, %s MB/s\n",
				rawHeaderSize, c.recSize, groupThousands(fmt.Sprint(c.n)), rs, x.cell(r, rawName))
		}
		if c.selected(2) {
			for _, v := range []struct{ name, what string }{
				{rawName, "4 KiB pwrite over already-written blocks + fdatasync (the raw fdatasync column above)"},
				{rawAppendName, "4 KiB append to a growing file + fdatasync"},
			} {
				x := row{w: 2, scale: 1e3, metric: "p50"}
				p50 := x.cell(r, v.name)
				x.metric = "p99"
				fmt.Fprintf(out, "- %s, %d times: p50 %s µs, p99 %s µs\n", v.what, c.durableN, p50, x.cell(r, v.name))
			}
		}
		if c.selected(4) {
			x := row{w: 4, scale: 1, metric: "rec/s"}
			fmt.Fprintf(out, "- %d batches of %d frames copied into a prefaulted fallocated mapping + msync of the batch (the raw limit column of workload 4): %s records/s\n",
				c.batches, c.batchSize, x.cell(r, rawName))
			fmt.Fprintf(out, "- the same batches framed in memory + pwrite + fdatasync (a write()-based WAL's limit): %s records/s\n",
				x.cell(r, rawWriteName))
		}
		fmt.Fprintln(out)
	}
	fmt.Fprintln(out, "Notes:")
	for _, p := range peers {
		if p.NoSyncBatch > 0 && c.selected(1) {
			fmt.Fprintf(out, "- %s cannot turn per-write sync off: in workload 1 (and to load the data for 5–7) it appends with StoreLogs batches of %d, i.e. one fsync per %d records — its fastest use, not a no-sync run.\n", p.Name, p.NoSyncBatch, p.NoSyncBatch)
		}
	}
	if c.selected(1) {
		fmt.Fprintln(out, "- Workload 1 times the appends only (Open and Close excluded; both mmapwal SyncNone and tidwall/wal NoSync sync in Close).")
	}
	if c.selected(3) {
		fmt.Fprintln(out, "- Workload 3 records/fdatasync: mmapwal from Stats().Syncs; tidwall/wal and raft-wal take indexes from the caller, so their adapters serialise writers with a mutex and every Write/StoreLog is one fsync.")
	}
	if c.selected(5) {
		fmt.Fprintln(out, "- Workload 5: every read is verified (length, key, CRC32C) inside the timed loop; its raw-limit column is the floor of a random read: copying the same seqs' records out of an in-memory array of all n records, verified the same way. The ReadAppend row's speedup is against the peers' Read; the target uses the faster peer. A peer slower than the per-run time budget is stopped early (see below) and its ns/op is over the reads done.")
	}
	if c.selected(6) {
		fmt.Fprintln(out, "- Workload 6: Open() time with a warm page cache; the crash copy is a copy of the directory taken while the WAL was still open after the appends of workload 1.")
	}
	if c.selected(7) {
		fmt.Fprintln(out, "- Workload 7: mmapwal Replay; tidwall/wal and raft-wal have no iterator, so sequential Read/GetLog; every record verified.")
	}
	if findPeer(mmapwalName) == nil {
		fmt.Fprintln(out, "- mmapwal was not built into this binary (-tags nommapwal): its column is empty.")
	}
	for _, p := range peers {
		if s := r.stat(5, "reads done", p.Name); s.ok && s.min < float64(c.reads) {
			fmt.Fprintf(out, "- %s: workload 5 hit its %v time budget per run: %s of %s reads done.\n",
				p.Name, c.readBudget, row{scale: 1}.cellStat(s), groupThousands(fmt.Sprint(c.reads)))
		}
	}
	for _, n := range r.notes {
		fmt.Fprintf(out, "- %s\n", n)
	}
}

func formatSpeedup(s float64) string {
	switch {
	case s >= 100:
		return groupThousands(fmt.Sprintf("%.0f", s)) + "x"
	case s >= 10:
		return fmt.Sprintf("%.1fx", s)
	case s >= 0.1:
		return fmt.Sprintf("%.2fx", s)
	default:
		return fmt.Sprintf("%.2gx", s)
	}
}
