package vault_test

import (
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
	"github.com/perfectpay/perfectpay/vault"
)

// oldRows are a tenant key and a card token as the vault wrote them before
// it sealed through internal/seal: the tenant key wrapped by KEK version 1,
// the token's data key wrapped by the tenant key, the card under the data
// key.
type oldRows struct {
	KEK       string `json:"kek_v1"`
	TenantKey struct {
		ID         string    `json:"id"`
		TenantID   string    `json:"tenant_id"`
		KEKVersion int       `json:"kek_version"`
		Wrapped    string    `json:"wrapped"`
		CreatedAt  time.Time `json:"created_at"`
	} `json:"tenant_key"`
	Token struct {
		ID          string    `json:"id"`
		TenantID    string    `json:"tenant_id"`
		TenantKeyID string    `json:"tenant_key_id"`
		Brand       string    `json:"brand"`
		Last4       string    `json:"last4"`
		ExpMonth    int       `json:"exp_month"`
		ExpYear     int       `json:"exp_year"`
		Fingerprint string    `json:"fingerprint"`
		CVCCheck    string    `json:"cvc_check"`
		WrappedDEK  string    `json:"wrapped_dek"`
		Ciphertext  string    `json:"ciphertext"`
		CreatedAt   time.Time `json:"created_at"`
	} `json:"token"`
}

func unhex(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

type backend struct {
	vault    store.Runner[vault.Tx]
	accounts store.Runner[accounts.Repo]
}

func eachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	t.Run("memory", func(t *testing.T) {
		m := memory.New()
		fn(t, backend{
			vault:    store.Bind(m, func(x *memory.Tx) vault.Tx { return x }),
			accounts: store.Bind(m, func(x *memory.Tx) accounts.Repo { return x }),
		})
	})
	t.Run("postgres", func(t *testing.T) {
		pg := pgtest.NewStore(t)
		fn(t, backend{
			vault:    store.Bind(pg, func(x *postgres.Tx) vault.Tx { return x }),
			accounts: store.Bind(pg, func(x *postgres.Tx) accounts.Repo { return x }),
		})
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
	kek1 := unhex(t, f.KEK)
	ctx := context.Background()

	eachBackend(t, func(t *testing.T, be backend) {
		require.NoError(t, be.accounts.InTx(ctx, func(tx accounts.Repo) error {
			return tx.CreateTenant(ctx, &accounts.Tenant{ID: f.TenantKey.TenantID, Name: "T", Status: accounts.TenantActive, CreatedAt: f.TenantKey.CreatedAt})
		}))
		tk := &vault.TenantKey{ID: f.TenantKey.ID, TenantID: f.TenantKey.TenantID, KEKVersion: f.TenantKey.KEKVersion,
			Wrapped: unhex(t, f.TenantKey.Wrapped), CreatedAt: f.TenantKey.CreatedAt}
		tok := &vault.Token{ID: f.Token.ID, TenantID: f.Token.TenantID, TenantKeyID: f.Token.TenantKeyID, Brand: f.Token.Brand,
			Last4: f.Token.Last4, ExpMonth: f.Token.ExpMonth, ExpYear: f.Token.ExpYear, Fingerprint: f.Token.Fingerprint,
			CVCCheck: f.Token.CVCCheck, WrappedDEK: unhex(t, f.Token.WrappedDEK), Ciphertext: unhex(t, f.Token.Ciphertext),
			CreatedAt: f.Token.CreatedAt}
		require.NoError(t, be.vault.InTx(ctx, func(tx vault.Tx) error {
			if _, err := tx.EnsureTenantKey(ctx, tk); err != nil {
				return err
			}
			return tx.CreateToken(ctx, tok)
		}))

		reveal := func(svc *vault.Service, id string) *vault.Card {
			t.Helper()
			var card *vault.Card
			require.NoError(t, be.vault.InTx(ctx, func(tx vault.Tx) error {
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
		svc := vault.NewService(be.vault, kr, nil, nil)
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
		assert.Equal(t, "4242424242424242", reveal(vault.NewService(be.vault, strict, nil, nil), tok.ID).Number)
	})
}
