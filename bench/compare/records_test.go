package compare

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Every record the benchmark writes is self-checking: a fixed-size payload
//
//	[0:8)        key (uint64 LE) — the seq it is written at, or a unique id
//	[8:size-4)   filler derived from key (splitmix64 stream)
//	[size-4:)    CRC32C of everything before it
//
// so any record read back can be verified against the key it should carry.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// recordSize is the payload size of every record the benchmarks write.
const recordSize = 100

const minRecordSize = 16

func splitmix64(x *uint64) uint64 {
	*x += 0x9e3779b97f4a7c15
	z := *x
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// fillRecord writes the record for key into b (len(b) is the record size).
func fillRecord(b []byte, key uint64) {
	n := len(b)
	binary.LittleEndian.PutUint64(b[0:8], key)
	state := key
	var tmp [8]byte
	for off := 8; off < n-4; off += 8 {
		binary.LittleEndian.PutUint64(tmp[:], splitmix64(&state))
		copy(b[off:n-4], tmp[:])
	}
	binary.LittleEndian.PutUint32(b[n-4:], crc32.Checksum(b[:n-4], castagnoli))
}

// genRecords returns count records of size bytes for keys first..first+count-1,
// all carved out of one contiguous buffer.
func genRecords(first uint64, count, size int) [][]byte {
	if size < minRecordSize {
		panic("record size too small")
	}
	buf := make([]byte, count*size)
	recs := make([][]byte, count)
	for i := range recs {
		r := buf[i*size : (i+1)*size : (i+1)*size]
		fillRecord(r, first+uint64(i))
		recs[i] = r
	}
	return recs
}

// recordKey checks a record's length and checksum and returns its key.
func recordKey(data []byte, size int) (uint64, error) {
	if len(data) != size {
		return 0, fmt.Errorf("record length %d, want %d", len(data), size)
	}
	if got, want := crc32.Checksum(data[:size-4], castagnoli), binary.LittleEndian.Uint32(data[size-4:]); got != want {
		return 0, fmt.Errorf("record checksum %08x, want %08x", got, want)
	}
	return binary.LittleEndian.Uint64(data[0:8]), nil
}

// verify checks that data is the intact record for key.
func verify(data []byte, key uint64, size int) error {
	got, err := recordKey(data, size)
	if err != nil {
		return fmt.Errorf("seq %d: %w", key, err)
	}
	if got != key {
		return fmt.Errorf("seq %d: record carries key %d", key, got)
	}
	return nil
}

// verifyKey is verify without the CRC: data has the record size and
// carries key.
func verifyKey(data []byte, key uint64, size int) error {
	if len(data) != size {
		return fmt.Errorf("seq %d: record length %d, want %d", key, len(data), size)
	}
	if got := binary.LittleEndian.Uint64(data[0:8]); got != key {
		return fmt.Errorf("seq %d: record carries key %d", key, got)
	}
	return nil
}
