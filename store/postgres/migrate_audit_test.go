package postgres_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/postgres"
)

// migratedBefore makes a database migrated up to (not including) the
// migration name, and returns its URL, a connection to it and the names
// of name and the migrations after it.
func migratedBefore(t *testing.T, name string) (string, *pgx.Conn, []string) {
	t.Helper()
	names, err := postgres.Migrations()
	require.NoError(t, err)
	i := slices.Index(names, name)
	require.Positive(t, i)
	url := migratedByName(t, names[:i], nil)
	conn, err := pgx.Connect(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return url, conn, names[i:]
}

// A database whose entries were sealed in place (before 0037) keeps its
// chain: the seals move to audit_seals, the unsealed entry is queued, the
// chain verifies, and sealing goes on from the old head.
func TestMigrateMovesAuditSeals(t *testing.T) {
	ctx := context.Background()
	url, conn, later := migratedBefore(t, "0037_audit_seals.sql")

	// Three entries as the old code wrote them; the first two sealed in
	// place and the head after them.
	var prev []byte
	require.NoError(t, conn.QueryRow(ctx, `SELECT anchor_hash FROM audit_state WHERE id = 1`).Scan(&prev))
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	var sealedHash []byte
	for i, id := range []string{"aud_old1", "aud_old2", "aud_old3"} {
		e := audit.Entry{ID: id, TenantID: "ten_a", ActorType: "system", Action: "test.old", Target: id,
			Data: []byte(`{"n":1}`), CreatedAt: at.Add(time.Duration(i) * time.Second)}
		e.ContentHash = audit.ContentHash(&e)
		var seq int64
		require.NoError(t, conn.QueryRow(ctx, `INSERT INTO audit_events (id, tenant_id, actor_type, action, target, data,
			created_at, content_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING seq`,
			e.ID, e.TenantID, e.ActorType, e.Action, e.Target, string(e.Data), e.CreatedAt, e.ContentHash).Scan(&seq))
		if i == 2 {
			break
		}
		pos := int64(i + 1)
		h := audit.LinkHash(prev, e.ContentHash, pos)
		_, err := conn.Exec(ctx, `UPDATE audit_events SET chain_pos = $2, prev_hash = $3, hash = $4 WHERE seq = $1`, seq, pos, prev, h)
		require.NoError(t, err)
		prev, sealedHash = h, h
	}
	_, err := conn.Exec(ctx, `UPDATE audit_state SET head_pos = 2, head_hash = $1 WHERE id = 1`, sealedHash)
	require.NoError(t, err)

	s := open(t, url)
	applied, err := s.Migrate(ctx)
	require.NoError(t, err)
	assert.Equal(t, later, applied)

	var seals, queued int
	require.NoError(t, conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM audit_seals), (SELECT count(*) FROM audit_unsealed)`).
		Scan(&seals, &queued))
	assert.Equal(t, 2, seals)
	assert.Equal(t, 1, queued)

	svc := audit.NewService(store.Bind[audit.Repo, *postgres.Tx](s, func(x *postgres.Tx) audit.Repo { return x }), 0, nil)
	res, err := svc.Verify(ctx)
	require.NoError(t, err)
	assert.True(t, res.OK, "%+v", res)
	assert.EqualValues(t, 2, res.Checked)
	assert.Equal(t, 1, res.Unsealed)

	n, err := svc.SealAll(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	res, err = svc.Verify(ctx)
	require.NoError(t, err)
	assert.True(t, res.OK, "%+v", res)
	assert.EqualValues(t, 3, res.Checked)
	assert.Zero(t, res.Unsealed)
	list, err := svc.List(ctx, audit.Filter{TenantID: "ten_a"})
	require.NoError(t, err)
	require.Len(t, list, 3)
	for i, e := range list {
		assert.EqualValues(t, i+1, e.ChainPos, e.ID)
		assert.NotEmpty(t, e.Hash, e.ID)
	}
}

// Decisions counted as declines before 0038 (a refusal, a failed charge)
// still count after it, from decision_declines; an allowed charge that
// succeeded does not, and a later failure of it does.
func TestMigrateMovesDeclineCounts(t *testing.T) {
	ctx := context.Background()
	url, conn, later := migratedBefore(t, "0038_decision_declines.sql")
	at := time.Now().UTC().Add(-time.Minute)
	for _, d := range []struct{ id, charge, result, outcome string }{
		{"dec_deny", "", "deny", ""}, {"dec_failed", "ch_failed", "allow", "failed"}, {"dec_ok", "ch_ok", "allow", "succeeded"},
	} {
		_, err := conn.Exec(ctx, `INSERT INTO decisions (id, tenant_id, mandate_id, agent_id, charge_id, result, reasons,
			policy_version, input_digest, latency_us, outcome, created_at)
			VALUES ($1, 'ten_a', 'mdt_a', 'agt_a', nullif($2, ''), $3, '[]', 'v', 'sha256:x', 1, $4, $5)`,
			d.id, d.charge, d.result, d.outcome, at)
		require.NoError(t, err)
	}

	s := open(t, url)
	applied, err := s.Migrate(ctx)
	require.NoError(t, err)
	assert.Equal(t, later, applied)
	q := charging.VelocityQuery{Since: at.Add(-time.Minute), AgentCharges: 10, AgentDeclines: 10, MandateCharges: 10, MandateDeclines: 10}
	counts := func() (agent, mandate charging.Counts) {
		require.NoError(t, s.InTx(ctx, func(tx *postgres.Tx) error {
			var err error
			agent, mandate, err = tx.Velocity(ctx, "ten_a", "agt_a", "mdt_a", q)
			return err
		}))
		return agent, mandate
	}
	agent, mandate := counts()
	assert.Equal(t, charging.Counts{Charges: 2, Declines: 2}, agent)
	assert.Equal(t, charging.Counts{Charges: 2, Declines: 2}, mandate)

	require.NoError(t, s.InTx(ctx, func(tx *postgres.Tx) error {
		return tx.SetDecisionOutcome(ctx, "ten_a", "ch_ok", "failed")
	}))
	agent, _ = counts()
	assert.Equal(t, charging.Counts{Charges: 2, Declines: 3}, agent)
	// Back from failed (no such path today, but the count follows the
	// outcome as the old partial index did).
	require.NoError(t, s.InTx(ctx, func(tx *postgres.Tx) error {
		return tx.SetDecisionOutcome(ctx, "ten_a", "ch_ok", "succeeded")
	}))
	agent, _ = counts()
	assert.Equal(t, charging.Counts{Charges: 2, Declines: 2}, agent)
}
