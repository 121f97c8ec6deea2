// Package recoveryhook gives package mmapwal what it needs from package
// recovery beyond recovery's public API: the offsets of the records recovery
// scanned, so that Open can fill index entries without scanning the same
// bytes again. Tools have no use for them, so they are not in
// recovery.Options or recovery.Segment.
//
// Package recovery installs the functions in its init (Install); they are
// never changed afterwards.
package recoveryhook

var (
	withOffsets any // func(*recovery.Options)
	offsets     any // func(*recovery.Segment) []int64
)

// Install is called once, by package recovery's init.
func Install[O, S any](with func(*O), offs func(*S) []int64) {
	withOffsets, offsets = with, offs
}

// WithOffsets makes Recover called with opts record, for each segment, the
// offsets of the records it scanned (read back with Offsets).
func WithOffsets[O any](opts *O) { withOffsets.(func(*O))(opts) }

// Offsets returns the offsets of records Trusted..Count-1 of a recovered
// segment, in seq order, if the Recover that returned it was called with
// WithOffsets (nil otherwise).
func Offsets[S any](seg *S) []int64 { return offsets.(func(*S) []int64)(seg) }
