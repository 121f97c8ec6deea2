package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"
)

// durableWays measures ways of making one write of chunk bytes durable on
// the filesystem of dir, interleaved (one of each per round, so that the
// device's drift affects all alike): the figures behind the README's
// "what bounds it" for durable appends and batches.
//
// A mapped write is what mmapwal does (memcpy into a MAP_SHARED mapping
// whose pages were populated ahead, then msync of the written range); a
// written write is what hashicorp/raft-wal and tidwall/wal do (pwrite, then
// fdatasync or fsync). "fallocated" files hold unwritten extents, whose
// first write-back must also commit the extent conversion to the journal;
// "zero-filled" files were written with zeros first (every block already
// written), as a WAL that recycles old segment files would have.
func durableWays(dir string, chunk, rounds int) {
	const size = 128 << 20
	type way struct {
		name string
		f    *os.File
		m    []byte
		off  int
		lat  []time.Duration
		step func(w *way, b []byte) error
	}
	open := func(name string, zeroFill, mapped bool) *way {
		path := filepath.Join(dir, name)
		os.Remove(path)
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		must(err)
		if zeroFill {
			z := make([]byte, 1<<20)
			for i := 0; i < size>>20; i++ {
				_, err = f.Write(z)
				must(err)
			}
		} else {
			must(unix.Fallocate(int(f.Fd()), 0, 0, size))
		}
		must(f.Sync())
		w := &way{name: name, f: f}
		if mapped {
			w.m, err = unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
			must(err)
			must(unix.Madvise(w.m[:size/2], unix.MADV_POPULATE_WRITE))
		}
		return w
	}
	mappedMsync := func(w *way, b []byte) error {
		copy(w.m[w.off:], b)
		return unix.Msync(w.m[w.off&^4095:w.off+len(b)], unix.MS_SYNC)
	}
	mappedFdatasync := func(w *way, b []byte) error {
		copy(w.m[w.off:], b)
		return unix.Fdatasync(int(w.f.Fd()))
	}
	pwriteSync := func(full bool) func(w *way, b []byte) error {
		return func(w *way, b []byte) error {
			if _, err := unix.Pwrite(int(w.f.Fd()), b, int64(w.off)); err != nil {
				return err
			}
			if full {
				return unix.Fsync(int(w.f.Fd()))
			}
			return unix.Fdatasync(int(w.f.Fd()))
		}
	}
	ways := []*way{
		open("fallocated, mapped write + msync (mmapwal)", false, true),
		open("fallocated, pwrite + fsync (raft-wal)", false, false),
		open("fallocated, pwrite + fdatasync", false, false),
		open("zero-filled, mapped write + msync", true, true),
		open("zero-filled, pwrite + fdatasync", true, false),
		open("fallocated, mapped write + fdatasync", false, true),
	}
	ways[0].step, ways[1].step, ways[2].step = mappedMsync, pwriteSync(true), pwriteSync(false)
	ways[3].step, ways[4].step = mappedMsync, pwriteSync(false)
	ways[5].step = mappedFdatasync
	must(syncDir(dir))
	b := make([]byte, chunk)
	for i := range b {
		b[i] = byte(i)
	}
	rounds = min(rounds, size/2/chunk)
	for range rounds {
		for _, w := range ways {
			t := time.Now()
			must(w.step(w, b))
			w.lat = append(w.lat, time.Since(t))
			w.off += chunk
		}
	}
	fmt.Printf("one durable write of %d bytes, %d rounds, interleaved:\n", chunk, rounds)
	for _, w := range ways {
		sort.Slice(w.lat, func(i, j int) bool { return w.lat[i] < w.lat[j] })
		fmt.Printf("  %-44s p50 %7v  p90 %7v\n", w.name, w.lat[len(w.lat)/2].Round(time.Microsecond), w.lat[len(w.lat)*9/10].Round(time.Microsecond))
		if w.m != nil {
			unix.Munmap(w.m)
		}
		w.f.Close()
		os.Remove(w.f.Name())
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
