package main

import (
	"sync"

	"github.com/tidwall/wal"
)

// tidwall/wal: every Write takes the log's mutex and (unless NoSync) fsyncs
// the tail segment. The caller chooses the index, so this adapter serialises
// appenders with its own mutex to hand out last+1.
type tidwallStore struct {
	mu      sync.Mutex
	log     *wal.Log
	last    uint64
	durable bool
	syncs   uint64
	batch   wal.Batch
}

func init() {
	registerPeer(Peer{Name: "tidwall/wal", Open: openTidwall})
}

func openTidwall(dir string, durable bool) (Store, error) {
	opts := *wal.DefaultOptions
	opts.NoSync = !durable
	l, err := wal.Open(dir, &opts)
	if err != nil {
		return nil, err
	}
	last, err := l.LastIndex()
	if err != nil {
		l.Close()
		return nil, err
	}
	return &tidwallStore{log: l, last: last, durable: durable}, nil
}

func (s *tidwallStore) Append(rec []byte) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seq := s.last + 1
	if err := s.log.Write(seq, rec); err != nil {
		return 0, err
	}
	s.last = seq
	if s.durable {
		s.syncs++
	}
	return seq, nil
}

func (s *tidwallStore) AppendBatch(recs [][]byte) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	first := s.last + 1
	s.batch.Clear()
	for i, r := range recs {
		s.batch.Write(first+uint64(i), r)
	}
	if err := s.log.WriteBatch(&s.batch); err != nil {
		return 0, err
	}
	s.last += uint64(len(recs))
	if s.durable {
		s.syncs++
	}
	return first, nil
}

func (s *tidwallStore) Read(seq uint64) ([]byte, error) { return s.log.Read(seq) }

func (s *tidwallStore) LastSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// Replay: tidwall/wal has no iterator; sequential Read is its way to scan.
func (s *tidwallStore) Replay(from uint64, fn func(uint64, []byte) error) error {
	last := s.LastSeq()
	for seq := from; seq <= last; seq++ {
		b, err := s.log.Read(seq)
		if err != nil {
			return err
		}
		if err := fn(seq, b); err != nil {
			return err
		}
	}
	return nil
}

func (s *tidwallStore) Syncs() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncs
}

func (s *tidwallStore) Close() error { return s.log.Close() }
