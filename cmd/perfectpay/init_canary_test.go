package main

import (
	"bytes"
	"encoding/base64"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/store/pgtest"
)

// TestWrongSecretRefusesToStart: once a database was used with a set of
// secrets, serve and every command that opens the store refuse to start
// with another value of any of them, naming it (they used to start and
// then fail every request: invalid_api_key, cards that do not decrypt).
func TestWrongSecretRefusesToStart(t *testing.T) {
	url := pgtest.NewURL(t)
	good := apptest.Config("memory", "")
	env := map[string]string{
		"PERFECTPAY_STORE_DRIVER":        "postgres",
		"PERFECTPAY_STORE_POSTGRES_URL":  url,
		"PERFECTPAY_SECRETS_HMAC_KEY":    good.Secrets.HMACKey,
		"PERFECTPAY_WEBHOOKS_SECRET_KEY": good.Webhooks.SecretKey,
		"PERFECTPAY_ISSUER_SIGNING_KEK":  good.Issuer.SigningKEK,
		"PERFECTPAY_VAULT_KEKS":          good.Vault.KEKs,
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	out, err := run(t, "tenants", "create", "--name", "Acme")
	require.NoError(t, err, out)

	other := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{42}, 32))
	for _, tc := range []struct{ env, value, names string }{
		{"PERFECTPAY_SECRETS_HMAC_KEY", other, "secrets.hmac_key"},
		{"PERFECTPAY_ISSUER_SIGNING_KEK", other, "issuer.signing_kek"},
		{"PERFECTPAY_WEBHOOKS_SECRET_KEY", other, "webhooks.secret_key"},
		{"PERFECTPAY_VAULT_KEKS", "1:" + other, "vault KEK version 1"},
	} {
		t.Run(tc.names, func(t *testing.T) {
			t.Setenv(tc.env, tc.value)
			for _, args := range [][]string{{"tenants", "create", "--name", "Other"}, {"serve", "--addr", "127.0.0.1:0"}} {
				out, err := run(t, args...)
				require.Error(t, err, "%v started with a wrong %s", args, tc.names)
				assert.Contains(t, err.Error(), tc.names+" is not the one this database was set up with")
				for _, s := range []string{"secrets.hmac_key", "issuer.signing_kek", "webhooks.secret_key", "vault KEK version 1"} {
					if s != tc.names {
						assert.NotContains(t, err.Error(), s+" is not", "only the wrong secret is named")
					}
				}
				assert.NotContains(t, out, "sk_test_")
			}
		})
	}
	out, err = run(t, "tenants", "create", "--name", "Acme again")
	require.NoError(t, err, "the right secrets still start: %s", out)
}
