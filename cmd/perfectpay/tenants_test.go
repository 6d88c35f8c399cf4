package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/store/pgtest"
)

// perfectpay tenants revoke closes the tenant for the running nodes.
func TestTenantsRevokeOnPostgres(t *testing.T) {
	url := pgtest.NewURL(t)
	t.Setenv("PERFECTPAY_STORE_DRIVER", "postgres")
	t.Setenv("PERFECTPAY_STORE_POSTGRES_URL", url)
	cfg := apptest.Config("memory", "")
	t.Setenv("PERFECTPAY_SECRETS_HMAC_KEY", cfg.Secrets.HMACKey)
	t.Setenv("PERFECTPAY_WEBHOOKS_SECRET_KEY", cfg.Webhooks.SecretKey)
	t.Setenv("PERFECTPAY_ISSUER_SIGNING_KEK", cfg.Issuer.SigningKEK)
	t.Setenv("PERFECTPAY_VAULT_KEKS", cfg.Vault.KEKs)

	n := apptest.NewWithURL(t, "postgres", url)
	b, sk := n.Tenant(t)
	_, other := n.Tenant(t)
	require.Equal(t, 200, n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: sk}).Status)

	out, err := run(t, "tenants", "revoke", b.Tenant.ID)
	require.NoError(t, err, out)
	assert.Contains(t, out, `"status": "revoked"`)
	r := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: sk})
	assert.Equal(t, 403, r.Status)
	assert.Equal(t, "tenant_revoked", r.ErrorCode())
	assert.Equal(t, 200, n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: other}).Status)

	_, err = run(t, "tenants", "revoke", "ten_nope")
	assert.ErrorContains(t, err, "no tenant")
	_, err = run(t, "tenants", "revoke")
	assert.Error(t, err)
}

func TestTokenNew(t *testing.T) {
	out, err := run(t, "token", "new", "--prefix", "mt_")
	require.NoError(t, err, out)
	var tok, hash string
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "token: "); ok {
			tok = v
		}
		if v, ok := strings.CutPrefix(line, "hash:  "); ok {
			hash = v
		}
	}
	require.True(t, strings.HasPrefix(tok, "mt_"), out)
	h, err := accounts.ParseTokenHash(hash)
	require.NoError(t, err)
	assert.True(t, h.Matches(tok))
	assert.False(t, h.Matches(tok+"x"))
}
