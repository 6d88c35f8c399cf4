package postgres_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5"
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
			_, plan, out := explainBatch(t, planConn(t, stmts...), `scrub (now() - interval '1 day', 100)`)
			assert.LessOrEqual(t, plan.readOf("charges"), 110.0, "charges read for a batch of 100\n%s", out)
		})
	}
}

// Retention's shred of unused card tokens asks, for each old token, whether
// a live mandate names it; the answer comes from the live mandates alone
// (mandates_live), read once per batch and matched with the tokens by
// hash. Here the tenant has 20,000 mandates, revoked or expired, each
// naming a card of its own, and 20 live ones naming the first 20 of 320 old
// cards: the sweep read all 20,000 on every batch. A match by containment
// (a join filter, token by live mandate) would pass at this size and take
// 25 s at 100,000 live mandates; the test asks for the hash. (The statement
// runs once per sweep, hours apart, so PostgreSQL plans it afresh on the
// tables as they are for its first five runs; a plan kept from empty
// tables is not the concern here that it is for a charge's statements.)
func TestShredReadsOnlyLiveMandates(t *testing.T) {
	ctx := context.Background()
	conn := planConn(t,
		`INSERT INTO tenants (id, name, status, created_at) VALUES ('ten_1', 'T', 'active', now())`,
		`INSERT INTO vault_tenant_keys (id, tenant_id, kek_version, wrapped, created_at)
			VALUES ('tk_1', 'ten_1', 1, '\\x00', now())`,
		`INSERT INTO vault_tokens (id, tenant_id, tenant_key_id, livemode, brand, last4, exp_month, exp_year,
				fingerprint, cvc_check, created_at)
			SELECT 'tok_' || i, 'ten_1', 'tk_1', true, 'visa', '4242', 12, 2030, 'fp_' || i, 'pass',
				now() - interval '730 days' + i * interval '1 second'
			FROM generate_series(1, 320) i`,
		`INSERT INTO mandates (id, tenant_id, payer, agent, status, currency, budget, payment_methods,
				created_at, updated_at)
			SELECT 'mdt_' || i, 'ten_1', 'payer', 'agt_' || i % 50, CASE WHEN i % 1000 = 0 THEN 'active'
				WHEN i % 2 = 0 THEN 'expired' ELSE 'revoked' END, 'USD', 1000,
				CASE WHEN i % 1000 = 0 THEN ARRAY['tok_' || i / 1000] ELSE ARRAY['tok_m_' || i] END, now(), now()
			FROM generate_series(1, 20000) i`,
		`ANALYZE`,
		`SET plan_cache_mode = force_generic_plan`,
		`PREPARE shred (timestamptz, int) AS `+postgres.ShredTokensSQL,
	)
	tx, plan, out := explainBatch(t, conn, `shred (now() - interval '365 days', 100)`)
	assert.LessOrEqual(t, plan.readOf("mandates"), 20.0, "mandates read for a batch of 100\n%s", out)
	assert.Contains(t, out, `"Index Name": "mandates_live"`, "%s", out)
	assert.Regexp(t, `"Hash Cond": "\(\((v\.id = card\.id|card\.id = v\.id)\)`, out, "tokens matched with the cards by hash\n%s", out)
	var first string
	require.NoError(t, tx.QueryRow(ctx, `EXECUTE shred (now() - interval '365 days', 1)`).Scan(&first))
	assert.Equal(t, "tok_21", first, "the cards live mandates name are kept")
}

// explainBatch runs EXPLAIN ANALYZE of the prepared statement call (name
// and arguments), a batch of 100, in a transaction the test's end rolls
// back (the batch locks its rows), and checks that it took 100 rows. It
// returns the transaction, the plan and the plan as text.
func explainBatch(t *testing.T, conn *pgx.Conn, call string) (pgx.Tx, planNode, string) {
	ctx := context.Background()
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	var out []byte
	require.NoError(t, tx.QueryRow(ctx, `EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE `+call).Scan(&out))
	var plans []struct{ Plan planNode }
	require.NoError(t, json.Unmarshal(out, &plans))
	assert.Equal(t, 100.0, plans[0].Plan.Rows, "a batch of 100\n%s", out)
	return tx, plans[0].Plan, string(out)
}
