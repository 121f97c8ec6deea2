package mmapwal

// A read-only WAL beside a writer in another process: the test binary
// re-executes itself as the writer (TestReadOnlyHelperWriter), which
// appends, rotates (64 KiB segments), truncates front and back and keeps
// MaxSegments, reporting each call on stdout only after it returned. The
// parent follows with a Reader using Wait and reads at random, and checks
// every record it got against those reports.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const (
	roEnvDir  = "MMAPWAL_RO_CHILD_DIR"
	roEnvOps  = "MMAPWAL_RO_CHILD_OPS"
	roEnvKill = "MMAPWAL_RO_CHILD_KILLME" // crash mode: append until killed
)

// roPayload is the record a writer appends as its version-th append at seq:
// the version is unique per append, so a record cut and appended again at
// the same seq has other bytes.
func roPayload(seq, version uint64) []byte {
	head := fmt.Sprintf("seq=%d ver=%d;", seq, version)
	n := int(crashMix(version) % 1500)
	b := make([]byte, len(head)+n)
	copy(b, head)
	x := crashMix(seq ^ version<<20)
	for i := len(head); i < len(b); i++ {
		b[i] = byte(x >> (8 * (i % 8)))
	}
	return b
}

// roDecode returns the seq and version a payload names, if it is exactly
// the record roPayload makes for them.
func roDecode(b []byte) (seq, version uint64, ok bool) {
	if _, err := fmt.Sscanf(string(b[:bytes.IndexByte(b, ';')+1]), "seq=%d ver=%d;", &seq, &version); err != nil {
		return 0, 0, false
	}
	return seq, version, bytes.Equal(b, roPayload(seq, version))
}

func TestReadOnlyHelperWriter(t *testing.T) {
	dir := os.Getenv(roEnvDir)
	if dir == "" {
		t.Skip("helper process for the read-only tests: runs only when re-executed by them")
	}
	fail := func(err error) {
		fmt.Fprintf(os.Stderr, "read-only writer child: %v\n", err)
		os.Exit(3)
	}
	ops, _ := strconv.Atoi(os.Getenv(roEnvOps))
	killMe := os.Getenv(roEnvKill) != ""
	o := &Options{SegmentSize: MinSegmentSize, Sync: SyncNone, MaxSegments: 12}
	if killMe {
		o.MaxSegments = 0
	}
	w, err := Open(dir, o)
	if err != nil {
		fail(err)
	}
	out := bufio.NewWriter(os.Stdout)
	emit := func(format string, args ...any) {
		fmt.Fprintf(out, crashPrefix+format+"\n", args...)
		out.Flush()
	}
	rng := rand.New(rand.NewSource(int64(os.Getpid())))
	version := uint64(0)
	appendOne := func() {
		version++
		seq := nextSeqOf(w)
		s, err := w.Append(roPayload(seq, version))
		if err != nil || s != seq {
			fail(fmt.Errorf("Append: seq %d want %d: %v", s, seq, err))
		}
		emit("A %d %d", s, version)
	}
	for i := 0; killMe || i < ops; i++ {
		switch k := rng.Intn(100); {
		case killMe || k < 80 || w.LastSeq() < 40:
			appendOne()
		case k < 90:
			n := 2 + rng.Intn(4)
			first := w.LastSeq() + 1
			recs := make([][]byte, n)
			for j := range recs {
				recs[j] = roPayload(first+uint64(j), version+1+uint64(j))
			}
			s, err := w.AppendBatch(recs)
			if err != nil || s != first {
				fail(fmt.Errorf("AppendBatch: seq %d want %d: %v", s, first, err))
			}
			for j := range recs {
				version++
				emit("A %d %d", first+uint64(j), version)
			}
		case k < 97:
			cut := w.LastSeq() - uint64(rng.Intn(40))
			if cut < w.FirstSeq() {
				continue
			}
			if err := w.TruncateBack(cut); err != nil {
				fail(err)
			}
			emit("T %d", cut)
		default:
			to := w.FirstSeq() + uint64(rng.Intn(30))
			if to > w.LastSeq() {
				continue
			}
			if err := w.TruncateFront(to); err != nil {
				fail(err)
			}
			emit("F %d", to)
		}
		if i%50 == 0 {
			time.Sleep(time.Millisecond) // let the readers interleave
		}
	}
	emit("D %d %d", w.FirstSeq(), w.LastSeq())
	io.Copy(io.Discard, os.Stdin) // hold the log open until the parent is done
	if err := w.Close(); err != nil {
		fail(err)
	}
}

// nextSeqOf is the seq the next Append to the empty log w gets.
func nextSeqOf(w *WAL) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.nextSeq
}

// roEvent is one report of the writer child.
type roEvent struct {
	kind     byte // 'A' append acked, 'T' TruncateBack returned, 'F' TruncateFront returned, 'D' done
	seq, ver uint64
}

// roChild runs the writer child on dir and collects its reports.
type roChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	mu    sync.Mutex
	evs   []roEvent
	n     atomic.Int64 // len(evs), readable without mu
	acks  chan struct{}
	done  chan struct{} // stdout closed
	fin   chan roEvent  // the 'D' report
	errs  bytes.Buffer
}

func startROChild(t *testing.T, dir string, env ...string) *roChild {
	t.Helper()
	c := &roChild{acks: make(chan struct{}, 1), done: make(chan struct{}), fin: make(chan roEvent, 1)}
	c.cmd = exec.Command(os.Args[0], "-test.run=^TestReadOnlyHelperWriter$", "-test.count=1")
	c.cmd.Env = append(append(os.Environ(), roEnvDir+"="+dir), env...)
	c.cmd.Stderr = &c.errs
	out, err := c.cmd.StdoutPipe()
	require.NoError(t, err)
	c.stdin, err = c.cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, c.cmd.Start())
	go func() {
		defer close(c.done)
		r := bufio.NewReader(out)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if !strings.HasPrefix(line, crashPrefix) {
				continue
			}
			f := strings.Fields(strings.TrimPrefix(line, crashPrefix))
			e := roEvent{kind: f[0][0]}
			e.seq, _ = strconv.ParseUint(f[1], 10, 64)
			if len(f) > 2 {
				e.ver, _ = strconv.ParseUint(f[2], 10, 64)
			}
			c.mu.Lock()
			c.evs = append(c.evs, e)
			c.n.Store(int64(len(c.evs)))
			c.mu.Unlock()
			select {
			case c.acks <- struct{}{}:
			default:
			}
			if e.kind == 'D' {
				c.fin <- e
			}
		}
	}()
	return c
}

// waitEvents waits until the child reported at least n events.
func (c *roChild) waitEvents(t *testing.T, n int64) {
	t.Helper()
	deadline := time.After(60 * time.Second) // safety net only
	for c.n.Load() < n {
		select {
		case <-c.acks:
		case <-c.done:
			t.Fatalf("writer child exited early: %s", c.errs.String())
		case <-deadline:
			t.Fatalf("writer child reported only %d events", c.n.Load())
		}
	}
}

// roGot is a record the parent read, with the number of child reports it
// had seen when the read began.
type roGot struct {
	seq   uint64
	data  []byte
	start int64
}

// roCheck checks every record got against the child's reports: it must be
// a record the child appended at that seq, and no TruncateBack or
// TruncateFront the parent had seen reported when the read began may have
// cut it.
func roCheck(t *testing.T, evs []roEvent, got []roGot) {
	t.Helper()
	ackAt := map[uint64]int{} // version -> index of its ack
	for i, e := range evs {
		if e.kind == 'A' {
			ackAt[e.ver] = i
		}
	}
	for _, g := range got {
		seq, ver, ok := roDecode(g.data)
		require.True(t, ok, "record at seq %d is not a record the writer makes", g.seq)
		require.Equal(t, g.seq, seq, "record returned for seq %d was appended at seq %d", g.seq, seq)
		a, ok := ackAt[ver]
		require.True(t, ok, "seq %d version %d was never acknowledged", seq, ver)
		require.Equal(t, seq, evs[a].seq)
		for i := a + 1; i < int(g.start) && i < len(evs); i++ {
			e := evs[i]
			if e.kind == 'T' && e.seq < seq {
				t.Fatalf("seq %d version %d returned by a read that began after TruncateBack(%d) (report %d) cut it", seq, ver, e.seq, i)
			}
			if e.kind == 'F' && e.seq > seq {
				t.Fatalf("seq %d version %d returned by a read that began after TruncateFront(%d) (report %d)", seq, ver, e.seq, i)
			}
		}
	}
}

func TestReadOnly_FollowsWriterProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary; skipped with -short")
	}
	dir := filepath.Join(t.TempDir(), "wal")
	c := startROChild(t, dir, roEnvOps+"=4000")
	defer c.cmd.Process.Kill()
	c.waitEvents(t, 20)

	r, err := Open(dir, roOpts())
	require.NoError(t, err, "read-only Open beside a writer process")
	defer r.Close()

	var gotMu sync.Mutex
	var got []roGot
	keep := func(g roGot) {
		gotMu.Lock()
		got = append(got, g)
		gotMu.Unlock()
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var followed atomic.Uint64 // last seq the follower returned
	var waits, truncs atomic.Int64
	wg.Add(2)
	go func() { // follower
		defer wg.Done()
		rd, err := r.NewReader(0)
		if err != nil {
			t.Errorf("NewReader: %v", err)
			return
		}
		prev := uint64(0)
		for {
			start := c.n.Load()
			for rd.Next() {
				if prev != 0 && rd.Seq() != prev+1 {
					t.Errorf("follower: seq %d after %d", rd.Seq(), prev)
					return
				}
				prev = rd.Seq()
				keep(roGot{seq: rd.Seq(), data: bytes.Clone(rd.Value()), start: start})
				followed.Store(rd.Seq())
				start = c.n.Load()
			}
			if err := rd.Err(); err != nil {
				if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrNotFound) {
					t.Errorf("follower: %v", err)
					return
				}
				truncs.Add(1)
				// Resynchronise a little before the end.
				for {
					nr, err := r.NewReader(max(r.FirstSeq(), r.LastSeq()-10))
					if err == nil {
						rd = nr
						break
					}
					// cut again meanwhile
				}
				prev = 0
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			err := rd.Wait(ctx)
			cancel()
			select {
			case <-stop:
				return
			default:
			}
			if err == nil {
				waits.Add(1)
			} else if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrNotFound) {
				t.Errorf("Wait: %v", err)
				return
			}
		}
	}()
	go func() { // random reads
		defer wg.Done()
		rng := rand.New(rand.NewSource(1))
		for {
			select {
			case <-stop:
				return
			default:
			}
			first, last := r.FirstSeq(), r.LastSeq()
			if last < first || first == 0 {
				continue
			}
			seq := first + uint64(rng.Int63n(int64(last-first+1)))
			start := c.n.Load()
			b, err := r.Read(seq)
			switch {
			case err == nil:
				keep(roGot{seq: seq, data: b, start: start})
			case errors.Is(err, ErrNotFound):
			default:
				t.Errorf("Read(%d): %v", seq, err)
				return
			}
		}
	}()

	var fin roEvent
	select {
	case fin = <-c.fin:
	case <-c.done:
		t.Fatalf("writer child exited early: %s", c.errs.String())
	}
	// The writer is idle, log open: the follower reaches its end (after
	// resynchronising, if it had followed past a final TruncateBack).
	deadline := time.Now().Add(30 * time.Second) // safety net only
	for followed.Load() != fin.ver && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	require.Equal(t, fin.ver, followed.Load(), "follower did not reach the writer's last seq")
	require.Equal(t, fin.seq, r.FirstSeq())
	require.Equal(t, fin.ver, r.LastSeq())
	c.stdin.Close()
	require.NoError(t, c.cmd.Wait(), c.errs.String())

	c.mu.Lock()
	evs := c.evs
	c.mu.Unlock()
	var nT, nF int
	for _, e := range evs {
		switch e.kind {
		case 'T':
			nT++
		case 'F':
			nF++
		}
	}
	t.Logf("%d reports (%d TruncateBack, %d TruncateFront), %d records read, %d waits returned, %d resyncs",
		len(evs), nT, nF, len(got), waits.Load(), truncs.Load())
	require.Positive(t, waits.Load(), "no Wait returned for an append")
	roCheck(t, evs, got)
}

func TestReadOnly_CrashedLogShowsValidPrefix(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary; skipped with -short")
	}
	dir := filepath.Join(t.TempDir(), "wal")
	c := startROChild(t, dir, roEnvKill+"=1")
	c.waitEvents(t, 300)
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGKILL))
	<-c.done
	_ = c.cmd.Wait()
	c.mu.Lock()
	evs := c.evs
	c.mu.Unlock()

	// The kill may fall between two appends: tear the tail for certain,
	// as a kill during the copy of a frame would, with a frame whose
	// checksum fails right after the last record.
	segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	require.NoError(t, err)
	last := segs[len(segs)-1]
	probe, err := Open(dir, &Options{ReadOnly: true})
	require.NoError(t, err)
	tail := probe.ro.view.Load().tailOff
	lastSeq := probe.LastSeq()
	require.NoError(t, probe.Close())
	f, err := os.OpenFile(last, os.O_RDWR, 0)
	require.NoError(t, err)
	fi, err := f.Stat()
	require.NoError(t, err)
	if fi.Size()-tail < 64 {
		t.Skip("the last segment is full: no room for a torn frame") // rare
	}
	torn := make([]byte, 64)
	copy(torn[4:], []byte{1, 0, 0, 0, 20})
	torn[16] = byte(lastSeq + 1)
	torn[40] = 0xff
	_, err = f.WriteAt(torn, tail)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	before := dirFingerprint(t, dir)
	time.Sleep(10 * time.Millisecond)
	r, err := Open(dir, &Options{ReadOnly: true})
	require.NoError(t, err)
	st := r.Stats()
	require.Equal(t, last, st.Recovery.TornFile, "torn tail reported")
	require.Equal(t, tail, st.Recovery.TornOffset)
	require.Positive(t, st.Recovery.BytesTruncated)
	require.Equal(t, lastSeq, r.LastSeq())
	var got []roGot
	require.NoError(t, r.Replay(0, func(seq uint64, data []byte) error {
		got = append(got, roGot{seq: seq, data: bytes.Clone(data), start: int64(len(evs))})
		return nil
	}))
	require.Len(t, got, int(lastSeq-r.FirstSeq()+1))
	// The kill may fall between an Append and its report: a record after
	// the last acknowledged one may be in the log unacknowledged (whole,
	// with its own seq), which roCheck alone would call a foreign record.
	var maxAcked uint64
	for _, e := range evs {
		if e.kind == 'A' {
			maxAcked = max(maxAcked, e.seq)
		}
	}
	acked := got[:0:0]
	for _, g := range got {
		if g.seq <= maxAcked {
			acked = append(acked, g)
			continue
		}
		seq, _, ok := roDecode(g.data)
		require.True(t, ok && seq == g.seq, "unacknowledged tail record at seq %d is not a record the writer made for it", g.seq)
	}
	roCheck(t, evs, acked)
	// Every acknowledged record is there (the page cache survived the kill).
	for _, e := range evs {
		if e.kind == 'A' {
			require.LessOrEqual(t, e.seq, lastSeq, "acknowledged seq %d missing", e.seq)
		}
	}
	// Waiting on a dead log times out; nothing changed on disk.
	rd, err := r.NewReader(lastSeq + 1)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	require.ErrorIs(t, rd.Wait(ctx), context.DeadlineExceeded)
	cancel()
	require.NoError(t, r.Close())
	require.Equal(t, before, dirFingerprint(t, dir), "read-only Open changed the crashed log")

	// A writer's Open repairs it and keeps the same valid prefix.
	w := mustOpen(t, dir, &Options{SegmentSize: MinSegmentSize, Sync: SyncNone})
	require.Equal(t, lastSeq, w.LastSeq())
	require.NoError(t, w.Close())
}
