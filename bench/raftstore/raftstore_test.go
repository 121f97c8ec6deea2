// Package raftstore_test compares raft log stores in one process on the
// same disk: raftstore (mmapwal), hashicorp/raft-wal and
// hashicorp/raft-boltdb/v2, all durable (fsync before StoreLogs returns).
//
//	cd bench && go test -run '^$' -bench . -benchtime 2s ./raftstore/
//
// raft's own github.com/hashicorp/raft/bench functions run for each store;
// its StoreLog writes index 0 first, which a monotonic store rejects (raft
// never uses index 0), so it runs through a shim that adds 1 to every
// index; its DeleteRange leaves gaps, which monotonic stores refuse, so it
// is not run.
package raftstore_test

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	raftwal "github.com/hashicorp/raft-wal"
	raftbench "github.com/hashicorp/raft/bench"
	"github.com/mmapwal/wal/raftstore"
)

type store interface {
	raft.LogStore
	raft.StableStore
	Close() error
}

var stores = []struct {
	name string
	open func(dir string) (store, error)
}{
	{"raftstore", func(dir string) (store, error) { return raftstore.Open(dir, nil) }},
	{"raft-wal", func(dir string) (store, error) { return raftwal.Open(dir) }},
	{"raft-boltdb-v2", func(dir string) (store, error) {
		return raftboltdb.NewBoltStore(filepath.Join(dir, "raft.db"))
	}},
}

func each(b *testing.B, fn func(b *testing.B, s store)) {
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) {
			s, err := st.open(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			fn(b, s)
		})
	}
}

// shift adds 1 to every index (raft's bench.StoreLog starts at index 0).
type shift struct{ raft.LogStore }

func (s shift) StoreLog(l *raft.Log) error {
	c := *l
	c.Index++
	return s.LogStore.StoreLog(&c)
}

func BenchmarkRaft(b *testing.B) {
	for _, c := range []struct {
		name string
		fn   func(*testing.B, store)
	}{
		{"FirstIndex", func(b *testing.B, s store) { raftbench.FirstIndex(b, s) }},
		{"LastIndex", func(b *testing.B, s store) { raftbench.LastIndex(b, s) }},
		{"GetLog", func(b *testing.B, s store) { raftbench.GetLog(b, s) }},
		{"StoreLog", func(b *testing.B, s store) { raftbench.StoreLog(b, shift{s}) }},
		{"StoreLogs", func(b *testing.B, s store) { raftbench.StoreLogs(b, s) }},
		{"Set", func(b *testing.B, s store) { raftbench.Set(b, s) }},
		{"Get", func(b *testing.B, s store) { raftbench.Get(b, s) }},
		{"SetUint64", func(b *testing.B, s store) { raftbench.SetUint64(b, s) }},
		{"GetUint64", func(b *testing.B, s store) { raftbench.GetUint64(b, s) }},
	} {
		b.Run(c.name, func(b *testing.B) { each(b, c.fn) })
	}
}

func batch(from uint64, n, size int) []*raft.Log {
	logs := make([]*raft.Log, n)
	for i := range logs {
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(j + i)
		}
		logs[i] = &raft.Log{Index: from + uint64(i), Term: 1, Type: raft.LogCommand, Data: data}
	}
	return logs
}

// BenchmarkStoreLogs64x1KiB: durable StoreLogs of 64 entries of 1 KiB.
func BenchmarkStoreLogs64x1KiB(b *testing.B) {
	each(b, func(b *testing.B, s store) {
		b.SetBytes(64 << 10)
		next := uint64(1)
		logs := batch(next, 64, 1024)
		b.ResetTimer()
		for n := 0; n < b.N; n++ {
			for i, l := range logs {
				l.Index = next + uint64(i)
			}
			if err := s.StoreLogs(logs); err != nil {
				b.Fatal(err)
			}
			next += 64
		}
		b.ReportMetric(float64(b.N*64)/b.Elapsed().Seconds(), "entries/s")
	})
}

// BenchmarkGetLogRandom: GetLog of random indexes among 20,000 entries of 1 KiB.
func BenchmarkGetLogRandom(b *testing.B) {
	const total = 20_000
	each(b, func(b *testing.B, s store) {
		for from := uint64(1); from <= total; from += 500 {
			if err := s.StoreLogs(batch(from, 500, 1024)); err != nil {
				b.Fatal(err)
			}
		}
		r := rand.New(rand.NewPCG(1, 2))
		var l raft.Log
		b.SetBytes(1024)
		b.ResetTimer()
		for n := 0; n < b.N; n++ {
			i := r.Uint64N(total) + 1
			if err := s.GetLog(i, &l); err != nil {
				b.Fatal(fmt.Errorf("GetLog(%d): %w", i, err))
			}
		}
	})
}

// BenchmarkStoreLogsInterleaved: the same durable StoreLogs of 64 × 1 KiB,
// one batch per store in turn, so that the device's drift (on a shared VM
// a flush can take twice as long one minute as the next) falls on every
// store alike; the separate BenchmarkStoreLogs64x1KiB runs each store for a
// second or more in sequence. Reports each store's median batch time.
func BenchmarkStoreLogsInterleaved(b *testing.B) {
	var open []store
	for _, st := range stores {
		s, err := st.open(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		open = append(open, s)
	}
	lat := make([][]time.Duration, len(open))
	logs := batch(1, 64, 1024)
	next := uint64(1)
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for i, l := range logs {
			l.Index = next + uint64(i)
		}
		for j, s := range open {
			t0 := time.Now()
			if err := s.StoreLogs(logs); err != nil {
				b.Fatal(err)
			}
			lat[j] = append(lat[j], time.Since(t0))
		}
		next += 64
	}
	b.StopTimer()
	for j, d := range lat {
		slices.Sort(d)
		b.ReportMetric(float64(d[len(d)/2].Microseconds()), "µs-p50-"+stores[j].name)
	}
}
