package postgres

import (
	"context"
	"time"

	"github.com/perfectpay/perfectpay/retention"
)

var _ retention.Repo = (*Tx)(nil)

// PruneDecisions deletes the oldest decision records created before before,
// at most limit of them; their inputs go with them (ON DELETE CASCADE).
// Rows another sweep has locked are skipped, so sweeps on several nodes
// never delete (or count) a row twice.
func (t *Tx) PruneDecisions(ctx context.Context, before time.Time, limit int) (int, error) {
	tag, err := t.tx.Exec(ctx, `DELETE FROM decisions WHERE id IN (
		SELECT id FROM decisions WHERE created_at < $1 ORDER BY created_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)`, before, limit)
	if err != nil {
		return 0, mapErr(err)
	}
	return int(tag.RowsAffected()), nil
}
