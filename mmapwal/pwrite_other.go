//go:build !linux

package mmapwal

// pwriteCapable is false where a pwrite is not known to be seen at once
// through a mapping of the same file: frames are copied into the mapping.
const pwriteCapable = false
