package recovery

import "bytes"

var zeroChunk [64 << 10]byte

// lastNonZero returns the offset just after the last non-zero byte of data
// at or after from (from itself if there is none). It compares 64 KiB at a
// time (memequal is vectorised): a 64 MiB tail takes a few milliseconds.
func lastNonZero(data []byte, from int64) int64 {
	end := int64(len(data))
	for end > from {
		start := max(from, end-int64(len(zeroChunk)))
		if !bytes.Equal(data[start:end], zeroChunk[:end-start]) {
			for i := end; i > start; i-- {
				if data[i-1] != 0 {
					return i
				}
			}
		}
		end = start
	}
	return from
}
