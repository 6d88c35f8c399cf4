package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/merchants"
	"github.com/perfectpay/perfectpay/store"
)

// testMerchantDomainProofs: a domain's verification state round-trips, and
// DueDomainChecks returns only verified domains whose re-check is due, the
// most overdue first, bounded by limit.
func testMerchantDomainProofs[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	tn := MakeTenant(t, b)
	at := func(h int) *time.Time {
		v := time.Date(2030, 1, 1, h, 0, 0, 0, time.UTC)
		return &v
	}
	m := &merchants.Merchant{ID: ids.New("acct"), TenantID: tn.ID, DisplayName: "Shop", MCC: "5942", Country: "US",
		Domains: []merchants.Domain{
			{Name: "a.example", VerifiedAt: at(1), Token: "tok-a", TokenExpiresAt: at(20), Method: merchants.MethodDNS, CheckedAt: at(1), NextCheckAt: at(5)},
			{Name: "b.example", VerifiedAt: at(1), Token: "tok-b", TokenExpiresAt: at(20), Method: merchants.MethodHTTPS, CheckedAt: at(2), NextCheckAt: at(3), FailedChecks: 2},
			{Name: "c.example", VerifiedAt: at(1), Method: merchants.MethodOperator},
			{Name: "d.example", Token: "tok-d", TokenExpiresAt: at(9), NextCheckAt: at(1)},
			{Name: "e.example", VerifiedAt: at(1), Token: "tok-e", TokenExpiresAt: at(20), Method: merchants.MethodDNS, NextCheckAt: at(8)},
		},
		CreatedAt: *at(0), UpdatedAt: *at(0)}
	in(t, b, func(tx X) error { return tx.CreateMerchant(ctx, m) })
	in(t, b, func(tx X) error {
		got, err := tx.GetMerchant(ctx, m.ID)
		require.NoError(t, err)
		assert.Equal(t, m, got, "every verification field round-trips")
		due, err := tx.DueDomainChecks(ctx, *at(6), 10)
		require.NoError(t, err)
		assert.Equal(t, []merchants.DomainRef{{MerchantID: m.ID, TenantID: tn.ID, Domain: "b.example"}, {MerchantID: m.ID, TenantID: tn.ID, Domain: "a.example"}}, due,
			"verified and due, most overdue first; unverified, operator-verified and not-yet-due domains are left out")
		due, err = tx.DueDomainChecks(ctx, *at(6), 1)
		require.NoError(t, err)
		assert.Len(t, due, 1)
		due, err = tx.DueDomainChecks(ctx, *at(2), 10)
		require.NoError(t, err)
		assert.Empty(t, due)
		return nil
	})

	// One claim of a due check wins; the claim moves the next check.
	claim := func(domain string) bool {
		var ok bool
		in(t, b, func(tx X) error {
			var err error
			ok, err = tx.ClaimDomainCheck(ctx, m.ID, domain, *at(6), *at(7))
			return err
		})
		return ok
	}
	assert.True(t, claim("b.example"))
	assert.False(t, claim("b.example"), "already claimed: next check moved past now")
	assert.False(t, claim("c.example"), "never re-checked")
	assert.False(t, claim("d.example"), "not verified")
	assert.False(t, claim("e.example"), "not due")
	assert.False(t, claim("missing.example"))
	in(t, b, func(tx X) error {
		got, err := tx.GetMerchant(ctx, m.ID)
		require.NoError(t, err)
		assert.True(t, at(7).Equal(*got.Domains[1].NextCheckAt))
		due, err := tx.DueDomainChecks(ctx, *at(6), 10)
		require.NoError(t, err)
		assert.Equal(t, []merchants.DomainRef{{MerchantID: m.ID, TenantID: tn.ID, Domain: "a.example"}}, due)
		return nil
	})
}

// testSecretCanaries: a canary is stored once per name and read back.
func testSecretCanaries[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { _, _, err := tx.GetCanary(ctx, "secrets.hmac_key"); return err }), store.ErrNotFound)
	in(t, b, func(tx X) error { return tx.PutCanary(ctx, "secrets.hmac_key", []byte{1, 2, 3}, at) })
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.PutCanary(ctx, "secrets.hmac_key", []byte{4}, at) }), store.ErrConflict)
	in(t, b, func(tx X) error {
		sealed, written, err := tx.GetCanary(ctx, "secrets.hmac_key")
		require.NoError(t, err)
		assert.Equal(t, []byte{1, 2, 3}, sealed)
		assert.True(t, at.Equal(written))
		return nil
	})
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error {
		require.NoError(t, tx.PutCanary(ctx, "vault KEK version 1", []byte{9}, at))
		return errBoom
	}), errBoom)
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { _, _, err := tx.GetCanary(ctx, "vault KEK version 1"); return err }), store.ErrNotFound, "rolled back")
}
