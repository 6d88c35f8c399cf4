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

// checkDomains answers store.ErrConflict when another merchant verified
// one of the domains m verified, as PostgreSQL's unique index on verified
// domains does. It reads each domain's merchants from byDomain.
func (tx *Tx) checkDomains(m *merchants.Merchant) error {
	for _, d := range m.Domains {
		if !d.Verified() {
			continue
		}
		for _, id := range tx.d.mandates.byDomain[d.Name] {
			if id != m.ID {
				return store.ErrConflict
			}
		}
	}
	return nil
}

// putMerchant writes m, a copy the table may keep, and keeps its entries
// in the indexes of merchants (byTenant, byDomain, the re-check index):
// every write of a merchant goes through it.
func (tx *Tx) putMerchant(m merchants.Merchant) {
	d := tx.d.mandates
	old, had := d.merchants[m.ID]
	put(tx, d.merchants, m.ID, m)
	if !had || old.TenantID != m.TenantID {
		if had {
			unlist(tx, d.byTenant, old.TenantID, m.ID)
		}
		addID(tx, d.byTenant, m.TenantID, m.ID)
	}
	var wasNames []string
	if had {
		wasNames = verifiedNames(&old)
	}
	if isNames := verifiedNames(&m); !slices.Equal(wasNames, isNames) {
		for _, n := range wasNames {
			if _, ok := slices.BinarySearch(isNames, n); !ok {
				unlist(tx, d.byDomain, n, m.ID)
			}
		}
		for _, n := range isNames {
			if _, ok := slices.BinarySearch(wasNames, n); !ok {
				addID(tx, d.byDomain, n, m.ID)
			}
		}
	}
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

// verifiedNames are the names of m's verified domains, ascending, each
// once.
func verifiedNames(m *merchants.Merchant) []string {
	var out []string
	for _, d := range m.Domains {
		if d.Verified() {
			out = append(out, d.Name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// addID adds id to the ids at k in t, kept ascending; the list is
// replaced, never changed in place.
func addID(tx *Tx, t table[string, []string], k, id string) {
	ids := t[k]
	if i, ok := slices.BinarySearch(ids, id); !ok {
		put(tx, t, k, slices.Insert(slices.Clip(ids), i, id))
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

// CreateMerchant adds m: store.ErrConflict when its id is taken, its
// tenant has a merchant (byTenant) or another merchant verified one of
// its verified domains (checkDomains).
func (tx *Tx) CreateMerchant(_ context.Context, m *merchants.Merchant) error {
	d := tx.d.mandates
	if _, ok := d.merchants[m.ID]; ok {
		return store.ErrConflict
	}
	if _, ok := tx.d.tenants[m.TenantID]; !ok {
		return store.ErrNotFound
	}
	if len(d.byTenant[m.TenantID]) > 0 {
		return store.ErrConflict
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

// GetMerchantByTenant returns the tenant's merchant, read from byTenant.
// A tenant has one (CreateMerchant refuses a second); were there several,
// the one of the smallest id.
func (tx *Tx) GetMerchantByTenant(_ context.Context, tenantID string) (*merchants.Merchant, error) {
	d := tx.d.mandates
	ids := d.byTenant[tenantID]
	if len(ids) == 0 {
		return nil, store.ErrNotFound
	}
	m := d.merchants[ids[0]]
	return m.Clone(), nil
}

// FindMerchantsByDomain returns the merchants that verified domain, by
// id. It reads their ids from byDomain.
func (tx *Tx) FindMerchantsByDomain(_ context.Context, domain string) ([]merchants.Merchant, error) {
	d := tx.d.mandates
	var out []merchants.Merchant
	for _, id := range d.byDomain[domain] {
		m := d.merchants[id]
		out = append(out, *m.Clone())
	}
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
