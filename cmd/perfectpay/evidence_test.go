package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEvidenceVerifyRefuses: `evidence verify` runs without configuration
// and refuses what is not a signed bundle (the bundles themselves are
// verified in the server's evidence test).
func TestEvidenceVerifyRefuses(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "evidence.jws")
	require.NoError(t, os.WriteFile(file, []byte("eyJhbGciOiJFZERTQSJ9.e30.c2ln\n"), 0o600))
	out, err := run(t, "evidence", "verify", file)
	require.Error(t, err, out)
	assert.Contains(t, err.Error(), "evidence does not verify")
	_, err = run(t, "evidence", "verify", filepath.Join(dir, "missing.jws"))
	require.Error(t, err)
	_, err = run(t, "decisions", "replay", "--against", dir)
	require.Error(t, err)
}
