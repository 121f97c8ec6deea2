package format

import (
	"encoding/binary"
	"hash/crc32"
)

// castagnoli uses the SSE4.2/ARMv8 CRC32C instructions where available.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC returns the CRC32C of b.
func CRC(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// UpdateCRC continues crc over b.
func UpdateCRC(crc uint32, b []byte) uint32 { return crc32.Update(crc, castagnoli, b) }

// SegmentSeed is the CRC state after the segment ID; every frame CRC of the
// segment starts from it.
func SegmentSeed(segID uint64) uint32 {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], segID)
	return UpdateCRC(0, b[:])
}
