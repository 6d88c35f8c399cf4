package postgres_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/store/pgtest"
	"github.com/perfectpay/perfectpay/store/postgres"
)

// The sealer's reads of its queue fetch the queued entries and no others,
// even with a plan made while the tables were empty (a prepared statement
// keeps its generic plan until the tables are analyzed, which on a new
// database is up to a minute of writes away). Planned on empty tables, the
// join of the queue with the log read the log from its oldest entry: every
// entry ever written, on every round of the sealer.
func TestSealerReadsOnlyTheQueue(t *testing.T) {
	ctx := context.Background()
	conn := planConn(t,
		// Autovacuum analyzing the tables mid-test would replan them.
		`ALTER TABLE audit_events SET (autovacuum_enabled = off)`,
		`ALTER TABLE audit_unsealed SET (autovacuum_enabled = off)`,
		`SET plan_cache_mode = force_generic_plan`,
		`PREPARE pending (int) AS `+postgres.PendingAuditSQL,
		`PREPARE unsealed (int) AS `+postgres.UnsealedAuditSQL,
		`EXECUTE pending (100)`,
		`EXECUTE unsealed (100)`,
		`INSERT INTO audit_events (id, actor_type, action, created_at, content_hash, stripe, stripe_seq)
			SELECT 'aud_' || i, 'system', 'x', now(), '\x00', 1, i FROM generate_series(1, 20000) i`,
		`INSERT INTO audit_seals SELECT seq, seq, '\x01', '\x02' FROM audit_events WHERE seq <= 19000`,
		`INSERT INTO audit_unsealed SELECT seq FROM audit_events WHERE seq > 19000`,
		// Queued seqs whose entries are gone (deleted behind the chain's
		// back), ahead of the rest: they must not take a batch's places.
		`INSERT INTO audit_unsealed SELECT -i FROM generate_series(1, 150) i`,
	)
	for _, stmt := range []string{"pending", "unsealed"} {
		var out []byte
		require.NoError(t, conn.QueryRow(ctx, `EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE `+stmt+` (100)`).Scan(&out))
		var plans []struct{ Plan planNode }
		require.NoError(t, json.Unmarshal(out, &plans))
		read := plans[0].Plan.rowsOf("audit_events")
		assert.Equal(t, 100.0, plans[0].Plan.Rows, "%s: a batch of 100 past 150 orphans\n%s", stmt, out)
		assert.LessOrEqual(t, read, 100.0, "%s: audit_events rows read for 100 queued entries\n%s", stmt, out)
	}
}

// A charge read or updated by id and tenant (every charge's settlement
// locks and updates it so) goes by the primary key, even with the plan a prepared statement made
// while the table was empty: planned then, an equality on tenant_id made
// an index led by tenant_id as cheap as the key, and that plan read every
// charge of the tenant until the table was first analyzed.
func TestChargeByIDUsesTheKey(t *testing.T) {
	conn := planConn(t,
		`SET plan_cache_mode = force_generic_plan`,
		`PREPARE byid (text, text) AS `+postgres.ChargeByIDSQL,
		`PREPARE lock (text, text) AS `+postgres.ChargeByIDSQL+` FOR UPDATE`,
		`PREPARE upd AS `+postgres.UpdateChargeSQL,
	)
	for stmt, args := range map[string]string{"byid": "('ch_1', 'ten_1')", "lock": "('ch_1', 'ten_1')",
		"upd": "('ch_1', 'ten_1', 'pending', 'succeeded', 1, 0, '', '', '', '', 1, false, now(), NULL, NULL, '', NULL)"} {
		rows, err := conn.Query(context.Background(), `EXPLAIN EXECUTE `+stmt+` `+args)
		require.NoError(t, err)
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		plan := strings.Join(lines, "\n")
		assert.Contains(t, plan, "Index Scan using charges_pkey", stmt+"\n"+plan)
	}
}

// planConn connects to a new database and runs stmts on it, for tests of
// the plans PostgreSQL makes.
func planConn(t *testing.T, stmts ...string) *pgx.Conn {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.NewURL(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(ctx) })
	for _, q := range stmts {
		_, err := conn.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	return conn
}

// planNode is a node of EXPLAIN (ANALYZE, FORMAT JSON).
type planNode struct {
	Relation string     `json:"Relation Name"`
	Rows     float64    `json:"Actual Rows"`
	Loops    float64    `json:"Actual Loops"`
	Removed  float64    `json:"Rows Removed by Filter"`
	Plans    []planNode `json:"Plans"`
}

// rowsOf is the number of rows the plan's scans of table returned.
func (n planNode) rowsOf(table string) float64 {
	sum := 0.0
	if n.Relation == table {
		sum += n.Rows * n.Loops
	}
	for _, c := range n.Plans {
		sum += c.rowsOf(table)
	}
	return sum
}

// readOf is the number of rows the plan's scans of table read: those they
// returned and those their filters removed.
func (n planNode) readOf(table string) float64 {
	sum := 0.0
	if n.Relation == table {
		sum += (n.Rows + n.Removed) * n.Loops
	}
	for _, c := range n.Plans {
		sum += c.readOf(table)
	}
	return sum
}
