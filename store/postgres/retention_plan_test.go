package postgres_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/store/postgres"
)

// Retention's scrub of charge text reads the settled charges that still
// hold text, not every settled charge. A scrub leaves a charge's status and
// updated_at as they were, so a sweep that walks the settled charges by
// updated_at passes every charge scrubbed before, hour after hour: a year
// of charges for a few hundred to scrub. Here 20,000 settled charges were
// scrubbed long ago and 300 newer ones hold text; a batch of 100 may read
// those 100 and a few more, with the plan the sweep's prepared statement
// keeps, made on the filled table or on the empty one.
func TestScrubReadsOnlyChargesWithText(t *testing.T) {
	ctx := context.Background()
	for name, analyzed := range map[string]bool{"analyzed": true, "planned empty": false} {
		t.Run(name, func(t *testing.T) {
			fill := []string{
				`INSERT INTO tenants (id, name, status, created_at) VALUES ('ten_1', 'T', 'active', now())`,
				// Scrubbed: no text, settled two years ago.
				`INSERT INTO charges (id, tenant_id, livemode, status, amount, currency, capture_now, payment_method, card,
						created_at, updated_at)
					SELECT 'ch_old_' || i, 'ten_1', true, 'succeeded', 100, 'USD', true, 'tok_1', '{}',
						now() - interval '730 days' + i * interval '1 second', now() - interval '730 days' + i * interval '1 second'
					FROM generate_series(1, 20000) i`,
				// Still holding text, settled a year ago.
				`INSERT INTO charges (id, tenant_id, livemode, status, amount, currency, capture_now, payment_method, card,
						description, created_at, updated_at)
					SELECT 'ch_text_' || i, 'ten_1', true, 'succeeded', 100, 'USD', true, 'tok_1', '{}', 'gift for Ann',
						now() - interval '365 days' + i * interval '1 second', now() - interval '365 days' + i * interval '1 second'
					FROM generate_series(1, 300) i`,
			}
			stmts := []string{`ALTER TABLE charges SET (autovacuum_enabled = off)`,
				`SET plan_cache_mode = force_generic_plan`}
			prepare := `PREPARE scrub (timestamptz, int) AS ` + postgres.ScrubChargesSQL
			if analyzed {
				stmts = append(append(stmts, fill...), `ANALYZE charges`, prepare)
			} else {
				stmts = append(append(append(stmts, prepare), `EXECUTE scrub (now(), 100)`), fill...)
			}
			conn := planConn(t, stmts...)
			tx, err := conn.Begin(ctx)
			require.NoError(t, err)
			defer tx.Rollback(ctx) //nolint:errcheck // the rows it locked go with it
			var out []byte
			require.NoError(t, tx.QueryRow(ctx, `EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE scrub (now() - interval '1 day', 100)`).Scan(&out))
			var plans []struct{ Plan planNode }
			require.NoError(t, json.Unmarshal(out, &plans))
			assert.Equal(t, 100.0, plans[0].Plan.Rows, "a batch of 100\n%s", out)
			assert.LessOrEqual(t, plans[0].Plan.readOf("charges"), 110.0, "charges read for a batch of 100\n%s", out)
		})
	}
}
