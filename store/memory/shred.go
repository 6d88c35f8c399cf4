package memory

import (
	"slices"

	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/vault"
)

// Retention's ShredUnusedTokens erases the oldest live card tokens created
// before a cut-off that no charge used since and no live mandate names. A
// token is due when max(its creation, its last charge's creation) is
// before the cut-off, so the store keeps:
//
//   - payments.lastUse: for each tenant and payment method, the creation
//     of its latest charge (putCharge keeps it);
//   - mandates.named: for each tenant and token, how many live mandates
//     (pending approval, active, suspended) name it (putMandate);
//   - vault.shreddable: the live tokens no live mandate names, by
//     creation then id, each with that max as its due stamp, so that the
//     shred walks, in order, only the subtrees that hold a due token
//     (putToken, and reshred when a charge or a mandate changes one).
//
// A batch then costs O(shredded · log n) and skips nothing.

// useKey names a card token of a tenant, as charges and mandates name it.
type useKey struct{ tenant, token string }

// shredKey is a token of the shred index: ordered by creation then id,
// due at max(creation, last charge's creation).
type shredKey struct {
	timedKey
	due stamp
}

func newShreddable() *ordered[shredKey] {
	return newOrdered(func(a, b shredKey) int { return compareTimed(a.timedKey, b.timedKey) },
		func(k shredKey) stamp { return k.due })
}

// namesTokens tells whether m keeps the tokens it names from a shred.
func namesTokens(m *mandates.Mandate) bool {
	switch m.Status {
	case mandates.StatusPendingApproval, mandates.StatusActive, mandates.StatusSuspended:
		return true
	}
	return false
}

// putToken stores t and keeps the shred index.
func (tx *Tx) putToken(t vault.Token) {
	v := tx.d.vault
	if old, had := v.tokens[t.ID]; had {
		v.shreddable.drop(tx, shredKey{timedKey: timedKey{stampOf(old.CreatedAt), t.ID}})
	}
	put(tx, v.tokens, t.ID, t)
	if t.DeletedAt != nil {
		// A token erased stays erased: its last use is no longer asked.
		del(tx, tx.d.payments.lastUse, useKey{t.TenantID, t.ID})
	}
	tx.indexToken(&t)
}

// reshred puts the token k names, if it is stored, back in the shred
// index as its charges and mandates now say.
func (tx *Tx) reshred(k useKey) {
	t, ok := tx.d.vault.tokens[k.token]
	if !ok || t.TenantID != k.tenant {
		return
	}
	tx.d.vault.shreddable.drop(tx, shredKey{timedKey: timedKey{stampOf(t.CreatedAt), t.ID}})
	tx.indexToken(&t)
}

// indexToken adds t, not in the shred index, when it belongs there.
func (tx *Tx) indexToken(t *vault.Token) {
	k := useKey{t.TenantID, t.ID}
	if t.DeletedAt != nil || tx.d.mandates.named[k] > 0 {
		return
	}
	created := stampOf(t.CreatedAt)
	due := created
	if last, ok := tx.d.payments.lastUse[k]; ok && last.compare(due) > 0 {
		due = last
	}
	tx.d.vault.shreddable.add(tx, shredKey{timedKey{created, t.ID}, due})
}

// noteUse keeps lastUse as c, stored over old (had), changes it. Nothing
// changes a charge's tenant, payment method or creation (PostgreSQL's
// UpdateCharge keeps them); should an update of the memory store do it,
// the old key's last use is found again from the table.
func (tx *Tx) noteUse(old *payments.Charge, had bool, c *payments.Charge) {
	p := tx.d.payments
	k := useKey{c.TenantID, c.PaymentMethod}
	if had {
		ok := useKey{old.TenantID, old.PaymentMethod}
		if ok == k && old.Created.Equal(c.Created) {
			return
		}
		if last, in := p.lastUse[ok]; in && last.compare(stampOf(old.Created)) == 0 {
			var newest *stamp
			for _, o := range p.charges {
				if (useKey{o.TenantID, o.PaymentMethod}) == ok {
					if s := stampOf(o.Created); newest == nil || s.compare(*newest) > 0 {
						newest = &s
					}
				}
			}
			if newest == nil {
				del(tx, p.lastUse, ok)
			} else {
				put(tx, p.lastUse, ok, *newest)
			}
			tx.reshred(ok)
		}
	}
	if c.PaymentMethod == "" {
		return
	}
	if last, in := p.lastUse[k]; !in || stampOf(c.Created).compare(last) > 0 {
		if t, ok := tx.d.vault.tokens[c.PaymentMethod]; ok && t.DeletedAt != nil && t.TenantID == c.TenantID {
			return // an erased token's last use is no longer asked
		}
		put(tx, p.lastUse, k, stampOf(c.Created))
		tx.reshred(k)
	}
}

// noteNames keeps named, and the shred index, as m, stored over old
// (had), changes the tokens live mandates name.
func (tx *Tx) noteNames(old *mandates.Mandate, had bool, m *mandates.Mandate) {
	was, is := had && namesTokens(old), namesTokens(m)
	if !was && !is {
		return
	}
	if was && is && old.TenantID == m.TenantID && slices.Equal(old.Limits.PaymentMethods, m.Limits.PaymentMethods) {
		return
	}
	d := tx.d.mandates
	count := func(tenant string, ids []string, by int) {
		for _, id := range ids {
			k := useKey{tenant, id}
			if n := addCount(tx, d.named, k, by); n == 0 || n == by {
				tx.reshred(k) // in or out of the shred index
			}
		}
	}
	if was {
		count(old.TenantID, old.Limits.PaymentMethods, -1)
	}
	if is {
		count(m.TenantID, m.Limits.PaymentMethods, 1)
	}
}
