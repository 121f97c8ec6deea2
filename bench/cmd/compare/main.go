// Command compare runs the comparison benchmarks of package compare
// (mmapwal against tidwall/wal, hashicorp/raft-wal and rosedblabs/wal, each
// in its default and its fastest reasonable configuration, and the raw
// limits of the machine), prints benchstat's per-peer tables, the machine
// and issue 12's targets, met or missed:
//
//	go run ./cmd/compare [-count 3] [-n N] [-short] [-out DIR]
//
// The raw `go test -bench` output and benchstat's tables stay in -out (a
// new temporary directory by default), for benchstat comparisons later.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

func main() {
	if err := realMain(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

func realMain(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	count := fs.Int("count", 3, "runs of each benchmark (benchstat reports their medians and confidence intervals)")
	n := fs.Int("n", 0, "records per log (default 1,000,000; 10,000 with -short)")
	short := fs.Bool("short", false, "small logs and short benchmark times: a quick look, not a measurement")
	out := fs.String("out", "", "directory for the raw results and benchstat's tables (default: a new temporary directory)")
	dir := fs.String("dir", "", "directory on the filesystem to measure (the benchmarks' TMPDIR; default "+os.TempDir()+")")
	benchtime := fs.String("benchtime", "", "go test -benchtime (default 1s; 100ms with -short)")
	bench := fs.String("bench", ".", "go test -bench: which benchmarks")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *count < 1 || *n < 0 {
		return errors.New("-count must be positive and -n not negative")
	}
	size := *n
	if size == 0 {
		size = 1_000_000
		if *short {
			size = 10_000
		}
	}
	if *benchtime == "" {
		*benchtime = "1s"
		if *short {
			*benchtime = "100ms"
		}
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	if *out == "" {
		if *out, err = os.MkdirTemp("", "mmapwal-compare-results-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	testDir := *dir
	if testDir == "" {
		testDir = os.TempDir()
	} else if err := os.MkdirAll(testDir, 0o755); err != nil {
		return err
	}

	// One process runs every benchmark -count times, so each peer's
	// million-record log is built once.
	goArgs := []string{"test", "-run", "^$", "-bench", *bench, "-count", strconv.Itoa(*count),
		"-benchtime", *benchtime, "-timeout", "0", "./compare/"}
	if *short {
		goArgs = append(goArgs, "-short")
	}
	goArgs = append(goArgs, "-compare.n", strconv.Itoa(size))
	fmt.Fprintf(stderr, "compare: go %s  (results in %s)\n", strings.Join(goArgs, " "), *out)
	rawPath := filepath.Join(*out, "bench.txt")
	rawFile, err := os.Create(rawPath)
	if err != nil {
		return err
	}
	cmd := exec.Command("go", goArgs...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "TMPDIR="+testDir)
	cmd.Stdout = io.MultiWriter(rawFile, stderr) // progress as results come
	cmd.Stderr = stderr
	runErr := cmd.Run()
	if err := rawFile.Close(); err != nil {
		return err
	}
	if runErr != nil {
		return fmt.Errorf("benchmarks failed (output in %s): %w", rawPath, runErr)
	}

	// benchstat: medians, confidence intervals, ratios to mmapwal (the
	// first column) per metric, one column per peer. An interleaved
	// workload's line holds every peer's figures ("<unit>@<peer>"); it is
	// split into one line per peer first, so it gets a column per peer too.
	rawBytes, err := os.ReadFile(rawPath)
	if err != nil {
		return err
	}
	perPeerPath := filepath.Join(*out, "bench-per-peer.txt")
	if err := os.WriteFile(perPeerPath, splitInterleaved(rawBytes), 0o644); err != nil {
		return err
	}
	var tables bytes.Buffer
	cmd = exec.Command("go", "tool", "benchstat", "-col", "/peer", perPeerPath)
	cmd.Dir = root
	cmd.Stdout = &tables
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("benchstat: %w", err)
	}
	if err := os.WriteFile(filepath.Join(*out, "benchstat.txt"), tables.Bytes(), 0o644); err != nil {
		return err
	}

	raw, err := os.Open(rawPath)
	if err != nil {
		return err
	}
	res, err := parseResults(raw, rawPath)
	raw.Close()
	if err != nil {
		return err
	}
	var report bytes.Buffer
	fmt.Fprintf(&report, "machine: %s\n", describeMachine(testDir))
	fmt.Fprintf(&report, "log: %d records x 100 B; %d run(s) per benchmark, -benchtime %s; medians\n\n", size, *count, *benchtime)
	writeTargets(&report, res)
	if err := os.WriteFile(filepath.Join(*out, "targets.txt"), report.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n%s", tables.Bytes(), report.Bytes())
	fmt.Fprintf(stderr, "compare: raw results, benchstat tables and targets in %s\n", *out)
	return nil
}

// moduleRoot is the directory of the bench module (where ./compare/ and the
// benchstat tool directive are).
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run from the bench module (cd bench)")
	}
	root := filepath.Dir(gomod)
	if _, err := os.Stat(filepath.Join(root, "compare")); err != nil {
		return "", fmt.Errorf("run from the bench module (cd bench): %w", err)
	}
	return root, nil
}
