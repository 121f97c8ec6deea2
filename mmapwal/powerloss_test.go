//go:build linux

package mmapwal

// Simulated power loss. plHooks sits at the durability seam: every sync first
// reads the bytes it is about to make durable, calls the real sync, and only
// if that succeeded copies them into a model of the disk. At random seam
// calls the test captures the page cache (the files as they are) next to that
// model, and later builds crash images from each capture: synced bytes kept;
// each 4 KiB page that differs from the synced version old, new, or torn at
// 512-byte boundaries; each file created, renamed or deleted since the last
// directory sync present under its old or its new names. Each image is opened
// by the real code in a fresh directory and checked with crashVerify.

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/mmapwal/wal/index"
)

// plFileID identifies a file across renames; the birth time tells a reused
// inode number from the file that had it before.
type plFileID struct {
	ino   uint64
	btime int64
}

func plStatFd(f *os.File) (plFileID, int64, error) {
	var st unix.Statx_t
	if err := unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH, unix.STATX_INO|unix.STATX_BTIME|unix.STATX_SIZE, &st); err != nil {
		return plFileID{}, 0, err
	}
	return plFileID{st.Ino, st.Btime.Sec*1e9 + int64(st.Btime.Nsec)}, int64(st.Size), nil
}

// plFile is one file of the page cache as captured.
type plFile struct {
	id   plFileID
	data []byte
}

// plCapture is the state at one instant: the page cache, the disk model,
// and the writer's events up to then.
type plCapture struct {
	at      string // which seam call
	cur     map[string]plFile
	durable map[plFileID][]byte
	durDir  map[string]plFileID
	sizes   map[plFileID]int64
	events  []crashEvent
}

type plHooks struct {
	real durability
	dir  string
	t    *testing.T

	// dirMu serialises the directory syncs (listing, real sync, model
	// update): run concurrently, an older listing could be applied after a
	// newer one, bringing back a name whose file the newer one had let go
	// of, its contents forgotten (an image with a zeroed wal.meta).
	dirMu sync.Mutex

	mu      sync.Mutex // guards the disk model and captures
	durable map[plFileID][]byte
	durDir  map[string]plFileID
	sizes   map[plFileID]int64

	rng      *rand.Rand // guarded by mu
	prob     float64
	maxCaps  int
	captures []*plCapture
	events   func() []crashEvent
	calls    atomic.Int64
	errs     []error
	// duringTB: false = never capture while a TruncateBack is in flight
	// (known issue, see TestPowerLossDuringTruncateBack); true = only then.
	duringTB bool
}

var _ durability = (*plHooks)(nil)

func newPLHooks(t *testing.T, dir string, seed int64, events func() []crashEvent) *plHooks {
	h := &plHooks{real: osDurability{}, dir: dir, t: t, durable: map[plFileID][]byte{}, durDir: map[string]plFileID{},
		sizes: map[plFileID]int64{}, rng: rand.New(rand.NewSource(seed)), prob: 0.3, maxCaps: 12, events: events}
	// Whatever is on disk when the hooks start is durable.
	cur, err := h.listLocked()
	require.NoError(t, err)
	for name, f := range cur {
		h.durDir[name] = f.id
		h.durable[f.id] = f.data
	}
	return h
}

// listLocked reads every regular file of the directory. A file renamed or
// removed between the ReadDir and its open makes it list again: left out,
// a file renamed meanwhile (a prepared segment taking its name at a
// rotation) would be taken for removed, and syncDir would forget what of it
// was synced, making images in which synced bytes are lost.
func (h *plHooks) listLocked() (map[string]plFile, error) {
	for try := 0; ; try++ {
		out, vanished, err := h.listOnceLocked()
		if err != nil || !vanished {
			return out, err
		}
		if try == 1000 {
			return nil, fmt.Errorf("listing %s: files keep vanishing between ReadDir and open", h.dir)
		}
	}
}

func (h *plHooks) listOnceLocked() (out map[string]plFile, vanished bool, err error) {
	ents, err := os.ReadDir(h.dir)
	if err != nil {
		return nil, false, err
	}
	out = map[string]plFile{}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		f, err := os.Open(filepath.Join(h.dir, e.Name()))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, true, nil
			}
			return nil, false, err
		}
		id, size, err := plStatFd(f)
		if err == nil {
			data := make([]byte, size)
			var n int
			n, err = f.ReadAt(data, 0)
			if err != nil && n == len(data) {
				err = nil
			}
			out[e.Name()] = plFile{id: id, data: data[:n]}
			h.sizes[id] = int64(n)
		}
		f.Close()
		if err != nil {
			return nil, false, err
		}
	}
	return out, false, nil
}

// maybeCapture records the page cache and the disk model at this seam call.
func (h *plHooks) maybeCapture(at string) {
	h.calls.Add(1)
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.captures) >= h.maxCaps || !h.duringTB && h.rng.Float64() >= h.prob {
		return
	}
	evs := h.events() // first: every ack in it had its sync committed before
	if inTB := len(evs) > 0 && evs[len(evs)-1].Kind == 'b'; inTB != h.duringTB {
		return
	}
	c := &plCapture{at: at, durable: make(map[plFileID][]byte, len(h.durable)), durDir: make(map[string]plFileID, len(h.durDir)),
		sizes: map[plFileID]int64{}, events: evs}
	for k, v := range h.durable { // values are never modified in place
		c.durable[k] = v
	}
	for k, v := range h.durDir {
		c.durDir[k] = v
	}
	cur, err := h.listLocked()
	if err != nil {
		h.errs = append(h.errs, err)
		return
	}
	c.cur = cur
	for k, v := range h.sizes {
		c.sizes[k] = v
	}
	h.captures = append(h.captures, c)
}

// commit makes data at off durable for file id (copy on write).
func (h *plHooks) commit(id plFileID, off int64, data []byte, size int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.durable[id]
	n := max(int64(len(old)), off+int64(len(data)), size)
	nb := make([]byte, n)
	copy(nb, old)
	copy(nb[off:], data)
	h.durable[id] = nb
	h.sizes[id] = size
}

func (h *plHooks) readFile(f *os.File, off, n int64) (plFileID, []byte, int64, error) {
	id, size, err := plStatFd(f)
	if err != nil {
		return id, nil, 0, err
	}
	if n < 0 {
		n = size - off
	}
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		return id, nil, 0, err
	}
	return id, b, size, nil
}

func (h *plHooks) syncSegment(s *segment, off, n int64) error {
	h.maybeCapture(fmt.Sprintf("syncSegment(%s, %d, %d)", filepath.Base(s.path), off, n))
	f := s.f
	if f == nil { // on Unix a mapped segment holds no descriptor (mapcache.go)
		var err error
		if f, err = os.Open(s.path); err != nil {
			return err
		}
		defer f.Close()
	}
	id, b, size, err := h.readFile(f, off, n)
	if err != nil {
		return err
	}
	if err := h.real.syncSegment(s, off, n); err != nil {
		return err
	}
	h.commit(id, off, b, size)
	return nil
}

func (h *plHooks) syncIndex(x *index.Index) error {
	h.maybeCapture("syncIndex(" + filepath.Base(x.Path()) + ")")
	f, err := os.Open(x.Path())
	if err != nil {
		return err
	}
	defer f.Close()
	id, b, size, err := h.readFile(f, 0, -1)
	if err != nil {
		return err
	}
	if err := h.real.syncIndex(x); err != nil {
		return err
	}
	h.commit(id, 0, b, size)
	return nil
}

func (h *plHooks) syncFile(f *os.File) error {
	h.maybeCapture("syncFile(" + filepath.Base(f.Name()) + ")")
	id, b, size, err := h.readFile(f, 0, -1)
	if err != nil {
		return err
	}
	if err := h.real.syncFile(f); err != nil {
		return err
	}
	h.commit(id, 0, b, size)
	return nil
}

func (h *plHooks) syncDir(dir string) error {
	h.maybeCapture("syncDir")
	h.dirMu.Lock()
	defer h.dirMu.Unlock()
	h.mu.Lock()
	cur, err := h.listLocked()
	// Only what had synced contents when the listing was taken can be
	// "removed for good" below: a file synced for the first time during
	// the real directory sync is not in the listing, yet not removed.
	known := make(map[plFileID]bool, len(h.durable))
	for id := range h.durable {
		known[id] = true
	}
	h.mu.Unlock()
	if err != nil {
		return err
	}
	if err := h.real.syncDir(dir); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.durDir = map[string]plFileID{}
	live := map[plFileID]bool{}
	for name, f := range cur {
		h.durDir[name] = f.id
		live[f.id] = true
	}
	for id := range h.durable { // removed for good: forget the contents
		if !live[id] && known[id] {
			delete(h.durable, id)
		}
	}
	return nil
}

// plImage builds one crash image of a capture: file name -> contents.
func plImage(c *plCapture, rng *rand.Rand) map[string][]byte {
	durNames, curNames := map[plFileID][]string{}, map[plFileID][]string{}
	for name, id := range c.durDir {
		durNames[id] = append(durNames[id], name)
	}
	for name, f := range c.cur {
		curNames[f.id] = append(curNames[f.id], name)
	}
	var ids []plFileID
	seen := map[plFileID]bool{}
	for _, m := range []map[plFileID][]string{durNames, curNames} {
		for id := range m {
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	sort.Slice(ids, func(i, j int) bool {
		return ids[i].ino < ids[j].ino || ids[i].ino == ids[j].ino && ids[i].btime < ids[j].btime
	})
	rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	out := map[string][]byte{}
	for _, id := range ids {
		d, cn := durNames[id], curNames[id]
		sort.Strings(d)
		sort.Strings(cn)
		names := cn
		if fmt.Sprint(d) != fmt.Sprint(cn) && rng.Intn(2) == 0 {
			names = d // the directory change did not reach the disk
		}
		if len(names) == 0 {
			continue
		}
		var newData []byte
		for _, f := range c.cur {
			if f.id == id {
				newData = f.data
				break
			}
		}
		data := plMix(c.durable[id], newData, c.sizes[id], rng)
		for _, name := range names {
			if _, taken := out[name]; !taken { // a rename is atomic: one file per name
				out[name] = data
			}
		}
	}
	return out
}

// plMix is the file after a power cut: durable bytes, and per page that
// differs from them the old page, the new page, or a mix of 512-byte sectors.
func plMix(old, cur []byte, size int64, rng *rand.Rand) []byte {
	if cur == nil { // deleted since: it comes back as it was on disk
		out := make([]byte, max(int64(len(old)), size))
		copy(out, old)
		return out
	}
	out := make([]byte, len(cur))
	copy(out, old)
	const page, sector = 4096, 512
	for p := 0; p < len(cur); p += page {
		e := min(p+page, len(cur))
		if bytes.Equal(out[p:e], cur[p:e]) {
			continue
		}
		switch r := rng.Intn(10); {
		case r < 4: // the page never reached the disk
		case r < 8:
			copy(out[p:e], cur[p:e])
		case r < 9: // torn: the first k sectors made it
			k := p + sector*(1+rng.Intn(page/sector-1))
			copy(out[p:min(k, e)], cur[p:min(k, e)])
		default: // sectors written in any order
			for s := p; s < e; s += sector {
				if rng.Intn(2) == 0 {
					copy(out[s:min(s+sector, e)], cur[s:min(s+sector, e)])
				}
			}
		}
	}
	return out
}

// plOpts are the options of the power-loss writer and of every image check.
func plOpts(p SyncPolicy) *Options {
	o := &Options{SegmentSize: MinSegmentSize, Sync: p}
	if p == SyncPeriodic {
		o.SyncInterval = 2 * time.Millisecond // episodes last milliseconds: let the timer fire
	}
	return o
}

type plTotals struct {
	trials, episodes, checked, required, captures int
}

// TestPowerLossSyncPeriodic: SyncPeriodic writers (2 ms interval); a record
// is counted durable once an explicit Sync covered it, and the background
// flushes between captures must never break the prefix.
func TestPowerLossSyncPeriodic(t *testing.T) {
	plRun(t, crashEnvInt("MMAPWAL_POWERLOSS_TRIALS", 300), SyncPeriodic, false)
}

// TestPowerLoss: SyncAlways writers with batches, TruncateFront and
// TruncateBack; every record acknowledged is durable.
func TestPowerLoss(t *testing.T) {
	plRun(t, crashEnvInt("MMAPWAL_POWERLOSS_TRIALS", 500), SyncAlways, false)
}

// TestPowerLossSyncNone: SyncNone writers; a record is durable once an
// explicit Sync returned. Many unsynced pages per image make torn holes
// before intact later frames common, which is what catches a recovery that
// skips a bad frame. Regression test for two issues found with it: an
// all-zero header of a non-last segment (never synced, while a later
// segment's pages were written back) failed Open with ErrCorrupt; and
// TruncateBack's durable index checkpoint could cover records before the
// cut that had never been synced.
func TestPowerLossSyncNone(t *testing.T) {
	plRun(t, crashEnvInt("MMAPWAL_POWERLOSS_TRIALS", 500), SyncNone, false)
}

func plRun(t *testing.T, trials int, policy SyncPolicy, duringTB bool) {
	seed := time.Now().UnixNano()
	if s := os.Getenv("MMAPWAL_POWERLOSS_SEED"); s != "" {
		_, err := fmt.Sscan(s, &seed)
		require.NoError(t, err)
	}
	t.Logf("power-loss seed %d (rerun with MMAPWAL_POWERLOSS_SEED=%d)", seed, seed)
	start := time.Now()
	var tot plTotals
	for ep := 0; tot.trials < trials && ep < 20*trials; ep++ {
		plEpisode(t, seed+int64(ep)*7919, uint32(ep+1), trials-tot.trials, policy, duringTB, &tot)
		if t.Failed() {
			break
		}
	}
	t.Logf("TOTAL powerloss %v: trials=%d episodes=%d captures=%d records_checked=%d acked_durable_checked=%d lost=0 wrong=0 in %v",
		policy, tot.trials, tot.episodes, tot.captures, tot.checked, tot.required, time.Since(start).Round(time.Millisecond))
}

// TestPowerLossDuringTruncateBack captures only while a TruncateBack is
// zeroing and syncing the tail. Regression test: that zeroing of synced
// frames is one multi-page sync, so a power cut during it can leave zeroed
// pages before intact old frames, whose durable-seq hints then "prove" the
// zeroed records were synced (Open failed with ErrCorrupt), or an old index
// checkpoint is trusted across the hole (Read failed with ErrCorrupt).
func TestPowerLossDuringTruncateBack(t *testing.T) {
	plRun(t, 200, SyncAlways, true)
}

// plEpisode runs one writer under the hooks, then checks crash images of its
// captures (at most budget of them).
func plEpisode(t *testing.T, seed int64, episode uint32, budget int, policy SyncPolicy, duringTB bool, tot *plTotals) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "wal")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	var evMu sync.Mutex
	var evs []crashEvent
	events := func() []crashEvent {
		evMu.Lock()
		defer evMu.Unlock()
		return append([]crashEvent(nil), evs...)
	}
	h := newPLHooks(t, dir, seed, events)
	h.duringTB = duringTB
	opts := plOpts(policy)
	opts.hooks = h
	w, err := Open(dir, opts)
	require.NoError(t, err, "seed %d", seed)

	// Writers hold trunc shared for an append and its report, the truncator
	// exclusively, so the event order is the log's order.
	var trunc sync.RWMutex
	var units struct {
		sync.Mutex
		u [][2]uint64 // acked records and batches: [first, last]
	}
	report := func(e crashEvent) {
		evMu.Lock()
		evs = append(evs, e)
		evMu.Unlock()
	}
	const writers, opsPerWriter = 3, 60
	var wg sync.WaitGroup
	errc := make(chan error, writers+1)
	for wr := 0; wr < writers; wr++ {
		wg.Add(1)
		go func(wr int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(seed + int64(wr)))
			for c := uint64(1); c <= opsPerWriter; c++ {
				id := crashRecID{Cycle: episode, Writer: uint16(wr), Counter: c, N: 1}
				trunc.RLock()
				var e crashEvent
				if rng.Intn(4) == 0 {
					n := 2 + rng.Intn(4)
					first, err := w.AppendBatch(crashBatch(id, n))
					if err != nil {
						trunc.RUnlock()
						errc <- err
						return
					}
					e = crashEvent{Kind: 'B', Seq: first, N: uint64(n), ID: id}
					if policy != SyncAlways {
						e.Kind = 'c'
					}
				} else {
					seq, err := w.Append(crashPayload(id))
					if err != nil {
						trunc.RUnlock()
						errc <- err
						return
					}
					e = crashEvent{Kind: 'A', Seq: seq, ID: id}
					if policy != SyncAlways {
						e.Kind = 'a'
					}
				}
				report(e)
				// The unit is listed before trunc is released: listed after,
				// a truncation in between could cut it and leave a stale unit
				// whose bounds fall inside a batch written later at the same
				// seqs; truncating there would itself split that batch.
				units.Lock()
				units.u = append(units.u, [2]uint64{e.Seq, e.Seq + max(e.N, 1) - 1})
				units.Unlock()
				trunc.RUnlock()
			}
		}(wr)
	}
	stop := make(chan struct{})
	var twg sync.WaitGroup
	twg.Add(1)
	go func() { // truncator: now and then cut the front or the back at a record or batch boundary
		defer twg.Done()
		rng := rand.New(rand.NewSource(seed - 1))
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(1+rng.Intn(4)) * time.Millisecond):
			}
			trunc.Lock()
			units.Lock()
			var err error
			if policy != SyncAlways && rng.Intn(2) == 0 {
				if err = w.Sync(); err == nil {
					report(crashEvent{Kind: 'S'})
				}
			} else if n := len(units.u); n > 4 {
				u := units.u[n-1-rng.Intn(min(n, 12))]
				if rng.Intn(3) == 0 {
					report(crashEvent{Kind: 'b', Seq: u[1]})
					if err = w.TruncateBack(u[1]); err == nil {
						report(crashEvent{Kind: 'T', Seq: u[1]})
						units.u = slicesDeleteFunc(units.u, func(x [2]uint64) bool { return x[0] > u[1] })
					}
				} else {
					u = units.u[rng.Intn(n/2)]
					report(crashEvent{Kind: 'f', Seq: u[0]})
					if err = w.TruncateFront(u[0]); err == nil {
						report(crashEvent{Kind: 'F', Seq: u[0]})
						units.u = slicesDeleteFunc(units.u, func(x [2]uint64) bool { return x[1] < u[0] })
					}
				}
			}
			units.Unlock()
			trunc.Unlock()
			if err != nil {
				errc <- err
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	twg.Wait()
	close(errc)
	for err := range errc {
		require.NoError(t, err, "seed %d", seed)
	}
	require.NoError(t, w.Close())
	h.mu.Lock()
	caps := h.captures
	require.Empty(t, h.errs)
	h.mu.Unlock()
	tot.episodes++
	tot.captures += len(caps)

	// Check images. Several images per capture: the random choices differ.
	base := filepath.Join(t.TempDir(), "img")
	for ci, c := range caps {
		for k := 0; k < 4 && budget > 0; k++ {
			budget--
			iseed := seed ^ int64(ci+1)<<32 ^ int64(k+1)<<48
			img := plImage(c, rand.New(rand.NewSource(iseed)))
			idir := filepath.Join(base, fmt.Sprintf("%d-%d", ci, k))
			require.NoError(t, os.MkdirAll(idir, 0o755))
			for name, data := range img {
				require.NoError(t, os.WriteFile(filepath.Join(idir, name), data, 0o644))
			}
			where := fmt.Sprintf("episode seed %d, capture %d at %s (%d events), image seed %d, dir %s", seed, ci, c.at, len(c.events), iseed, idir)
			iw, err := Open(idir, plOpts(policy))
			if !assertNoErrorf(t, err, "Open of a power-loss image failed: %s", where) {
				plKeep(t, idir, c)
				return
			}
			res, err := crashVerify(iw, nil, c.events)
			if err == nil {
				var seq uint64
				seq, err = iw.Append(crashPayload(crashRecID{Cycle: episode, Writer: 999, Counter: uint64(ci), N: 1}))
				if err == nil && iw.LastSeq() != seq {
					err = fmt.Errorf("append after recovery got seq %d, LastSeq %d", seq, iw.LastSeq())
				}
				if last := lastKey(res.Present); err == nil && last != 0 && seq != last+1 {
					err = fmt.Errorf("append after recovery got seq %d, want %d", seq, last+1)
				}
			}
			require.NoError(t, iw.Close())
			if !assertNoErrorf(t, err, "power-loss image: %s", where) {
				plKeep(t, idir, c)
				return
			}
			tot.trials++
			tot.checked += res.Checked
			tot.required += res.Required
			os.RemoveAll(idir)
		}
	}
}

// plKeep copies a failing image, the page cache and the event log to
// $MMAPWAL_POWERLOSS_KEEP for a post-mortem.
func plKeep(t *testing.T, idir string, c *plCapture) {
	t.Helper()
	keep := os.Getenv("MMAPWAL_POWERLOSS_KEEP")
	if keep == "" {
		t.Logf("set MMAPWAL_POWERLOSS_KEEP=<dir> to keep the failing image")
		return
	}
	dst := filepath.Join(keep, filepath.Base(filepath.Dir(filepath.Dir(idir)))+"-"+filepath.Base(idir))
	for sub, files := range map[string]map[string][]byte{"image": plReadDir(idir), "pagecache": plCurFiles(c)} {
		require.NoError(t, os.MkdirAll(filepath.Join(dst, sub), 0o755))
		for name, data := range files {
			require.NoError(t, os.WriteFile(filepath.Join(dst, sub, name), data, 0o644))
		}
	}
	var ev bytes.Buffer
	for _, e := range c.events {
		fmt.Fprintln(&ev, e)
	}
	require.NoError(t, os.WriteFile(filepath.Join(dst, "events"), ev.Bytes(), 0o644))
	t.Logf("kept failing image in %s", dst)
}

func plReadDir(dir string) map[string][]byte {
	out := map[string][]byte{}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil {
			out[e.Name()] = b
		}
	}
	return out
}

func plCurFiles(c *plCapture) map[string][]byte {
	out := map[string][]byte{}
	for name, f := range c.cur {
		out[name] = f.data
	}
	return out
}

func assertNoErrorf(t *testing.T, err error, format string, args ...any) bool {
	t.Helper()
	if err != nil {
		t.Errorf("%s: %v", fmt.Sprintf(format, args...), err)
		return false
	}
	return true
}

func lastKey(m map[uint64]crashRecID) uint64 {
	var last uint64
	for s := range m {
		last = max(last, s)
	}
	return last
}
