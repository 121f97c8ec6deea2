//go:build !unix

package recovery

import "os"

func (osFS) Open(path string) (file, error) { return wrapOS(os.Open(path)) }

func (osFS) OpenDir(dir string) (dirHandle, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, &os.PathError{Op: "open", Path: dir, Err: os.ErrInvalid}
	}
	return pathDir(dir), nil
}

// pathDir opens files by path: this platform has no openat.
type pathDir string

func (d pathDir) List() ([]dirEntry, error)       { return readDir(string(d)) }
func (pathDir) Open(_, path string) (file, error) { return wrapOS(os.Open(path)) }
func (pathDir) Close() error                      { return nil }
