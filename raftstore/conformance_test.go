package raftstore_test

import (
	"testing"

	"github.com/hashicorp/raft"
	"github.com/mmapwal/wal/mmapwal"
	"github.com/mmapwal/wal/raftstore"
	"github.com/mmapwal/wal/raftstore/raftstoretest"
)

func openStore(t *testing.T, dir string) raft.LogStore {
	s, err := raftstore.Open(dir, &raftstore.Options{WAL: &mmapwal.Options{SegmentSize: 1 << 20}})
	if err != nil {
		t.Fatalf("raftstore.Open(%s): %v", dir, err)
	}
	return s
}

// TestConformance runs the suite against this store and against
// raft.InmemStore, raft's reference. It also runs against
// hashicorp/raft-wal, in the bench module (bench/raftstore): raft-wal
// v0.4.2 builds beside raft v1.8.0 only with go-metrics held at v0.5.4,
// and as a test dependency here it would break `go mod tidy` for every
// module that imports this one. Passing with three stores shows the suite
// encodes raft's semantics, not this store's.
func TestConformance(t *testing.T) {
	t.Run("raftstore", func(t *testing.T) {
		raftstoretest.Run(t, openStore)
	})
	t.Run("raft.InmemStore", func(t *testing.T) {
		raftstoretest.Run(t, func(t *testing.T, dir string) raft.LogStore {
			return raft.NewInmemStore()
		}, raftstoretest.WithoutReopen())
	})
}
