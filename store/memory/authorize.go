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
	tx.putAuthRequest(cloneAuthRequest(*r))
	tx.exp.authReq.push(r.ExpiresAt, r.ID)
	return nil
}

// payerRequest is a request's key in authReqByPayer: tenant and payer
// ascending, then newest first (creation, then id, descending), as
// ListAuthRequests returns them.
type payerRequest struct {
	tenantID, payer string
	created         stamp
	id              string
}

func comparePayerRequests(a, b payerRequest) int {
	return cmp.Or(cmp.Compare(a.tenantID, b.tenantID), cmp.Compare(a.payer, b.payer),
		b.created.compare(a.created), cmp.Compare(b.id, a.id))
}

func listedRequest(r *authz.AuthRequest) payerRequest {
	return payerRequest{r.TenantID, r.Payer, stampOf(r.CreatedAt), r.ID}
}

// putAuthRequest writes r, a copy the table may keep, and moves its entry
// in authReqByPayer when its key changed (a payer takes up the request):
// every write of a request goes through it.
func (tx *Tx) putAuthRequest(r authz.AuthRequest) {
	old, had := tx.d.authRequests[r.ID]
	put(tx, tx.d.authRequests, r.ID, r)
	relist(tx, tx.d.authReqByPayer, had, listedRequest(&old), listedRequest(&r))
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
	tx.putAuthRequest(old)
	return nil
}

// ListAuthRequests reads the payer's requests, newest first, from
// authReqByPayer, and stops at limit (none when limit is 0 or less).
func (tx *Tx) ListAuthRequests(_ context.Context, tenantID, payer, status string, limit int) ([]authz.AuthRequest, error) {
	out := []authz.AuthRequest{}
	from := payerRequest{tenantID: tenantID, payer: payer, created: lastStamp}
	tx.d.authReqByPayer.walkFrom(from, func(k payerRequest) bool {
		if k.tenantID != tenantID || k.payer != payer || (limit > 0 && len(out) == limit) {
			return false
		}
		if r := tx.d.authRequests[k.id]; status == "" || r.Status == status {
			out = append(out, cloneAuthRequest(r))
		}
		return true
	})
	return out, nil
}

// PruneAuthRequests deletes the requests that expired before before
// through their expiry index: its cost is the number that expired.
func (tx *Tx) PruneAuthRequests(_ context.Context, before time.Time) (int, error) {
	return expire(tx, &tx.exp.authReq, before, func(id string) bool {
		if r, ok := tx.d.authRequests[id]; ok && r.ExpiresAt.Before(before) {
			tx.d.authReqByPayer.drop(tx, listedRequest(&r))
			del(tx, tx.d.authRequests, id)
			return true
		}
		return false
	}), nil
}
