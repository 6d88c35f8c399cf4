package postgres

import (
	"context"

	"github.com/perfectpay/perfectpay/accounts"
)

var _ accounts.TenantCountriesRepo = (*Tx)(nil)

func (t *Tx) GetTenantCountries(ctx context.Context, tenantID string) (*accounts.TenantCountries, error) {
	c := &accounts.TenantCountries{TenantID: tenantID}
	err := t.tx.QueryRow(ctx, `SELECT allowed_countries, operator_countries, updated_at FROM tenant_countries WHERE tenant_id = $1`,
		tenantID).Scan(&c.AllowedCountries, &c.OperatorCountries, &c.Updated)
	if err != nil {
		return nil, mapErr(err)
	}
	if c.AllowedCountries == nil {
		c.AllowedCountries = []string{}
	}
	if c.OperatorCountries == nil {
		c.OperatorCountries = []string{}
	}
	return c, nil
}

func (t *Tx) PutTenantCountries(ctx context.Context, c *accounts.TenantCountries) error {
	list, bound := c.AllowedCountries, c.OperatorCountries
	if list == nil {
		list = []string{}
	}
	if bound == nil {
		bound = []string{}
	}
	_, err := t.tx.Exec(ctx, `INSERT INTO tenant_countries (tenant_id, allowed_countries, operator_countries, updated_at)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT (tenant_id) DO UPDATE SET allowed_countries = $2, operator_countries = $3, updated_at = $4`,
		c.TenantID, list, bound, c.Updated)
	return mapErr(err)
}

func (t *Tx) GetTenantWithCountries(ctx context.Context, tenantID string) (*accounts.Tenant, []string, error) {
	var tn accounts.Tenant
	var list, bound []string
	err := t.tx.QueryRow(ctx, `SELECT t.id, t.name, t.status, t.created_at, c.allowed_countries, c.operator_countries
		FROM tenants t LEFT JOIN tenant_countries c ON c.tenant_id = t.id WHERE t.id = $1`, tenantID).
		Scan(&tn.ID, &tn.Name, &tn.Status, &tn.CreatedAt, &list, &bound)
	if err != nil {
		return nil, nil, mapErr(err)
	}
	return &tn, accounts.EffectiveCountries(list, bound), nil
}
