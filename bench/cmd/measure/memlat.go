package main

import (
	"fmt"
	"time"
)

// memLatency prints the cost of a dependent random load (each address
// depends on the last value read) in Go heap buffers of growing size: the
// floor under a random read that needs two dependent accesses, the index
// entry and then the frame.
func memLatency() {
	for _, mib := range []int{1, 4, 16, 64, 128, 256} {
		size := uint64(mib) << 20
		buf := make([]byte, size)
		for i := range buf {
			buf[i] = byte(i * 131)
		}
		const n = 3_000_000
		x, s := uint64(88172645463325252), uint64(0)
		t := time.Now()
		for range n {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			s = (x + uint64(buf[s%size])) % size
		}
		d := time.Since(t) / n
		fmt.Printf("%4d MiB: %v per dependent random load (%d)\n", mib, d, s%2)
	}
}
