//go:build unix

package mmapwal

// mappingOutlivesFile: a mapping stays valid, and msync syncs it, after its
// descriptor is closed; mapped segments hold no descriptor.
const mappingOutlivesFile = true
