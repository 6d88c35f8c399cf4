package postgres

import (
	"context"

	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/store"
)

var _ authz.ClientDomainRepo = (*Tx)(nil)

func (t *Tx) CreateClientDomain(ctx context.Context, d *authz.ClientDomain) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO client_domains (domain, tenant_id, created_at) VALUES ($1, $2, $3)`,
		d.Domain, d.TenantID, d.CreatedAt)
	return mapErr(err)
}

func (t *Tx) GetClientDomain(ctx context.Context, domain string) (*authz.ClientDomain, error) {
	d := &authz.ClientDomain{Domain: domain}
	err := t.tx.QueryRow(ctx, `SELECT tenant_id, created_at FROM client_domains WHERE domain = $1`, domain).
		Scan(&d.TenantID, &d.CreatedAt)
	if err != nil {
		return nil, mapErr(err)
	}
	return d, nil
}

func (t *Tx) ListClientDomains(ctx context.Context, tenantID string) ([]authz.ClientDomain, error) {
	rows, err := t.tx.Query(ctx, `SELECT domain, created_at FROM client_domains WHERE tenant_id = $1 ORDER BY domain`, tenantID)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	out := []authz.ClientDomain{}
	for rows.Next() {
		d := authz.ClientDomain{TenantID: tenantID}
		if err := rows.Scan(&d.Domain, &d.CreatedAt); err != nil {
			return nil, mapErr(err)
		}
		out = append(out, d)
	}
	return out, mapErr(rows.Err())
}

func (t *Tx) DeleteClientDomain(ctx context.Context, tenantID, domain string) error {
	tag, err := t.tx.Exec(ctx, `DELETE FROM client_domains WHERE tenant_id = $1 AND domain = $2`, tenantID, domain)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}
