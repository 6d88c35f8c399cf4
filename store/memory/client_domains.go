package memory

import (
	"context"
	"slices"
	"strings"

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
	return nil
}

func (tx *Tx) GetClientDomain(_ context.Context, domain string) (*authz.ClientDomain, error) {
	d, ok := tx.d.clientDomains[domain]
	if !ok {
		return nil, store.ErrNotFound
	}
	return &d, nil
}

func (tx *Tx) ListClientDomains(_ context.Context, tenantID string) ([]authz.ClientDomain, error) {
	out := []authz.ClientDomain{}
	for _, d := range tx.d.clientDomains {
		if d.TenantID == tenantID {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b authz.ClientDomain) int { return strings.Compare(a.Domain, b.Domain) })
	return out, nil
}

func (tx *Tx) DeleteClientDomain(_ context.Context, tenantID, domain string) error {
	d, ok := tx.d.clientDomains[domain]
	if !ok || d.TenantID != tenantID {
		return store.ErrNotFound
	}
	del(tx, tx.d.clientDomains, domain)
	return nil
}
