package kv

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStoreSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	require.NoError(t, err)
	require.NoError(t, s.Create("a", "1"))
	require.NoError(t, s.Create("b", "2"))
	require.NoError(t, s.Update("a", "3"))
	require.NoError(t, s.Delete("b"))
	assert.ErrorIs(t, s.Create("a", "x"), ErrExists)
	assert.ErrorIs(t, s.Update("zz", "x"), ErrMissing)
	require.NoError(t, s.Close())

	s, err = Open(dir)
	require.NoError(t, err)
	defer s.Close()
	assert.Equal(t, map[string]string{"a": "3"}, s.Snapshot())
	assert.Equal(t, 4, s.Replayed())
}
