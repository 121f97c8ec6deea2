package main

import (
	"os"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// hashicorp/raft-wal used as a raft.LogStore: StoreLog/StoreLogs/GetLog.
// Every StoreLogs call fsyncs; there is no way to turn that off. The caller
// chooses indexes, so appenders are serialised by this adapter's mutex.
type raftwalStore struct {
	mu    sync.Mutex
	w     *raftwal.WAL
	meta  *metadb.BoltMetaDB
	last  uint64
	syncs uint64
	logs  []raft.Log
	ptrs  []*raft.Log
}

// raftwalNoSyncBatch is the StoreLogs batch size used where other peers run
// without per-write sync (raft-wal cannot): one fsync per this many records.
const raftwalNoSyncBatch = 1000

func init() {
	registerPeer(Peer{Name: "raft-wal", Open: openRaftwal, NoSyncBatch: raftwalNoSyncBatch})
}

var _ raft.LogStore = (*raftwal.WAL)(nil)

func openRaftwal(dir string, _ bool) (Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// raft-wal's Close leaves its bolt meta DB (and its flock) open, so a
	// reopen in the same process would block: own the meta store and close it.
	meta := &metadb.BoltMetaDB{}
	w, err := raftwal.Open(dir, raftwal.WithLogger(hclog.NewNullLogger()), raftwal.WithMetaStore(meta))
	if err != nil {
		meta.Close()
		return nil, err
	}
	last, err := w.LastIndex()
	if err != nil {
		w.Close()
		meta.Close()
		return nil, err
	}
	return &raftwalStore{w: w, meta: meta, last: last}, nil
}

func (s *raftwalStore) Append(rec []byte) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seq := s.last + 1
	if err := s.w.StoreLog(&raft.Log{Index: seq, Term: 1, Type: raft.LogCommand, Data: rec}); err != nil {
		return 0, err
	}
	s.last = seq
	s.syncs++
	return seq, nil
}

func (s *raftwalStore) AppendBatch(recs [][]byte) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	first := s.last + 1
	if cap(s.logs) < len(recs) {
		s.logs = make([]raft.Log, len(recs))
		s.ptrs = make([]*raft.Log, len(recs))
	}
	logs, ptrs := s.logs[:len(recs)], s.ptrs[:len(recs)]
	for i, r := range recs {
		logs[i] = raft.Log{Index: first + uint64(i), Term: 1, Type: raft.LogCommand, Data: r}
		ptrs[i] = &logs[i]
	}
	if err := s.w.StoreLogs(ptrs); err != nil {
		return 0, err
	}
	s.last += uint64(len(recs))
	s.syncs++
	return first, nil
}

func (s *raftwalStore) Read(seq uint64) ([]byte, error) {
	var l raft.Log
	if err := s.w.GetLog(seq, &l); err != nil {
		return nil, err
	}
	return l.Data, nil
}

func (s *raftwalStore) LastSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// Replay: a raft LogStore is scanned with GetLog, one index at a time.
func (s *raftwalStore) Replay(from uint64, fn func(uint64, []byte) error) error {
	last := s.LastSeq()
	var l raft.Log
	for seq := from; seq <= last; seq++ {
		if err := s.w.GetLog(seq, &l); err != nil {
			return err
		}
		if err := fn(seq, l.Data); err != nil {
			return err
		}
	}
	return nil
}

func (s *raftwalStore) Syncs() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncs
}

func (s *raftwalStore) Close() error {
	err := s.w.Close()
	if merr := s.meta.Close(); err == nil {
		err = merr
	}
	return err
}
