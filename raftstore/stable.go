package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"

	"github.com/mmapwal/wal/mmapwal"
)

// stableVersion is the first byte of every stable-store record; part of the
// on-disk format.
const stableVersion = 1

// stableCompactEvery bounds the stable log: once it holds this many records
// the ones before the newest are dropped (each record is the whole map, so
// only the newest matters).
const stableCompactEvery = 256

// stable is raft's StableStore: a tiny mmapwal log of its own in which every
// record is the complete key/value map after a Set. Open reads only the last
// record. Appends are SyncAlways whatever the log's policy, so a Set is
// durable when it returns (raft relies on that for its term and vote).
type stable struct {
	mu  sync.Mutex // guards m and serialises appends
	wal *mmapwal.WAL
	m   map[string][]byte
}

func openStable(dir string, base mmapwal.Options, log *slog.Logger) (*stable, error) {
	o := mmapwal.Options{
		SegmentSize: mmapwal.MinSegmentSize,
		Sync:        mmapwal.SyncAlways,
		Logger:      log,
		FileMode:    base.FileMode,
		DirMode:     base.DirMode,
	}
	w, err := mmapwal.Open(dir, &o)
	if err != nil {
		return nil, fmt.Errorf("raftstore: open stable store %s: %w", dir, err)
	}
	s := &stable{wal: w, m: map[string][]byte{}}
	if last := w.LastSeq(); last != 0 {
		b, err := w.Read(last)
		if err == nil {
			s.m, err = decodeStable(b)
		}
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("raftstore: stable store %s record %d: %w", dir, last, err)
		}
	}
	return s, nil
}

func (s *stable) set(key, val []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := maps.Clone(s.m)
	next[string(key)] = slices.Clone(val)
	seq, err := s.wal.Append(encodeStable(next))
	if err != nil {
		return fmt.Errorf("raftstore: stable store %s: %w", s.wal.Dir(), err)
	}
	s.m = next
	if seq-s.wal.FirstSeq() >= stableCompactEvery {
		// The newest record is durable; the older ones are dead weight. A
		// failure here loses nothing: the next Open still reads the newest.
		if err := s.wal.TruncateFront(seq); err != nil {
			return fmt.Errorf("raftstore: stable store %s: compact: %w", s.wal.Dir(), err)
		}
	}
	return nil
}

func (s *stable) get(key []byte) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.m[string(key)])
}

func (s *stable) close() error { return s.wal.Close() }

// encodeStable: version byte, uvarint count, then per key (sorted)
// uvarint len, key, uvarint len, value.
func encodeStable(m map[string][]byte) []byte {
	b := []byte{stableVersion}
	b = binary.AppendUvarint(b, uint64(len(m)))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(m[k])))
		b = append(b, m[k]...)
	}
	return b
}

var errBadStable = errors.New("malformed stable-store record")

func decodeStable(b []byte) (map[string][]byte, error) {
	if len(b) == 0 || b[0] != stableVersion {
		return nil, fmt.Errorf("%w: %w: version byte", mmapwal.ErrCorrupt, errBadStable)
	}
	p := b[1:]
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(len(p)) {
		return nil, fmt.Errorf("%w: %w: count", mmapwal.ErrCorrupt, errBadStable)
	}
	p = p[k:]
	m := make(map[string][]byte, n)
	for i := uint64(0); i < n; i++ {
		key, rest, ok := cutBytes(p, uint64(len(p)))
		if !ok {
			return nil, fmt.Errorf("%w: %w: key %d", mmapwal.ErrCorrupt, errBadStable, i)
		}
		val, rest, ok := cutBytes(rest, uint64(len(rest)))
		if !ok {
			return nil, fmt.Errorf("%w: %w: value %d", mmapwal.ErrCorrupt, errBadStable, i)
		}
		m[string(key)] = slices.Clone(val)
		p = rest
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("%w: %w: trailing bytes", mmapwal.ErrCorrupt, errBadStable)
	}
	return m, nil
}
