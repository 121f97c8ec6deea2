//go:build !unix

package recovery

import "os"

func (osFS) Open(path string) (file, error) { return wrapOS(os.Open(path)) }
