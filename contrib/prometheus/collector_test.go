package prometheus

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/mmapwal/wal/mmapwal"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type fixed mmapwal.Stats

func (f fixed) Stats() mmapwal.Stats { return mmapwal.Stats(f) }

func hist(bounds []float64, counts []uint64, sum float64) mmapwal.Histogram {
	h := mmapwal.Histogram{Bounds: bounds, Counts: counts, Sum: sum}
	for _, c := range counts {
		h.Count += c
	}
	return h
}

func TestCollectorExposition(t *testing.T) {
	st := fixed{
		FirstSeq: 5, LastSeq: 104, SyncedSeq: 100, Segments: 2, DiskBytes: 2 << 20,
		Appended: 100, Batches: 3, BytesWritten: 6400, Syncs: 7, Rotations: 1, IndexRepairs: 0, Truncations: 2,
		Failed:         errors.New("sticky"),
		SyncSeconds:    hist([]float64{0.001, 0.01}, []uint64{4, 2, 1}, 0.05),
		RecordsPerSync: hist([]float64{1, 2, 4}, []uint64{3, 0, 2, 2}, 100),
		BatchRecords:   hist([]float64{1, 2, 4}, []uint64{90, 0, 0, 3}, 100),
	}
	c := NewCollector(st, &Options{ConstLabels: prometheus.Labels{"wal": "orders"}})
	want := `
# HELP mmapwal_records_appended_total Records appended since the log was opened.
# TYPE mmapwal_records_appended_total counter
mmapwal_records_appended_total{wal="orders"} 100
# HELP mmapwal_appended_bytes_total Frame bytes (headers and padding included) written since the log was opened.
# TYPE mmapwal_appended_bytes_total counter
mmapwal_appended_bytes_total{wal="orders"} 6400
# HELP mmapwal_syncs_total Segment data syncs (msync or fdatasync) since the log was opened.
# TYPE mmapwal_syncs_total counter
mmapwal_syncs_total{wal="orders"} 7
# HELP mmapwal_rotations_total Segments activated since the log was opened.
# TYPE mmapwal_rotations_total counter
mmapwal_rotations_total{wal="orders"} 1
# HELP mmapwal_truncations_total TruncateFront and TruncateBack calls that dropped records since the log was opened.
# TYPE mmapwal_truncations_total counter
mmapwal_truncations_total{wal="orders"} 2
# HELP mmapwal_index_repairs_total Segment indexes rebuilt after failing a check at read time.
# TYPE mmapwal_index_repairs_total counter
mmapwal_index_repairs_total{wal="orders"} 0
# HELP mmapwal_batches_total AppendBatch calls of more than one record since the log was opened.
# TYPE mmapwal_batches_total counter
mmapwal_batches_total{wal="orders"} 3
# HELP mmapwal_first_seq Oldest seq in the log (0 when it holds no records).
# TYPE mmapwal_first_seq gauge
mmapwal_first_seq{wal="orders"} 5
# HELP mmapwal_last_seq Newest seq in the log (0 when it holds no records).
# TYPE mmapwal_last_seq gauge
mmapwal_last_seq{wal="orders"} 104
# HELP mmapwal_synced_seq Last seq known durable.
# TYPE mmapwal_synced_seq gauge
mmapwal_synced_seq{wal="orders"} 100
# HELP mmapwal_segments Live segment files.
# TYPE mmapwal_segments gauge
mmapwal_segments{wal="orders"} 2
# HELP mmapwal_disk_bytes Size of the live segment files (preallocated), in bytes.
# TYPE mmapwal_disk_bytes gauge
mmapwal_disk_bytes{wal="orders"} 2.097152e+06
# HELP mmapwal_failed 1 when a write error made the log refuse writes until reopened, else 0.
# TYPE mmapwal_failed gauge
mmapwal_failed{wal="orders"} 1
# HELP mmapwal_sync_duration_seconds Latency of segment data syncs (msync or fdatasync), in seconds.
# TYPE mmapwal_sync_duration_seconds histogram
mmapwal_sync_duration_seconds_bucket{wal="orders",le="0.001"} 4
mmapwal_sync_duration_seconds_bucket{wal="orders",le="0.01"} 6
mmapwal_sync_duration_seconds_bucket{wal="orders",le="+Inf"} 7
mmapwal_sync_duration_seconds_sum{wal="orders"} 0.05
mmapwal_sync_duration_seconds_count{wal="orders"} 7
# HELP mmapwal_records_per_sync Records made durable by one flush round (group commit).
# TYPE mmapwal_records_per_sync histogram
mmapwal_records_per_sync_bucket{wal="orders",le="1"} 3
mmapwal_records_per_sync_bucket{wal="orders",le="2"} 3
mmapwal_records_per_sync_bucket{wal="orders",le="4"} 5
mmapwal_records_per_sync_bucket{wal="orders",le="+Inf"} 7
mmapwal_records_per_sync_sum{wal="orders"} 100
mmapwal_records_per_sync_count{wal="orders"} 7
# HELP mmapwal_records_per_append Records per Append (1) or AppendBatch call.
# TYPE mmapwal_records_per_append histogram
mmapwal_records_per_append_bucket{wal="orders",le="1"} 90
mmapwal_records_per_append_bucket{wal="orders",le="2"} 90
mmapwal_records_per_append_bucket{wal="orders",le="4"} 90
mmapwal_records_per_append_bucket{wal="orders",le="+Inf"} 93
mmapwal_records_per_append_sum{wal="orders"} 100
mmapwal_records_per_append_count{wal="orders"} 93
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	if n := testutil.CollectAndCount(c); n != 16 {
		t.Fatalf("%d metrics, want 16", n)
	}
}

func TestCollectorRealWAL(t *testing.T) {
	w, err := mmapwal.Open(t.TempDir(), &mmapwal.Options{SegmentSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for range 3 {
		if _, err := w.Append([]byte("abc")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.AppendBatch([][]byte{{1}, {2}}); err != nil {
		t.Fatal(err)
	}
	if err := w.TruncateFront(2); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(NewCollector(w, nil)); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP mmapwal_records_appended_total Records appended since the log was opened.
# TYPE mmapwal_records_appended_total counter
mmapwal_records_appended_total 5
# HELP mmapwal_truncations_total TruncateFront and TruncateBack calls that dropped records since the log was opened.
# TYPE mmapwal_truncations_total counter
mmapwal_truncations_total 1
# HELP mmapwal_first_seq Oldest seq in the log (0 when it holds no records).
# TYPE mmapwal_first_seq gauge
mmapwal_first_seq 2
# HELP mmapwal_last_seq Newest seq in the log (0 when it holds no records).
# TYPE mmapwal_last_seq gauge
mmapwal_last_seq 5
# HELP mmapwal_synced_seq Last seq known durable.
# TYPE mmapwal_synced_seq gauge
mmapwal_synced_seq 5
# HELP mmapwal_disk_bytes Size of the live segment files (preallocated), in bytes.
# TYPE mmapwal_disk_bytes gauge
mmapwal_disk_bytes 65536
# HELP mmapwal_records_per_sync Records made durable by one flush round (group commit).
# TYPE mmapwal_records_per_sync histogram
` + cumulative("mmapwal_records_per_sync", []string{"1", "2", "4", "8", "16", "32", "64", "128", "256", "512", "1024", "2048", "4096", "8192", "16384", "65536", "+Inf"}, []int{3, 4}, 5, 4)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"mmapwal_records_appended_total", "mmapwal_truncations_total", "mmapwal_first_seq", "mmapwal_last_seq",
		"mmapwal_synced_seq", "mmapwal_disk_bytes", "mmapwal_records_per_sync"); err != nil {
		t.Fatal(err)
	}
}

// cumulative writes histogram bucket lines: steps[i] is the cumulative count
// from bucket i on (buckets past the steps keep the last value).
func cumulative(name string, les []string, steps []int, sum, count int) string {
	var b strings.Builder
	for i, le := range les {
		v := steps[min(i, len(steps)-1)]
		b.WriteString(name + `_bucket{le="` + le + `"} ` + itoa(v) + "\n")
	}
	b.WriteString(name + "_sum " + itoa(sum) + "\n" + name + "_count " + itoa(count) + "\n")
	return b.String()
}

func itoa(i int) string { return strconv.Itoa(i) }
