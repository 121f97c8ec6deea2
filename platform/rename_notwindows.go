//go:build !windows

package platform

import "os"

// renameInPlace is RenameMapped where a mapped file may be renamed.
func renameInPlace(f *os.File, m []byte, to string) (*os.File, []byte, error) {
	if err := os.Rename(f.Name(), to); err != nil {
		Unmap(m)
		f.Close()
		return nil, nil, err
	}
	return f, m, nil
}
