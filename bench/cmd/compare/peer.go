package main

import "sort"

// Store is the common face of every WAL under test. Seqs start at 1 in all of
// them; Append/AppendBatch return the seq(s) the WAL assigned.
type Store interface {
	Append(rec []byte) (seq uint64, err error)
	// AppendBatch writes recs contiguously with (when durable) one sync.
	AppendBatch(recs [][]byte) (first uint64, err error)
	Read(seq uint64) ([]byte, error)
	LastSeq() uint64
	// Replay calls fn for every record from seq from on, in order.
	Replay(from uint64, fn func(seq uint64, data []byte) error) error
	// Syncs is the number of data syncs (fsync/fdatasync/msync) performed so far.
	Syncs() uint64
	Close() error
}

// appendReader is implemented by stores with a zero-alloc read path.
type appendReader interface {
	ReadAppend(dst []byte, seq uint64) ([]byte, error)
}

// Peer describes one WAL implementation.
type Peer struct {
	Name string
	// Open opens (creating if needed) a WAL in dir. durable=false asks for
	// no per-write sync; durable=true for a sync before each Append/AppendBatch returns.
	Open func(dir string, durable bool) (Store, error)
	// NoSyncBatch > 0 means the peer cannot turn per-write sync off: the
	// no-sync workload (and data set preparation) uses AppendBatch in chunks
	// of this size instead.
	NoSyncBatch int
}

const mmapwalName = "mmapwal"

// peers is filled by the peer_*.go files' init functions; order is report order.
var peers []Peer

// reportOrder fixes the column order; unknown names go last.
var reportOrder = []string{mmapwalName, "tidwall/wal", "raft-wal"}

func registerPeer(p Peer) {
	peers = append(peers, p)
	rank := func(name string) int {
		for i, n := range reportOrder {
			if n == name {
				return i
			}
		}
		return len(reportOrder)
	}
	sort.SliceStable(peers, func(i, j int) bool { return rank(peers[i].Name) < rank(peers[j].Name) })
}

func findPeer(name string) *Peer {
	for i := range peers {
		if peers[i].Name == name {
			return &peers[i]
		}
	}
	return nil
}
