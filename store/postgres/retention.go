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

// PruneSessions deletes the oldest people's sessions created before before,
// at most limit of them, skipping rows another sweep has locked.
func (t *Tx) PruneSessions(ctx context.Context, before time.Time, limit int) (int, error) {
	tag, err := t.tx.Exec(ctx, `DELETE FROM user_sessions WHERE id_hash IN (
		SELECT id_hash FROM user_sessions WHERE created_at < $1 ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)`, before, limit)
	if err != nil {
		return 0, mapErr(err)
	}
	return int(tag.RowsAffected()), nil
}

// shredTokensSQL selects the card tokens a shred erases. The cards of live
// mandates are unnested so that a batch matches its tokens against them by
// equality, with one hash of the live mandates' cards (mandates_live,
// migration 0041); a containment test (id = ANY (cards), or @>) can only
// be checked token by live mandate, which at 100,000 live mandates took
// 150 million comparisons (25 s) for a batch of 500.
const shredTokensSQL = `SELECT v.id FROM vault_tokens v
		WHERE v.deleted_at IS NULL AND v.created_at < $1
		  AND NOT EXISTS (SELECT 1 FROM charges c WHERE c.tenant_id = v.tenant_id AND c.payment_method = v.id AND c.created_at >= $1)
		  AND NOT EXISTS (SELECT 1 FROM mandates m CROSS JOIN LATERAL unnest(m.payment_methods) AS card (id)
		                  WHERE card.id = v.id AND m.tenant_id = v.tenant_id
		                    AND m.status IN ('pending_approval', 'active', 'suspended'))
		ORDER BY v.created_at, v.id LIMIT $2 FOR UPDATE OF v SKIP LOCKED`

// ShredUnusedTokens erases the oldest tokens created before before that no
// charge used since and no live mandate names, at most limit of them,
// skipping rows another sweep (or a charge) has locked.
func (t *Tx) ShredUnusedTokens(ctx context.Context, before, at time.Time, limit int) (int, error) {
	tag, err := t.tx.Exec(ctx, `UPDATE vault_tokens SET wrapped_dek = NULL, ciphertext = NULL, deleted_at = $3
		WHERE id IN (`+shredTokensSQL+`)`, before, limit, at)
	if err != nil {
		return 0, mapErr(err)
	}
	return int(tag.RowsAffected()), nil
}

// scrubChargesSQL selects the charges a scrub empties. Its condition on
// the text repeats the predicate of the charges_scrub index word for word
// (migration 0040), which is what lets the planner use that index: the
// sweep then walks the settled charges that still hold text, not every
// settled charge it scrubbed before.
const scrubChargesSQL = `SELECT id FROM charges
		WHERE status IN ('succeeded', 'canceled', 'failed') AND NOT reversal_pending AND claim = '' AND updated_at < $1
		  AND (description <> '' OR metadata <> '{}' OR purchase IS NOT NULL OR failure_message <> '')
		ORDER BY updated_at, id LIMIT $2 FOR UPDATE SKIP LOCKED`

// ScrubCharges empties the free text of the oldest settled charges last
// changed before before, at most limit of them, skipping rows another
// sweep (or a refund) has locked.
func (t *Tx) ScrubCharges(ctx context.Context, before time.Time, limit int) (int, error) {
	tag, err := t.tx.Exec(ctx, `UPDATE charges SET description = '', metadata = '{}', purchase = NULL, failure_message = ''
		WHERE id IN (`+scrubChargesSQL+`)`, before, limit)
	if err != nil {
		return 0, mapErr(err)
	}
	return int(tag.RowsAffected()), nil
}

// PruneLoginMarks deletes the oldest login marks first seen before before,
// at most limit of them, skipping rows another sweep has locked.
func (t *Tx) PruneLoginMarks(ctx context.Context, before time.Time, limit int) (int, error) {
	tag, err := t.tx.Exec(ctx, `DELETE FROM user_login_marks WHERE (user_id, mark) IN (
		SELECT user_id, mark FROM user_login_marks WHERE first_seen < $1
		ORDER BY first_seen, user_id, mark LIMIT $2 FOR UPDATE SKIP LOCKED)`, before, limit)
	if err != nil {
		return 0, mapErr(err)
	}
	return int(tag.RowsAffected()), nil
}

// PruneExpiredIdempotency deletes the idempotency records that expired
// first, before before, at most limit of them, skipping rows another
// sweep (or a request) has locked.
func (t *Tx) PruneExpiredIdempotency(ctx context.Context, before time.Time, limit int) (int, error) {
	tag, err := t.tx.Exec(ctx, `DELETE FROM idempotency_keys WHERE (tenant_id, credential_id, key) IN (
		SELECT tenant_id, credential_id, key FROM idempotency_keys WHERE expires_at < $1
		ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)`, before, limit)
	if err != nil {
		return 0, mapErr(err)
	}
	return int(tag.RowsAffected()), nil
}
