package mmapwal

// Shared by the crash loop (crash_test.go) and the power-loss trials
// (powerloss_test.go): self-checking record payloads, the event log a writer
// keeps of what it was acknowledged, and the checker that compares a
// recovered log with that event log.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// crashRecID identifies one record a test writer appended. The payload is
// derived from it alone, so any record read back can be checked byte for
// byte without a copy of what was written.
type crashRecID struct {
	Cycle   uint32 // crash cycle or power-loss episode
	Writer  uint16
	Counter uint64 // per writer; shared by the records of one batch
	Idx     uint16 // position in the batch (0 for a single record)
	N       uint16 // batch size (1 for a single record)
}

const crashMagic = "MWCR"
const crashHdr = 24

func crashMix(x uint64) uint64 { // splitmix64 finaliser
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func (id crashRecID) hash() uint64 {
	return crashMix(uint64(id.Cycle)<<48 ^ uint64(id.Writer)<<40 ^ id.Counter<<12 ^ uint64(id.Idx))
}

// crashPayload is the record for id: a header naming id and a filler of a
// length and content derived from id (mostly small, sometimes several pages).
func crashPayload(id crashRecID) []byte {
	h := id.hash()
	n := int(h % 700)
	if h>>60 == 0 { // 1 in 16: a record spanning pages
		n = 4096 + int(h>>8%9000)
	}
	if id.Writer == crashBigWriter { // larger than a segment (64 or 128 KiB)
		n = crashBigLen - crashHdr - int(h%20000)
	}
	b := make([]byte, crashHdr+n)
	copy(b, crashMagic)
	binary.LittleEndian.PutUint32(b[4:], id.Cycle)
	binary.LittleEndian.PutUint16(b[8:], id.Writer)
	binary.LittleEndian.PutUint64(b[10:], id.Counter)
	binary.LittleEndian.PutUint16(b[18:], id.Idx)
	binary.LittleEndian.PutUint16(b[20:], id.N)
	binary.LittleEndian.PutUint16(b[22:], uint16(n))
	x := h
	for i := crashHdr; i < len(b); i++ {
		if (i-crashHdr)%8 == 0 {
			x = crashMix(x)
		}
		b[i] = byte(x >> (8 * ((i - crashHdr) % 8)))
	}
	return b
}

// crashDecode returns the id of a payload if the payload is exactly the
// record crashPayload makes for it.
func crashDecode(b []byte) (crashRecID, bool) {
	if len(b) < crashHdr || string(b[:4]) != crashMagic {
		return crashRecID{}, false
	}
	id := crashRecID{
		Cycle:   binary.LittleEndian.Uint32(b[4:]),
		Writer:  binary.LittleEndian.Uint16(b[8:]),
		Counter: binary.LittleEndian.Uint64(b[10:]),
		Idx:     binary.LittleEndian.Uint16(b[18:]),
		N:       binary.LittleEndian.Uint16(b[20:]),
	}
	if id.N == 0 || id.Idx >= id.N {
		return crashRecID{}, false
	}
	return id, string(crashPayload(id)) == string(b)
}

// crashBigWriter is the writer id of records larger than a segment;
// crashBigLen bounds their length.
const (
	crashBigWriter = 500
	crashBigLen    = 160000
)

// crashMaxLen is the largest payload of the single record or batch of up to
// n records that id starts.
func crashMaxLen(id crashRecID, n int) int {
	m := 0
	for i := 0; i < n; i++ {
		id.Idx, id.N = uint16(i), uint16(n)
		if i == 0 {
			id.N = 1
		}
		m = max(m, len(crashPayload(id)))
	}
	return m
}

func crashBatch(id crashRecID, n int) [][]byte {
	recs := make([][]byte, n)
	for i := range recs {
		id.Idx, id.N = uint16(i), uint16(n)
		recs[i] = crashPayload(id)
	}
	return recs
}

// crashEvent is one line of a writer's report, written only after the call
// it describes returned (acks, "done") or before it was made ("start").
type crashEvent struct {
	// 'A' record acked, 'B' batch acked, 'b'/'T' TruncateBack start/done,
	// 'f'/'F' TruncateFront start/done. Power loss under SyncNone: 'a'/'c'
	// record/batch acked but not yet durable, 'S' Sync returned (every
	// earlier ack is durable). 'x': the TruncateBack just started failed
	// with ErrNotFound (retention moved FirstSeq past it) and did nothing.
	Kind byte
	Seq  uint64
	N    uint64
	ID   crashRecID
}

func (e crashEvent) String() string {
	switch e.Kind {
	case 'A', 'a':
		return fmt.Sprintf("%c %d %d %d %d", e.Kind, e.ID.Cycle, e.ID.Writer, e.ID.Counter, e.Seq)
	case 'B', 'c':
		return fmt.Sprintf("%c %d %d %d %d %d", e.Kind, e.ID.Cycle, e.ID.Writer, e.ID.Counter, e.Seq, e.N)
	default:
		return fmt.Sprintf("%c %d", e.Kind, e.Seq)
	}
}

func parseCrashEvent(line string) (crashEvent, error) {
	f := strings.Fields(line)
	if len(f) == 0 || len(f[0]) != 1 {
		return crashEvent{}, fmt.Errorf("bad event %q", line)
	}
	nums := make([]uint64, len(f)-1)
	for i, s := range f[1:] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return crashEvent{}, fmt.Errorf("bad event %q: %v", line, err)
		}
		nums[i] = v
	}
	e := crashEvent{Kind: f[0][0]}
	want := 1
	switch e.Kind {
	case 'A':
		want = 4
	case 'B':
		want = 5
	case 'b', 'T', 'f', 'F', 'x':
	default:
		return crashEvent{}, fmt.Errorf("bad event kind %q", line)
	}
	if len(nums) != want {
		return crashEvent{}, fmt.Errorf("bad event %q: %d fields", line, len(nums))
	}
	switch e.Kind {
	case 'A':
		e.ID = crashRecID{Cycle: uint32(nums[0]), Writer: uint16(nums[1]), Counter: nums[2], N: 1}
		e.Seq = nums[3]
	case 'B':
		e.ID = crashRecID{Cycle: uint32(nums[0]), Writer: uint16(nums[1]), Counter: nums[2]}
		e.Seq, e.N = nums[3], nums[4]
	default:
		e.Seq = nums[0]
	}
	return e, nil
}

// crashCheck is what one verification found.
type crashCheck struct {
	Present  map[uint64]crashRecID // the recovered log
	Required int                   // acknowledged records that had to be present
	Checked  int                   // records read and verified
}

// crashVerify checks an opened, recovered WAL against the events a writer
// reported, starting from base (the log as verified before those events):
//   - every acknowledged record not removed by an acknowledged truncation is
//     present with exactly its bytes;
//   - the log is gapless from FirstSeq to LastSeq and every record in it is
//     one that was written (self-checking payload) — a prefix of what was
//     written, never a wrong record;
//   - no batch is partly present.
//
// A truncation that started but was not acknowledged (the last event) may or
// may not have happened: the records it would remove are optional, but if
// present they must still be exact.
func crashVerify(w *WAL, base map[uint64]crashRecID, evs []crashEvent) (crashCheck, error) {
	return crashVerifyFront(w, base, evs, false)
}

// crashVerifyFront is crashVerify for a log under MaxSegments retention
// (frontCut): acknowledged records before the recovered FirstSeq may be gone
// (retention dropped them), but the newest acknowledged record never is
// (retention keeps the active segment), and every one from FirstSeq on is
// present and exact.
func crashVerifyFront(w *WAL, base map[uint64]crashRecID, evs []crashEvent, frontCut bool) (crashCheck, error) {
	exp := make(map[uint64]crashRecID, len(base)+len(evs))
	for s, id := range base {
		exp[s] = id
	}
	soft := map[uint64]crashRecID{} // acked, not yet durable: if present, exact
	optional := func(uint64) bool { return false }
	for i, e := range evs {
		switch e.Kind {
		case 'A', 'a':
			m := exp
			if e.Kind == 'a' {
				m = soft
			}
			m[e.Seq] = e.ID
		case 'B', 'c':
			m := exp
			if e.Kind == 'c' {
				m = soft
			}
			for j := uint64(0); j < e.N; j++ {
				id := e.ID
				id.Idx, id.N = uint16(j), uint16(e.N)
				m[e.Seq+j] = id
			}
		case 'S':
			for s, id := range soft {
				exp[s] = id
			}
			clear(soft)
		case 'T':
			for _, m := range []map[uint64]crashRecID{exp, soft} {
				for s := range m {
					if s > e.Seq {
						delete(m, s)
					}
				}
			}
		case 'F':
			for _, m := range []map[uint64]crashRecID{exp, soft} {
				for s := range m {
					if s < e.Seq {
						delete(m, s)
					}
				}
			}
		case 'b', 'f':
			if i == len(evs)-1 { // in flight at the crash
				k := e.Seq
				if e.Kind == 'b' {
					optional = func(s uint64) bool { return s > k }
				} else {
					optional = func(s uint64) bool { return s < k }
				}
			} else if evs[i+1].Kind == 'x' && e.Kind == 'b' && evs[i+1].Seq == e.Seq {
				// failed without effect
			} else if done := map[byte]byte{'b': 'T', 'f': 'F'}[e.Kind]; evs[i+1].Kind != done || evs[i+1].Seq != e.Seq {
				return crashCheck{}, fmt.Errorf("event %d (%v): truncation start followed by %v, not by its end", i, e, evs[i+1])
			}
		}
	}
	var res crashCheck
	var first, last uint64
	// Under MaxSegments, the log's retention may drop the front while the
	// replay runs (a record already cut reads ErrNotFound): replay again
	// from the new front.
	for try := 0; ; try++ {
		res = crashCheck{Present: map[uint64]crashRecID{}}
		var err error
		first, last, err = crashReplay(w, exp, soft, &res)
		if err == nil {
			break
		}
		if !frontCut || !errors.Is(err, ErrNotFound) || w.FirstSeq() <= first || try == 10 {
			return res, err
		}
	}
	for s, id := range res.Present {
		if id.N == 1 {
			continue
		}
		start := s - uint64(id.Idx)
		for j := uint64(0); j < uint64(id.N); j++ {
			got, ok := res.Present[start+j]
			want := id
			want.Idx = uint16(j)
			if !ok || got != want {
				return res, fmt.Errorf("batch %+v at seqs [%d, %d] partly present (seq %d missing or different)", id, start, start+uint64(id.N)-1, start+j)
			}
		}
	}
	var lost []uint64
	// Without truncations in these events, nothing but retention removed
	// records, and retention keeps the newest.
	truncated := false
	for _, e := range evs {
		truncated = truncated || strings.ContainsRune("bTfFx", rune(e.Kind))
	}
	var newest uint64
	for s := range exp {
		newest = max(newest, s)
	}
	if frontCut && !truncated && len(exp) > 0 && (last == 0 || first > newest) {
		return res, fmt.Errorf("log [%d, %d]: retention dropped the newest acknowledged record %d", first, last, newest)
	}
	for s := range exp {
		if optional(s) || (frontCut && s < first) {
			continue
		}
		res.Required++
		if _, ok := res.Present[s]; !ok {
			lost = append(lost, s)
		}
	}
	if len(lost) > 0 {
		return res, fmt.Errorf("%d acknowledged records lost (log is [%d, %d]), e.g. seq %d", len(lost), first, last, lost[0])
	}
	return res, nil
}

// crashEnvInt reads a positive count from the environment.
func crashEnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func slicesDeleteFunc(s [][2]uint64, del func([2]uint64) bool) [][2]uint64 {
	out := s[:0]
	for _, x := range s {
		if !del(x) {
			out = append(out, x)
		}
	}
	return out
}

// crashReplay reads the whole log into res, checking each record against
// the acknowledged ones, and returns the bounds it read.
func crashReplay(w *WAL, exp, soft map[uint64]crashRecID, res *crashCheck) (first, last uint64, err error) {
	first, last = w.FirstSeq(), w.LastSeq()
	if last == 0 {
		return first, last, nil
	}
	next := first
	err = w.Replay(first, func(seq uint64, data []byte) error {
		if seq != next {
			return fmt.Errorf("gap: replay gave seq %d, want %d", seq, next)
		}
		next++
		id, ok := crashDecode(data)
		if !ok {
			return fmt.Errorf("seq %d: %d bytes that are not a record any writer wrote (wrong or damaged record)", seq, len(data))
		}
		if want, ok := exp[seq]; ok && want != id {
			return fmt.Errorf("seq %d: wrong record %+v, acknowledged was %+v", seq, id, want)
		}
		if want, ok := soft[seq]; ok && want != id {
			return fmt.Errorf("seq %d: wrong record %+v, acknowledged (not yet synced) was %+v", seq, id, want)
		}
		res.Present[seq] = id
		res.Checked++
		return nil
	})
	if err != nil {
		return first, last, fmt.Errorf("log [%d, %d]: %w", first, last, err)
	}
	if next != last+1 {
		return first, last, fmt.Errorf("replay stopped at seq %d, LastSeq is %d", next, last)
	}
	return first, last, nil
}
