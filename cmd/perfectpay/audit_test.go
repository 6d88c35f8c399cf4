package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/store/pgtest"
)

// TestAuditCheckpointExportAndVerify: a checkpoint exported to a file
// catches a rewrite-and-relink that `audit verify` alone cannot once the
// stored checkpoints are gone too.
func TestAuditCheckpointExportAndVerify(t *testing.T) {
	url := pgtest.NewURL(t)
	cfg := apptest.Config("memory", "")
	t.Setenv("PERFECTPAY_STORE_DRIVER", "postgres")
	t.Setenv("PERFECTPAY_STORE_POSTGRES_URL", url)
	t.Setenv("PERFECTPAY_SECRETS_HMAC_KEY", cfg.Secrets.HMACKey)
	t.Setenv("PERFECTPAY_WEBHOOKS_SECRET_KEY", cfg.Webhooks.SecretKey)
	t.Setenv("PERFECTPAY_ISSUER_SIGNING_KEK", cfg.Issuer.SigningKEK)
	t.Setenv("PERFECTPAY_VAULT_KEKS", cfg.Vault.KEKs)
	_, err := run(t, "migrate")
	require.NoError(t, err)
	out, err := run(t, "tenants", "create", "--name", "Acme")
	require.NoError(t, err, out)
	file := filepath.Join(t.TempDir(), "checkpoint.json")
	out, err = run(t, "audit", "checkpoint", "export", "--out", file)
	require.NoError(t, err, out)
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	_, _, err = audit.ParseExport(b)
	require.NoError(t, err)
	out, err = run(t, "audit", "verify", "--checkpoint", file)
	require.NoError(t, err, out)
	assert.Contains(t, out, `"trusted_keys": "checkpoint file"`)
	out, err = run(t, "audit", "keys")
	require.NoError(t, err, out)
	assert.Contains(t, out, `"crv": "Ed25519"`)
	assert.NotContains(t, out, `"d":`, "never the private half")

	// Rewrite the first entry, relink everything after it, move the head,
	// and delete the stored checkpoints.
	// (A plain connection: no node runs a sealer meanwhile.)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	defer pool.Close()
	rows, err := pool.Query(ctx, `SELECT seq, id, tenant_id, actor_type, actor_id, ip, action, target, request_id, method, route,
		status, data, created_at, content_hash, chain_pos, prev_hash, coalesce(stripe, 0), coalesce(stripe_seq, 0),
		format, ip_salt, ip_digest
		FROM audit_seals JOIN audit_events USING (seq) ORDER BY chain_pos`)
	require.NoError(t, err)
	var chain []audit.Entry
	for rows.Next() {
		var e audit.Entry
		var data *string
		require.NoError(t, rows.Scan(&e.Seq, &e.ID, &e.TenantID, &e.ActorType, &e.ActorID, &e.IP, &e.Action, &e.Target,
			&e.RequestID, &e.Method, &e.Route, &e.Status, &data, &e.CreatedAt, &e.ContentHash, &e.ChainPos, &e.PrevHash,
			&e.Stripe, &e.StripeSeq, &e.Format, &e.IPSalt, &e.IPDigest))
		if data != nil {
			e.Data = []byte(*data)
		}
		chain = append(chain, e)
	}
	require.NoError(t, rows.Err())
	require.NotEmpty(t, chain)
	prev := chain[0].PrevHash
	for i := range chain {
		e := &chain[i]
		if i == 0 {
			e.Target = "forged"
			e.ContentHash = audit.ContentHash(e)
		}
		e.PrevHash, e.Hash = prev, audit.EntryLinkHash(prev, e, e.ChainPos)
		prev = e.Hash
		_, err := pool.Exec(ctx, `UPDATE audit_events SET target = $2, content_hash = $3 WHERE seq = $1`,
			e.Seq, e.Target, e.ContentHash)
		require.NoError(t, err)
		_, err = pool.Exec(ctx, `UPDATE audit_seals SET prev_hash = $2, hash = $3 WHERE seq = $1`, e.Seq, e.PrevHash, e.Hash)
		require.NoError(t, err)
	}
	_, err = pool.Exec(ctx, `UPDATE audit_state SET head_hash = $1`, prev)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `DELETE FROM audit_checkpoints`)
	require.NoError(t, err)

	out, err = run(t, "audit", "verify")
	require.NoError(t, err, "without a checkpoint held outside, the database is trusted: %s", out)
	_, err = run(t, "audit", "verify", "--checkpoint", file)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "rewritten")
}
