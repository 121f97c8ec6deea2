package mmapwal

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mmapwal/wal/format"
)

const lockEnvDir = "MMAPWAL_LOCK_HOLDER_DIR"

// TestLockHelperHolder is the child of TestDeletedLockFileDoesNotLetASecondWriterIn:
// it opens the log, says "ready", and holds it until its stdin closes.
func TestLockHelperHolder(t *testing.T) {
	dir := os.Getenv(lockEnvDir)
	if dir == "" {
		t.Skip("helper process for TestDeletedLockFileDoesNotLetASecondWriterIn")
	}
	w, err := Open(dir, nil)
	if err != nil {
		os.Stdout.WriteString("open failed: " + err.Error() + "\n")
		os.Exit(2)
	}
	if _, err := w.Append([]byte("held")); err != nil {
		os.Stdout.WriteString("append failed: " + err.Error() + "\n")
		os.Exit(2)
	}
	os.Stdout.WriteString("ready\n")
	_, _ = io.Copy(io.Discard, os.Stdin)
	if err := w.Close(); err != nil {
		os.Exit(3)
	}
}

// Deleting the LOCK file of an open log must not let a second writer (in
// another process) open it: the lock is held on the directory itself.
func TestDeletedLockFileDoesNotLetASecondWriterIn(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("on Windows the held LOCK file cannot be deleted")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHelperHolder$", "-test.count=1")
	cmd.Env = append(os.Environ(), lockEnvDir+"="+dir)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	sc := bufio.NewScanner(stdout)
	ready := false
	var out []string
	for sc.Scan() {
		out = append(out, sc.Text())
		if strings.TrimSpace(sc.Text()) == "ready" {
			ready = true
			break
		}
	}
	require.True(t, ready, "child did not open the log: %q", out)

	require.NoError(t, os.Remove(filepath.Join(dir, format.LockName)))
	w, err := Open(dir, nil)
	if err == nil {
		w.Close()
	}
	require.ErrorIs(t, err, ErrLocked, "a second writer got in after LOCK was deleted")

	require.NoError(t, stdin.Close())
	go io.Copy(io.Discard, stdout)
	require.NoError(t, cmd.Wait(), "child closes its log cleanly")
	w = mustOpen(t, dir, nil)
	got, err := w.Read(1)
	require.NoError(t, err)
	assert.Equal(t, "held", string(got))
	require.NoError(t, w.Close())
}
