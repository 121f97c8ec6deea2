package recovery

import (
	"errors"
	"fmt"
	"io"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/platform"
)

// segmentFile is one segment opened read-only. It is the only code in this
// package that opens, maps or unmaps a segment. Small reads (headers, the
// frame header at a checkpoint's end) go through readAt, a pread: mapping
// and unmapping a file costs tens of microseconds, which at 10,000 segments
// would be most of Open's time, and a cleanly closed log needs only those
// bytes of most segments. The whole segment is mapped on the first read,
// for scans; every access to the mapped bytes goes through read, which
// turns a fault on the mapping (an I/O error under mmap) into an error
// naming the file. Every failure is returned: a segment that could not be
// looked at is never taken for one that holds nothing.
type segmentFile struct {
	path string
	f    file
	size int64
	data []byte // mapped by read; nil before, and for a file shorter than a segment header
}

func openSegmentFile(d dirHandle, sn segName) (*segmentFile, error) {
	path := sn.path
	f, err := d.Open(sn.name, path)
	if err != nil {
		return nil, fmt.Errorf("recover: open %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("recover: stat %s: %w", path, err)
	}
	return &segmentFile{path: path, f: f, size: fi.Size()}, nil
}

// readAt fills b from offset off, which the caller has checked lies within
// the size the file had when opened: a short read (the file shrank) is an
// error like any other.
func (s *segmentFile) readAt(b []byte, off int64) error {
	if err := readFull(s.f, b, off); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("%w (file shorter than the %d bytes it had)", err, s.size)
		}
		return fmt.Errorf("recover: read %s at %d: %w", s.path, off, err)
	}
	return nil
}

// read runs fn on the mapped bytes (nil for a file shorter than a segment
// header), mapping the segment first if needed, guarded against faults.
func (s *segmentFile) read(fn func(data []byte)) error {
	if s.data == nil && s.size >= format.SegmentHeaderSize {
		if int64(int(s.size)) != s.size {
			return fmt.Errorf("recover: %s: %d bytes cannot be mapped here", s.path, s.size)
		}
		var err error
		if s.data, err = s.f.MapReadOnly(int(s.size)); err != nil {
			s.data = nil
			return fmt.Errorf("recover: map %s: %w", s.path, err)
		}
	}
	if s.data == nil {
		fn(nil)
		return nil
	}
	if err := platform.CatchFault(func() { fn(s.data) }); err != nil {
		return fmt.Errorf("recover: read %s: %w", s.path, err)
	}
	return nil
}

// close unmaps and closes the segment, reporting the first failure.
func (s *segmentFile) close() error {
	var err error
	if s.data != nil {
		if uerr := platform.Unmap(s.data); uerr != nil {
			err = fmt.Errorf("recover: unmap %s: %w", s.path, uerr)
		}
		s.data = nil
	}
	if cerr := s.f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("recover: close %s: %w", s.path, cerr)
	}
	return err
}
