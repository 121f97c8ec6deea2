package recovery

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mmapwal/wal/platform"
)

// fsRule makes the nth call (1-based; 0: every call) of operation op on a
// path ending in path fail with err. Operation "fault" makes a mapping whose
// every access faults, as a mapping of a file on a failing disk does.
type fsRule struct {
	op   string
	path string
	nth  int
	err  error
}

// errFS wraps the OS with fault injection rules (after pebble's
// vfs/errorfs) and records every operation, so tests can check both that a
// failure aborts and in which order writes happen.
type errFS struct {
	fileSystem
	rules   []fsRule
	scratch string // an empty file: mapping it beyond its end faults on access

	mu     sync.Mutex
	counts []int
	ops    []string // "op base-name" in call order
}

func newErrFS(t *testing.T, rules ...fsRule) *errFS {
	t.Helper()
	scratch := filepath.Join(t.TempDir(), "empty")
	require.NoError(t, os.WriteFile(scratch, nil, 0o644))
	return &errFS{fileSystem: osFS{}, rules: rules, scratch: scratch, counts: make([]int, len(rules))}
}

func (e *errFS) check(op, path string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ops = append(e.ops, op+" "+filepath.Base(path))
	for i, r := range e.rules {
		if r.op != op || !strings.HasSuffix(path, r.path) {
			continue
		}
		e.counts[i]++
		if r.nth == 0 || r.nth == e.counts[i] {
			return &fs.PathError{Op: op, Path: path, Err: r.err}
		}
	}
	return nil
}

func (e *errFS) log() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.ops...)
}

func (e *errFS) OpenDir(dir string) (dirHandle, error) {
	if err := e.check("readdir", dir); err != nil {
		return nil, err
	}
	d, err := e.fileSystem.OpenDir(dir)
	if err != nil {
		return nil, err
	}
	return errDir{dirHandle: d, fs: e}, nil
}

// errDir applies its errFS's rules to the files opened in it.
type errDir struct {
	dirHandle
	fs *errFS
}

func (d errDir) Open(name, path string) (file, error) {
	return d.fs.open("open", path, func(string) (file, error) { return d.dirHandle.Open(name, path) })
}

func (e *errFS) ReadFile(path string) ([]byte, error) {
	if err := e.check("readfile", path); err != nil {
		return nil, err
	}
	return e.fileSystem.ReadFile(path)
}

func (e *errFS) open(op, path string, fn func(string) (file, error)) (file, error) {
	if err := e.check(op, path); err != nil {
		return nil, err
	}
	f, err := fn(path)
	if err != nil {
		return nil, err
	}
	return &errFile{file: f, fs: e, path: path}, nil
}

func (e *errFS) Open(path string) (file, error) { return e.open("open", path, e.fileSystem.Open) }
func (e *errFS) OpenWrite(path string) (file, error) {
	return e.open("openwrite", path, e.fileSystem.OpenWrite)
}
func (e *errFS) CreateExcl(path string) (file, error) {
	return e.open("create", path, e.fileSystem.CreateExcl)
}

func (e *errFS) Lstat(path string) (fs.FileInfo, error) {
	if err := e.check("lstat", path); err != nil {
		return nil, err
	}
	return e.fileSystem.Lstat(path)
}

func (e *errFS) Remove(path string) error {
	if err := e.check("remove", path); err != nil {
		return err
	}
	return e.fileSystem.Remove(path)
}

func (e *errFS) Rename(from, to string) error {
	if err := e.check("rename", from); err != nil {
		return err
	}
	return e.fileSystem.Rename(from, to)
}

func (e *errFS) SyncDir(dir string) error {
	if err := e.check("syncdir", dir); err != nil {
		return err
	}
	return e.fileSystem.SyncDir(dir)
}

type errFile struct {
	file
	fs   *errFS
	path string
}

func (f *errFile) Stat() (fs.FileInfo, error) {
	if err := f.fs.check("stat", f.path); err != nil {
		return nil, err
	}
	return f.file.Stat()
}

func (f *errFile) ReadAt(b []byte, off int64) (int, error) {
	if err := f.fs.check("readat", f.path); err != nil {
		return 0, err
	}
	return f.file.ReadAt(b, off)
}

func (f *errFile) Read(b []byte) (int, error) {
	if err := f.fs.check("read", f.path); err != nil {
		return 0, err
	}
	return f.file.Read(b)
}

func (f *errFile) WriteAt(b []byte, off int64) (int, error) {
	if err := f.fs.check("writeat", f.path); err != nil {
		return 0, err
	}
	return f.file.WriteAt(b, off)
}

func (f *errFile) Write(b []byte) (int, error) {
	if err := f.fs.check("write", f.path); err != nil {
		return 0, err
	}
	return f.file.Write(b)
}

func (f *errFile) Sync() error {
	if err := f.fs.check("sync", f.path); err != nil {
		return err
	}
	return f.file.Sync()
}

func (f *errFile) MapReadOnly(size int) ([]byte, error) {
	if err := f.fs.check("map", f.path); err != nil {
		return nil, err
	}
	if err := f.fs.check("fault", f.path); err != nil {
		s, err := os.Open(f.fs.scratch)
		if err != nil {
			return nil, err
		}
		defer s.Close()
		return platform.MapReadOnly(s, size) // beyond the end of an empty file: SIGBUS on access
	}
	return f.file.MapReadOnly(size)
}

func (e *errFS) String() string { return fmt.Sprint(e.rules) }
