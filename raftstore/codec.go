package raftstore

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Record encoding, version 1 (see the package doc for the diagram). These
// constants are part of the on-disk format.
const (
	recordVersion = 1

	flagCommit    = 1 << 0 // a commit index follows the fixed part
	flagUTC       = 1 << 1 // AppendedAt is in UTC (time.Time{} included)
	flagZone      = 1 << 2 // AppendedAt is in another zone: offset and name follow
	knownFlags    = flagCommit | flagUTC | flagZone
	fixedRecordSz = 1 + 1 + 1 + 8 + 8 + 8 + 4
	maxZoneName   = 255
)

// appendRecord encodes l (and the commit index, if hasCommit) after dst.
func appendRecord(dst []byte, l *raft.Log, commit uint64, hasCommit bool) []byte {
	var flags byte
	if hasCommit {
		flags |= flagCommit
	}
	at := l.AppendedAt
	zoneName, zoneOff := "", 0
	switch loc := at.Location(); {
	case loc == time.UTC:
		flags |= flagUTC
	case loc == time.Local:
	default:
		flags |= flagZone
		zoneName, zoneOff = at.Zone()
		if len(zoneName) > maxZoneName {
			zoneName = zoneName[:maxZoneName]
		}
	}
	dst = append(dst, recordVersion, flags, byte(l.Type))
	dst = binary.LittleEndian.AppendUint64(dst, l.Index)
	dst = binary.LittleEndian.AppendUint64(dst, l.Term)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(at.Unix()))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(at.Nanosecond()))
	if hasCommit {
		dst = binary.LittleEndian.AppendUint64(dst, commit)
	}
	if flags&flagZone != 0 {
		dst = binary.AppendVarint(dst, int64(zoneOff))
		dst = binary.AppendUvarint(dst, uint64(len(zoneName)))
		dst = append(dst, zoneName...)
	}
	dst = appendBytes(dst, l.Data)
	dst = appendBytes(dst, l.Extensions)
	return dst
}

// appendBytes writes len+1 so that a nil slice (0) and an empty one (1)
// stay distinct.
func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return binary.AppendUvarint(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(len(b))+1)
	return append(dst, b...)
}

// decodeRecord fills l from b. Data and Extensions alias b (capacity-limited,
// so appending to one never overwrites the other). The error says what is
// wrong; the caller adds the seq and wraps ErrCorrupt.
func decodeRecord(b []byte, l *raft.Log) (commit uint64, hasCommit bool, err error) {
	if len(b) < fixedRecordSz {
		return 0, false, fmt.Errorf("record of %d bytes, shorter than the fixed part (%d)", len(b), fixedRecordSz)
	}
	if b[0] != recordVersion {
		return 0, false, fmt.Errorf("unknown record version %d (this build reads %d)", b[0], recordVersion)
	}
	flags := b[1]
	if flags&^knownFlags != 0 || flags&flagUTC != 0 && flags&flagZone != 0 {
		return 0, false, fmt.Errorf("unknown record flags %#x", flags)
	}
	var out raft.Log
	out.Type = raft.LogType(b[2])
	out.Index = binary.LittleEndian.Uint64(b[3:])
	out.Term = binary.LittleEndian.Uint64(b[11:])
	sec := int64(binary.LittleEndian.Uint64(b[19:]))
	nsec := binary.LittleEndian.Uint32(b[27:])
	if nsec >= 1e9 {
		return 0, false, fmt.Errorf("AppendedAt nanoseconds %d out of range", nsec)
	}
	p := b[fixedRecordSz:]
	if flags&flagCommit != 0 {
		if len(p) < 8 {
			return 0, false, fmt.Errorf("record truncated in the commit index")
		}
		commit, hasCommit = binary.LittleEndian.Uint64(p), true
		p = p[8:]
	}
	at := time.Unix(sec, int64(nsec))
	switch {
	case flags&flagUTC != 0:
		at = at.UTC()
	case flags&flagZone != 0:
		off, n := binary.Varint(p)
		if n <= 0 || off < -1<<31 || off > 1<<31-1 {
			return 0, false, fmt.Errorf("bad AppendedAt zone offset")
		}
		p = p[n:]
		name, rest, ok := cutBytes(p, maxZoneName)
		if !ok {
			return 0, false, fmt.Errorf("bad AppendedAt zone name")
		}
		p = rest
		at = at.In(time.FixedZone(string(name), int(off)))
	}
	out.AppendedAt = at
	var ok bool
	if out.Data, p, ok = cutBytesOrNil(p); !ok {
		return 0, false, fmt.Errorf("bad Data length")
	}
	if out.Extensions, p, ok = cutBytesOrNil(p); !ok {
		return 0, false, fmt.Errorf("bad Extensions length")
	}
	if len(p) != 0 {
		return 0, false, fmt.Errorf("%d bytes after the last field", len(p))
	}
	*l = out
	return commit, hasCommit, nil
}

// cutBytes reads a uvarint length (at most limit) and that many bytes.
func cutBytes(p []byte, limit uint64) (val, rest []byte, ok bool) {
	n, k := binary.Uvarint(p)
	if k <= 0 || n > limit || n > uint64(len(p)-k) {
		return nil, nil, false
	}
	p = p[k:]
	return p[:n:n], p[n:], true
}

// cutBytesOrNil reads what appendBytes wrote.
func cutBytesOrNil(p []byte) (val, rest []byte, ok bool) {
	n, k := binary.Uvarint(p)
	if k <= 0 {
		return nil, nil, false
	}
	if n == 0 {
		return nil, p[k:], true
	}
	n--
	if n > uint64(len(p)-k) {
		return nil, nil, false
	}
	p = p[k:]
	return p[:n:n], p[n:], true
}
