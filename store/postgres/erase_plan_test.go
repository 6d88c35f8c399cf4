package postgres_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/store/postgres"
)

// Erasing a person's IPs from the audit trail finds their entries through
// indexes, never by reading every entry of the tenant: on a tenant with
// 20,000 entries of agents, API keys and a few people, the generic plan of
// the statement (the one a prepared statement settles on) reads
// audit_events through audit_events_ip_user (the person as actor) and
// audit_events_target (as target) only. A parameter in place of the actor
// type, or a missing index, leaves the plan a scan of the tenant or the
// table.
func TestForgetAuditPersonalUsesIndexes(t *testing.T) {
	ctx := context.Background()
	conn := planConn(t,
		`INSERT INTO audit_events (id, tenant_id, actor_type, actor_id, ip, action, target, created_at, content_hash,
			format, ip_salt, ip_digest)
			SELECT 'aud_' || i, 'ten_1', CASE WHEN i % 100 = 0 THEN 'user' WHEN i % 2 = 0 THEN 'agent' ELSE 'api_key' END,
				CASE WHEN i % 100 = 0 THEN 'usr_' || (i / 100) % 20 ELSE 'agt_' || i % 50 END, '192.0.2.1',
				'charge.created', 'ch_' || i, now(), '\x00', 1, '\x01', '\x02'
			FROM generate_series(1, 20000) i`,
		`ANALYZE audit_events`,
		`SET plan_cache_mode = force_generic_plan`,
		`PREPARE forget (text, text, smallint) AS `+postgres.ForgetAuditPersonalSQL,
	)
	rows, err := conn.Query(ctx, `EXPLAIN EXECUTE forget ('ten_1', 'usr_1', 1)`)
	require.NoError(t, err)
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	plan := strings.Join(lines, "\n")
	assert.NotContains(t, plan, "Seq Scan", plan)
	assert.NotContains(t, plan, "audit_events_tenant", plan)
	assert.Contains(t, plan, "audit_events_ip_user", plan)
	assert.Contains(t, plan, "audit_events_target", plan)
}

// Erasing a person's addresses from the events reads the events that
// hold an address, not every event of the tenant: on a tenant with
// 20,000 charge events and 200 sign-in events of 20 people, the statement
// under its generic plan, run (and rolled back), reads the person's 10
// events through events_ip_user and nothing else of events. Without the
// index it reads all 20,200 events.
func TestForgetEventIPsReadsOnlyEventsWithAnAddress(t *testing.T) {
	ctx := context.Background()
	conn := planConn(t,
		`INSERT INTO events (id, tenant_id, type, data, created_at)
			SELECT 'evt_' || i, 'ten_1', 'charge.succeeded',
				jsonb_build_object('object', jsonb_build_object('id', 'ch_' || i, 'object', 'charge', 'amount', i)), now()
			FROM generate_series(1, 20000) i`,
		`INSERT INTO events (id, tenant_id, type, data, created_at)
			SELECT 'evt_s' || i, 'ten_1', 'user.signed_in',
				jsonb_build_object('object', jsonb_build_object('user', 'usr_' || i % 20, 'ip', '192.0.2.1')), now()
			FROM generate_series(1, 200) i`,
		`ANALYZE events`,
		`SET plan_cache_mode = force_generic_plan`,
		`PREPARE forget_events (text, text) AS `+postgres.ForgetEventIPsSQL,
	)
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	var out []byte
	require.NoError(t, tx.QueryRow(ctx, `EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE forget_events ('ten_1', 'usr_3')`).Scan(&out))
	var plans []struct{ Plan planNode }
	require.NoError(t, json.Unmarshal(out, &plans))
	assert.Contains(t, string(out), "events_ip_user", "%s", out)
	assert.Equal(t, 10.0, plans[0].Plan.readOf("events"), "the person's 10 events, read once\n%s", out)
	var left int
	require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM events WHERE data->'object' ? 'ip'`).Scan(&left))
	assert.Equal(t, 190, left, "the person's addresses are gone, the others' kept")
}
