// Command raftkv is a small replicated key-value service: hashicorp/raft
// over TCP on loopback, its log and stable store on mmapwal
// (github.com/mmapwal/wal/raftstore).
//
//	raftkv -id n1 -dir /tmp/n1 -raft 127.0.0.1:17001 -http 127.0.0.1:18001 \
//	    -peers n1=127.0.0.1:17001=127.0.0.1:18001,n2=...,n3=... -bootstrap
//
// HTTP: PUT /kv/{key} (body = value), GET /kv/{key}, DELETE /kv/{key},
// GET /status. Writes go to the leader: a follower answers 307 with the
// leader's URL (curl -L follows it). GET reads this node's state machine:
// on a follower it may lag the leader by the entries not yet applied.
// `make demo-cluster` runs three of them, kills the leader and restarts it.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/mmapwal/wal/raftstore"
)

type command struct {
	Op    string `json:"op"` // "put" or "delete"
	Key   string `json:"key"`
	Value string `json:"value,omitempty"`
}

type fsm struct {
	mu sync.RWMutex
	m  map[string]string
}

func (f *fsm) Apply(l *raft.Log) any {
	var c command
	if err := json.Unmarshal(l.Data, &c); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch c.Op {
	case "put":
		f.m[c.Key] = c.Value
	case "delete":
		delete(f.m, c.Key)
	}
	return nil
}

type snapshot map[string]string

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(map[string]string(s)); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}
func (snapshot) Release() {}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s := make(snapshot, len(f.m))
	for k, v := range f.m {
		s[k] = v
	}
	return s, nil
}

func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	m := map[string]string{}
	if err := json.NewDecoder(rc).Decode(&m); err != nil {
		return err
	}
	f.mu.Lock()
	f.m = m
	f.mu.Unlock()
	return nil
}

func main() {
	id := flag.String("id", "", "node ID (required)")
	dir := flag.String("dir", "", "data directory (required)")
	raftAddr := flag.String("raft", "127.0.0.1:17001", "raft TCP address (loopback)")
	httpAddr := flag.String("http", "127.0.0.1:18001", "HTTP address (loopback)")
	peers := flag.String("peers", "", "id=raftaddr=httpaddr,... of every node, this one included")
	bootstrap := flag.Bool("bootstrap", false, "bootstrap the cluster with -peers (first start of one node only)")
	flag.Parse()
	if *id == "" || *dir == "" || *peers == "" {
		flag.Usage()
		os.Exit(2)
	}
	httpOf := map[raft.ServerAddress]string{}
	var servers []raft.Server
	for _, p := range strings.Split(*peers, ",") {
		f := strings.Split(p, "=")
		if len(f) != 3 {
			log.Fatalf("bad -peers entry %q: want id=raftaddr=httpaddr", p)
		}
		servers = append(servers, raft.Server{ID: raft.ServerID(f[0]), Address: raft.ServerAddress(f[1])})
		httpOf[raft.ServerAddress(f[1])] = f[2]
	}

	store, err := raftstore.Open(filepath.Join(*dir, "raft"), nil)
	if err != nil {
		log.Fatal(err)
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: *id, Level: hclog.Warn, Output: os.Stderr})
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(*dir, "snapshots"), 2, logger)
	if err != nil {
		log.Fatal(err)
	}
	trans, err := raft.NewTCPTransportWithLogger(*raftAddr, nil, 3, 5*time.Second, logger)
	if err != nil {
		log.Fatal(err)
	}
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(*id)
	conf.Logger = logger
	conf.HeartbeatTimeout = 500 * time.Millisecond
	conf.ElectionTimeout = 500 * time.Millisecond
	conf.LeaderLeaseTimeout = 250 * time.Millisecond
	conf.SnapshotThreshold = 1024
	conf.TrailingLogs = 256
	// The store implements CommitTrackingLogStore: on restart the node
	// replays its committed entries before it talks to the others. (Do not
	// wrap it in raft.NewLogCache: that hides the interface.)
	conf.RestoreCommittedLogs = true
	f := &fsm{m: map[string]string{}}
	r, err := raft.NewRaft(conf, f, store, store, snaps, trans)
	if err != nil {
		log.Fatal(err)
	}
	if *bootstrap {
		err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
		if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			log.Fatal(err)
		}
	}

	mux := http.NewServeMux()
	write := func(w http.ResponseWriter, req *http.Request, c command) {
		if r.State() != raft.Leader {
			leader, _ := r.LeaderWithID()
			if h := httpOf[leader]; h != "" {
				http.Redirect(w, req, "http://"+h+req.URL.Path, http.StatusTemporaryRedirect)
				return
			}
			http.Error(w, "no leader", http.StatusServiceUnavailable)
			return
		}
		b, _ := json.Marshal(c)
		fut := r.Apply(b, 5*time.Second)
		if err := fut.Error(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "ok %d\n", fut.Index())
	}
	mux.HandleFunc("PUT /kv/{key}", func(w http.ResponseWriter, req *http.Request) {
		v, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		write(w, req, command{Op: "put", Key: req.PathValue("key"), Value: string(v)})
	})
	mux.HandleFunc("DELETE /kv/{key}", func(w http.ResponseWriter, req *http.Request) {
		write(w, req, command{Op: "delete", Key: req.PathValue("key")})
	})
	mux.HandleFunc("GET /kv/{key}", func(w http.ResponseWriter, req *http.Request) {
		f.mu.RLock()
		v, ok := f.m[req.PathValue("key")]
		f.mu.RUnlock()
		if !ok {
			http.NotFound(w, req)
			return
		}
		io.WriteString(w, v)
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, req *http.Request) {
		first, _ := store.FirstIndex()
		last, _ := store.LastIndex()
		leader, leaderID := r.LeaderWithID()
		f.mu.RLock()
		keys := len(f.m)
		f.mu.RUnlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"id": *id, "state": r.State().String(), "leader": leaderID, "leader_http": httpOf[leader],
			"applied_index": r.AppliedIndex(), "commit_index": r.CommitIndex(),
			"first_index": first, "last_index": last, "keys": keys,
		})
	})
	srv := &http.Server{Addr: *httpAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
			log.Fatal(err)
		}
	}()
	log.Printf("raftkv %s: raft %s, http %s, data %s", *id, *raftAddr, *httpAddr, *dir)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	srv.Close()
	if err := r.Shutdown().Error(); err != nil {
		log.Print(err)
	}
	trans.Close()
	if err := store.Close(); err != nil {
		log.Print(err)
	}
}
