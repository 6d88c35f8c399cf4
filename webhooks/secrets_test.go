package webhooks_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/internal/seal"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/memory"
	"github.com/perfectpay/perfectpay/store/pgtest"
	"github.com/perfectpay/perfectpay/store/postgres"
	"github.com/perfectpay/perfectpay/webhooks"
)

func TestSecretBox(t *testing.T) {
	box, err := webhooks.NewSecretBox(bytes.Repeat([]byte{7}, 32))
	require.NoError(t, err)
	secret, err := webhooks.NewSecret()
	require.NoError(t, err)
	sealed, err := box.Seal("we_1", secret)
	require.NoError(t, err)
	assert.Equal(t, seal.V1, sealed[0])
	assert.NotContains(t, string(sealed), secret)
	got, err := box.Open("we_1", sealed)
	require.NoError(t, err)
	assert.Equal(t, secret, got)

	_, err = box.Open("we_2", sealed)
	require.ErrorIs(t, err, webhooks.ErrSecretUnreadable, "copied onto another endpoint")
	other, err := webhooks.NewSecretBox(bytes.Repeat([]byte{8}, 32))
	require.NoError(t, err)
	_, err = other.Open("we_1", sealed)
	require.ErrorIs(t, err, webhooks.ErrSecretUnreadable, "another webhooks.secret_key")
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	_, err = box.Open("we_1", tampered)
	require.ErrorIs(t, err, webhooks.ErrSecretUnreadable)
	_, err = box.Open("we_1", sealed[:20])
	require.ErrorIs(t, err, webhooks.ErrSecretUnreadable)
	require.ErrorIs(t, err, seal.ErrShort, "the cause is kept for the log")
	for _, n := range []int{0, 16, 31, 33} {
		_, err := webhooks.NewSecretBox(make([]byte, n))
		require.Error(t, err, "%d-byte key", n)
	}
}

// An endpoint row written by the earlier code signs with both of its
// secrets on either store.
func TestEndpointSealedBeforeSealPackage(t *testing.T) {
	b, err := os.ReadFile("testdata/sealed_before_seal_package.json")
	require.NoError(t, err)
	// The current and previous signing secrets of an endpoint, as the
	// webhook code sealed them before it sealed through internal/seal.
	var f map[string]string
	require.NoError(t, json.Unmarshal(b, &f))
	var key, sealedCur, sealedPrev []byte
	for dst, name := range map[*[]byte]string{&key: "key", &sealedCur: "secret_sealed", &sealedPrev: "prev_secret_sealed"} {
		*dst, err = hex.DecodeString(f[name])
		require.NoError(t, err, name)
	}
	box, err := webhooks.NewSecretBox(key)
	require.NoError(t, err)
	ctx := context.Background()
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	until := now.Add(time.Hour)

	for _, backend := range []string{"memory", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			var db store.Runner[webhooks.Tx]
			var acc store.Runner[accounts.Repo]
			if backend == "postgres" {
				pg := pgtest.NewStore(t)
				db = store.Bind(pg, func(x *postgres.Tx) webhooks.Tx { return x })
				acc = store.Bind(pg, func(x *postgres.Tx) accounts.Repo { return x })
			} else {
				m := memory.New()
				db = store.Bind(m, func(x *memory.Tx) webhooks.Tx { return x })
				acc = store.Bind(m, func(x *memory.Tx) accounts.Repo { return x })
			}
			tenant := "ten_sealedbeforeseal"
			require.NoError(t, acc.InTx(ctx, func(tx accounts.Repo) error {
				return tx.CreateTenant(ctx, &accounts.Tenant{ID: tenant, Name: "T", Status: accounts.TenantActive, CreatedAt: now})
			}))
			require.NoError(t, db.InTx(ctx, func(tx webhooks.Tx) error {
				return tx.CreateEndpoint(ctx, &webhooks.Endpoint{ID: f["endpoint_id"], TenantID: tenant, URL: "https://example.com/hook",
					Events: []string{"charge.succeeded"}, Status: webhooks.EndpointEnabled, CreatedAt: now, UpdatedAt: now,
					Secret: sealedCur, PrevSecret: sealedPrev, PrevSecretExpiresAt: &until})
			}))
			svc := webhooks.NewService(db, webhooks.ServiceOptions{Box: box})
			e, err := svc.GetEndpoint(ctx, tenant, f["endpoint_id"])
			require.NoError(t, err)
			keys, err := svc.SigningKeys(e, now)
			require.NoError(t, err)
			cur, err := webhooks.DecodeSecret(f["secret"])
			require.NoError(t, err)
			prev, err := webhooks.DecodeSecret(f["prev_secret"])
			require.NoError(t, err)
			assert.Equal(t, [][]byte{cur, prev}, keys)
		})
	}
}
