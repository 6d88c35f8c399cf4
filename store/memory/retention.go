package memory

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/retention"
)

var _ retention.Repo = (*Tx)(nil)

// PruneDecisions deletes the oldest decision records created before before,
// at most limit of them, with their inputs and their charge index. The
// store lock makes concurrent sweeps take turns.
func (tx *Tx) PruneDecisions(_ context.Context, before time.Time, limit int) (int, error) {
	p := &tx.d.pipeline
	var old []charging.Decision
	for _, d := range p.decisions {
		if d.CreatedAt.Before(before) {
			old = append(old, d)
		}
	}
	slices.SortFunc(old, func(a, b charging.Decision) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	if len(old) > limit {
		old = old[:limit]
	}
	for _, d := range old {
		if d.ChargeID != "" {
			k := d.TenantID + "/" + d.ChargeID
			if p.byCharge[k] == d.ID {
				del(tx, p.byCharge, k)
			}
		}
		del(tx, p.decisions, d.ID)
	}
	return len(old), nil
}
