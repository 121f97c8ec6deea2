package compare

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	rosewal "github.com/rosedblabs/wal"
	tidwal "github.com/tidwall/wal"

	"github.com/mmapwal/wal/mmapwal"
)

// Store is the common face of every WAL under test. Seqs start at 1 in all
// of them; Append/AppendBatch return the seq(s) the WAL assigned.
type Store interface {
	Append(rec []byte) (seq uint64, err error)
	// AppendBatch writes recs contiguously with (when durable) one sync.
	AppendBatch(recs [][]byte) (first uint64, err error)
	Read(seq uint64) ([]byte, error)
	LastSeq() uint64
	// Replay calls fn for every record from seq 1 on, in order, by the
	// fastest public way the WAL offers to scan.
	Replay(fn func(seq uint64, data []byte) error) error
	// Syncs counts the data syncs (fsync, fdatasync or msync) so far.
	Syncs() uint64
	Close() error
}

// appendReader is implemented by stores with a zero-alloc read path.
type appendReader interface {
	ReadAppend(dst []byte, seq uint64) ([]byte, error)
}

// Peer is one WAL in one configuration.
type Peer struct {
	Name string
	// Open opens (creating if needed) a log in dir. durable asks for every
	// Append/AppendBatch to be durable before it returns; n is the number of
	// records the log will hold (for configurations sized to the log).
	Open func(dir string, durable bool, n int) (Store, error)
	// NoSyncBatch > 0: the peer cannot turn per-write sync off, so where
	// others append without sync it appends in AppendBatch calls of this
	// many records (one sync each).
	NoSyncBatch int
}

// peers in report order: benchstat's first column (the base of its
// ratios) is mmapwal.
var peers = []Peer{
	{Name: "mmapwal", Open: openMmapwal},
	{Name: "tidwall", Open: openTidwall(false)},
	{Name: "tidwall-cached", Open: openTidwall(true)},
	{Name: "raft-wal", Open: openRaftwal, NoSyncBatch: raftwalNoSyncBatch},
	{Name: "rosedb", Open: openRosedb},
}

// --- mmapwal: its defaults (SyncAlways); SyncNone where the workload is not durable.

type mmapwalStore struct{ w *mmapwal.WAL }

func openMmapwal(dir string, durable bool, _ int) (Store, error) {
	var opts *mmapwal.Options // defaults: SyncAlways
	if !durable {
		opts = &mmapwal.Options{Sync: mmapwal.SyncNone}
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
func (s mmapwalStore) Replay(fn func(uint64, []byte) error) error {
	return s.w.Replay(s.w.FirstSeq(), fn)
}
func (s mmapwalStore) Syncs() uint64 { return s.w.Stats().Syncs }
func (s mmapwalStore) Close() error  { return s.w.Close() }

// --- tidwall/wal v1.2.1: defaults (SegmentCacheSize 2), or "cached" with a
// segment cache covering the whole log, which is what a user who reads at
// random configures. Both set NoSync where the workload is not durable:
// its default (fsync on every Write) would make a no-sync workload a
// durable one. The caller chooses the index, so the adapter's mutex hands
// out last+1.

type tidwallStore struct {
	mu      sync.Mutex
	log     *tidwal.Log
	last    uint64
	durable bool
	syncs   uint64
	batch   tidwal.Batch
}

func openTidwall(cached bool) func(string, bool, int) (Store, error) {
	return func(dir string, durable bool, n int) (Store, error) {
		opts := *tidwal.DefaultOptions
		opts.NoSync = !durable
		if cached {
			// binary format: a uvarint length before each record
			opts.SegmentCacheSize = n*(recordSize+binaryOverhead)/opts.SegmentSize + 2
		}
		l, err := tidwal.Open(dir, &opts)
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
}

const binaryOverhead = 10 // a uvarint of up to 64 bits

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

// Replay: tidwall/wal has no iterator; sequential Read is its way to scan
// (it keeps no checksums to check).
func (s *tidwallStore) Replay(fn func(uint64, []byte) error) error {
	last := s.LastSeq()
	for seq := uint64(1); seq <= last; seq++ {
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

// --- hashicorp/raft-wal v0.4.2 as a raft.LogStore, as it is: every
// StoreLogs fsyncs and cannot be told not to. The caller chooses indexes, so
// the adapter's mutex serialises appenders.

type raftwalStore struct {
	mu    sync.Mutex
	w     *raftwal.WAL
	meta  *metadb.BoltMetaDB
	last  uint64
	syncs uint64
	logs  []raft.Log
	ptrs  []*raft.Log
}

// raftwalNoSyncBatch is the StoreLogs size used where the others append
// without sync: one fsync per this many records.
const raftwalNoSyncBatch = 1000

var _ raft.LogStore = (*raftwal.WAL)(nil)

func openRaftwal(dir string, _ bool, _ int) (Store, error) {
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
func (s *raftwalStore) Replay(fn func(uint64, []byte) error) error {
	last := s.LastSeq()
	var l raft.Log
	for seq := uint64(1); seq <= last; seq++ {
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

// --- rosedblabs/wal v1.3.8: its defaults (1 GiB segments, 32 KiB blocks,
// a CRC per chunk checked on every read), Sync where the workload is
// durable. It has no sequence numbers: Write returns a chunk position and
// Read takes one. A user keeps those positions in an index of their own, so
// this adapter does too (pos[seq-1]) and rebuilds it with a full scan on
// Open, as a user's startup would. The index counts in its heap at rest.
//
// Read, LastSeq and Replay must not run concurrently with appends (the
// benchmarks never do): a user's index would bring its own locking.

type rosedbStore struct {
	mu      sync.Mutex
	w       *rosewal.WAL
	pos     []rosewal.ChunkPosition
	durable bool
	syncs   uint64
}

func openRosedb(dir string, durable bool, _ int) (Store, error) {
	opts := rosewal.DefaultOptions
	opts.DirPath = dir
	opts.Sync = durable
	w, err := rosewal.Open(opts)
	if err != nil {
		return nil, err
	}
	s := &rosedbStore{w: w, durable: durable}
	r := w.NewReader()
	for {
		_, p, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("rosedb: rebuilding positions: %w", err)
		}
		s.pos = append(s.pos, *p)
	}
	return s, nil
}

func (s *rosedbStore) Append(rec []byte) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.w.Write(rec)
	if err != nil {
		return 0, err
	}
	s.pos = append(s.pos, *p)
	if s.durable {
		s.syncs++
	}
	return uint64(len(s.pos)), nil
}

func (s *rosedbStore) AppendBatch(recs [][]byte) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	first := uint64(len(s.pos)) + 1
	for _, r := range recs {
		s.w.PendingWrites(r)
	}
	ps, err := s.w.WriteAll()
	if err != nil {
		return 0, err
	}
	if s.durable {
		// WriteAll never syncs, whatever Options.Sync says
		if err := s.w.Sync(); err != nil {
			return 0, err
		}
		s.syncs++
	}
	for _, p := range ps {
		s.pos = append(s.pos, *p)
	}
	return first, nil
}

func (s *rosedbStore) Read(seq uint64) ([]byte, error) {
	if seq < 1 || seq > uint64(len(s.pos)) {
		return nil, fmt.Errorf("rosedb: seq %d not in [1, %d]", seq, len(s.pos))
	}
	return s.w.Read(&s.pos[seq-1])
}

func (s *rosedbStore) LastSeq() uint64 { return uint64(len(s.pos)) }

// Replay: rosedb's Reader walks the chunks in order, checking each CRC.
func (s *rosedbStore) Replay(fn func(uint64, []byte) error) error {
	r := s.w.NewReader()
	for seq := uint64(1); ; seq++ {
		data, _, err := r.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(seq, data); err != nil {
			return err
		}
	}
}

func (s *rosedbStore) Syncs() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncs
}

func (s *rosedbStore) Close() error { return s.w.Close() }
