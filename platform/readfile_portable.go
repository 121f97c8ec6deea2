//go:build !unix

package platform

import (
	"errors"
	"io"
	"os"
)

// readFileAtPortable is ReadFileAt through os.File.
func readFileAtPortable(path string, b []byte, off int64) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, err := f.ReadAt(b, off)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}
