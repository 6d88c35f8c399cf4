package memory

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/store"
)

// authRequests are the issuer's requests waiting for a payer (authz.AuthRequest).
type authRequests = table[string, authz.AuthRequest]

func cloneAuthRequest(r authz.AuthRequest) authz.AuthRequest {
	r.Details = slices.Clone(r.Details)
	r.Granted = slices.Clone(r.Granted)
	r.Data = slices.Clone(r.Data)
	r.LastPolledAt = cloneTime(r.LastPolledAt)
	return r
}

func (tx *Tx) CreateAuthRequest(_ context.Context, r *authz.AuthRequest) error {
	if _, ok := tx.d.authRequests[r.ID]; ok {
		return store.ErrConflict
	}
	if _, ok := tx.d.authz.agents[r.ClientID]; !ok {
		return store.ErrConflict // the foreign key
	}
	put(tx, tx.d.authRequests, r.ID, cloneAuthRequest(*r))
	tx.exp.authReq.push(r.ExpiresAt, r.ID)
	return nil
}

// GetAuthRequest needs no lock: the store's transactions run one at a time.
func (tx *Tx) GetAuthRequest(_ context.Context, id string, _ bool) (*authz.AuthRequest, error) {
	r, ok := tx.d.authRequests[id]
	if !ok {
		return nil, store.ErrNotFound
	}
	r = cloneAuthRequest(r)
	return &r, nil
}

func (tx *Tx) UpdateAuthRequest(_ context.Context, r *authz.AuthRequest, from string) error {
	old, ok := tx.d.authRequests[r.ID]
	if !ok {
		return store.ErrNotFound
	}
	if old.Status != from {
		return store.ErrConflict
	}
	old.Status, old.Payer, old.Granted, old.UpdatedAt = r.Status, r.Payer, slices.Clone(r.Granted), r.UpdatedAt
	old.LastPolledAt = cloneTime(r.LastPolledAt)
	put(tx, tx.d.authRequests, r.ID, old)
	return nil
}

func (tx *Tx) ListAuthRequests(_ context.Context, tenantID, payer, status string, limit int) ([]authz.AuthRequest, error) {
	out := []authz.AuthRequest{}
	for _, r := range tx.d.authRequests {
		if r.TenantID == tenantID && r.Payer == payer && (status == "" || r.Status == status) {
			out = append(out, cloneAuthRequest(r))
		}
	}
	slices.SortFunc(out, func(a, b authz.AuthRequest) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), cmp.Compare(b.ID, a.ID))
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// PruneAuthRequests deletes the requests that expired before before
// through their expiry index: its cost is the number that expired.
func (tx *Tx) PruneAuthRequests(_ context.Context, before time.Time) (int, error) {
	return expire(tx, &tx.exp.authReq, before, func(id string) bool {
		if r, ok := tx.d.authRequests[id]; ok && r.ExpiresAt.Before(before) {
			del(tx, tx.d.authRequests, id)
			return true
		}
		return false
	}), nil
}
