package storetest

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/vault"
)

// kek returns a deterministic test KEK for version v.
func kek(v int) []byte { return bytes.Repeat([]byte{byte(v)}, vault.KeySize) }

func keyring(t *testing.T, active, minDecrypt int, versions ...int) *vault.Keyring {
	keys := map[int][]byte{}
	for _, v := range versions {
		keys[v] = kek(v)
	}
	kr, err := vault.NewKeyring(keys, active, minDecrypt)
	require.NoError(t, err)
	return kr
}

func newVault[X Tx](b store.Backend[X], kr *vault.Keyring, sim *payments.Simulated) *vault.Service {
	return vault.NewService(store.Bind(b, func(x X) vault.Tx { return x }), kr, payments.CardVerifier(sim, time.Second), nil)
}

// testCard is a card input valid for two more years.
func testCard(number string) vault.CardInput {
	cvc := "123"
	if len(number) == 15 {
		cvc = "1234"
	}
	return vault.CardInput{Number: number, ExpMonth: 12, ExpYear: time.Now().Year() + 2, CVC: cvc, Name: "Ada Lovelace"}
}

func testVaultKeys[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	tn, other := MakeTenant(t, b), MakeTenant(t, b)
	k1 := &vault.TenantKey{ID: "tk_1" + ids.Random(8), TenantID: tn.ID, KEKVersion: 1, Wrapped: []byte("w1"), CreatedAt: now()}
	in(t, b, func(tx X) error {
		got, err := tx.EnsureTenantKey(ctx, k1)
		require.NoError(t, err)
		assert.Equal(t, k1.ID, got.ID)
		dup := *k1
		dup.ID = "tk_2" + ids.Random(8)
		got, err = tx.EnsureTenantKey(ctx, &dup)
		require.NoError(t, err)
		assert.Equal(t, k1.ID, got.ID, "one live key per tenant")
		return nil
	})
	in(t, b, func(tx X) error {
		live, err := tx.LiveTenantKey(ctx, tn.ID)
		require.NoError(t, err)
		assert.Equal(t, k1.ID, live.ID)
		_, err = tx.LiveTenantKey(ctx, other.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
		return nil
	})
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error {
		_, err := tx.EnsureTenantKey(ctx, &vault.TenantKey{ID: "tk_x", TenantID: "ten_missing", KEKVersion: 1, Wrapped: []byte("w"), CreatedAt: now()})
		return err
	}), store.ErrNotFound)

	// Concurrent first use of a tenant agrees on one key.
	racer := MakeTenant(t, b)
	var wg sync.WaitGroup
	got := make([]string, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			assert.NoError(t, b.InTx(ctx, func(tx X) error {
				k, err := tx.EnsureTenantKey(ctx, &vault.TenantKey{ID: ids.New("tk"), TenantID: racer.ID, KEKVersion: 1, Wrapped: []byte("w"), CreatedAt: now()})
				if err == nil {
					got[i] = k.ID
				}
				return err
			}))
		}()
	}
	wg.Wait()
	for _, id := range got {
		assert.Equal(t, got[0], id)
	}

	tok := &vault.Token{ID: ids.New("tok"), TenantID: tn.ID, TenantKeyID: k1.ID, Brand: "visa", Last4: "4242", ExpMonth: 1,
		ExpYear: 2040, Fingerprint: "fp", CVCCheck: vault.CVCPass, WrappedDEK: []byte("dek"), Ciphertext: []byte("ct"), CreatedAt: now()}
	in(t, b, func(tx X) error { return tx.CreateToken(ctx, tok) })
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.CreateToken(ctx, tok) }), store.ErrConflict)
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { _, err := tx.GetToken(ctx, other.ID, tok.ID); return err }), store.ErrNotFound,
		"another tenant's token is invisible")
	in(t, b, func(tx X) error {
		got, err := tx.GetToken(ctx, tn.ID, tok.ID)
		require.NoError(t, err)
		assert.Equal(t, []byte("ct"), got.Ciphertext)
		assert.Equal(t, "4242", got.Last4)
		// The token with its key in one read: the same rows as apart.
		both, key, err := tx.GetTokenAndKey(ctx, tn.ID, tok.ID)
		require.NoError(t, err)
		assert.Equal(t, got, both)
		require.NotNil(t, key)
		alone, err := tx.GetTenantKey(ctx, k1.ID)
		require.NoError(t, err)
		assert.Equal(t, alone, key)
		_, _, err = tx.GetTokenAndKey(ctx, other.ID, tok.ID)
		require.ErrorIs(t, err, store.ErrNotFound, "another tenant's token is invisible with its key too")
		_, _, err = tx.GetTokenAndKey(ctx, tn.ID, "tok_missing")
		require.ErrorIs(t, err, store.ErrNotFound)
		return tx.DeleteToken(ctx, tn.ID, tok.ID, now())
	})
	in(t, b, func(tx X) error {
		got, err := tx.GetToken(ctx, tn.ID, tok.ID)
		require.NoError(t, err)
		assert.Nil(t, got.Ciphertext)
		assert.Nil(t, got.WrappedDEK)
		assert.NotNil(t, got.DeletedAt)
		require.ErrorIs(t, tx.DeleteToken(ctx, tn.ID, tok.ID, now()), store.ErrNotFound)
		return nil
	})

	// Rewrap bookkeeping: listing, conditional update, counts, destroy.
	in(t, b, func(tx X) error {
		keys, err := tx.TenantKeysToRewrap(ctx, 2, "", 100)
		require.NoError(t, err)
		require.Len(t, keys, 2) // tn and racer
		assert.Less(t, keys[0].ID, keys[1].ID)
		require.NoError(t, tx.RewrapTenantKey(ctx, k1.ID, 1, 2, []byte("w2"), now()))
		require.ErrorIs(t, tx.RewrapTenantKey(ctx, k1.ID, 1, 2, []byte("w3"), now()), store.ErrConflict)
		counts, err := tx.CountTenantKeys(ctx)
		require.NoError(t, err)
		assert.Equal(t, map[int]int{1: 1, 2: 1}, counts)
		d, err := tx.DestroyTenantKey(ctx, tn.ID, now())
		require.NoError(t, err)
		assert.Nil(t, d.Wrapped)
		k, err := tx.GetTenantKey(ctx, k1.ID)
		require.NoError(t, err)
		assert.Nil(t, k.Wrapped)
		assert.NotNil(t, k.DestroyedAt)
		_, joined, err := tx.GetTokenAndKey(ctx, tn.ID, tok.ID)
		require.NoError(t, err)
		require.NotNil(t, joined)
		assert.Equal(t, k, joined, "a destroyed key reads the same joined")
		_, err = tx.DestroyTenantKey(ctx, tn.ID, now())
		require.ErrorIs(t, err, store.ErrNotFound)
		return nil
	})
}

func reveal[X Tx](t *testing.T, b store.Backend[X], v *vault.Service, tenantID, id string) (*vault.Card, error) {
	t.Helper()
	var card *vault.Card
	var rerr error
	in(t, b, func(tx X) error {
		_, card, rerr = v.Reveal(context.Background(), tx, tenantID, id)
		return nil
	})
	return card, rerr
}

func testVaultCycle[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	sim := newSimulated(b, payments.SimulatedConfig{})
	v1 := newVault(b, keyring(t, 0, 0, 1), sim)
	t1, t2 := MakeTenant(t, b), MakeTenant(t, b)

	var toks []*vault.Token
	for _, tn := range []string{t1.ID, t2.ID} {
		for _, n := range []string{"4242424242424242", "5555555555554444", "378282246310005"} {
			tok, err := v1.Tokenize(ctx, tn, false, testCard(n))
			require.NoError(t, err)
			toks = append(toks, tok)
		}
	}
	assert.Equal(t, vault.CVCPass, toks[0].CVCCheck)
	assert.Equal(t, toks[0].Fingerprint, mustTokenize(t, v1, t1.ID, "4242 4242 4242 4242").Fingerprint, "same card, same tenant: same fingerprint")
	assert.NotEqual(t, toks[0].Fingerprint, toks[3].Fingerprint, "fingerprints do not link tenants")
	assert.Equal(t, vault.CVCFail, mustTokenize(t, v1, t1.ID, "4000000000000127").CVCCheck)

	card, err := reveal(t, b, v1, t1.ID, toks[0].ID)
	require.NoError(t, err)
	assert.Equal(t, "4242424242424242", card.Number)
	assert.Equal(t, "Ada Lovelace", card.Name)
	assert.Empty(t, card.CVC, "the CVC is never stored")

	// A ciphertext and data key copied onto another row do not decrypt:
	// the additional authenticated data names tenant and token id.
	var src *vault.Token
	in(t, b, func(tx X) error {
		var err error
		src, err = tx.GetToken(ctx, t1.ID, toks[0].ID)
		return err
	})
	moved := *src
	moved.ID = ids.New("tok")
	in(t, b, func(tx X) error { return tx.CreateToken(ctx, &moved) })
	_, err = reveal(t, b, v1, t1.ID, moved.ID)
	require.ErrorIs(t, err, vault.ErrDecrypt, "copied within the tenant")
	var t2key string
	in(t, b, func(tx X) error {
		other, err := tx.GetToken(ctx, t2.ID, toks[3].ID)
		t2key = other.TenantKeyID
		return err
	})
	cross := *src
	cross.ID, cross.TenantID, cross.TenantKeyID = ids.New("tok"), t2.ID, t2key
	in(t, b, func(tx X) error { return tx.CreateToken(ctx, &cross) })
	_, err = reveal(t, b, v1, t2.ID, cross.ID)
	require.ErrorIs(t, err, vault.ErrDecrypt, "copied to another tenant")

	// Rotate: version 2 becomes active; a new tenant's key uses it.
	v12 := newVault(b, keyring(t, 0, 0, 1, 2), sim)
	t3 := MakeTenant(t, b)
	toks = append(toks, mustTokenize(t, v12, t3.ID, "6011111111111117"))
	counts, err := v12.KeyCounts(ctx)
	require.NoError(t, err)
	assert.Equal(t, map[int]int{1: 2, 2: 1}, counts)

	// Raising the minimum before the rewrap refuses the old keys.
	early := newVault(b, keyring(t, 0, 2, 1, 2), sim)
	_, err = reveal(t, b, early, t1.ID, toks[0].ID)
	require.ErrorIs(t, err, vault.ErrKEKRetired)

	// Rewrap, interrupted after the first batch of one key, then resumed.
	cctx, cancel := context.WithCancel(ctx)
	_, err = v12.Rewrap(cctx, 1, func(r vault.RewrapReport) { cancel() })
	require.Error(t, err, "interrupted")
	rep, err := v12.Rewrap(ctx, 1, nil)
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Rewrapped, "the interrupted run had done one")
	assert.Zero(t, rep.Failed)
	assert.Equal(t, map[int]int{2: 3}, rep.Remaining)
	rep, err = v12.Rewrap(ctx, 10, nil)
	require.NoError(t, err)
	assert.Zero(t, rep.Scanned, "nothing left: a second run is a no-op")

	// Raise the minimum, then drop version 1 altogether: every token works.
	for _, v := range []*vault.Service{newVault(b, keyring(t, 0, 2, 1, 2), sim), newVault(b, keyring(t, 0, 2, 2), sim)} {
		for _, tok := range toks {
			card, err := reveal(t, b, v, tok.TenantID, tok.ID)
			require.NoError(t, err, tok.ID)
			assert.Equal(t, tok.Last4, card.Last4())
		}
	}
	v2 := newVault(b, keyring(t, 0, 2, 2), sim)

	// Deleting a token erases it.
	_, err = v2.Delete(ctx, t2.ID, toks[3].ID)
	require.NoError(t, err)
	_, err = reveal(t, b, v2, t2.ID, toks[3].ID)
	require.ErrorIs(t, err, vault.ErrTokenDeleted)
	_, err = v2.Get(ctx, t2.ID, toks[3].ID)
	require.ErrorIs(t, err, store.ErrNotFound)

	// Crypto-shredding: one key destroyed, every card of the tenant gone;
	// other tenants untouched; new cards get a new key.
	require.NoError(t, v2.ShredTenant(ctx, t1.ID))
	for _, tok := range toks[:3] {
		_, err := reveal(t, b, v2, t1.ID, tok.ID)
		require.ErrorIs(t, err, vault.ErrKeyDestroyed)
	}
	_, err = reveal(t, b, v2, t2.ID, toks[4].ID)
	require.NoError(t, err)
	fresh := mustTokenize(t, v2, t1.ID, "4242424242424242")
	assert.NotEqual(t, toks[0].TenantKeyID, fresh.TenantKeyID)
	_, err = reveal(t, b, v2, t1.ID, fresh.ID)
	require.NoError(t, err)
}

func mustTokenize(t *testing.T, v *vault.Service, tenantID, number string) *vault.Token {
	t.Helper()
	tok, err := v.Tokenize(context.Background(), tenantID, false, testCard(number))
	require.NoError(t, err)
	return tok
}
