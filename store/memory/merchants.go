package memory

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/perfectpay/perfectpay/merchants"
	"github.com/perfectpay/perfectpay/store"
)

// Merchant profiles live in mandateData (the charge path reads them with
// the mandates).

func (tx *Tx) checkDomains(m *merchants.Merchant) error {
	for _, d := range m.Domains {
		if !d.Verified() {
			continue
		}
		for _, o := range tx.d.mandates.merchants {
			if o.ID != m.ID && slices.ContainsFunc(o.Domains, func(od merchants.Domain) bool { return od.Verified() && od.Name == d.Name }) {
				return store.ErrConflict
			}
		}
	}
	return nil
}

func (tx *Tx) CreateMerchant(_ context.Context, m *merchants.Merchant) error {
	d := tx.d.mandates
	if _, ok := d.merchants[m.ID]; ok {
		return store.ErrConflict
	}
	if _, ok := tx.d.tenants[m.TenantID]; !ok {
		return store.ErrNotFound
	}
	for _, o := range d.merchants {
		if o.TenantID == m.TenantID {
			return store.ErrConflict
		}
	}
	if err := tx.checkDomains(m); err != nil {
		return err
	}
	put(tx, d.merchants, m.ID, *m.Clone())
	return nil
}

func (tx *Tx) UpdateMerchant(_ context.Context, m *merchants.Merchant) error {
	old, ok := tx.d.mandates.merchants[m.ID]
	if !ok || old.TenantID != m.TenantID {
		return store.ErrNotFound
	}
	if err := tx.checkDomains(m); err != nil {
		return err
	}
	put(tx, tx.d.mandates.merchants, m.ID, *m.Clone())
	return nil
}

func (tx *Tx) GetMerchant(_ context.Context, id string) (*merchants.Merchant, error) {
	m, ok := tx.d.mandates.merchants[id]
	if !ok {
		return nil, store.ErrNotFound
	}
	return m.Clone(), nil
}

func (tx *Tx) GetMerchantByTenant(_ context.Context, tenantID string) (*merchants.Merchant, error) {
	for _, m := range tx.d.mandates.merchants {
		if m.TenantID == tenantID {
			return m.Clone(), nil
		}
	}
	return nil, store.ErrNotFound
}

func (tx *Tx) FindMerchantsByDomain(_ context.Context, domain string) ([]merchants.Merchant, error) {
	var out []merchants.Merchant
	for _, m := range tx.d.mandates.merchants {
		if slices.ContainsFunc(m.Domains, func(d merchants.Domain) bool { return d.Verified() && d.Name == domain }) {
			out = append(out, *m.Clone())
		}
	}
	slices.SortFunc(out, func(a, b merchants.Merchant) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (tx *Tx) DueDomainChecks(_ context.Context, now time.Time, limit int) ([]merchants.DomainRef, error) {
	type due struct {
		ref merchants.DomainRef
		at  time.Time
	}
	var all []due
	for _, m := range tx.d.mandates.merchants {
		for _, d := range m.Domains {
			if d.Verified() && d.NextCheckAt != nil && !d.NextCheckAt.After(now) {
				all = append(all, due{merchants.DomainRef{MerchantID: m.ID, TenantID: m.TenantID, Domain: d.Name}, *d.NextCheckAt})
			}
		}
	}
	slices.SortFunc(all, func(a, b due) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return strings.Compare(a.ref.MerchantID+" "+a.ref.Domain, b.ref.MerchantID+" "+b.ref.Domain)
	})
	out := make([]merchants.DomainRef, 0, min(limit, len(all)))
	for _, d := range all[:min(limit, len(all))] {
		out = append(out, d.ref)
	}
	return out, nil
}

func (tx *Tx) ClaimDomainCheck(_ context.Context, merchantID, domain string, now, until time.Time) (bool, error) {
	m, ok := tx.d.mandates.merchants[merchantID]
	if !ok {
		return false, nil
	}
	i := slices.IndexFunc(m.Domains, func(d merchants.Domain) bool { return d.Name == domain })
	if i < 0 || !m.Domains[i].Verified() || m.Domains[i].NextCheckAt == nil || m.Domains[i].NextCheckAt.After(now) {
		return false, nil
	}
	c := m.Clone()
	c.Domains[i].NextCheckAt = &until
	put(tx, tx.d.mandates.merchants, c.ID, *c)
	return true, nil
}

// LockMerchant: the memory store runs one transaction at a time.
func (tx *Tx) LockMerchant(_ context.Context, id string) error {
	if _, ok := tx.d.mandates.merchants[id]; !ok {
		return store.ErrNotFound
	}
	return nil
}
