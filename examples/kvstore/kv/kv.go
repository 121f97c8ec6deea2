// Package kv is the example key-value store: a map whose every change is
// first appended to a WAL as a JSON operation, and which is rebuilt by
// replaying the log on Open.
package kv

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"

	"github.com/mmapwal/wal/mmapwal"
)

// Op is one logged change.
type Op struct {
	Kind  string `json:"op"` // CREATE, UPDATE or DELETE
	Key   string `json:"key"`
	Value string `json:"value,omitempty"`
}

// Errors returned before anything is logged.
var (
	ErrExists  = errors.New("kv: key exists")
	ErrMissing = errors.New("kv: no such key")
)

// Store is a map backed by a WAL.
type Store struct {
	mu       sync.Mutex
	w        *mmapwal.WAL
	m        map[string]string
	replayed int
}

// Open opens (or creates) the store in dir and replays its log.
func Open(dir string) (*Store, error) {
	w, err := mmapwal.Open(dir, nil)
	if err != nil {
		return nil, err
	}
	s := &Store{w: w, m: map[string]string{}}
	err = w.Replay(0, func(seq uint64, data []byte) error {
		var op Op
		if err := json.Unmarshal(data, &op); err != nil {
			return fmt.Errorf("kv: record %d: %w", seq, err)
		}
		s.apply(op)
		s.replayed++
		return nil
	})
	if err != nil {
		w.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) apply(op Op) {
	switch op.Kind {
	case "CREATE", "UPDATE":
		s.m[op.Key] = op.Value
	case "DELETE":
		delete(s.m, op.Key)
	}
}

// log appends op durably and then applies it: the map never holds a change
// the log could lose.
func (s *Store) log(op Op) error {
	b, err := json.Marshal(op)
	if err != nil {
		return err
	}
	if _, err := s.w.Append(b); err != nil {
		return err
	}
	s.apply(op)
	return nil
}

// Create adds a new key.
func (s *Store) Create(key, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[key]; ok {
		return fmt.Errorf("%w: %q", ErrExists, key)
	}
	return s.log(Op{"CREATE", key, value})
}

// Update changes an existing key.
func (s *Store) Update(key, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[key]; !ok {
		return fmt.Errorf("%w: %q", ErrMissing, key)
	}
	return s.log(Op{"UPDATE", key, value})
}

// Delete removes a key.
func (s *Store) Delete(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[key]; !ok {
		return fmt.Errorf("%w: %q", ErrMissing, key)
	}
	return s.log(Op{"DELETE", key, ""})
}

// Get returns a key's value.
func (s *Store) Get(key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	return v, ok
}

// Snapshot returns a copy of the map.
func (s *Store) Snapshot() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.m)
}

// Replayed is the number of operations replayed by Open.
func (s *Store) Replayed() int { return s.replayed }

// Close closes the log.
func (s *Store) Close() error { return s.w.Close() }
