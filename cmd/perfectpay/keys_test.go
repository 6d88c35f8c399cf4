package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/store/pgtest"
	"github.com/perfectpay/perfectpay/vault"
)

// TestKeysRotateKEKAndRewrap drives the whole KEK cycle through the CLI on
// Postgres: cards stored under version 1, `keys rotate-kek` adds version 2,
// `keys rewrap` moves every tenant key (resumably, with counts), the
// minimum is raised to 2 and version 1 removed, and every card still charges.
func TestKeysRotateKEKAndRewrap(t *testing.T) {
	url := pgtest.NewURL(t)
	file := filepath.Join(t.TempDir(), "kek")
	base := apptest.Config("memory", "")
	t.Setenv("PERFECTPAY_STORE_DRIVER", "postgres")
	t.Setenv("PERFECTPAY_STORE_POSTGRES_URL", url)
	t.Setenv("PERFECTPAY_SECRETS_HMAC_KEY", base.Secrets.HMACKey)
	t.Setenv("PERFECTPAY_WEBHOOKS_SECRET_KEY", base.Webhooks.SecretKey)
	t.Setenv("PERFECTPAY_ISSUER_SIGNING_KEK", base.Issuer.SigningKEK)
	t.Setenv("PERFECTPAY_VAULT_KEK_FILE", file)

	out, err := run(t, "keys", "rotate-kek")
	require.NoError(t, err, out)
	assert.Contains(t, out, `"new_version": 1`)
	st, err := os.Stat(file)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	withFile := func(min int) func(*app.Config) {
		return func(c *app.Config) { c.Vault.KEKs, c.Vault.KEKFile, c.Vault.MinDecryptionVersion = "", file, min }
	}
	n := apptest.NewWithURL(t, "postgres", url, withFile(0))
	var toks []string
	var keys []string
	for range 3 {
		b, sk := n.Tenant(t)
		r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/tokens", Key: apptest.Key(b, accounts.KindPublishable, accounts.ModeTest),
			Body: map[string]any{"card": map[string]any{"number": "4242424242424242", "exp_month": 12, "exp_year": 2040, "cvc": "123"}}})
		require.Equal(t, 200, r.Status, string(r.Body))
		toks, keys = append(toks, r.JSON["id"].(string)), append(keys, sk)
	}

	out, err = run(t, "keys", "rotate-kek")
	require.NoError(t, err, out)
	assert.Contains(t, out, `"new_version": 2`)
	kr, err := vault.ReadKEKFile(file)
	require.NoError(t, err)
	assert.Len(t, kr, 2)

	out, err = run(t, "keys", "kek-status")
	require.NoError(t, err, out)
	assert.Contains(t, out, `"active_version": 2`)
	var status struct {
		ByVersion map[string]int `json:"tenant_keys_by_version"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &status))
	assert.Equal(t, map[string]int{"1": 3}, status.ByVersion)

	out, err = run(t, "keys", "rewrap", "--batch", "2")
	require.NoError(t, err, out)
	var rep vault.RewrapReport
	require.NoError(t, json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &rep), out) // after the progress lines
	assert.Equal(t, 2, rep.TargetVersion)
	assert.Equal(t, 3, rep.Rewrapped)
	assert.Equal(t, map[int]int{2: 3}, rep.Remaining)
	out, err = run(t, "keys", "rewrap")
	require.NoError(t, err, out)
	assert.Contains(t, out, `"rewrapped": 0`, "a second run finds nothing to do")

	// Raise the minimum and drop version 1 from the file: every card works.
	t.Setenv("PERFECTPAY_VAULT_MIN_DECRYPTION_VERSION", "2")
	keep, err := vault.ReadKEKFile(file)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(file, []byte(vault.FormatKEK(2, keep[2])+"\n"), 0o600))
	n2 := apptest.NewWithURL(t, "postgres", url, withFile(2))
	for i, tok := range toks {
		r := n2.Do(t, apptest.Req{Method: "POST", Path: "/v1/charges", Key: keys[i], Body: map[string]any{"amount": 500, "currency": "eur", "payment_method": tok}})
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, "succeeded", r.JSON["status"])
	}
}
