package main

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"
)

// Raw limits of this machine and disk, measured without any WAL:
//   - framed copy: 32-byte header + payload (8-byte aligned) memcpy'd into a
//     fallocated, mmapped file with a CRC32C per record;
//   - fdatasync after a one-page (4 KiB) write;
//   - batches (workload 4): the batch's frames made durable, either copied
//     into a prefaulted mapping + msync of the range (the least a mapped WAL
//     must do) or framed in memory + pwrite + fdatasync (a write()-based WAL).

const rawHeaderSize = 32

// rawCopy returns the seconds taken to frame all recs into a fresh mmapped file in dir.
func rawCopy(dir string, recs [][]byte) (time.Duration, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	frame := (rawHeaderSize + len(recs[0]) + 7) &^ 7
	size := int64(frame * len(recs))
	_, m, done, err := rawMappedFile(dir, "rawcopy.dat", size)
	if err != nil {
		return 0, err
	}
	defer done()

	start := time.Now()
	off := 0
	for i, r := range recs {
		rawFrame(m[off:], r, uint64(i+1))
		off += frame
	}
	return time.Since(start), nil
}

// rawFrame writes record r with seq into dst: length, CRC32C and seq in a
// rawHeaderSize-byte header, then the payload.
func rawFrame(dst, r []byte, seq uint64) {
	h := dst[:rawHeaderSize]
	p := dst[rawHeaderSize : rawHeaderSize+len(r)]
	copy(p, r)
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(r)))
	binary.LittleEndian.PutUint64(h[8:16], seq)
	binary.LittleEndian.PutUint32(h[4:8], crc32.Checksum(p, castagnoli))
}

// rawMappedFile creates a fallocated file of size bytes in dir and maps it
// shared; done unmaps, closes and deletes it.
func rawMappedFile(dir, name string, size int64) (*os.File, []byte, func(), error) {
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, nil, nil, err
	}
	fail := func(err error) (*os.File, []byte, func(), error) {
		f.Close()
		os.Remove(path)
		return nil, nil, nil, err
	}
	if err := unix.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		return fail(fmt.Errorf("fallocate: %w", err))
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fail(fmt.Errorf("mmap: %w", err))
	}
	return f, m, func() { unix.Munmap(m); f.Close(); os.Remove(path) }, nil
}

// rawBatches frames recs in batches of batchSize into a fallocated file and
// makes each batch durable before the next: viaWrite=false copies into a
// prefaulted shared mapping and msyncs the batch's pages; viaWrite=true
// frames into a buffer, pwrites it and fdatasyncs. It returns the total time.
func rawBatches(dir string, recs [][]byte, batchSize int, viaWrite bool) (time.Duration, error) {
	if len(recs) == 0 || batchSize < 1 {
		return 0, nil
	}
	frame := (rawHeaderSize + len(recs[0]) + 7) &^ 7
	size := int64(frame * len(recs))
	f, m, done, err := rawMappedFile(dir, "rawbatch.dat", size)
	if err != nil {
		return 0, err
	}
	defer done()
	fd := int(f.Fd())
	buf := make([]byte, frame*batchSize)
	if !viaWrite {
		_ = unix.Madvise(m, unix.MADV_POPULATE_WRITE) // best effort, as in a WAL that prefaults
	}
	page := os.Getpagesize()
	start := time.Now()
	off := 0
	for i := 0; i < len(recs); i += batchSize {
		batch := recs[i:min(i+batchSize, len(recs))]
		dst := m[off:]
		if viaWrite {
			dst = buf
		}
		n := 0
		for j, r := range batch {
			rawFrame(dst[n:], r, uint64(i+j+1))
			n += frame
		}
		if viaWrite {
			if _, err := unix.Pwrite(fd, buf[:n], int64(off)); err != nil {
				return 0, err
			}
			if err := unix.Fdatasync(fd); err != nil {
				return 0, err
			}
		} else if err := unix.Msync(m[off&^(page-1):off+n], unix.MS_SYNC); err != nil {
			return 0, err
		}
		off += n
	}
	return time.Since(start), nil
}

// rawFdatasync writes 4 KiB pages and fdatasyncs after each, returning the
// per-page latencies. overwrite=true rewrites pages of a file whose blocks
// were written and synced beforehand (a pure data flush); overwrite=false
// appends to a growing file (the flush then also carries the size update).
func rawFdatasync(dir string, count int, overwrite bool) ([]time.Duration, error) {
	path := filepath.Join(dir, "rawsync.dat")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	defer os.Remove(path)
	defer f.Close()
	page := make([]byte, 4096)
	for i := range page {
		page[i] = byte(i)
	}
	fd := int(f.Fd())
	if overwrite {
		zero := make([]byte, 1<<20)
		for off := 0; off < count*len(page); off += len(zero) {
			if _, err := f.WriteAt(zero, int64(off)); err != nil {
				return nil, err
			}
		}
		if err := unix.Fsync(fd); err != nil {
			return nil, err
		}
	}
	lat := make([]time.Duration, count)
	for i := range lat {
		binary.LittleEndian.PutUint64(page, uint64(i))
		t := time.Now()
		if _, err := unix.Pwrite(fd, page, int64(i*len(page))); err != nil {
			return nil, err
		}
		if err := unix.Fdatasync(fd); err != nil {
			return nil, err
		}
		lat[i] = time.Since(t)
	}
	return lat, nil
}

// percentile returns the p-th percentile (0 < p <= 100) of d, sorting d in place.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	k := int(float64(len(d))*p/100+0.999999) - 1
	if k < 0 {
		k = 0
	}
	if k >= len(d) {
		k = len(d) - 1
	}
	return d[k]
}
