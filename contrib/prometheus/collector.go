// Package prometheus exports a mmapwal log's Stats as Prometheus metrics.
//
//	w, _ := mmapwal.Open(dir, nil)
//	prometheus.MustRegister(walprom.NewCollector(w, nil))
//
// Every scrape takes one Stats snapshot; nothing is recorded on the append
// path beyond what mmapwal itself keeps (atomics on fixed buckets).
package prometheus

import (
	"github.com/mmapwal/wal/mmapwal"
	"github.com/prometheus/client_golang/prometheus"
)

// Statser is what the collector reads; *mmapwal.WAL implements it.
type Statser interface {
	Stats() mmapwal.Stats
}

// Options tune the collector. The zero value is usable.
type Options struct {
	// ConstLabels are added to every metric, e.g. {"wal": "orders"} when a
	// process registers several logs.
	ConstLabels prometheus.Labels
}

// Collector is a prometheus.Collector for one log.
type Collector struct {
	w Statser

	appended, bytes, syncs, rotations, truncations, indexRepairs, batches *prometheus.Desc
	firstSeq, lastSeq, syncedSeq, segments, bytesOnDisk, failed           *prometheus.Desc
	syncSeconds, recordsPerSync, recordsPerAppend                         *prometheus.Desc
}

// NewCollector returns a collector for w (a *mmapwal.WAL, or anything with
// its Stats method).
func NewCollector(w Statser, opts *Options) *Collector {
	var o Options
	if opts != nil {
		o = *opts
	}
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("mmapwal_"+name, help, nil, o.ConstLabels)
	}
	return &Collector{
		w:                w,
		appended:         d("records_appended_total", "Records appended since the log was opened."),
		bytes:            d("appended_bytes_total", "Frame bytes (headers and padding included) written since the log was opened."),
		syncs:            d("syncs_total", "Segment data syncs (msync or fdatasync) since the log was opened."),
		rotations:        d("rotations_total", "Segments activated since the log was opened."),
		truncations:      d("truncations_total", "TruncateFront and TruncateBack calls that dropped records since the log was opened."),
		indexRepairs:     d("index_repairs_total", "Segment indexes rebuilt after failing a check at read time."),
		batches:          d("batches_total", "AppendBatch calls of more than one record since the log was opened."),
		firstSeq:         d("first_seq", "Oldest seq in the log (0 when it holds no records)."),
		lastSeq:          d("last_seq", "Newest seq in the log (0 when it holds no records)."),
		syncedSeq:        d("synced_seq", "Last seq known durable."),
		segments:         d("segments", "Live segment files."),
		bytesOnDisk:      d("disk_bytes", "Size of the live segment files (preallocated), in bytes."),
		failed:           d("failed", "1 when a write error made the log refuse writes until reopened, else 0."),
		syncSeconds:      d("sync_duration_seconds", "Latency of segment data syncs (msync or fdatasync), in seconds."),
		recordsPerSync:   d("records_per_sync", "Records made durable by one flush round (group commit)."),
		recordsPerAppend: d("records_per_append", "Records per Append (1) or AppendBatch call."),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.appended, c.bytes, c.syncs, c.rotations, c.truncations, c.indexRepairs, c.batches,
		c.firstSeq, c.lastSeq, c.syncedSeq, c.segments, c.bytesOnDisk, c.failed, c.syncSeconds, c.recordsPerSync, c.recordsPerAppend} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.w.Stats()
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter(c.appended, st.Appended)
	counter(c.bytes, st.BytesWritten)
	counter(c.syncs, st.Syncs)
	counter(c.rotations, st.Rotations)
	counter(c.truncations, st.Truncations)
	counter(c.indexRepairs, st.IndexRepairs)
	counter(c.batches, st.Batches)
	gauge(c.firstSeq, float64(st.FirstSeq))
	gauge(c.lastSeq, float64(st.LastSeq))
	gauge(c.syncedSeq, float64(st.SyncedSeq))
	gauge(c.segments, float64(st.Segments))
	gauge(c.bytesOnDisk, float64(st.DiskBytes))
	failed := 0.0
	if st.Failed != nil {
		failed = 1
	}
	gauge(c.failed, failed)
	histogram(ch, c.syncSeconds, st.SyncSeconds)
	histogram(ch, c.recordsPerSync, st.RecordsPerSync)
	histogram(ch, c.recordsPerAppend, st.BatchRecords)
}

// histogram converts mmapwal's per-bucket counts to Prometheus' cumulative
// ones.
func histogram(ch chan<- prometheus.Metric, d *prometheus.Desc, h mmapwal.Histogram) {
	buckets := make(map[float64]uint64, len(h.Bounds))
	var cum uint64
	for i, b := range h.Bounds {
		cum += h.Counts[i]
		buckets[b] = cum
	}
	ch <- prometheus.MustNewConstHistogram(d, h.Count, h.Sum, buckets)
}
