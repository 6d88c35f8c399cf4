package memory

import (
	"context"
	"slices"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/store"
)

var _ accounts.TenantCountriesRepo = (*Tx)(nil)

func (tx *Tx) GetTenantCountries(_ context.Context, tenantID string) (*accounts.TenantCountries, error) {
	c, ok := tx.d.tenantCountries[tenantID]
	if !ok {
		return nil, store.ErrNotFound
	}
	c.AllowedCountries, c.OperatorCountries = slices.Clone(c.AllowedCountries), slices.Clone(c.OperatorCountries)
	if c.AllowedCountries == nil {
		c.AllowedCountries = []string{}
	}
	if c.OperatorCountries == nil {
		c.OperatorCountries = []string{}
	}
	return &c, nil
}

func (tx *Tx) PutTenantCountries(_ context.Context, c *accounts.TenantCountries) error {
	if _, ok := tx.d.tenants[c.TenantID]; !ok {
		return store.ErrConflict // the foreign key
	}
	v := *c
	v.AllowedCountries, v.OperatorCountries = slices.Clone(c.AllowedCountries), slices.Clone(c.OperatorCountries)
	put(tx, tx.d.tenantCountries, c.TenantID, v)
	return nil
}

func (tx *Tx) GetTenantWithCountries(ctx context.Context, tenantID string) (*accounts.Tenant, []string, error) {
	tn, err := tx.GetTenant(ctx, tenantID)
	if err != nil {
		return nil, nil, err
	}
	c, ok := tx.d.tenantCountries[tenantID]
	if !ok {
		return tn, nil, nil
	}
	return tn, slices.Clone(accounts.EffectiveCountries(c.AllowedCountries, c.OperatorCountries)), nil
}
