package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/store"
)

// testTenantCountries: none until set; set, replaced, emptied, rolled
// back with its transaction; a tenant that does not exist is refused.
func testTenantCountries[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	tn := MakeTenant(t, b)
	in(t, b, func(tx X) error {
		_, err := tx.GetTenantCountries(ctx, tn.ID)
		assert.ErrorIs(t, err, store.ErrNotFound)
		got, list, err := tx.GetTenantWithCountries(ctx, tn.ID)
		require.NoError(t, err)
		assert.Equal(t, tn.ID, got.ID)
		assert.Empty(t, list, "no list set: unrestricted")
		_, _, err = tx.GetTenantWithCountries(ctx, "ten_missing")
		assert.ErrorIs(t, err, store.ErrNotFound)
		return nil
	})
	get := func() *accounts.TenantCountries {
		var got *accounts.TenantCountries
		in(t, b, func(tx X) error {
			var err error
			got, err = tx.GetTenantCountries(ctx, tn.ID)
			return err
		})
		return got
	}
	c := &accounts.TenantCountries{TenantID: tn.ID, AllowedCountries: []string{"GB", "IE"}, Updated: now().Truncate(time.Microsecond)}
	in(t, b, func(tx X) error { return tx.PutTenantCountries(ctx, c) })
	c.AllowedCountries[0] = "FR" // the store kept its own copy
	got := get()
	assert.Equal(t, []string{"GB", "IE"}, got.AllowedCountries)
	assert.True(t, c.Updated.Equal(got.Updated))

	in(t, b, func(tx X) error {
		return tx.PutTenantCountries(ctx, &accounts.TenantCountries{TenantID: tn.ID, AllowedCountries: []string{"DE"}, Updated: now()})
	})
	assert.Equal(t, []string{"DE"}, get().AllowedCountries)
	in(t, b, func(tx X) error {
		got, list, err := tx.GetTenantWithCountries(ctx, tn.ID)
		require.NoError(t, err)
		assert.Equal(t, tn.Name, got.Name)
		assert.Equal(t, []string{"DE"}, list, "the tenant and its list in one read")
		return nil
	})

	require.ErrorIs(t, b.InTx(ctx, func(tx X) error {
		if err := tx.PutTenantCountries(ctx, &accounts.TenantCountries{TenantID: tn.ID, AllowedCountries: []string{"US"}, Updated: now()}); err != nil {
			return err
		}
		return errBoom
	}), errBoom)
	assert.Equal(t, []string{"DE"}, get().AllowedCountries, "a rolled-back change is not kept")

	in(t, b, func(tx X) error {
		return tx.PutTenantCountries(ctx, &accounts.TenantCountries{TenantID: tn.ID, Updated: now()})
	})
	assert.Equal(t, []string{}, get().AllowedCountries, "an emptied list reads as empty, never nil")

	err := b.InTx(ctx, func(tx X) error {
		return tx.PutTenantCountries(ctx, &accounts.TenantCountries{TenantID: "ten_missing", AllowedCountries: []string{"GB"}, Updated: now()})
	})
	require.Error(t, err)
	assert.False(t, errors.Is(err, errBoom))
}
