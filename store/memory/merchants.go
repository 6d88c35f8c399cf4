package memory

import (
	"cmp"
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

// putMerchant writes m, a copy the table may keep, and keeps its
// domains' entries in the re-check index: every write of a merchant goes
// through it.
func (tx *Tx) putMerchant(m merchants.Merchant) {
	d := tx.d.mandates
	old, had := d.merchants[m.ID]
	put(tx, d.merchants, m.ID, m)
	var was []dueDomain
	if had {
		was = dueDomains(&old)
	}
	is := dueDomains(&m)
	if slices.Equal(was, is) {
		return
	}
	for _, k := range was {
		d.dueChecks.drop(tx, k)
	}
	for _, k := range is {
		d.dueChecks.add(tx, k)
	}
}

// dueDomain is a domain's key in the re-check index: its next check,
// then id, the merchant id and the domain joined by a space, as
// DueDomainChecks orders them; n is the merchant id's length.
type dueDomain struct {
	at stamp
	id string
	n  int
}

func compareDueDomains(a, b dueDomain) int {
	return cmp.Or(a.at.compare(b.at), strings.Compare(a.id, b.id), cmp.Compare(a.n, b.n))
}

// dueDomains are the keys of m's domains that are re-checked: verified,
// with a next check.
func dueDomains(m *merchants.Merchant) []dueDomain {
	var out []dueDomain
	for _, d := range m.Domains {
		if d.Verified() && d.NextCheckAt != nil {
			out = append(out, dueDomain{stampOf(*d.NextCheckAt), m.ID + " " + d.Name, len(m.ID)})
		}
	}
	return out
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
	tx.putMerchant(*m.Clone())
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
	tx.putMerchant(*m.Clone())
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

// DueDomainChecks returns the verified domains whose re-check is due at
// now, at most limit, by next check then merchant id and domain. It walks
// the re-check index from its start and stops at the first not due or at
// its limit.
func (tx *Tx) DueDomainChecks(_ context.Context, now time.Time, limit int) ([]merchants.DomainRef, error) {
	d := tx.d.mandates
	out := make([]merchants.DomainRef, 0, min(max(limit, 0), d.dueChecks.len()))
	if limit <= 0 {
		return out, nil
	}
	cut := stampOf(now)
	d.dueChecks.walk(func(k dueDomain) bool {
		if k.at.compare(cut) > 0 {
			return false
		}
		id := k.id[:k.n]
		out = append(out, merchants.DomainRef{MerchantID: id, TenantID: d.merchants[id].TenantID, Domain: k.id[k.n+1:]})
		return len(out) < limit
	})
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
	tx.putMerchant(*c)
	return true, nil
}

// LockMerchant: the memory store runs one transaction at a time.
func (tx *Tx) LockMerchant(_ context.Context, id string) error {
	if _, ok := tx.d.mandates.merchants[id]; !ok {
		return store.ErrNotFound
	}
	return nil
}
