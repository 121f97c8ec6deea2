package format

// MaxRecordLength is the largest payload length a frame may carry (1 GiB),
// whatever a writer's configured limit. Recovery and reads bound a frame's
// length by this and by the segment it lies in, never by an option of the
// process that reopens the log: records already on disk stay valid when the
// configured limit is lowered.
const MaxRecordLength = 1 << 30
