package memory

import (
	"context"

	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/store"
)

var _ authz.ClientDomainRepo = (*Tx)(nil)

func (tx *Tx) CreateClientDomain(_ context.Context, d *authz.ClientDomain) error {
	if _, ok := tx.d.tenants[d.TenantID]; !ok {
		return store.ErrNotFound // the foreign key
	}
	if _, ok := tx.d.clientDomains[d.Domain]; ok {
		return store.ErrConflict
	}
	if tx.d.clientDomains == nil { // made on first use; an empty table reads as nil
		tx.d.clientDomains = table[string, authz.ClientDomain]{}
	}
	put(tx, tx.d.clientDomains, d.Domain, *d)
	addID(tx, tx.d.domainsByTenant, d.TenantID, d.Domain)
	return nil
}

func (tx *Tx) GetClientDomain(_ context.Context, domain string) (*authz.ClientDomain, error) {
	d, ok := tx.d.clientDomains[domain]
	if !ok {
		return nil, store.ErrNotFound
	}
	return &d, nil
}

// ListClientDomains reads the tenant's domains, by name, from
// domainsByTenant.
func (tx *Tx) ListClientDomains(_ context.Context, tenantID string) ([]authz.ClientDomain, error) {
	names := tx.d.domainsByTenant[tenantID]
	out := make([]authz.ClientDomain, 0, len(names))
	for _, n := range names {
		out = append(out, tx.d.clientDomains[n])
	}
	return out, nil
}

func (tx *Tx) DeleteClientDomain(_ context.Context, tenantID, domain string) error {
	d, ok := tx.d.clientDomains[domain]
	if !ok || d.TenantID != tenantID {
		return store.ErrNotFound
	}
	del(tx, tx.d.clientDomains, domain)
	unlist(tx, tx.d.domainsByTenant, tenantID, domain)
	return nil
}
