//go:build !nommapwal

// Build with -tags nommapwal to benchmark only the peers (e.g. while the core
// package does not compile).

package main

import (
	"github.com/mmapwal/wal/mmapwal"
)

type mmapwalStore struct{ w *mmapwal.WAL }

func init() {
	registerPeer(Peer{Name: mmapwalName, Open: openMmapwal})
}

func openMmapwal(dir string, durable bool) (Store, error) {
	opts := &mmapwal.Options{FirstSeq: 1, Sync: mmapwal.SyncNone}
	if durable {
		opts.Sync = mmapwal.SyncAlways
	}
	w, err := mmapwal.Open(dir, opts)
	if err != nil {
		return nil, err
	}
	return mmapwalStore{w}, nil
}

func (s mmapwalStore) Append(rec []byte) (uint64, error)         { return s.w.Append(rec) }
func (s mmapwalStore) AppendBatch(recs [][]byte) (uint64, error) { return s.w.AppendBatch(recs) }
func (s mmapwalStore) Read(seq uint64) ([]byte, error)           { return s.w.Read(seq) }
func (s mmapwalStore) ReadAppend(dst []byte, seq uint64) ([]byte, error) {
	return s.w.ReadAppend(dst, seq)
}
func (s mmapwalStore) LastSeq() uint64 { return s.w.LastSeq() }
func (s mmapwalStore) Replay(from uint64, fn func(uint64, []byte) error) error {
	return s.w.Replay(from, fn)
}
func (s mmapwalStore) Syncs() uint64 { return s.w.Stats().Syncs }
func (s mmapwalStore) Close() error  { return s.w.Close() }
