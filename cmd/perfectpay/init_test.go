package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/vault"
)

// TestInitWritesAProductionConfiguration: init writes config.yaml and
// vault.keks, mode 0600, with fresh secrets that pass validation outside dev
// mode (all four: HMAC key, signing KEK, webhook secret key, vault KEK), says
// what to back up, and never overwrites.
func TestInitWritesAProductionConfiguration(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etc")
	out, err := run(t, "init", "--dir", dir)
	require.NoError(t, err, out)
	cfgPath, kekPath := filepath.Join(dir, "config.yaml"), filepath.Join(dir, "vault.keks")
	for _, p := range []string{cfgPath, kekPath} {
		st, err := os.Stat(p)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), p)
	}
	cfg, _, err := loadConfig(cfgPath)
	require.NoError(t, err)
	require.NoError(t, cfg.Validate(), "valid outside dev mode as written")
	assert.False(t, cfg.DevMode)
	assert.Equal(t, "postgres", cfg.Store.Driver)
	assert.Equal(t, kekPath, cfg.Vault.KEKFile)
	for name, v := range map[string]string{"secrets.hmac_key": cfg.Secrets.HMACKey, "issuer.signing_kek": cfg.Issuer.SigningKEK, "webhooks.secret_key": cfg.Webhooks.SecretKey} {
		assert.NotEmpty(t, v, name)
	}
	keks, err := vault.ReadKEKFile(kekPath)
	require.NoError(t, err)
	assert.Len(t, keks, 1)
	assert.Contains(t, out, "vault.keks")
	assert.Contains(t, out, "loses every card")

	// Fresh secrets each time.
	other := filepath.Join(t.TempDir(), "other")
	_, err = run(t, "init", "--dir", other)
	require.NoError(t, err)
	cfg2, _, err := loadConfig(filepath.Join(other, "config.yaml"))
	require.NoError(t, err)
	assert.NotEqual(t, cfg.Secrets.HMACKey, cfg2.Secrets.HMACKey)
	assert.NotEqual(t, cfg.Issuer.SigningKEK, cfg2.Issuer.SigningKEK)
	assert.NotEqual(t, cfg.Webhooks.SecretKey, cfg2.Webhooks.SecretKey)

	// Never overwrites: either file present refuses, and nothing changes.
	before, err := os.ReadFile(cfgPath)
	require.NoError(t, err)
	kekBefore, err := os.ReadFile(kekPath)
	require.NoError(t, err)
	_, err = run(t, "init", "--dir", dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "already exists")
	after, _ := os.ReadFile(cfgPath)
	kekAfter, _ := os.ReadFile(kekPath)
	assert.Equal(t, before, after)
	assert.Equal(t, kekBefore, kekAfter)

	lone := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(lone, "vault.keks"), []byte("# mine\n"), 0o600))
	_, err = run(t, "init", "--dir", lone)
	require.Error(t, err, "an existing KEK file alone refuses too")
	_, err = os.Stat(filepath.Join(lone, "config.yaml"))
	assert.ErrorIs(t, err, os.ErrNotExist, "nothing written")
}
