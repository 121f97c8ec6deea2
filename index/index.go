// Package index keeps one offset index file per segment: a mapped array of
// fixed-width entries, entry i holding the offset of record FirstSeq+i, so
// that Read(seq) is a few loads. The index is a cache of its segment: every
// reader checks the frame it points at (seq and CRC), and a missing, short,
// stale or garbage index is rebuilt from the segment. The layout is
// documented in package format.
//
// Package index is a low-level building block of package mmapwal, which is
// what applications use: it is public for tools that inspect index files,
// and its API changes with mmapwal's needs.
package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/platform"
)

// Index is an open, mapped index file.
//
// Concurrency: Get needs no lock if the caller orders each Set before any
// Get of the same entry (mmapwal publishes a record with an atomic store
// after its entry is set). Set, Get, Lookup and SetOffsets (of different
// entries), Checkpoint, Header and Sync may run concurrently: the header is
// guarded inside, and Sync only writes pages back. Init, Rename, CloseFile,
// Close and Remove need the Index to themselves.
//
// Faults: another process can shrink the file under the mapping, and then
// any access to the lost pages raises SIGBUS. Every method that touches the
// mapping turns that into an error wrapping platform.ErrFault, except Set
// and Get, which are on the append and read hot paths and must be called
// inside the caller's platform.CatchFault (Lookup and SetOffsets are their
// guarded forms).
type Index struct {
	path     string
	f        *os.File
	m        []byte
	capacity int
	hdrMu    sync.Mutex // the flusher and the writer path may both checkpoint
	hdr      format.IndexHeader
	readOnly bool // mapped for reading (OpenReadOnly): every write fails
}

// errReadOnly is returned by the writing methods of an index opened with
// OpenReadOnly (its mapping would fault on a store).
var errReadOnly = errors.New("index opened read-only")

// Create makes a new, empty index file at path (replacing any file there),
// preallocated for capacity entries and mapped. Entries are zero; the
// checkpoint says zero records.
// The file is created with perm (before the umask).
func Create(path string, segID, firstSeq uint64, capacity int, perm os.FileMode) (*Index, error) {
	_ = os.Remove(path)
	f, err := platform.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return nil, err
	}
	size := format.IndexFileSize(capacity)
	if err := platform.Preallocate(f, size); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	m, err := platform.Map(f, int(size))
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	x := &Index{path: path, f: f, m: m, capacity: capacity,
		hdr: format.IndexHeader{SegmentID: segID, FirstSeq: firstSeq, EndOffset: format.SegmentHeaderSize}}
	if err := x.guard(func() { x.hdr.Encode(m) }); err != nil {
		platform.Unmap(m)
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return x, nil
}

// Open maps an existing index file. It checks only that the file is large
// enough for capacity entries; the caller validates the header (Header).
func Open(path string, capacity int) (*Index, error) {
	f, err := platform.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	size := format.IndexFileSize(capacity)
	if fi.Size() < size {
		f.Close()
		return nil, fmt.Errorf("index %s: %d bytes, want %d", path, fi.Size(), size)
	}
	m, err := platform.Map(f, int(size))
	if err != nil {
		f.Close()
		return nil, err
	}
	h, err := decodeHeader(m)
	if err != nil {
		platform.Unmap(m)
		f.Close()
		return nil, fmt.Errorf("index %s: %w", path, err)
	}
	return &Index{path: path, f: f, m: m, capacity: capacity, hdr: h}, nil
}

// decodeHeader decodes the header of mapping m under a fault guard (the
// file may be shorter than its mapping).
func decodeHeader(m []byte) (h format.IndexHeader, err error) {
	if ferr := platform.CatchFault(func() { h, err = format.DecodeIndexHeader(m) }); ferr != nil {
		return h, ferr
	}
	return h, err
}

// OpenReadOnly maps an existing index file for reading only (PROT_READ),
// without ever writing to it: for a read-only WAL beside a writer process,
// which may change the file at any time. The header must be valid when it
// is opened; ReadHeader rereads it later. Get's offsets stay hints, checked
// by every reader. Checkpoint, Init, SetOffsets, Sync and Rename fail; Set
// must not be called.
func OpenReadOnly(path string, capacity int) (*Index, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the mapping outlives it: nothing is ever synced through it
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := format.IndexFileSize(capacity)
	if fi.Size() < size {
		return nil, fmt.Errorf("index %s: %d bytes, want %d", path, fi.Size(), size)
	}
	m, err := platform.MapReadOnly(f, int(size))
	if err != nil {
		return nil, err
	}
	h, err := decodeHeader(m)
	if err != nil {
		platform.Unmap(m)
		return nil, fmt.Errorf("index %s: %w", path, err)
	}
	return &Index{path: path, m: m, capacity: capacity, hdr: h, readOnly: true}, nil
}

// ReadHeader decodes the header as it is in the file now (another process
// may have written it since Open), under the fault guard. Header keeps
// returning the header as last read or written by this Index.
func (x *Index) ReadHeader() (format.IndexHeader, error) {
	var h format.IndexHeader
	var err error
	if ferr := x.guard(func() { h, err = format.DecodeIndexHeader(x.m) }); ferr != nil {
		return h, ferr
	}
	if err != nil {
		return h, fmt.Errorf("index %s: %w", x.path, err)
	}
	return h, nil
}

// Path is the index file's path.
func (x *Index) Path() string { return x.path }

// Header is the header as last read or written.
func (x *Index) Header() format.IndexHeader {
	x.hdrMu.Lock()
	defer x.hdrMu.Unlock()
	return x.hdr
}

// guard runs fn, which touches the mapping, and names the file in a fault.
func (x *Index) guard(fn func()) error {
	if err := platform.CatchFault(fn); err != nil {
		return fmt.Errorf("index %s: %w", x.path, err)
	}
	return nil
}

// Set records that record i of the segment is at offset off.
// REQUIRES: called inside platform.CatchFault (the append path writes the
// frame and its entry under one guard); elsewhere use SetOffsets.
func (x *Index) Set(i int, off int64) {
	p := format.IndexHeaderSize + i*format.IndexEntrySize
	binary.LittleEndian.PutUint32(x.m[p:], uint32(off/format.FrameAlign))
}

// SetOffsets records that records first, first+1, ... are at offs, under
// the fault guard.
func (x *Index) SetOffsets(first int, offs []int64) error {
	if x.readOnly {
		return fmt.Errorf("index %s: %w", x.path, errReadOnly)
	}
	if first < 0 || first+len(offs) > x.capacity {
		return fmt.Errorf("index %s: entries [%d,%d) outside capacity %d", x.path, first, first+len(offs), x.capacity)
	}
	return x.guard(func() {
		for i, off := range offs {
			x.Set(first+i, off)
		}
	})
}

// Lookup is Get under the fault guard.
func (x *Index) Lookup(i uint64) (off int64, ok bool, err error) {
	err = x.guard(func() { off, ok = x.Get(i) })
	return off, ok, err
}

// Get returns the offset recorded for record i, or false if i is outside
// the file. The offset is only a hint until the frame there is checked.
// REQUIRES: called inside platform.CatchFault; elsewhere use Lookup.
func (x *Index) Get(i uint64) (int64, bool) {
	if i >= uint64(x.capacity) {
		return 0, false
	}
	p := format.IndexHeaderSize + int(i)*format.IndexEntrySize
	return int64(binary.LittleEndian.Uint32(x.m[p:])) * format.FrameAlign, true
}

// Checkpoint records that the first count records are complete and durable
// and end at end; flags are format.IndexClosed / format.IndexTruncating or 0.
// REQUIRES: the segment bytes it describes were synced, so that whichever
// version of the header reaches the disk is true. On error (a fault: the
// file was shrunk) Header still returns the previous checkpoint.
func (x *Index) Checkpoint(count uint64, end int64, flags uint32) error {
	if x.readOnly {
		return fmt.Errorf("index %s: %w", x.path, errReadOnly)
	}
	x.hdrMu.Lock()
	defer x.hdrMu.Unlock()
	h := x.hdr
	h.Count, h.EndOffset, h.Flags = count, uint64(end), flags
	if err := x.guard(func() { h.Encode(x.m) }); err != nil {
		return err
	}
	x.hdr = h
	return nil
}

// Sync makes entries and checkpoint durable.
func (x *Index) Sync() error {
	if x.readOnly {
		return fmt.Errorf("index %s: %w", x.path, errReadOnly)
	}
	if err := platform.SyncRange(x.m, x.f, 0, len(x.m)); err != nil {
		return fmt.Errorf("index %s: %w", x.path, err)
	}
	return nil
}

// Close unmaps and closes the file without syncing.
func (x *Index) Close() error {
	if x == nil || (x.f == nil && x.m == nil) {
		return nil // never opened, closed, or lost in a failed Rename
	}
	err := platform.Unmap(x.m)
	if x.f != nil {
		if cerr := x.f.Close(); err == nil {
			err = cerr
		}
	}
	x.m, x.f = nil, nil
	return err
}

// CloseFile closes the descriptor and keeps the mapping: on Unix, where a
// mapping outlives its descriptor and msync needs none, an open index then
// costs no file descriptor. Only on Unix may Sync be called afterwards (on
// Windows it needs the file); Rename is not possible afterwards.
func (x *Index) CloseFile() error {
	if x == nil || x.f == nil {
		return nil
	}
	err := x.f.Close()
	x.f = nil
	return err
}

// Init writes a fresh header for a segment (a prepared index gets its
// segment's identity when the segment is activated).
func (x *Index) Init(segID, firstSeq uint64) error {
	if x.readOnly {
		return fmt.Errorf("index %s: %w", x.path, errReadOnly)
	}
	x.hdrMu.Lock()
	defer x.hdrMu.Unlock()
	h := format.IndexHeader{SegmentID: segID, FirstSeq: firstSeq, EndOffset: format.SegmentHeaderSize}
	if err := x.guard(func() { h.Encode(x.m) }); err != nil {
		return err
	}
	x.hdr = h
	return nil
}

// Rename moves the index file. On Unix the mapping (and a slice returned by
// Mapping) stays valid. On Windows, where a mapped file cannot be renamed,
// the file is unmapped, closed, renamed, reopened and mapped again: an
// earlier Mapping slice is then invalid. On failure the Index is left closed
// (file and mapping released). Rename fails after CloseFile.
func (x *Index) Rename(path string) error {
	if x.readOnly {
		return fmt.Errorf("index %s: %w", x.path, errReadOnly)
	}
	if x.f == nil {
		return fmt.Errorf("index %s: rename after its file was closed", x.path)
	}
	f, m, err := platform.RenameMapped(x.f, x.m, path)
	if err != nil {
		x.f, x.m = nil, nil // RenameMapped closed and unmapped it
		return err
	}
	x.f, x.m, x.path = f, m, path
	return nil
}

// Remove closes the index and deletes its file.
func (x *Index) Remove() error {
	err := x.Close()
	if rerr := os.Remove(x.path); err == nil && rerr != nil && !os.IsNotExist(rerr) {
		err = rerr
	}
	return err
}

// Mapping is the mapped file (for paging hints).
func (x *Index) Mapping() []byte { return x.m }
