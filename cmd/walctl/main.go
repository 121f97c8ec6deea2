// Command walctl looks inside, checks, repairs, follows and benchmarks a
// mmapwal log directory. Every command that only reads opens the log
// read-only (no lock, no file changed), so it works while another process
// writes the log.
//
// Exit codes: 0 success; 1 an error (missing directory, not a WAL, locked,
// damaged, I/O); 2 bad usage; 3 verify found corruption; 4 verify found only
// a torn tail (a crashed writer's unsynced records, not corruption).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

const (
	exitOK      = 0
	exitErr     = 1
	exitUsage   = 2
	exitCorrupt = 3
	exitTorn    = 4
)

// exitError carries an exit code other than exitErr; msg may be empty when
// the command already printed what went wrong.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }

// env is what a command may touch; tests give their own buffers.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// isTerminal reports whether stdout is a terminal (progress bars).
	isTerminal    bool
	stdinTerminal bool
}

func main() {
	os.Exit(run(os.Args[1:], &env{
		stdin:         os.Stdin,
		stdout:        os.Stdout,
		stderr:        os.Stderr,
		isTerminal:    stdoutIsTerminal(),
		stdinTerminal: stdinIsTerminal(),
	}))
}

// run executes one command line and returns the exit code. A panic below
// becomes one line on stderr, never a Go stack: operators read this output.
func run(args []string, e *env) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(e.stderr, "walctl: internal error: %v\n", r)
			code = exitErr
		}
	}()
	root := newRoot(e)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintf(e.stderr, "walctl: %s\n", ee.msg)
		}
		return ee.code
	}
	var ue *usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		fmt.Fprintf(e.stderr, "walctl: %s (see walctl --help)\n", oneLine(err.Error()))
		return exitUsage
	}
	fmt.Fprintf(e.stderr, "walctl: %s\n", oneLine(err.Error()))
	return exitErr
}

// isCobraUsage recognises cobra's and pflag's own argument errors, which
// are plain errors.
func isCobraUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "invalid argument", "flag needs an argument", "accepts ", "requires at least", "bad flag syntax"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "walctl",
		Short: "Inspect, check, repair, follow and benchmark a mmapwal log directory",
		Long: `walctl works on a mmapwal log directory. Read-only commands (stat, dump,
verify, tail) take no lock and change no file, so they work while another
process writes the log.

Exit codes: 0 success; 1 error; 2 bad usage; 3 verify found corruption;
4 verify found only a torn tail (unsynced records a crash left behind).`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.AddCommand(statCmd(e), dumpCmd(e), verifyCmd(e), repairCmd(e), tailCmd(e), benchCmd(e))
	return root
}

// oneDir is cobra's argument check for commands taking exactly one DIR,
// reported as a usage error.
func oneDir(_ *cobra.Command, args []string) error {
	if len(args) != 1 {
		return &usageError{fmt.Errorf("expected one DIR argument, got %d", len(args))}
	}
	return nil
}
