package memory

import (
	"bytes"
	"cmp"
	"context"
	"maps"
	"slices"
	"time"

	"github.com/perfectpay/perfectpay/idempotency"
	"github.com/perfectpay/perfectpay/store"
)

var _ idempotency.Repo = (*Tx)(nil)

type idemKey struct{ tenant, cred, key string }

func compareIdemKeys(a, b idemKey) int {
	return cmp.Or(cmp.Compare(a.tenant, b.tenant), cmp.Compare(a.cred, b.cred), cmp.Compare(a.key, b.key))
}

func cloneRecord(r idempotency.Record) idempotency.Record {
	r.RequestHash = slices.Clone(r.RequestHash)
	r.Body = slices.Clone(r.Body)
	r.Header = maps.Clone(r.Header)
	return r
}

func (tx *Tx) ClaimIdempotency(_ context.Context, r *idempotency.Record) (*idempotency.Record, error) {
	k := idemKey{r.TenantID, r.CredentialID, r.Key}
	if old, ok := tx.d.idem[k]; ok {
		abandoned := !old.LockedUntil.After(tx.now) || (old.Owner != "" && old.Owner != tx.session)
		takeover := old.State == idempotency.StateInProgress && abandoned
		expired := !old.ExpiresAt.After(tx.now)
		if !takeover && !expired {
			c := cloneRecord(old)
			return &c, store.ErrConflict
		}
	}
	c := cloneRecord(*r)
	c.Owner = tx.session
	put(tx, tx.d.idem, k, c)
	tx.exp.idem.push(c.ExpiresAt, k)
	return nil, nil
}

func (tx *Tx) CompleteIdempotency(_ context.Context, r *idempotency.Record) error {
	k := idemKey{r.TenantID, r.CredentialID, r.Key}
	old, ok := tx.d.idem[k]
	if !ok {
		return store.ErrNotFound
	}
	c := cloneRecord(*r)
	c.Owner = old.Owner
	put(tx, tx.d.idem, k, c)
	if !c.ExpiresAt.Equal(old.ExpiresAt) {
		tx.exp.idem.push(c.ExpiresAt, k)
	}
	return nil
}

func (tx *Tx) ReleaseIdempotency(_ context.Context, tenantID, credentialID, key string) error {
	del(tx, tx.d.idem, idemKey{tenantID, credentialID, key})
	return nil
}

func (tx *Tx) AbandonIdempotency(_ context.Context, r *idempotency.Record) error {
	k := idemKey{r.TenantID, r.CredentialID, r.Key}
	if old, ok := tx.d.idem[k]; ok && old.State == idempotency.StateInProgress &&
		old.CreatedAt.Equal(r.CreatedAt) && bytes.Equal(old.RequestHash, r.RequestHash) {
		del(tx, tx.d.idem, k)
	}
	return nil
}

// PruneIdempotency evicts the records that expired before before through
// their expiry index, never walking the live ones.
func (tx *Tx) PruneIdempotency(_ context.Context, before time.Time) (int, error) {
	return expire(tx, &tx.exp.idem, before, func(k idemKey) bool {
		if r, ok := tx.d.idem[k]; ok && r.ExpiresAt.Before(before) {
			del(tx, tx.d.idem, k)
			return true
		}
		return false
	}), nil
}

func (tx *Tx) AnswerIdempotency(_ context.Context, r *idempotency.Record) error {
	k := idemKey{r.TenantID, r.CredentialID, r.Key}
	old, ok := tx.d.idem[k]
	if !ok || old.State != idempotency.StateInProgress || !bytes.Equal(old.RequestHash, r.RequestHash) {
		return nil
	}
	c := cloneRecord(old)
	c.State, c.Status, c.Header, c.Body, c.ExpiresAt = r.State, r.Status, maps.Clone(r.Header), slices.Clone(r.Body), r.ExpiresAt
	put(tx, tx.d.idem, k, c)
	if !c.ExpiresAt.Equal(old.ExpiresAt) {
		tx.exp.idem.push(c.ExpiresAt, k)
	}
	return nil
}
