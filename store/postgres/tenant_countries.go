package postgres

import (
	"context"

	"github.com/perfectpay/perfectpay/accounts"
)

var _ accounts.TenantCountriesRepo = (*Tx)(nil)

func (t *Tx) GetTenantCountries(ctx context.Context, tenantID string) (*accounts.TenantCountries, error) {
	c := &accounts.TenantCountries{TenantID: tenantID}
	err := t.tx.QueryRow(ctx, `SELECT allowed_countries, updated_at FROM tenant_countries WHERE tenant_id = $1`,
		tenantID).Scan(&c.AllowedCountries, &c.Updated)
	if err != nil {
		return nil, mapErr(err)
	}
	if c.AllowedCountries == nil {
		c.AllowedCountries = []string{}
	}
	return c, nil
}

func (t *Tx) PutTenantCountries(ctx context.Context, c *accounts.TenantCountries) error {
	list := c.AllowedCountries
	if list == nil {
		list = []string{}
	}
	_, err := t.tx.Exec(ctx, `INSERT INTO tenant_countries (tenant_id, allowed_countries, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (tenant_id) DO UPDATE SET allowed_countries = $2, updated_at = $3`, c.TenantID, list, c.Updated)
	return mapErr(err)
}

func (t *Tx) GetTenantWithCountries(ctx context.Context, tenantID string) (*accounts.Tenant, []string, error) {
	var tn accounts.Tenant
	var list []string
	err := t.tx.QueryRow(ctx, `SELECT t.id, t.name, t.status, t.created_at, c.allowed_countries
		FROM tenants t LEFT JOIN tenant_countries c ON c.tenant_id = t.id WHERE t.id = $1`, tenantID).
		Scan(&tn.ID, &tn.Name, &tn.Status, &tn.CreatedAt, &list)
	if err != nil {
		return nil, nil, mapErr(err)
	}
	return &tn, list, nil
}
