package vault_test

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/internal/seal"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/memory"
	"github.com/perfectpay/perfectpay/store/pgtest"
	"github.com/perfectpay/perfectpay/store/postgres"
	"github.com/perfectpay/perfectpay/vault"
)

// oldRows are a tenant key and a card token as the vault wrote them before
// it sealed through internal/seal: the tenant key wrapped by KEK version 1,
// the token's data key wrapped by the tenant key, the card under the data
// key.
type oldRows struct {
	KEK       []byte          `json:"kek_v1"`
	TenantKey vault.TenantKey `json:"tenant_key"`
	Token     vault.Token     `json:"token"`
}

// vaultTx is what the test writes: the tenant, then the vault's rows.
type vaultTx interface {
	vault.Tx
	accounts.Repo
}

func eachBackend(t *testing.T, fn func(t *testing.T, db store.Runner[vaultTx], vdb store.Runner[vault.Tx])) {
	t.Run("memory", func(t *testing.T) {
		m := memory.New()
		fn(t, store.Bind(m, func(x *memory.Tx) vaultTx { return x }), store.Bind(m, func(x *memory.Tx) vault.Tx { return x }))
	})
	t.Run("postgres", func(t *testing.T) {
		pg := pgtest.NewStore(t)
		fn(t, store.Bind(pg, func(x *postgres.Tx) vaultTx { return x }), store.Bind(pg, func(x *postgres.Tx) vault.Tx { return x }))
	})
}

// Rows written by the earlier vault code open with the current one on both
// stores: the card is revealed, the old tenant key wraps new cards, and a
// KEK rotation rewraps it.
func TestRowsSealedBeforeSealPackage(t *testing.T) {
	b, err := os.ReadFile("testdata/sealed_before_seal_package.json")
	require.NoError(t, err)
	var f oldRows
	require.NoError(t, json.Unmarshal(b, &f))
	kek1 := f.KEK
	ctx := context.Background()

	eachBackend(t, func(t *testing.T, db store.Runner[vaultTx], vdb store.Runner[vault.Tx]) {
		tk, tok := f.TenantKey, f.Token
		require.NoError(t, db.InTx(ctx, func(tx vaultTx) error {
			if err := tx.CreateTenant(ctx, &accounts.Tenant{ID: tk.TenantID, Name: "T", Status: accounts.TenantActive, CreatedAt: tk.CreatedAt}); err != nil {
				return err
			}
			if _, err := tx.EnsureTenantKey(ctx, &tk); err != nil {
				return err
			}
			return tx.CreateToken(ctx, &tok)
		}))

		reveal := func(svc *vault.Service, id string) *vault.Card {
			t.Helper()
			var card *vault.Card
			require.NoError(t, vdb.InTx(ctx, func(tx vault.Tx) error {
				var err error
				_, card, err = svc.Reveal(ctx, tx, tk.TenantID, id)
				return err
			}))
			return card
		}

		// KEK version 2 is active: new wraps use it, version 1 still opens.
		kek2 := vault.GenerateKey()
		kr, err := vault.NewKeyring(map[int][]byte{1: kek1, 2: kek2}, 2, 0)
		require.NoError(t, err)
		svc := vault.NewService(vdb, kr, nil, nil)
		card := reveal(svc, tok.ID)
		assert.Equal(t, "4242424242424242", card.Number)
		assert.Equal(t, "Ada Lovelace", card.Name)

		// A new card of the tenant goes under the old tenant key.
		fresh, err := svc.Tokenize(ctx, tk.TenantID, false, vault.CardInput{Number: "4242424242424242", ExpMonth: 12, ExpYear: 2030, CVC: "123"})
		require.NoError(t, err)
		assert.Equal(t, tk.ID, fresh.TenantKeyID)
		assert.Equal(t, f.Token.Fingerprint, fresh.Fingerprint, "the old tenant key's fingerprint key")
		assert.Equal(t, seal.V1, fresh.Ciphertext[0])
		assert.Equal(t, "4242424242424242", reveal(svc, fresh.ID).Number)

		// Rotation rewraps the old tenant key; then version 1 can be retired.
		rep, err := svc.Rewrap(ctx, 10, nil)
		require.NoError(t, err)
		assert.Equal(t, 1, rep.Rewrapped)
		strict, err := vault.NewKeyring(map[int][]byte{1: kek1, 2: kek2}, 2, 2)
		require.NoError(t, err)
		assert.Equal(t, "4242424242424242", reveal(vault.NewService(vdb, strict, nil, nil), tok.ID).Number)
	})
}
