// Package pgtest gives each test its own PostgreSQL database, cloned from a
// migrated template and dropped afterwards.
//
// The server comes from PERFECTPAY_TEST_DATABASE_URL (default
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable). When it
// cannot be reached and CI is set, the test fails. Without CI the test is
// skipped and the suite's name is written to $PERFECTPAY_SKIPPED_DIR (the
// Makefile names those suites loudly at the end of `make test`).
package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/store/postgres"
)

// DefaultURL is the server used when PERFECTPAY_TEST_DATABASE_URL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// AdminURL returns the URL tests connect to for creating databases.
func AdminURL() string {
	if u := os.Getenv("PERFECTPAY_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

const lockKey = 7_302_115_002

// NewURL creates a fresh, migrated database and returns its URL. The
// database is dropped when the test ends.
func NewURL(t testing.TB) string {
	t.Helper()
	return newDatabase(t, func(ctx context.Context, admin *pgx.Conn, name string) error {
		tmpl := "perfectpay_tmpl_" + postgres.MigrationsDigest()
		if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(lockKey)); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		defer admin.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", int64(lockKey)) //nolint:errcheck // closing the connection releases the lock anyway
		var exists bool
		if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", tmpl).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			if err := buildTemplate(ctx, admin, tmpl); err != nil {
				return fmt.Errorf("template: %w", err)
			}
		}
		if _, err := admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, tmpl)); err != nil {
			return fmt.Errorf("create database: %w", err)
		}
		return nil
	})
}

// NewEmptyURL creates a fresh database with no schema at all (for tests of
// the migrator itself) and returns its URL. It is dropped when the test ends.
func NewEmptyURL(t testing.TB) string {
	t.Helper()
	return newDatabase(t, func(ctx context.Context, admin *pgx.Conn, name string) error {
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
			return fmt.Errorf("create database: %w", err)
		}
		return nil
	})
}

// newDatabase picks a fresh database name, lets create make the database on
// an admin connection, drops it when the test ends and returns its URL.
func newDatabase(t testing.TB, create func(ctx context.Context, admin *pgx.Conn, name string) error) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		unavailable(t, err)
		return ""
	}
	defer admin.Close(context.Background())
	name := "pp_test_" + strings.ToLower(ids.Random(12))
	if err := create(ctx, admin, name); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() { dropDatabase(AdminURL(), name) })
	return withDB(AdminURL(), name)
}

func dropDatabase(adminURL, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return
	}
	defer c.Close(ctx)
	c.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name)) //nolint:errcheck // best-effort cleanup of a test database
}

// NewStore returns a migrated store on a fresh database, closed at the end.
func NewStore(t testing.TB) *postgres.Store {
	t.Helper()
	u := NewURL(t)
	s, err := postgres.Open(context.Background(), u, postgres.Options{MaxConns: 20})
	if err != nil {
		t.Fatalf("pgtest: open: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func buildTemplate(ctx context.Context, admin *pgx.Conn, tmpl string) error {
	building := tmpl + "_building"
	admin.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", building)) //nolint:errcheck // a leftover of an interrupted build, if any
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+building); err != nil {
		return err
	}
	s, err := postgres.Open(ctx, withDB(AdminURL(), building), postgres.Options{MaxConns: 2})
	if err != nil {
		return err
	}
	_, err = s.Migrate(ctx)
	s.Close()
	if err != nil {
		return err
	}
	_, err = admin.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s RENAME TO %s", building, tmpl))
	return err
}

func withDB(raw, name string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Path = "/" + name
	return u.String()
}

// unavailable fails under CI and otherwise skips, leaving a note for make.
func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("pgtest: PostgreSQL is required when CI is set and is unreachable at %s: %v", AdminURL(), err)
	}
	if dir := os.Getenv("PERFECTPAY_SKIPPED_DIR"); dir != "" {
		name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
		os.WriteFile(filepath.Join(dir, name), []byte(t.Name()+"\n"), 0o644) //nolint:errcheck // best effort: the skip is logged as well
	}
	t.Skipf("pgtest: PostgreSQL unreachable at %s (%v): SKIPPING a Postgres suite", AdminURL(), err)
}
