package memory

import (
	"context"

	"github.com/perfectpay/perfectpay/audit"
)

// QueryAudit is ListAudit with actor and id conditions.
func (tx *Tx) QueryAudit(_ context.Context, q audit.Query) ([]audit.Entry, error) {
	f := q.Filter
	return tx.auditAfter(f.AfterSeq, f.Limit, func(e *audit.Entry) bool {
		return (f.TenantID == "" || e.TenantID == f.TenantID) &&
			(q.ID == "" || e.ID == q.ID) &&
			(q.ActorType == "" || e.ActorType == q.ActorType) &&
			(q.ActorID == "" || e.ActorID == q.ActorID) &&
			(f.Action == "" || e.Action == f.Action) &&
			(f.Target == "" || e.Target == f.Target) &&
			(f.Since.IsZero() || !e.CreatedAt.Before(f.Since)) &&
			(f.Until.IsZero() || e.CreatedAt.Before(f.Until))
	}), nil
}
