package scan

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/mmapwal/wal/format"
)

func TestScanAndFindProof(t *testing.T) {
	b := make([]byte, 4096)
	seed := format.SegmentSeed(5)
	off := int64(0)
	var offs []int64
	for s := uint64(10); s < 20; s++ {
		offs = append(offs, off)
		off += format.EncodeFrame(b[off:], seed, format.KindFull, s, s-1, []byte("abc"))
	}
	r := Scan(b, seed, 0, 10, 100, true)
	assert.Equal(t, uint64(20), r.Next)
	assert.Equal(t, StopZero, r.Stop)
	assert.Equal(t, offs, r.Offsets)
	r = Scan(b, seed, 0, 11, 100, false)
	assert.Equal(t, StopBadSeq, r.Stop, "seq continuity is checked")

	b[offs[3]+format.FrameHeaderSize] ^= 1 // damage seq 13
	r = Scan(b, seed, 0, 10, 100, false)
	assert.Equal(t, uint64(13), r.Next)
	assert.Equal(t, StopBadFrame, r.Stop)
	proof, valid := FindProof(b, seed, offs[3]+8, 13, 100)
	assert.Equal(t, offs[4], proof, "seq 14 was written when 13 was durable: 13 had been synced")
	assert.Equal(t, 6, valid)
}
