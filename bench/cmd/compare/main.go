// Command compare benchmarks mmapwal against tidwall/wal and hashicorp/raft-wal
// on the same filesystem in one process, and prints a markdown table of
// medians (min–max over runs) with speedups and targets.
//
//	go run ./cmd/compare [-dir DIR] [-runs 3] [-n 1000000] [-quick] [-only 1,2,5]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	if err := realMain(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

func realMain(args []string) error {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory on the filesystem to test (a temporary subdirectory is created and removed); default: under "+os.TempDir())
	runs := fs.Int("runs", 3, "runs of each workload")
	n := fs.Int("n", 1_000_000, "records for workloads 1, 5, 6, 7")
	quick := fs.Bool("quick", false, "tiny counts and one run, for CI smoke tests")
	only := fs.String("only", "", "comma list of workload numbers (1-7) to run; default all")
	peerList := fs.String("peers", "", "comma list of WALs to run (mmapwal,tidwall/wal,raft-wal); default all built in")
	quiet := fs.Bool("q", false, "no progress on stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := defaultConfig()
	if *quick {
		cfg = quickConfig()
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "runs":
			cfg.runs = *runs
		case "n":
			cfg.n = *n
		}
	})
	if cfg.runs < 1 || cfg.n < 1 {
		return fmt.Errorf("-runs and -n must be positive")
	}
	if cfg.reads > 0 && cfg.n < 1 {
		return fmt.Errorf("-n must be positive")
	}
	if *only != "" {
		cfg.only = map[int]bool{}
		for _, f := range strings.Split(*only, ",") {
			w, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || w < 1 || w > 7 {
				return fmt.Errorf("-only: bad workload %q", f)
			}
			cfg.only[w] = true
		}
	}
	if *peerList != "" {
		for _, p := range strings.Split(*peerList, ",") {
			p = strings.TrimSpace(p)
			if findPeer(p) == nil {
				return fmt.Errorf("-peers: unknown or not built in: %q", p)
			}
			cfg.peers = append(cfg.peers, p)
		}
	}
	if !*quiet {
		cfg.log = os.Stderr
	}

	parent := *dir
	if parent == "" {
		parent = os.TempDir()
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp(parent, "mmapwal-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		os.RemoveAll(work)
		os.Exit(130)
	}()
	cfg.dir = work

	res, err := run(cfg)
	if err != nil {
		return err
	}
	writeReport(os.Stdout, res, cfg, describeMachine(work))
	return nil
}
