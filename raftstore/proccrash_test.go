package raftstore_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/mmapwal/wal/raftstore"
	"github.com/stretchr/testify/require"
)

// Environment of a node process (TestCrashNodeProcess).
const (
	envNodeID    = "RAFTSTORE_NODE_ID"
	envNodeDir   = "RAFTSTORE_NODE_DIR"
	envNodePeers = "RAFTSTORE_NODE_PEERS" // id=addr,id=addr,...
	envNodeBoot  = "RAFTSTORE_NODE_BOOTSTRAP"
)

// TestCrashNodeProcess is one raft node of TestProcessCrash, run in a child
// process; it only runs with the environment that test sets. It serves a
// line protocol on stdin/stdout: "apply <req> <key> <val>", "state <req>",
// "dump <req>", "barrier <req>"; each answer is a line "@@ <req> ...".
func TestCrashNodeProcess(t *testing.T) {
	id := os.Getenv(envNodeID)
	if id == "" {
		t.Skip("a node of TestProcessCrash; runs only in its child processes")
	}
	dir := os.Getenv(envNodeDir)
	var servers []raft.Server
	var addr string
	for _, p := range strings.Split(os.Getenv(envNodePeers), ",") {
		pid, paddr, _ := strings.Cut(p, "=")
		servers = append(servers, raft.Server{ID: raft.ServerID(pid), Address: raft.ServerAddress(paddr)})
		if pid == id {
			addr = paddr
		}
	}
	store, err := raftstore.Open(filepath.Join(dir, "store"), nil)
	require.NoError(t, err)
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(dir, "snapshots"), 2, raftLogger(id))
	require.NoError(t, err)
	var trans *raft.NetworkTransport
	for try := 0; ; try++ {
		trans, err = raft.NewTCPTransportWithLogger(addr, nil, 3, 2*time.Second, raftLogger(id))
		if err == nil || try == 100 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	require.NoError(t, err)
	fsm := newFSM()
	r, err := raft.NewRaft(clusterConfig(id), fsm, store, store, snaps, trans)
	require.NoError(t, err)
	if os.Getenv(envNodeBoot) != "" {
		require.NoError(t, r.BootstrapCluster(raft.Configuration{Servers: servers}).Error())
	}
	var outMu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	reply := func(req string, format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(out, "@@ %s "+format+"\n", append([]any{req}, args...)...)
		out.Flush()
	}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		req := f[1]
		switch f[0] {
		case "apply":
			go func() {
				if err := r.Apply([]byte(f[2]+"="+f[3]), 5*time.Second).Error(); err != nil {
					reply(req, "nak %s", strings.ReplaceAll(err.Error(), " ", "_"))
					return
				}
				reply(req, "ack")
			}()
		case "barrier":
			go func() {
				if err := r.Barrier(10 * time.Second).Error(); err != nil {
					reply(req, "nak %s", strings.ReplaceAll(err.Error(), " ", "_"))
					return
				}
				reply(req, "ack %d", r.AppliedIndex())
			}()
		case "state":
			reply(req, "%s %d", r.State(), r.AppliedIndex())
		case "dump":
			m, _, _ := fsm.state()
			b, _ := json.Marshal(m)
			reply(req, "%s", b)
		}
	}
	// stdin closed: the parent is done with this node.
	r.Shutdown().Error()
	trans.Close()
	store.Close()
}

// proc is a node process as seen by the parent.
type proc struct {
	id, addr, dir string
	cmd           *exec.Cmd
	mu            sync.Mutex
	in            io.WriteCloser
	pending       map[string]chan []string
	dead          chan struct{}
	seq           atomic.Int64
}

func startProc(t *testing.T, id, dir, peers string, boot bool) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestCrashNodeProcess$", "-test.count=1", "-test.timeout=10m")
	cmd.Env = append(os.Environ(), envNodeID+"="+id, envNodeDir+"="+dir, envNodePeers+"="+peers)
	if boot {
		cmd.Env = append(cmd.Env, envNodeBoot+"=1")
	}
	in, err := cmd.StdinPipe()
	require.NoError(t, err)
	outp, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	p := &proc{id: id, dir: dir, cmd: cmd, in: in, pending: map[string]chan []string{}, dead: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(outp)
		sc.Buffer(nil, 64<<20)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 2 || f[0] != "@@" {
				continue
			}
			p.mu.Lock()
			ch := p.pending[f[1]]
			delete(p.pending, f[1])
			p.mu.Unlock()
			if ch != nil {
				ch <- f[2:]
			}
		}
		cmd.Wait()
		close(p.dead)
	}()
	return p
}

// call sends a command and waits (bounded) for its answer; nil if the
// process died or did not answer.
func (p *proc) call(timeout time.Duration, args ...string) []string {
	req := strconv.FormatInt(p.seq.Add(1), 10)
	ch := make(chan []string, 1)
	p.mu.Lock()
	p.pending[req] = ch
	_, err := fmt.Fprintf(p.in, "%s %s %s\n", args[0], req, strings.Join(args[1:], " "))
	p.mu.Unlock()
	if err != nil {
		return nil
	}
	select {
	case r := <-ch:
		return r
	case <-p.dead:
		return nil
	case <-time.After(timeout):
		return nil
	}
}

func (p *proc) kill() {
	p.cmd.Process.Kill() // SIGKILL: nothing in the node runs after this
	<-p.dead
}

type procCluster struct {
	t     *testing.T
	peers string
	mu    sync.Mutex
	procs []*proc
}

func (c *procCluster) live() []*proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*proc(nil), c.procs...)
}

// leader polls the nodes (bounded) for the one in the Leader state.
func (c *procCluster) leader(within time.Duration) *proc {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		for _, p := range c.live() {
			if r := p.call(2*time.Second, "state"); len(r) == 2 && r[0] == "Leader" {
				return p
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func freePorts(t *testing.T, n int) []string {
	var addrs []string
	var ls []net.Listener
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	for _, l := range ls {
		l.Close()
	}
	return addrs
}

func crashCycles() int {
	if v, err := strconv.Atoi(os.Getenv("RAFTSTORE_CRASH_CYCLES")); err == nil && v > 0 {
		return v
	}
	return 3
}

// TestProcessCrash: three node processes on loopback; while clients write,
// the leader is killed with SIGKILL, a new leader takes over, and the killed
// node restarts from its directory; repeated. No acknowledged write may be
// lost and every replica must converge to the same state.
func TestProcessCrash(t *testing.T) {
	cycles := crashCycles()
	addrs := freePorts(t, 3)
	ids := []string{"p0", "p1", "p2"}
	var peerList []string
	for i, id := range ids {
		peerList = append(peerList, id+"="+addrs[i])
	}
	c := &procCluster{t: t, peers: strings.Join(peerList, ",")}
	dirs := make([]string, 3)
	for i, id := range ids {
		dirs[i] = t.TempDir()
		c.procs = append(c.procs, startProc(t, id, dirs[i], c.peers, i == 0))
	}
	t.Cleanup(func() {
		for _, p := range c.live() {
			p.kill()
		}
	})
	require.NotNil(t, c.leader(30*time.Second), "no first leader")

	var (
		ackMu sync.Mutex
		acked = map[int]string{}
		nAck  atomic.Int64
		stop  atomic.Bool
		next  atomic.Int64
		wg    sync.WaitGroup
	)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				i := int(next.Add(1))
				for attempt := 0; !stop.Load(); attempt++ {
					p := c.leader(10 * time.Second)
					if p == nil {
						continue
					}
					val := fmt.Sprintf("v%d-%d", i, attempt)
					if r := p.call(10*time.Second, "apply", fmt.Sprintf("k%d", i), val); len(r) > 0 && r[0] == "ack" {
						ackMu.Lock()
						acked[i] = val
						ackMu.Unlock()
						nAck.Add(1)
						break
					}
				}
			}
		}()
	}
	waitAcks := func(n int64) {
		deadline := time.Now().Add(60 * time.Second)
		for nAck.Load() < n && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		require.GreaterOrEqual(t, nAck.Load(), n, "writes stalled")
	}
	for cycle := 0; cycle < cycles; cycle++ {
		waitAcks(nAck.Load() + 150)
		lead := c.leader(30 * time.Second)
		require.NotNil(t, lead, "cycle %d: no leader", cycle)
		lead.kill()
		c.mu.Lock()
		var idx int
		for i, p := range c.procs {
			if p == lead {
				idx = i
			}
		}
		c.procs = append(c.procs[:idx:idx], c.procs[idx+1:]...)
		c.mu.Unlock()
		require.NotNil(t, c.leader(60*time.Second), "cycle %d: no new leader within 60 s after killing %s", cycle, lead.id)
		waitAcks(nAck.Load() + 100)
		restarted := startProc(t, lead.id, lead.dir, c.peers, false)
		c.mu.Lock()
		c.procs = append(c.procs, restarted)
		c.mu.Unlock()
	}
	stop.Store(true)
	wg.Wait()

	// Converge: a barrier on the leader, then every node reaches its index.
	lead := c.leader(30 * time.Second)
	require.NotNil(t, lead)
	var target uint64
	for try := 0; try < 10; try++ {
		if r := lead.call(15*time.Second, "barrier"); len(r) == 2 && r[0] == "ack" {
			target, _ = strconv.ParseUint(r[1], 10, 64)
			break
		}
		lead = c.leader(30 * time.Second)
	}
	require.NotZero(t, target, "no barrier")
	var dumps []map[string]string
	for _, p := range c.live() {
		deadline := time.Now().Add(60 * time.Second)
		for {
			r := p.call(2*time.Second, "state")
			if len(r) == 2 {
				if n, _ := strconv.ParseUint(r[1], 10, 64); n >= target {
					break
				}
			}
			require.True(t, time.Now().Before(deadline), "node %s did not reach index %d", p.id, target)
			time.Sleep(20 * time.Millisecond)
		}
		r := p.call(10*time.Second, "dump")
		require.Len(t, r, 1, "dump of %s", p.id)
		m := map[string]string{}
		require.NoError(t, json.Unmarshal([]byte(r[0]), &m))
		for i, v := range acked {
			require.Equal(t, v, m[fmt.Sprintf("k%d", i)], "node %s lost acknowledged write k%d", p.id, i)
		}
		dumps = append(dumps, m)
	}
	require.Len(t, dumps, 3)
	require.Equal(t, dumps[0], dumps[1], "replicas differ")
	require.Equal(t, dumps[0], dumps[2], "replicas differ")
	t.Logf("%d leader kills; %d writes acknowledged, 0 lost; 3 replicas identical (%d keys)", cycles, len(acked), len(dumps[0]))
}
