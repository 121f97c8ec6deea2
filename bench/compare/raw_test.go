package compare

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mmapwal/wal/format"
)

// Raw limits of this machine and disk, measured without any WAL but in
// mmapwal's own frame layout (format.EncodeFrame: 32-byte header, CRC32C
// over the segment seed, header fields and payload, 8-byte alignment), so
// that "% of the limit" compares the same bytes and the same checksums:
//
//   - raw (AppendNoSync): frames encoded straight into a fallocated,
//     shared mapping, nothing else;
//   - raw (Replay): the same frames walked with format.CheckFrameHeader and
//     format.FrameCRC, every record handed to the same check the peers'
//     replays make (verifyKey);
//   - raw-msync / raw-pwrite (DurableAppend): one frame made durable, by a
//     copy into a prefaulted mapping + msync of its page(s), or by pwrite +
//     fdatasync;
//   - raw-msync / raw-pwrite (Batch1000Sync): the same for 1000 frames at once.
//
// Files are fallocated (as mmapwal's segments are preallocated), so no
// variant pays for growing a file.

// rawSeed stands for a segment's SegmentSeed.
var rawSeed = format.SegmentSeed(0x5eed_5eed_5eed_5eed)

var rawFrameSize = int(format.FrameSize(recordSize))

type rawFile struct {
	path string
	f    *os.File
	m    []byte
}

// newRawFile creates a fallocated file of size bytes in dir and maps it
// shared; populate prefaults the mapping for writing, as a WAL that
// prefaults its segments would.
func newRawFile(dir, name string, size int, populate bool) (*rawFile, error) {
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*rawFile, error) {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := unix.Fallocate(int(f.Fd()), 0, 0, int64(size)); err != nil {
		return fail(fmt.Errorf("fallocate: %w", err))
	}
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fail(fmt.Errorf("mmap: %w", err))
	}
	if populate {
		_ = unix.Madvise(m, unix.MADV_POPULATE_WRITE) // best effort: kernels before 5.14 lack it
	}
	return &rawFile{path: path, f: f, m: m}, nil
}

func (rf *rawFile) close() error {
	err := unix.Munmap(rf.m)
	if cerr := rf.f.Close(); err == nil {
		err = cerr
	}
	if rerr := os.Remove(rf.path); err == nil {
		err = rerr
	}
	return err
}

// rawFiles is newRawFile for a run: a fresh file per call of next, the
// previous one removed, with the timer stopped.
type rawFiles struct {
	r        *run
	dir      string
	size     int
	populate bool
	rf       *rawFile
}

func newRawFiles(r *run, size int, populate bool) *rawFiles {
	f := &rawFiles{r: r, dir: r.TempDir(), size: size, populate: populate}
	var err error
	f.rf, err = newRawFile(f.dir, "raw.dat", size, populate)
	r.check(err, "raw file")
	return f
}

func (f *rawFiles) next() *rawFile {
	f.r.stop()
	f.close()
	var err error
	f.rf, err = newRawFile(f.dir, "raw.dat", f.size, f.populate)
	f.r.check(err, "raw file")
	f.r.start()
	return f.rf
}

func (f *rawFiles) close() {
	if f.rf != nil {
		f.r.check(f.rf.close(), "raw file")
		f.rf = nil
	}
}

// rawAppend encodes one frame per iteration into the mapping.
func rawAppend(r *run) {
	recs := pool(r.size)
	files := newRawFiles(r, r.size*rawFrameSize, false)
	defer files.close()
	m := files.rf.m
	if r.b != nil {
		r.b.ReportAllocs()
	}
	r.reset()
	off := int64(0)
	for i := 0; i < r.n; i++ {
		j := i % r.size
		if i > 0 && j == 0 {
			m, off = files.next().m, 0
		}
		off += format.EncodeFrame(m[off:], rawSeed, format.KindFull, uint64(j+1), 0, recs[j])
	}
	r.stop()
	r.rate(r.n, "rec/s")
}

// rawReplayFile returns the mapped file of r.size frames (then a zero
// header, the end of the log), built once per size.
func rawReplayFile(r *run) *rawFile {
	fixtures.Lock()
	defer fixtures.Unlock()
	if rf, ok := fixtures.raws[r.size]; ok {
		return rf
	}
	dir, err := fixtureDir("raw")
	r.check(err, "raw fixture")
	rf, err := newRawFile(dir, "replay.dat", r.size*rawFrameSize+format.FrameHeaderSize, false)
	r.check(err, "raw fixture")
	off := int64(0)
	for i, rec := range pool(r.size) {
		off += format.EncodeFrame(rf.m[off:], rawSeed, format.KindFull, uint64(i+1), uint64(i), rec)
	}
	if fixtures.raws == nil {
		fixtures.raws = map[int]*rawFile{}
	}
	fixtures.raws[r.size] = rf
	return rf
}

// rawWalk checks every frame of m as recovery or a replay would and hands
// each payload to fn.
func rawWalk(m []byte, fn func(seq uint64, data []byte) error) error {
	const maxLen = 16 << 20 // mmapwal's default MaxRecordSize
	for off := int64(0); ; {
		h, st := format.CheckFrameHeader(m, off, maxLen)
		if st == format.FrameZero {
			return nil
		}
		if st != format.FrameOK {
			return fmt.Errorf("raw frame at %d: %v", off, st)
		}
		hdr := m[off : off+format.FrameHeaderSize]
		p := m[off+format.FrameHeaderSize : off+format.FrameHeaderSize+int64(h.Length)]
		if format.FrameCRC(rawSeed, hdr, p) != h.CRC {
			return fmt.Errorf("raw frame at %d: %v", off, format.FrameBadCRC)
		}
		if err := fn(h.Seq, p); err != nil {
			return err
		}
		off += format.FrameSize(len(p))
	}
}

func rawReplay(r *run) {
	m := rawReplayFile(r).m
	r.reset()
	for i := 0; i < r.n; i++ {
		next := uint64(1)
		err := rawWalk(m, func(seq uint64, data []byte) error {
			if seq != next {
				return fmt.Errorf("replay: seq %d, want %d", seq, next)
			}
			next++
			return verifyKey(data, seq, recordSize)
		})
		r.check(err, "raw")
		if next != uint64(r.size)+1 {
			r.Fatalf("raw replay: %d records, want %d", next-1, r.size)
		}
	}
	r.stop()
	r.rate(r.n*r.size, "rec/s")
}

// rawDurable makes one frame per iteration durable: viaMap copies it into a
// prefaulted mapping and msyncs its page(s); otherwise it is framed in a
// buffer, pwritten and fdatasynced.
func rawDurable(viaMap bool) func(*run) {
	return func(r *run) {
		recs := pool(r.size)
		frames := min(r.n, r.size)
		files := newRawFiles(r, frames*rawFrameSize, viaMap)
		defer files.close()
		rf := files.rf
		buf := make([]byte, rawFrameSize)
		lat := make([]time.Duration, r.n)
		page := int64(os.Getpagesize())
		fs := int64(rawFrameSize)
		r.reset()
		for i := 0; i < r.n; i++ {
			j := i % frames
			if i > 0 && j == 0 {
				rf = files.next()
			}
			off := int64(j) * fs
			seq := uint64(j + 1)
			t := time.Now()
			var err error
			if viaMap {
				format.EncodeFrame(rf.m[off:], rawSeed, format.KindFull, seq, seq-1, recs[j])
				err = unix.Msync(rf.m[off&^(page-1):off+fs], unix.MS_SYNC)
			} else {
				format.EncodeFrame(buf, rawSeed, format.KindFull, seq, seq-1, recs[j])
				if _, err = unix.Pwrite(int(rf.f.Fd()), buf, off); err == nil {
					err = unix.Fdatasync(int(rf.f.Fd()))
				}
			}
			lat[i] = time.Since(t)
			r.check(err, "raw durable append")
		}
		r.stop()
		r.metric(float64(percentile(lat, 50)), "p50-ns")
		r.metric(float64(percentile(lat, 99)), "p99-ns")
	}
}

// rawBatch makes one batch of frames durable per iteration, the same two ways.
func rawBatch(viaMap bool) func(*run) {
	return func(r *run) {
		recs := pool(r.size)
		batch := batchSize(r)
		perFile := r.size / batch
		bytes := batch * rawFrameSize
		files := newRawFiles(r, perFile*bytes, viaMap)
		defer files.close()
		rf := files.rf
		buf := make([]byte, bytes)
		page := os.Getpagesize()
		r.reset()
		for i := 0; i < r.n; i++ {
			k := i % perFile
			if i > 0 && k == 0 {
				rf = files.next()
			}
			off := k * bytes
			dst := buf
			if viaMap {
				dst = rf.m[off : off+bytes]
			}
			n := int64(0)
			for j := range batch {
				seq := uint64(k*batch + j + 1)
				n += format.EncodeFrame(dst[n:], rawSeed, rawKind(j, batch), seq, uint64(k*batch), recs[k*batch+j])
			}
			var err error
			if viaMap {
				err = unix.Msync(rf.m[off&^(page-1):off+bytes], unix.MS_SYNC)
			} else if _, err = unix.Pwrite(int(rf.f.Fd()), buf, int64(off)); err == nil {
				err = unix.Fdatasync(int(rf.f.Fd()))
			}
			r.check(err, "raw durable batch")
		}
		r.stop()
		r.rate(r.n*batch, "rec/s")
	}
}

// rawRandomRead is the floor of a random read of these frames: the frame
// file mapped, the offset of every frame in an in-memory array (what an
// index is, without its file), and per read the offset, the header check,
// the payload copied into a reused buffer and its CRC checked: two
// dependent memory accesses, as for any WAL with an offset index.
func rawRandomRead(r *run) {
	m := rawReplayFile(r).m
	offs := make([]int64, 0, r.size)
	off := int64(0)
	for range r.size {
		offs = append(offs, off)
		h, _ := format.CheckFrameHeader(m, off, 16<<20)
		off += format.FrameSize(int(h.Length))
	}
	buf := make([]byte, 0, recordSize)
	state := uint64(r.n)
	size := uint64(r.size)
	if r.b != nil {
		r.b.ReportAllocs()
	}
	r.reset()
	for i := 0; i < r.n; i++ {
		seq := 1 + splitmix64(&state)%size
		off := offs[seq-1]
		h, st := format.CheckFrameHeader(m, off, 16<<20)
		if st != format.FrameOK || h.Seq != seq {
			r.Fatalf("raw: frame of seq %d: %v", seq, st)
		}
		p := off + format.FrameHeaderSize
		buf = append(buf[:0], m[p:p+int64(h.Length)]...)
		if format.FrameCRC(rawSeed, m[off:p], buf) != h.CRC {
			r.Fatalf("raw: seq %d: checksum mismatch", seq)
		}
		if err := verify(buf, seq, recordSize); err != nil {
			r.Fatalf("raw: %v", err)
		}
	}
	r.stop()
	r.metric(float64(r.elapsed().Nanoseconds())/float64(r.n), "ns/read")
}

// rawKind is the frame kind of record j of a batch of n, as mmapwal writes
// batches (a single record is a full frame).
func rawKind(j, n int) byte {
	switch {
	case n == 1:
		return format.KindFull
	case j == 0:
		return format.KindFirst
	case j == n-1:
		return format.KindLast
	}
	return format.KindMiddle
}
