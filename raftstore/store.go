package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
	"github.com/mmapwal/wal/mmapwal"
)

// Compile-time checks of the interfaces raft looks for.
var (
	_ raft.LogStore               = (*Store)(nil)
	_ raft.StableStore            = (*Store)(nil)
	_ raft.MonotonicLogStore      = (*Store)(nil)
	_ raft.CommitTrackingLogStore = (*Store)(nil)
)

// Sentinel errors; test with errors.Is.
var (
	// ErrNotContiguous: StoreLogs was given an index that does not follow
	// the previous one (the store's last index, or the previous entry of the
	// batch). The message names both indexes.
	ErrNotContiguous = errors.New("raftstore: log indexes not contiguous")
	// ErrMiddleRange: DeleteRange was asked to delete a range that is
	// neither a prefix nor a suffix of the log.
	ErrMiddleRange = errors.New("raftstore: only a prefix or a suffix of the log can be deleted")
	// ErrClosed: the Store is closed.
	ErrClosed = mmapwal.ErrClosed
)

// Subdirectories of the store's directory.
const (
	logDir    = "log"
	stableDir = "stable"
)

// Options configure Open. A nil *Options means all defaults.
type Options struct {
	// WAL is passed to the log that holds raft's entries; nil = defaults
	// (SyncAlways: StoreLogs returns once the batch is durable). With
	// SyncPeriodic or SyncNone, StoreLogs returns before that, and raft's
	// durability assumption no longer holds. MaxSegments must be 0: raft
	// decides which entries go (DeleteRange). FirstSeq is ignored: indexes
	// are mapped (see the package doc). WAL.Logger nil = Logger.
	WAL *mmapwal.Options
	// Logger receives the store's own messages; nil = silent.
	Logger *slog.Logger
}

// view is what readers need, replaced as a whole (atomic pointer) after each
// successful change: readers never take the writer lock.
type view struct {
	first, last uint64 // raft indexes; both 0 when empty
	offset      uint64 // raft index = WAL seq + offset (mod 2^64)
}

func (v *view) empty() bool { return v.last == 0 }

// Store is a raft LogStore, StableStore, MonotonicLogStore and
// CommitTrackingLogStore on mmapwal. Safe for concurrent use.
type Store struct {
	log    *mmapwal.WAL
	stable *stable
	logger *slog.Logger
	closed atomic.Bool
	v      atomic.Pointer[view]

	// mu serialises the changes (StoreLogs, DeleteRange, StageCommitIndex,
	// Close) and guards the fields below. Readers (GetLog, FirstIndex,
	// LastIndex) use v only.
	mu        sync.Mutex
	staged    uint64 // from StageCommitIndex, not yet written
	hasStaged bool
	commit    uint64 // commit index carried by the newest record written
	hasCommit bool
	buf       []byte // encoding scratch
}

var silent = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.Level(math.MaxInt32)}))

// Open opens (creating if needed) the store in dir: the log in dir/log, the
// stable store in dir/stable. nil opts = defaults.
func Open(dir string, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil {
		o.Logger = silent
	}
	var wo mmapwal.Options
	if o.WAL != nil {
		wo = *o.WAL
	}
	if wo.MaxSegments != 0 {
		return nil, fmt.Errorf("%w: raftstore: WAL.MaxSegments must be 0 (raft deletes entries with DeleteRange), got %d", mmapwal.ErrInvalidOptions, wo.MaxSegments)
	}
	wo.FirstSeq = 0
	if wo.Logger == nil {
		wo.Logger = o.Logger
	}
	st, err := openStable(filepath.Join(dir, stableDir), wo, wo.Logger)
	if err != nil {
		return nil, err
	}
	lw, err := mmapwal.Open(filepath.Join(dir, logDir), &wo)
	if err != nil {
		st.close()
		return nil, fmt.Errorf("raftstore: open log: %w", err)
	}
	s := &Store{log: lw, stable: st, logger: o.Logger}
	if err := s.recover(); err != nil {
		lw.Close()
		st.close()
		return nil, err
	}
	v := s.v.Load()
	s.logger.Info("raftstore: opened", "dir", dir, "first", v.first, "last", v.last, "commit", s.commit)
	return s, nil
}

// recover derives the index mapping from the first record and the commit
// index from the last, and checks the last record's index agrees.
func (s *Store) recover() error {
	first, last := s.log.FirstSeq(), s.log.LastSeq()
	if first == 0 {
		s.v.Store(&view{})
		return nil
	}
	var l raft.Log
	if _, _, err := s.readSeq(first, &l); err != nil {
		return err
	}
	off := l.Index - first
	commit, hasCommit, err := s.readSeq(last, &l)
	if err != nil {
		return err
	}
	if l.Index != last+off {
		return fmt.Errorf("%w: raftstore: %s: record %d holds index %d, record %d index %d: not contiguous",
			mmapwal.ErrCorrupt, s.log.Dir(), first, first+off, last, l.Index)
	}
	s.commit, s.hasCommit = commit, hasCommit
	s.v.Store(&view{first: first + off, last: last + off, offset: off})
	return nil
}

func (s *Store) readSeq(seq uint64, l *raft.Log) (uint64, bool, error) {
	b, err := s.log.Read(seq)
	if err != nil {
		return 0, false, fmt.Errorf("raftstore: read record %d: %w", seq, err)
	}
	commit, has, err := decodeRecord(b, l)
	if err != nil {
		return 0, false, fmt.Errorf("%w: raftstore: %s record %d: %v", mmapwal.ErrCorrupt, s.log.Dir(), seq, err)
	}
	return commit, has, nil
}

// FirstIndex implements raft.LogStore: 0 when empty.
func (s *Store) FirstIndex() (uint64, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	return s.v.Load().first, nil
}

// LastIndex implements raft.LogStore: 0 when empty.
func (s *Store) LastIndex() (uint64, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	return s.v.Load().last, nil
}

// GetLog implements raft.LogStore; a missing index gives raft.ErrLogNotFound
// itself (not wrapped).
func (s *Store) GetLog(index uint64, out *raft.Log) error {
	if s.closed.Load() {
		return ErrClosed
	}
	v := s.v.Load()
	if v.empty() || index < v.first || index > v.last {
		return raft.ErrLogNotFound
	}
	b, err := s.log.Read(index - v.offset)
	if err != nil {
		if errors.Is(err, mmapwal.ErrNotFound) {
			return raft.ErrLogNotFound // deleted meanwhile
		}
		return fmt.Errorf("raftstore: get index %d: %w", index, err)
	}
	var l raft.Log
	if _, _, err := decodeRecord(b, &l); err != nil {
		return fmt.Errorf("%w: raftstore: %s record %d (index %d): %v", mmapwal.ErrCorrupt, s.log.Dir(), index-v.offset, index, err)
	}
	if l.Index != index {
		if s.v.Load() != v {
			// The log was emptied and refilled under another mapping
			// between the view and the read.
			return raft.ErrLogNotFound
		}
		return fmt.Errorf("%w: raftstore: %s record %d holds index %d, expected %d", mmapwal.ErrCorrupt, s.log.Dir(), index-v.offset, l.Index, index)
	}
	*out = l
	return nil
}

// StoreLog implements raft.LogStore.
func (s *Store) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs implements raft.LogStore: the batch is appended atomically
// (after a crash all of it is there or none) and, under SyncAlways, is
// durable when StoreLogs returns. The first entries into an empty store may
// start at any index; after that each index must follow the previous one
// (ErrNotContiguous). A commit index staged by StageCommitIndex is written
// in the same batch.
func (s *Store) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	v := s.v.Load()
	for i, l := range logs {
		if l == nil {
			return fmt.Errorf("raftstore: StoreLogs: entry %d of the batch is nil", i)
		}
		switch {
		case l.Index == 0:
			return fmt.Errorf("raftstore: StoreLogs: index 0 (raft indexes start at 1)")
		case i > 0 && l.Index != logs[i-1].Index+1:
			return fmt.Errorf("%w: index %d follows index %d in the batch", ErrNotContiguous, l.Index, logs[i-1].Index)
		case i == 0 && !v.empty() && l.Index != v.last+1:
			return fmt.Errorf("%w: index %d after last index %d", ErrNotContiguous, l.Index, v.last)
		}
	}
	commit, hasCommit := s.commit, s.hasCommit
	if s.hasStaged {
		commit, hasCommit = s.staged, true
	}
	// Every record of the batch carries the commit index, so whatever
	// suffix DeleteRange later cuts, the last record still has it.
	recs := make([][]byte, len(logs))
	buf := s.buf[:0]
	for i, l := range logs {
		start := len(buf)
		buf = appendRecord(buf, l, commit, hasCommit)
		recs[i] = buf[start:len(buf):len(buf)]
	}
	s.buf = buf
	if cap(s.buf) > 1<<20 {
		s.buf = nil // do not pin one huge batch's memory
	}
	first, err := s.log.AppendBatch(recs)
	if err != nil {
		return fmt.Errorf("raftstore: store indexes %d..%d: %w", logs[0].Index, logs[len(logs)-1].Index, err)
	}
	nv := &view{first: v.first, last: logs[len(logs)-1].Index, offset: v.offset}
	if v.empty() {
		nv.first, nv.offset = logs[0].Index, logs[0].Index-first
	} else if first+v.offset != logs[0].Index {
		// Only this store writes the log, under s.mu: cannot happen unless
		// the WAL misbehaves. Refuse further use rather than misindex.
		s.logger.Error("raftstore: WAL assigned an unexpected seq", "seq", first, "index", logs[0].Index, "offset", v.offset)
		return fmt.Errorf("%w: raftstore: index %d stored as record %d, expected record %d", mmapwal.ErrCorrupt, logs[0].Index, first, logs[0].Index-v.offset)
	}
	s.v.Store(nv)
	s.commit, s.hasCommit, s.hasStaged = commit, hasCommit, false
	return nil
}

// DeleteRange implements raft.LogStore for a prefix, a suffix or the whole
// log (the range may reach past either end); a range strictly inside the
// log is ErrMiddleRange. Deleting everything leaves an empty store whose
// next StoreLogs may start at any index. min > max, or a range outside the
// log, does nothing.
func (s *Store) DeleteRange(min, max uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	v := s.v.Load()
	if v.empty() || min > max || max < v.first || min > v.last {
		return nil
	}
	switch {
	case min <= v.first && max >= v.last:
		// TruncateFront past the end empties the log durably (wal.meta).
		if err := s.log.TruncateFront(v.last - v.offset + 1); err != nil {
			return fmt.Errorf("raftstore: delete all of %d..%d: %w", v.first, v.last, err)
		}
		s.v.Store(&view{})
	case min <= v.first:
		if err := s.log.TruncateFront(max + 1 - v.offset); err != nil {
			return fmt.Errorf("raftstore: delete prefix %d..%d: %w", v.first, max, err)
		}
		s.v.Store(&view{first: max + 1, last: v.last, offset: v.offset})
	case max >= v.last:
		if err := s.log.TruncateBack(min - 1 - v.offset); err != nil {
			return fmt.Errorf("raftstore: delete suffix %d..%d: %w", min, v.last, err)
		}
		s.v.Store(&view{first: v.first, last: min - 1, offset: v.offset})
	default:
		return fmt.Errorf("%w: asked %d..%d, log holds %d..%d", ErrMiddleRange, min, max, v.first, v.last)
	}
	return nil
}

// IsMonotonic implements raft.MonotonicLogStore: indexes are contiguous, so
// raft deletes everything after a snapshot restore instead of leaving a gap.
func (s *Store) IsMonotonic() bool { return true }

// StageCommitIndex implements raft.CommitTrackingLogStore: idx is written
// with the next StoreLogs batch (in every record of it), never on its own.
func (s *Store) StageCommitIndex(idx uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	s.staged, s.hasStaged = idx, true
	return nil
}

// GetCommitIndex implements raft.CommitTrackingLogStore: the commit index
// carried by the newest record written (read from the last record at
// Open), never above LastIndex; 0 when none was ever staged.
func (s *Store) GetCommitIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return 0, ErrClosed
	}
	return min(s.commit, s.v.Load().last), nil
}

// Set implements raft.StableStore; durable when it returns.
func (s *Store) Set(key, val []byte) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return s.stable.set(key, val)
}

// Get implements raft.StableStore: a missing key gives an empty value and
// a nil error.
func (s *Store) Get(key []byte) ([]byte, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	return s.stable.get(key), nil
}

// SetUint64 implements raft.StableStore (8 bytes, big-endian, like
// raft-boltdb); durable when it returns.
func (s *Store) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 implements raft.StableStore: 0 and nil for a missing key.
func (s *Store) GetUint64(key []byte) (uint64, error) {
	b, err := s.Get(key)
	if err != nil || len(b) == 0 {
		return 0, err
	}
	if len(b) != 8 {
		return 0, fmt.Errorf("raftstore: key %q holds %d bytes, not a uint64", key, len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// Close closes the log and the stable store; every later call returns
// ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Swap(true) {
		return ErrClosed
	}
	err := s.log.Close()
	if serr := s.stable.close(); err == nil {
		err = serr
	}
	return err
}
