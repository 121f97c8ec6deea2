//go:build unix

package recovery

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/mmapwal/wal/format"
)

// cleanLog builds, in dir, a cleanly closed log of n segments of segSize
// bytes, 5 records each, every one with its index checkpoint; the last is
// marked closed. Segments are sparse files: only the written bytes take
// space.
func cleanLog(tb testing.TB, dir string, n int) {
	tb.Helper()
	capacity := format.IndexCapacity(segSize)
	seg := make([]byte, 4096)
	idx := make([]byte, format.IndexFileSize(capacity))
	for i := range n {
		first, id := uint64(1+5*i), uint64(100+i)
		clear(seg)
		format.SegmentHeader{FirstSeq: first, ID: id, LogID: 7}.Encode(seg)
		seed := format.SegmentSeed(id)
		off := int64(format.SegmentHeaderSize)
		clear(idx)
		for k := range uint64(5) {
			binary.LittleEndian.PutUint32(idx[format.IndexHeaderSize+4*k:], uint32(off/format.FrameAlign))
			off += format.EncodeFrame(seg[off:], seed, format.KindFull, first+k, 0, []byte("record"))
		}
		var flags uint32
		if i == n-1 {
			flags = format.IndexClosed
		}
		format.IndexHeader{SegmentID: id, FirstSeq: first, Count: 5, EndOffset: uint64(off), Flags: flags}.Encode(idx)
		p := filepath.Join(dir, format.SegmentName(first))
		f, err := os.Create(p)
		if err == nil {
			_, err = f.Write(seg)
		}
		if err == nil {
			err = f.Truncate(segSize)
		}
		if err == nil {
			err = f.Close()
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, format.IndexName(first)), idx, 0o644)
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkRecoverClean10k is Recover (read-only: nothing to change) of a
// cleanly closed log of 10,000 segments, the work of mmapwal.Open. It
// reports the CPU time (user+sys) per operation as well, as the wall time
// is noisy on a shared machine.
func BenchmarkRecoverClean10k(b *testing.B) {
	const n = 10_000
	dir := b.TempDir()
	cleanLog(b, dir, n)
	var r0, r1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
	b.ResetTimer()
	for b.Loop() {
		rep, err := Recover(dir, &Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		if rep.NextSeq != 1+5*n || !rep.Segments[n-1].Closed {
			b.Fatalf("next seq %d", rep.NextSeq)
		}
	}
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
	cpu := time.Duration(syscall.TimevalToNsec(r1.Utime) - syscall.TimevalToNsec(r0.Utime) +
		syscall.TimevalToNsec(r1.Stime) - syscall.TimevalToNsec(r0.Stime))
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/1e6, "cpu-ms/op")
}
