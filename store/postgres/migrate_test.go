package postgres_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/store/pgtest"
	"github.com/perfectpay/perfectpay/store/postgres"
)

// oldSchema builds a database as the migrator before checksums left it:
// 0001–0006 and 0007 as it landed (before charges.idempotency_key was
// added to it in place), recorded by name only.
func oldSchema(t *testing.T) string {
	t.Helper()
	return migratedByName(t, []string{"0001_foundation.sql", "0002_events.sql", "0003_vault_payments.sql",
		"0004_authz.sql", "0005_webhooks.sql", "0006_mandates.sql", "0007_pipeline.sql"},
		map[string]string{"0007_pipeline.sql": "testdata/0007_pipeline_before_idempotency_key.sql"})
}

// migratedByName makes an empty database, applies the migrations names
// (read from files[name] where given, else from migrations/) and records
// them by name only, as the migrator before checksums did; the store's
// Migrate adds the checksums and applies the rest.
func migratedByName(t *testing.T, names []string, files map[string]string) string {
	t.Helper()
	ctx := context.Background()
	url := pgtest.NewEmptyURL(t)
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer func() { _ = conn.Close(ctx) }()
	_, err = conn.Exec(ctx, `CREATE TABLE schema_migrations (
		version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`)
	require.NoError(t, err)
	for _, name := range names {
		path, ok := files[name]
		if !ok {
			path = "migrations/" + name
		}
		sql, err := os.ReadFile(path)
		require.NoError(t, err)
		_, err = conn.Exec(ctx, string(sql))
		require.NoError(t, err, name)
		_, err = conn.Exec(ctx, "INSERT INTO schema_migrations (version) VALUES ($1)", name)
		require.NoError(t, err)
	}
	return url
}

func open(t *testing.T, url string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), url, postgres.Options{MaxConns: 2})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

func TestMigrateUpgradesDatabaseFromBeforeIdempotencyKey(t *testing.T) {
	ctx := context.Background()
	url := oldSchema(t)
	s := open(t, url)
	conn := s.Pool()

	var has bool
	require.NoError(t, conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM information_schema.columns
		WHERE table_name = 'charges' AND column_name = 'idempotency_key')`).Scan(&has))
	require.False(t, has, "the old schema must lack the column, or this test proves nothing")

	applied, err := s.Migrate(ctx)
	require.NoError(t, err)
	assert.Contains(t, applied, "0008_charges_idempotency_key.sql")
	assert.NotContains(t, applied, "0007_pipeline.sql")

	require.NoError(t, conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM information_schema.columns
		WHERE table_name = 'charges' AND column_name = 'idempotency_key' AND data_type = 'text')`).Scan(&has))
	assert.True(t, has, "charges.idempotency_key")
	var def string
	require.NoError(t, conn.QueryRow(ctx, `SELECT indexdef FROM pg_indexes WHERE indexname = 'charges_idempotency'`).Scan(&def))
	assert.Contains(t, def, "UNIQUE")
	assert.Contains(t, def, "(tenant_id, idempotency_key)")
	assert.Contains(t, def, "WHERE (idempotency_key IS NOT NULL)")

	// Rows recorded before checksums existed got theirs.
	var missing int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM schema_migrations WHERE checksum IS NULL`).Scan(&missing))
	assert.Zero(t, missing)

	// A second run is a no-op.
	applied, err = s.Migrate(ctx)
	require.NoError(t, err)
	assert.Empty(t, applied)
}

func TestMigrateOnFreshDatabaseMatchesUpgrade(t *testing.T) {
	ctx := context.Background()
	s := open(t, pgtest.NewEmptyURL(t))
	applied, err := s.Migrate(ctx)
	require.NoError(t, err)
	names, err := postgres.Migrations()
	require.NoError(t, err)
	assert.Equal(t, names, applied)
	var sums int
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM schema_migrations WHERE checksum ~ '^[0-9a-f]{64}$'`).Scan(&sums))
	assert.Equal(t, len(names), sums)
}

func TestMigrateRefusesChangedMigration(t *testing.T) {
	ctx := context.Background()
	s := open(t, pgtest.NewEmptyURL(t))
	_, err := s.Migrate(ctx)
	require.NoError(t, err)

	// The database says 0003 was applied with other contents than the file.
	_, err = s.Pool().Exec(ctx, `UPDATE schema_migrations SET checksum = repeat('0', 64) WHERE version = '0003_vault_payments.sql'`)
	require.NoError(t, err)
	// And a new migration is pending: it must not be applied either.
	_, err = s.Pool().Exec(ctx, `DELETE FROM schema_migrations WHERE version = '0008_charges_idempotency_key.sql'`)
	require.NoError(t, err)

	applied, err := s.Migrate(ctx)
	require.ErrorIs(t, err, postgres.ErrMigrationChanged)
	assert.Contains(t, err.Error(), "0003_vault_payments.sql")
	assert.Empty(t, applied)
	var n int
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT count(*) FROM schema_migrations WHERE version = '0008_charges_idempotency_key.sql'`).Scan(&n))
	assert.Zero(t, n, "nothing is applied once a changed migration is found")
	assert.False(t, strings.Contains(err.Error(), "\n"))
}
