//go:build unix && !linux

package recovery

func (d *fdDir) List() ([]dirEntry, error) { return readDir(d.path) }
