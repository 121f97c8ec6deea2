package recovery

import (
	"fmt"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/platform"
)

// segmentFile is one segment opened and mapped read-only. It is the only
// code in this package that opens, maps or unmaps a segment, and every
// access to the mapped bytes goes through read, which turns a fault on the
// mapping (an I/O error under mmap) into an error naming the file. Every
// failure is returned: a segment that could not be looked at is never
// taken for one that holds nothing.
type segmentFile struct {
	path string
	size int64
	data []byte // nil when the file is shorter than a segment header
}

func openSegmentFile(fsys fileSystem, path string) (*segmentFile, error) {
	f, err := fsys.Open(path)
	if err != nil {
		return nil, fmt.Errorf("recover: open %s: %w", path, err)
	}
	defer f.Close() // the mapping stays valid after close
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("recover: stat %s: %w", path, err)
	}
	s := &segmentFile{path: path, size: fi.Size()}
	if s.size < format.SegmentHeaderSize {
		return s, nil // a fact (too short), not a failure to look
	}
	if int64(int(s.size)) != s.size {
		return nil, fmt.Errorf("recover: %s: %d bytes cannot be mapped here", path, s.size)
	}
	if s.data, err = f.MapReadOnly(int(s.size)); err != nil {
		return nil, fmt.Errorf("recover: %w", err)
	}
	return s, nil
}

// read runs fn on the mapped bytes, guarded against faults.
func (s *segmentFile) read(fn func(data []byte)) error {
	if s.data == nil {
		fn(nil)
		return nil
	}
	if err := platform.CatchFault(func() { fn(s.data) }); err != nil {
		return fmt.Errorf("recover: read %s: %w", s.path, err)
	}
	return nil
}

func (s *segmentFile) close() error {
	if s.data == nil {
		return nil
	}
	err := platform.Unmap(s.data)
	s.data = nil
	if err != nil {
		return fmt.Errorf("recover: unmap %s: %w", s.path, err)
	}
	return nil
}
