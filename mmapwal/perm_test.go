//go:build unix

package mmapwal

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/mmapwal/wal/format"
)

// Files the log creates are private by default (0600, directory 0700);
// Options.FileMode and DirMode widen them (the umask still applies).
func TestFileAndDirPermissions(t *testing.T) {
	umask := os.FileMode(unix.Umask(0o022))
	unix.Umask(int(umask))
	for _, tc := range []struct {
		name             string
		fileMode, dirMod os.FileMode
		wantFile, wantDr os.FileMode
	}{
		{"defaults", 0, 0, 0o600, 0o700},
		{"widened", 0o644, 0o755, 0o644, 0o755},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "wal")
			o := smallOpts(SyncAlways)
			o.FileMode, o.DirMode = tc.fileMode, tc.dirMod
			w := mustOpen(t, dir, o)
			newModel(1).fill(t, w, 1000, 100) // rotations
			require.NoError(t, w.TruncateFront(2))
			require.NoError(t, w.Close())
			fi, err := os.Stat(dir)
			require.NoError(t, err)
			assert.Equal(t, tc.wantDr&^umask, fi.Mode().Perm(), "directory")
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			seen := map[string]bool{}
			for _, e := range entries {
				fi, err := e.Info()
				require.NoError(t, err)
				assert.Equal(t, tc.wantFile&^umask, fi.Mode().Perm(), e.Name())
				seen[filepath.Ext(e.Name())] = true
			}
			for _, ext := range []string{format.SegmentExt, format.IndexExt, ".meta", ".id"} {
				assert.True(t, seen[ext], "no %s file checked", ext)
			}
			_, err = os.Stat(filepath.Join(dir, format.LockName))
			assert.NoError(t, err)
		})
	}
	_, err := Open(t.TempDir(), &Options{FileMode: os.ModeDir | 0o600})
	assert.ErrorIs(t, err, ErrInvalidOptions, "only permission bits")
}
