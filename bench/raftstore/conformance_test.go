package raftstore_test

import (
	"testing"

	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	"github.com/mmapwal/wal/raftstore/raftstoretest"
)

// TestConformanceRaftWAL runs raftstore's conformance suite against
// hashicorp/raft-wal v0.4.2, the store raft users have today (raftstore and
// raft.InmemStore run it in the raftstore module). It lives here because
// raft-wal v0.4.2 builds beside raft v1.8.0 only with go-metrics held at
// v0.5.4 (this module's go.mod), which the raftstore module cannot do
// without breaking `go mod tidy` for its users. Against raft-wal v0.4.0 the
// suite's Reopen case failed (hashicorp/raft-wal#31: after a suffix is
// deleted, reopening fails with "sealed segment has no index block").
func TestConformanceRaftWAL(t *testing.T) {
	raftstoretest.Run(t, func(t *testing.T, dir string) raft.LogStore {
		meta := &metadb.BoltMetaDB{}
		w, err := raftwal.Open(dir, raftwal.WithMetaStore(meta), raftwal.WithSegmentSize(1<<20))
		if err != nil {
			t.Fatalf("raft-wal Open(%s): %v", dir, err)
		}
		return &raftWAL{WAL: w, meta: meta}
	})
}

// raftWAL closes the metadata DB too: raft-wal's Close (v0.4.2) leaves it
// open (and its flock held), so the same process cannot reopen the dir.
type raftWAL struct {
	*raftwal.WAL
	meta *metadb.BoltMetaDB
}

func (w *raftWAL) Close() error {
	err := w.WAL.Close()
	if merr := w.meta.Close(); err == nil {
		err = merr
	}
	return err
}
