package recovery

// The plan is a pure function of facts: these tests build facts by hand,
// with no files, one table per rule.

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/internal/scan"
)

// seg makes the facts of a segment [first, first+count) whose valid data
// ends cleanly (zeros after it).
func seg(first, count uint64) segFacts {
	end := int64(format.SegmentHeaderSize) + int64(count)*32
	return segFacts{path: fmt.Sprintf("/d/%s", format.SegmentName(first)),
		indexPath: fmt.Sprintf("/d/%s", format.IndexName(first)), seq: first, size: segSize, id: first,
		start: format.SegmentHeaderSize, proofOff: -1, hintOff: -1, chain: count,
		scan: scan.Result{End: end, Next: first + count, Stop: scan.StopZero, StopAt: end}, tailEnd: end}
}

func with(s segFacts, fn func(*segFacts)) segFacts { fn(&s); return s }

func facts(segs ...segFacts) *dirFacts {
	f := &dirFacts{names: map[string]bool{}, segs: segs, stop: len(segs)}
	for i := range segs {
		f.names[format.SegmentName(segs[i].seq)] = true
	}
	for i := range segs {
		next, last := uint64(0), i == len(segs)-1
		if !last {
			next = segs[i+1].seq
		}
		if !continues(&segs[i], next, last, false) {
			f.stop = i
			break
		}
	}
	return f
}

var (
	torn    = func(s *segFacts) { s.tailEnd = s.scan.End + 100; s.scan.Stop = scan.StopBadFrame }
	validCk = func(count uint64) func(*segFacts) {
		return func(s *segFacts) { s.ck = ckptFacts{state: indexValid, count: count} }
	}
	closedCk = func(s *segFacts) { s.ck = ckptFacts{state: indexValid, flags: format.IndexClosed} }
	zeroHdr  = func(s *segFacts) { s.header = headerZero }
)

func TestRuleHeader(t *testing.T) {
	for _, tc := range []struct {
		h       headerState
		corrupt bool
	}{{headerOK, false}, {headerZero, false}, {headerShort, true}, {headerBad, true}} {
		err := ruleHeader(&segFacts{header: tc.h, path: "/d/x.seg", headerReason: "why"})
		if tc.corrupt {
			assert.ErrorIs(t, err, format.ErrCorrupt, "header state %d", tc.h)
		} else {
			assert.NoError(t, err, "header state %d", tc.h)
		}
	}
}

func TestContinues(t *testing.T) {
	for _, tc := range []struct {
		name         string
		s            segFacts
		next         uint64
		last, strict bool
		want         bool
	}{
		{"middle segment ending where the next starts", seg(1, 5), 6, false, false, true},
		{"middle segment ending before the next starts (gap)", seg(1, 5), 9, false, false, false},
		{"middle segment running past the next's start", seg(1, 5), 4, false, false, false},
		{"middle segment ending at a bad frame", with(seg(1, 5), func(s *segFacts) { s.scan.Stop = scan.StopBadFrame }), 6, false, false, false},
		{"unfinished batch", with(seg(1, 5), func(s *segFacts) { s.scan.Dropped = 2 }), 6, false, false, false},
		{"last segment, zeros after the end", seg(1, 5), 0, true, false, true},
		{"last segment, bytes after the end", with(seg(1, 5), torn), 0, true, false, false},
		{"last segment closed cleanly is not looked at", with(seg(1, 5), func(s *segFacts) { s.closed = true; s.tailEnd += 8 }), 0, true, false, true},
		{"strict: stale bytes after a middle segment's data", with(seg(1, 5), func(s *segFacts) { s.tailEnd += 8 }), 6, false, true, false},
		{"not strict: stale bytes after a middle segment's data", with(seg(1, 5), func(s *segFacts) { s.tailEnd += 8 }), 6, false, false, true},
		{"zero header", with(seg(1, 5), zeroHdr), 6, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, continues(&tc.s, tc.next, tc.last, tc.strict))
		})
	}
}

func TestRuleProof(t *testing.T) {
	for _, tc := range []struct {
		name  string
		f     *dirFacts
		proof bool
	}{
		{"torn last segment, nothing later", facts(seg(1, 5), with(seg(6, 5), torn)), false},
		{"a later frame in the same segment proves it", facts(seg(1, 5), with(seg(6, 5), func(s *segFacts) { torn(s); s.proofOff = 400 })), true},
		{"later segment with hints not covering the cut", facts(with(seg(1, 5), torn), with(seg(6, 5), func(s *segFacts) { s.hintOff, s.hint = 64, 4 })), false},
		{"later segment with a hint covering the cut", facts(with(seg(1, 5), torn), with(seg(6, 5), func(s *segFacts) { s.hintOff, s.hint = 64, 6 })), true},
		{"later segment with a checkpoint of records", facts(with(seg(1, 5), torn), with(seg(6, 5), validCk(3))), true},
		{"later segment closed cleanly", facts(with(seg(1, 5), torn), with(seg(6, 0), closedCk)), true},
		{"later segment with an empty checkpoint", facts(with(seg(1, 5), torn), with(seg(6, 5), validCk(0))), false},
		{"later segment with an invalid checkpoint", facts(with(seg(1, 5), torn), with(seg(6, 5), func(s *segFacts) { s.ck = ckptFacts{state: indexInvalid, count: 5} })), false},
		{"missing middle segment, later checkpoint", facts(seg(1, 5), with(seg(11, 5), validCk(5))), true},
		{"missing middle segment, no evidence", facts(seg(1, 5), seg(11, 5)), false},
		{"zero header, own index checkpoint", facts(seg(1, 5), with(seg(6, 5), func(s *segFacts) { zeroHdr(s); validCk(2)(s) })), true},
		{"zero header, own frame hint", facts(seg(1, 5), with(seg(6, 5), func(s *segFacts) { zeroHdr(s); s.hintOff, s.hint = 64, 6 })), true},
		{"zero header, nothing", facts(seg(1, 5), with(seg(6, 5), zeroHdr)), false},
		{"interrupted TruncateBack needs no proof", facts(with(seg(1, 5), func(s *segFacts) { torn(s); s.truncating = true; s.proofOff = 300 })), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Less(t, tc.f.stop, len(tc.f.segs), "the facts have an end")
			err := ruleProof(tc.f, ruleEnd(tc.f))
			if tc.proof {
				assert.ErrorIs(t, err, format.ErrCorrupt)
			} else {
				assert.NoError(t, err)
			}
		})
	}
}

func TestPlanRecover(t *testing.T) {
	t.Run("clean log changes nothing", func(t *testing.T) {
		p := planRecover(facts(seg(1, 5), seg(6, 5)), Options{})
		require.NoError(t, p.corrupt)
		assert.Nil(t, p.cut)
		assert.Empty(t, p.remove)
		assert.Equal(t, uint64(11), p.nextSeq)
		assert.Len(t, p.segs, 2)
	})
	t.Run("torn tail: zero it, drop later segments newest first, count their records", func(t *testing.T) {
		f := facts(with(seg(1, 5), func(s *segFacts) { torn(s); s.afterValid = 1 }), seg(6, 4), seg(10, 3))
		f.names[format.IndexName(10)] = true
		p := planRecover(f, Options{})
		require.NoError(t, p.corrupt)
		require.NotNil(t, p.cut)
		assert.Equal(t, uint64(6), p.cut.seq)
		assert.Equal(t, f.segs[0].tailEnd, p.cut.zeroTo)
		assert.Equal(t, []string{"/d/" + format.IndexName(10), "/d/" + format.SegmentName(10), "/d/" + format.SegmentName(6)}, p.remove)
		assert.Equal(t, 1+4+3, p.dropped)
		assert.Equal(t, uint64(6), p.nextSeq)
		assert.Len(t, p.segs, 1)
	})
	t.Run("zero header of the last segment: an unfinished rotation", func(t *testing.T) {
		p := planRecover(facts(seg(1, 5), with(seg(6, 0), zeroHdr)), Options{})
		require.NoError(t, p.corrupt)
		assert.True(t, p.cut.wholeFile)
		assert.Equal(t, []string{"/d/" + format.SegmentName(6)}, p.remove)
		assert.Equal(t, uint64(6), p.nextSeq)
	})
	t.Run("meta beyond the log empties it", func(t *testing.T) {
		f := facts(seg(1, 5))
		f.metaFirst = 100
		p := planRecover(f, Options{})
		assert.Empty(t, p.segs)
		assert.Equal(t, uint64(100), p.nextSeq)
		assert.Equal(t, []string{"/d/" + format.SegmentName(1)}, p.remove)
	})
	t.Run("damaged meta is corruption", func(t *testing.T) {
		f := facts(seg(1, 5))
		f.metaErr = &format.CorruptError{File: "/d/wal.meta"}
		assert.ErrorIs(t, planRecover(f, Options{}).corrupt, format.ErrCorrupt)
	})
	t.Run("missing middle segment with a later checkpoint names the missing range", func(t *testing.T) {
		p := planRecover(facts(seg(1, 5), with(seg(11, 5), validCk(5))), Options{})
		require.ErrorIs(t, p.corrupt, format.ErrCorrupt)
		assert.Contains(t, p.corrupt.Error(), "6..10")
	})
}

func TestPlanRepair(t *testing.T) {
	assert.Nil(t, planRepair(facts(seg(1, 5), seg(6, 5))), "no damage, no plan")

	f := facts(seg(1, 5), with(seg(6, 5), func(s *segFacts) { s.header, s.headerReason = headerBad, "bad magic" }), seg(11, 5))
	p := planRepair(f)
	require.NotNil(t, p)
	assert.True(t, p.whole)
	assert.Equal(t, uint64(6), p.seq)
	assert.Equal(t, []string{"/d/" + format.SegmentName(11)}, p.later)
	assert.Equal(t, 5, p.dropped)

	p = planRepair(facts(with(seg(1, 5), func(s *segFacts) { torn(s); s.afterValid = 2 }), with(seg(6, 5), validCk(5))))
	require.NotNil(t, p, "Repair cuts even where Recover finds proof")
	assert.Greater(t, p.zeroTo, p.off)
	assert.Equal(t, 2+5, p.dropped)
}
