//go:build linux

package mmapwal

// pwriteCapable: frames can be written with pwrite on the segment's
// descriptor and read back through its mapping, because the page cache is
// shared by both (Linux maps the file's page-cache pages themselves).
const pwriteCapable = true
