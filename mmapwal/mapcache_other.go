//go:build !unix

package mmapwal

// mappingOutlivesFile is false where syncing a mapping needs its file
// (Windows: FlushFileBuffers on the handle; others: fsync): a mapped segment
// keeps its descriptors, so they are bounded by the mapping cache too.
const mappingOutlivesFile = false
