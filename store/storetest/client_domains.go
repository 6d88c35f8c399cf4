package storetest

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/store"
)

// testClientDomains: a domain belongs to one tenant, is found from any,
// listed by name, deleted only by its tenant, and a rollback undoes it.
func testClientDomains[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	tn := MakeTenant(t, b)
	other := MakeTenant(t, b)
	at := now()
	in(t, b, func(tx X) error {
		require.NoError(t, tx.CreateClientDomain(ctx, &authz.ClientDomain{Domain: "b.example.com", TenantID: tn.ID, CreatedAt: at}))
		return tx.CreateClientDomain(ctx, &authz.ClientDomain{Domain: "a.example.com", TenantID: tn.ID, CreatedAt: at})
	})
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error {
		return tx.CreateClientDomain(ctx, &authz.ClientDomain{Domain: "a.example.com", TenantID: other.ID, CreatedAt: at})
	}), store.ErrConflict)
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error {
		return tx.CreateClientDomain(ctx, &authz.ClientDomain{Domain: "c.example.com", TenantID: "ten_missing", CreatedAt: at})
	}), store.ErrNotFound)

	in(t, b, func(tx X) error {
		d, err := tx.GetClientDomain(ctx, "a.example.com")
		require.NoError(t, err)
		assert.Equal(t, tn.ID, d.TenantID)
		assert.True(t, at.Equal(d.CreatedAt))
		_, err = tx.GetClientDomain(ctx, "missing.example.com")
		require.ErrorIs(t, err, store.ErrNotFound)
		list, err := tx.ListClientDomains(ctx, tn.ID)
		require.NoError(t, err)
		require.Len(t, list, 2)
		assert.Equal(t, "a.example.com", list[0].Domain)
		assert.Equal(t, "b.example.com", list[1].Domain)
		none, err := tx.ListClientDomains(ctx, other.ID)
		require.NoError(t, err)
		assert.Empty(t, none)
		return nil
	})

	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.DeleteClientDomain(ctx, other.ID, "a.example.com") }), store.ErrNotFound)
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error {
		require.NoError(t, tx.DeleteClientDomain(ctx, tn.ID, "a.example.com"))
		return errBoom
	}), errBoom)
	in(t, b, func(tx X) error {
		_, err := tx.GetClientDomain(ctx, "a.example.com")
		require.NoError(t, err, "a rollback restores the domain")
		return tx.DeleteClientDomain(ctx, tn.ID, "a.example.com")
	})
	in(t, b, func(tx X) error {
		_, err := tx.GetClientDomain(ctx, "a.example.com")
		require.ErrorIs(t, err, store.ErrNotFound)
		return tx.CreateClientDomain(ctx, &authz.ClientDomain{Domain: "a.example.com", TenantID: other.ID, CreatedAt: at})
	})
}
