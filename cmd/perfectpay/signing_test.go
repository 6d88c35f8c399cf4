package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/store/pgtest"
)

// `keys rotate-signing` adds a key that a running node picks up (NOTIFY),
// while the retired key keeps verifying and stays published.
func TestKeysRotateSigning(t *testing.T) {
	url := pgtest.NewURL(t)
	n := apptest.NewWithURL(t, "postgres", url)
	before := n.App.Issuer.CurrentKeyID()
	require.NotEmpty(t, before)

	cfg := apptest.Config("postgres", url)
	t.Setenv("PERFECTPAY_STORE_DRIVER", "postgres")
	t.Setenv("PERFECTPAY_STORE_POSTGRES_URL", url)
	t.Setenv("PERFECTPAY_SECRETS_HMAC_KEY", cfg.Secrets.HMACKey)
	t.Setenv("PERFECTPAY_WEBHOOKS_SECRET_KEY", cfg.Webhooks.SecretKey)
	t.Setenv("PERFECTPAY_ISSUER_SIGNING_KEK", cfg.Issuer.SigningKEK)
	t.Setenv("PERFECTPAY_VAULT_KEKS", cfg.Vault.KEKs)
	out, err := run(t, "keys", "rotate-signing")
	require.NoError(t, err, out)
	var res struct {
		SigningKID    string   `json:"signing_kid"`
		PublishedKIDs []string `json:"published_kids"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	assert.NotEqual(t, before, res.SigningKID)
	assert.ElementsMatch(t, []string{before, res.SigningKID}, res.PublishedKIDs)
	require.Eventually(t, func() bool {
		return string(n.App.Issuer.JWKS(context.Background())) != "" && n.App.Issuer.CurrentKeyID() == res.SigningKID
	}, 5*time.Second, 20*time.Millisecond)

	t.Setenv("PERFECTPAY_STORE_DRIVER", "memory")
	_, err = run(t, "keys", "rotate-signing")
	require.ErrorContains(t, err, "postgres")
}
