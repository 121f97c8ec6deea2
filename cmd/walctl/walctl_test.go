package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/mmapwal"
	"github.com/mmapwal/wal/recovery"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// The test binary doubles as walctl (WALCTL_MAIN) and as a writer process
// (WALCTL_WRITER), so commands run as real processes against a log another
// process holds or was killed in.
func TestMain(m *testing.M) {
	switch os.Getenv("WALCTL_ROLE") {
	case "main":
		main()
		return
	case "writer":
		os.Exit(writerChild(os.Getenv("WALCTL_DIR"), os.Getenv("WALCTL_SYNC") == "none"))
	}
	os.Exit(m.Run())
}

// writerChild opens dir for writing, appends records "live N" printing
// "ack N" after each acknowledged append, and then for every line read on
// stdin appends that many more. It never closes the log: the parent kills it.
func writerChild(dir string, syncNone bool) int {
	o := &mmapwal.Options{SegmentSize: 64 << 10}
	if syncNone {
		o.Sync = mmapwal.SyncNone
	}
	w, err := mmapwal.Open(dir, o)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	n, _ := strconv.Atoi(os.Getenv("WALCTL_N"))
	next := 0
	appendN := func(k int) {
		for range k {
			seq, err := w.Append([]byte(fmt.Sprintf("live %d", next)))
			if err != nil {
				fmt.Println("error", err)
				os.Exit(1)
			}
			next++
			fmt.Println("ack", seq)
		}
	}
	appendN(n)
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		k, _ := strconv.Atoi(sc.Text())
		appendN(k)
		fmt.Println("ready")
	}
	select {} // until killed
}

type child struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	acks []uint64
}

func startWriter(t *testing.T, dir string, n int, syncNone bool) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "WALCTL_ROLE=writer", "WALCTL_DIR="+dir, "WALCTL_N="+strconv.Itoa(n))
	if syncNone {
		cmd.Env = append(cmd.Env, "WALCTL_SYNC=none")
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	t.Cleanup(func() { c.kill() })
	c.waitReady(t)
	return c
}

func (c *child) waitReady(t *testing.T) {
	t.Helper()
	for c.out.Scan() {
		line := c.out.Text()
		switch {
		case line == "ready":
			return
		case strings.HasPrefix(line, "ack "):
			s, _ := strconv.ParseUint(line[4:], 10, 64)
			c.acks = append(c.acks, s)
		default:
			t.Fatalf("writer: %s", line)
		}
	}
	t.Fatalf("writer ended: %v", c.out.Err())
}

func (c *child) kill() {
	if c.cmd.Process != nil {
		c.cmd.Process.Kill()
		c.cmd.Wait()
	}
}

// walctl runs the command as a process and returns exit code, stdout, stderr.
func walctl(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{}, args...)...)
	cmd.Env = append(os.Environ(), "WALCTL_ROLE=main")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(errb.String(), "goroutine ") || strings.Contains(errb.String(), "panic") {
		t.Fatalf("walctl %v printed a Go stack:\n%s", args, errb.String())
	}
	if n := strings.Count(errb.String(), "\n"); n > 1 {
		t.Fatalf("walctl %v: stderr has %d lines, want at most 1:\n%s", args, n, errb.String())
	}
	return code, out.String(), errb.String()
}

func expectCode(t *testing.T, want int, args ...string) (string, string) {
	t.Helper()
	code, out, errs := walctl(t, "", args...)
	if code != want {
		t.Fatalf("walctl %v: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", args, code, want, out, errs)
	}
	return out, errs
}

var pidRE = regexp.MustCompile(`pid \d+`)

// golden compares got (with the temporary dir replaced by DIR) with
// testdata/name.golden.
func golden(t *testing.T, name, dir, got string) {
	t.Helper()
	got = strings.ReplaceAll(got, dir, "DIR")
	got = pidRE.ReplaceAllString(got, "pid PID")
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Fatalf("%s differs from %s:\n--- got\n%s--- want\n%s", name, path, got, want)
	}
}

// payload is record i of the clean log: mostly text, some with bytes text
// output must escape.
func payload(i int) []byte {
	switch i % 10 {
	case 3:
		return []byte{0, 1, 'a', '\n', 0xff, '\\', 0x7f}
	case 7:
		return []byte{}
	}
	return []byte(fmt.Sprintf("record %d %s", i, strings.Repeat("x", i%50)))
}

// cleanLog writes n records into 64 KiB segments and closes the log.
func cleanLog(t *testing.T, n int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "wal")
	w, err := mmapwal.Open(dir, &mmapwal.Options{SegmentSize: 64 << 10, Sync: mmapwal.SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := w.Append(payload(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func segments(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+format.SegmentExt))
	if err != nil || len(m) == 0 {
		t.Fatalf("no segments in %s: %v", dir, err)
	}
	return m
}

func TestClean(t *testing.T) {
	dir := cleanLog(t, 3000)
	if n := len(segments(t, dir)); n < 3 {
		t.Fatalf("%d segments, want >= 3", n)
	}
	out, _ := expectCode(t, 0, "stat", dir)
	golden(t, "clean_stat", dir, out)
	out, _ = expectCode(t, 0, "dump", dir, "--from", "2", "--to", "9")
	golden(t, "clean_dump_text", dir, out)
	out, _ = expectCode(t, 0, "dump", dir, "--from", "3", "--to", "4", "--format", "hex")
	golden(t, "clean_dump_hex", dir, out)
	out, _ = expectCode(t, 0, "tail", dir, "-n", "3")
	golden(t, "clean_tail", dir, out)
	out, _ = expectCode(t, 0, "verify", dir)
	golden(t, "clean_verify", dir, out)
	out, _ = expectCode(t, 0, "repair", dir)
	golden(t, "clean_repair", dir, out)

	// json: every record, in order, exact bytes.
	out, _ = expectCode(t, 0, "dump", dir, "--format", "json")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 3000 {
		t.Fatalf("json dump: %d lines, want 3000", len(lines))
	}
	for i, l := range lines {
		var r struct {
			Seq  uint64 `json:"seq"`
			Len  int    `json:"len"`
			Data []byte `json:"data"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		if r.Seq != uint64(i+1) || r.Len != len(payload(i)) || !bytes.Equal(r.Data, payload(i)) {
			t.Fatalf("json line %d: %s", i, l)
		}
	}
	// raw: 4-byte little-endian length prefixes, bounds inclusive.
	out, _ = expectCode(t, 0, "dump", dir, "--format", "raw", "--from", "100", "--to", "199")
	b := []byte(out)
	for i := 99; i < 199; i++ {
		if len(b) < 4 {
			t.Fatalf("raw dump short at record %d", i+1)
		}
		n := binary.LittleEndian.Uint32(b)
		if !bytes.Equal(b[4:4+n], payload(i)) {
			t.Fatalf("raw record %d differs", i+1)
		}
		b = b[4+n:]
	}
	if len(b) != 0 {
		t.Fatalf("raw dump: %d bytes after record 199", len(b))
	}
	// stat --json
	out, _ = expectCode(t, 0, "stat", "--json", dir)
	var st statOut
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if st.State != "clean" || st.FirstSeq != 1 || st.LastSeq != 3000 || st.Records != 3000 || len(st.Segments) < 3 || st.BytesOnDisk == 0 {
		t.Fatalf("stat --json: %+v", st)
	}
}

func TestEmpty(t *testing.T) {
	dir := t.TempDir()
	out, _ := expectCode(t, 0, "stat", dir)
	golden(t, "empty_stat", dir, out)
	out, _ = expectCode(t, 0, "verify", dir)
	golden(t, "empty_verify", dir, out)
	if out, _ = expectCode(t, 0, "dump", dir); out != "" {
		t.Fatalf("dump of an empty log: %q", out)
	}
	if out, _ = expectCode(t, 0, "tail", dir); out != "" {
		t.Fatalf("tail of an empty log: %q", out)
	}
	// An emptied log (TruncateFront past the end) is empty too.
	dir = cleanLog(t, 10)
	w, err := mmapwal.Open(dir, &mmapwal.Options{SegmentSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.TruncateFront(11); err != nil {
		t.Fatal(err)
	}
	w.Close()
	expectCode(t, 0, "verify", dir)
	if out, _ = expectCode(t, 0, "dump", dir); out != "" {
		t.Fatalf("dump of an emptied log: %q", out)
	}
}

func TestErrors(t *testing.T) {
	tmp := t.TempDir()
	notWAL := filepath.Join(tmp, "notwal")
	os.Mkdir(notWAL, 0o755)
	os.WriteFile(filepath.Join(notWAL, "data.txt"), []byte("hello"), 0o644)
	file := filepath.Join(tmp, "file")
	os.WriteFile(file, nil, 0o644)
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"stat", filepath.Join(tmp, "missing")}, 1, "no such directory"},
		{[]string{"verify", filepath.Join(tmp, "missing")}, 1, "no such directory"},
		{[]string{"dump", notWAL}, 1, "not a WAL directory"},
		{[]string{"tail", file}, 1, "not a directory"},
		{[]string{"repair", "--yes", notWAL}, 1, "not a WAL directory"},
		{[]string{"stat"}, 2, "expected one DIR"},
		{[]string{"dump", "--format", "xml", tmp}, 2, "want text, json, hex or raw"},
		{[]string{"frobnicate", tmp}, 2, "unknown command"},
		{[]string{"stat", "--bogus", tmp}, 2, "unknown flag"},
	} {
		_, errs := expectCode(t, c.code, c.args...)
		if !strings.Contains(errs, c.msg) || !strings.HasPrefix(errs, "walctl: ") {
			t.Errorf("walctl %v: stderr %q, want one line containing %q", c.args, errs, c.msg)
		}
	}
}

// flipByte damages the payload of a record in the first (sealed) segment.
func TestDamagedFlippedByte(t *testing.T) {
	dir := cleanLog(t, 3000)
	seg := segments(t, dir)[0]
	f, err := os.OpenFile(seg, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Record 1 (seq 2) starts after the header and record seq 1's frame.
	off := int64(format.SegmentHeaderSize + format.FrameHeaderSize + (len(payload(0))+7)&^7 + format.FrameHeaderSize + 2)
	var b [1]byte
	f.ReadAt(b[:], off)
	b[0] ^= 0x40
	f.WriteAt(b[:], off)
	f.Close()

	out, errs := expectCode(t, 3, "verify", dir)
	golden(t, "damaged_verify", dir, out+"stderr: "+errs)
	// stat trusts checkpoints (it does not read every record); reading the
	// damaged record fails with one line naming it.
	expectCode(t, 0, "stat", dir)
	_, errs = expectCode(t, 1, "dump", dir)
	if !strings.Contains(errs, "damaged log") || !strings.Contains(errs, "seq 2") {
		t.Fatalf("dump of a damaged log: %q", errs)
	}
	// repair asks; "n" changes nothing.
	code, out, errs := walctl(t, "n\n", "repair", dir)
	if code != 1 || !strings.Contains(errs, "aborted") || !strings.Contains(out, "Proceed? [y/N]") {
		t.Fatalf("repair answered n: exit %d\n%s%s", code, out, errs)
	}
	expectCode(t, 3, "verify", dir)
	// "y" repairs; then the log verifies and holds seq 1.
	code, out, errs = walctl(t, "y\n", "repair", dir)
	if code != 0 {
		t.Fatalf("repair: exit %d\n%s%s", code, out, errs)
	}
	golden(t, "damaged_repair", dir, out)
	out, _ = expectCode(t, 0, "verify", dir)
	if !strings.Contains(out, "OK: 1 records") {
		t.Fatalf("verify after repair: %s", out)
	}
}

func TestDamagedMissingMiddleSegment(t *testing.T) {
	dir := cleanLog(t, 3000)
	segs := segments(t, dir)
	os.Remove(segs[1])
	os.Remove(strings.TrimSuffix(segs[1], format.SegmentExt) + format.IndexExt)
	out, errs := expectCode(t, 3, "verify", dir)
	golden(t, "missing_verify", dir, out+"stderr: "+errs)
	expectCode(t, 1, "dump", dir)
	out, _ = expectCode(t, 0, "repair", "--yes", dir)
	if !strings.Contains(out, "repaired") {
		t.Fatalf("repair: %s", out)
	}
	expectCode(t, 0, "verify", dir)
}

// TestCrashed kills a writer mid-append (SIGKILL, appends in flight), then
// adds a torn frame after its last record, as a power loss can leave.
func TestCrashed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wal")
	c := startWriter(t, dir, 500, false)
	fmt.Fprintln(c.in, 1000000) // still appending when killed
	time.Sleep(50 * time.Millisecond)
	c.cmd.Process.Signal(syscall.SIGKILL)
	c.cmd.Wait()
	for c.out.Scan() {
		if l := c.out.Text(); strings.HasPrefix(l, "ack ") {
			s, _ := strconv.ParseUint(l[4:], 10, 64)
			c.acks = append(c.acks, s)
		}
	}
	out, _ := expectCode(t, 0, "stat", dir)
	if !strings.Contains(out, "state:         crashed") {
		t.Fatalf("stat after a kill:\n%s", out)
	}
	// A process crash loses nothing acknowledged: verify is clean and dump
	// shows every acknowledged record.
	out, _ = expectCode(t, 0, "verify", dir)
	out, _ = expectCode(t, 0, "dump", dir, "--format", "json")
	lines := strings.Count(out, "\n")
	if last := c.acks[len(c.acks)-1]; uint64(lines) < last {
		t.Fatalf("dump shows %d records, %d were acknowledged", lines, last)
	}

	// Garbage where the next frame would go: a torn tail, not corruption.
	rep, err := recovery.Recover(dir, &recovery.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	last := rep.Segments[len(rep.Segments)-1]
	f, err := os.OpenFile(last.Path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("torn frame garbage"), last.End)
	f.Close()
	out, errs := expectCode(t, 4, "verify", dir)
	if !strings.Contains(out, "TORN TAIL file "+filepath.Base(last.Path)+" offset "+strconv.FormatInt(last.End, 10)) || strings.Contains(out, "CORRUPT") || !strings.Contains(errs, "torn tail") {
		t.Fatalf("verify of a torn tail:\n%s%s", out, errs)
	}
	out, _ = expectCode(t, 0, "stat", dir)
	if !strings.Contains(out, "cut a torn tail in "+filepath.Base(last.Path)) {
		t.Fatalf("stat of a torn tail:\n%s", out)
	}
	out, _ = expectCode(t, 0, "repair", "--yes", dir)
	if !strings.Contains(out, "kept aside") {
		t.Fatalf("repair of a torn tail:\n%s", out)
	}
	expectCode(t, 0, "verify", dir)
}

func TestLockedByLiveWriter(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wal")
	c := startWriter(t, dir, 2000, false)
	out, _ := expectCode(t, 0, "stat", dir)
	// The writer's prepared next segment may or may not exist yet.
	out = regexp.MustCompile(`bytes on disk: .*`).ReplaceAllString(out, "bytes on disk: N")
	golden(t, "live_stat", dir, out)
	out, _ = expectCode(t, 0, "verify", dir)
	if !strings.Contains(out, "OK: 2000 records") || !strings.Contains(out, "a writer (pid") {
		t.Fatalf("verify of a live log:\n%s", out)
	}
	out, _ = expectCode(t, 0, "tail", "-n", "2", dir)
	if out != "1999\t9\tlive 1998\n2000\t9\tlive 1999\n" {
		t.Fatalf("tail of a live log: %q", out)
	}
	_, errs := expectCode(t, 1, "repair", "--yes", dir)
	if !strings.Contains(errs, "locked by a running writer") {
		t.Fatalf("repair of a live log: %q", errs)
	}

	// tail -f follows the writer's new records and exits 0 on SIGINT.
	cmd := exec.Command(os.Args[0], "tail", "-f", "-n", "1", dir)
	cmd.Env = append(os.Environ(), "WALCTL_ROLE=main")
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(pr)
	next := func() string {
		if !sc.Scan() {
			t.Fatalf("tail -f ended: %v %s", sc.Err(), errb.String())
		}
		return sc.Text()
	}
	if l := next(); l != "2000\t9\tlive 1999" {
		t.Fatalf("tail -f first line %q", l)
	}
	fmt.Fprintln(c.in, 150) // crosses a segment boundary
	c.waitReady(t)
	for i := 2000; i < 2150; i++ {
		if l, want := next(), fmt.Sprintf("%d\t%d\tlive %d", i+1, len(fmt.Sprintf("live %d", i)), i); l != want {
			t.Fatalf("tail -f: %q, want %q", l, want)
		}
	}
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	pw.Close()
	if err != nil {
		t.Fatalf("tail -f after SIGINT: %v %s", err, errb.String())
	}
}

func TestBench(t *testing.T) {
	dir := t.TempDir()
	out, _ := expectCode(t, 0, "bench", "--duration", "30ms", "--writers", "1,4", dir)
	for _, s := range []string{"raw fdatasync", "Append SyncAlways (durable)", "Append SyncPeriodic", "Append SyncNone", "p50", "p99", "records/s", "durable Append latency, 4 writer(s)", "█"} {
		if !strings.Contains(out, s) {
			t.Fatalf("bench output lacks %q:\n%s", s, out)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("bench left %d entries in %s", len(ents), dir)
	}
}

// TestRunNoPanic: run in-process returns codes and never lets a panic out.
func TestRunInProcess(t *testing.T) {
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb}
	if code := run([]string{"stat", filepath.Join(t.TempDir(), "nope")}, e); code != 1 {
		t.Fatalf("exit %d", code)
	}
	if !strings.HasSuffix(errb.String(), "no such directory\n") {
		t.Fatalf("stderr %q", errb.String())
	}
}
