package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/perfectpay/perfectpay/audit"
)

// QueryAudit is ListAudit with actor and id conditions. A tenant's
// entries are read through audit_events_tenant (tenant_id, seq), one of
// the id through its unique index.
func (t *Tx) QueryAudit(ctx context.Context, q audit.Query) ([]audit.Entry, error) {
	f := q.Filter
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	add("seq > $%d", f.AfterSeq)
	for _, c := range []struct{ col, v string }{
		{"tenant_id", f.TenantID}, {"id", q.ID}, {"actor_type", q.ActorType}, {"actor_id", q.ActorID},
		{"action", f.Action}, {"target", f.Target},
	} {
		if c.v != "" {
			add(c.col+" = $%d", c.v)
		}
	}
	if !f.Since.IsZero() {
		add("created_at >= $%d", f.Since)
	}
	if !f.Until.IsZero() {
		add("created_at < $%d", f.Until)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	rows, err := t.tx.Query(ctx, `SELECT `+auditCols+` FROM `+auditFrom+` WHERE `+strings.Join(where, " AND ")+
		fmt.Sprintf(` ORDER BY seq LIMIT %d`, limit), args...)
	if err != nil {
		return nil, mapErr(err)
	}
	return scanAudit(rows)
}
