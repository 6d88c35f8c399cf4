package postgres_test

import (
	"context"
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
