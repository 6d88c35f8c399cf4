// Package postgres is the production backend on PostgreSQL (pgx v5). SQL
// migrations are embedded in the binary and applied under an advisory lock,
// so several nodes starting together do not race.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/repos"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// Store is the PostgreSQL backend.
type Store struct {
	pool *pgxpool.Pool
	sess *session
}

var (
	_ store.Backend[*Tx] = (*Store)(nil)
	_ repos.Tx           = (*Tx)(nil)
)

// Options tune the pool.
type Options struct {
	MaxConns int32
	// Tracer, when set, sees every statement, batch and prepare of the
	// pool (tests count round trips and commits with it).
	Tracer pgx.QueryTracer
}

// Open connects to url. It does not migrate; call Migrate.
func Open(ctx context.Context, url string, opt Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse url: %w", err)
	}
	if opt.MaxConns > 0 {
		cfg.MaxConns = opt.MaxConns
	}
	if opt.Tracer != nil {
		cfg.ConnConfig.Tracer = opt.Tracer
	} else if t := defaultTracer.Load(); t != nil {
		cfg.ConnConfig.Tracer = *t
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	s := &Store{pool: pool}
	// When the session is lost the server most likely restarted, and every
	// pooled connection is as dead as the session's: drop them all rather
	// than fail one request on each.
	s.sess = startSession(cfg.ConnConfig, pool.Reset)
	return s, nil
}

// Pool exposes the pool for LISTEN/NOTIFY and tests.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Ping checks the server answers (store.ErrUnavailable when it does not).
func (s *Store) Ping(ctx context.Context) error { return mapErr(s.pool.Ping(ctx)) }

// Close ends the node session and closes the pool.
func (s *Store) Close() {
	s.sess.stop()
	s.pool.Close()
}

// SessionName is the application_name of this node's session connection
// ("" while it has none, e.g. during an outage). Idempotency claims record
// it; a claim whose session is gone from pg_stat_activity is abandoned.
func (s *Store) SessionName() string { return s.sess.name() }

// sessionPrefix starts every node session's application_name.
const sessionPrefix = "perfectpay-node "

// sessionCheck is how often the session connection is checked (sooner when
// a statement on the pool found the server unreachable).
const sessionCheck = time.Second

// session is one connection a node keeps open for as long as it lives,
// named with a random application_name. PostgreSQL ends it when the node
// dies (the kernel closes the socket of a killed process) or when the
// server restarts; after a restart the node opens a new one under a new
// name, so claims taken under the old name are recognisably abandoned.
type session struct {
	cfg    *pgx.ConnConfig
	onLost func()
	mu     sync.Mutex
	cur    string
	pid    uint32 // the session's backend
	poke   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

func startSession(cfg *pgx.ConnConfig, onLost func()) *session {
	ctx, cancel := context.WithCancel(context.Background())
	ss := &session{cfg: cfg.Copy(), onLost: onLost, poke: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	go ss.run(ctx)
	return ss
}

func (ss *session) name() string {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.cur
}

// current is the session's name and backend pid ("" when none).
func (ss *session) current() (string, uint32) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.cur, ss.pid
}

func (ss *session) set(name string, pid uint32) {
	ss.mu.Lock()
	ss.cur, ss.pid = name, pid
	ss.mu.Unlock()
}

func (ss *session) stop() {
	ss.cancel()
	<-ss.done
}

// lost asks the session to check its connection now.
func (ss *session) lost() {
	select {
	case ss.poke <- struct{}{}:
	default:
	}
}

func (s *Store) sessionLost() { s.sess.lost() }

func (ss *session) run(ctx context.Context) {
	defer close(ss.done)
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	t := time.NewTicker(sessionCheck)
	defer t.Stop()
	for {
		if conn != nil {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := conn.Ping(pctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				ss.set("", 0)
				conn.Close(context.Background())
				conn = nil
				ss.onLost()
			}
		}
		if conn == nil && ctx.Err() == nil {
			cfg := ss.cfg.Copy()
			name := sessionPrefix + ids.Random(20)
			cfg.RuntimeParams["application_name"] = name
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			c, err := pgx.ConnectConfig(cctx, cfg)
			cancel()
			if err == nil {
				conn = c
				ss.set(name, c.PgConn().PID())
			}
		}
		select {
		case <-ctx.Done():
			ss.set("", 0)
			return
		case <-t.C:
		case <-ss.poke:
		}
	}
}

// querier is what repository methods run statements on: a pgx.Tx inside
// InTx, the pool itself in Autocommit.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Tx is a transaction on PostgreSQL (or, from Autocommit, the pool).
type Tx struct {
	tx querier
	s  *Store
}

// Conn exposes the statement runner to tests.
func (t *Tx) Conn() querier { return t.tx }

// Autocommit runs fn with every statement committing on its own.
func (s *Store) Autocommit(ctx context.Context, fn func(tx *Tx) error) error {
	err := mapErr(fn(&Tx{tx: s.pool, s: s}))
	if errors.Is(err, store.ErrUnavailable) {
		s.sessionLost()
	}
	return err
}

const maxAttempts = 5

// InTx runs fn in a READ COMMITTED transaction, pipelined (see pipeTx:
// BEGIN travels with the first statement, inserts with the next read or
// with COMMIT). Serialization failures and deadlocks are retried a few
// times before store.ErrSerialization surfaces. A transaction whose first
// round trip found its pooled connection dead (the server restarted
// since) is retried once on a fresh one; once a later round trip or the
// COMMIT was sent, a lost connection is never retried here, because the
// COMMIT may or may not have landed: store.ErrUnavailable surfaces.
func (s *Store) InTx(ctx context.Context, fn func(tx *Tx) error) error {
	var err error
	staleRetried := false
	for attempt := 0; attempt < maxAttempts; attempt++ {
		var stale bool
		stale, err = s.runTx(ctx, fn)
		err = mapErr(err)
		if errors.Is(err, store.ErrUnavailable) {
			s.sessionLost()
			if stale && !staleRetried && ctx.Err() == nil {
				staleRetried = true
				continue
			}
			return err
		}
		if !errors.Is(err, store.ErrSerialization) {
			return err
		}
		time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
	}
	return err
}

// mapErr turns pgx errors into the store's sentinels by SQLSTATE.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrSerialization) ||
		errors.Is(err, store.ErrUnavailable) {
		return err
	}
	if unreachable(err) {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505", "23P01": // unique_violation, exclusion_violation
			return fmt.Errorf("%w: %s", store.ErrConflict, pgErr.ConstraintName)
		case "23503": // foreign_key_violation: the referenced row is missing
			return fmt.Errorf("%w: %s", store.ErrNotFound, pgErr.ConstraintName)
		case "23514": // check_violation
			return fmt.Errorf("%w: %s", store.ErrConflict, pgErr.ConstraintName)
		case "40001", "40P01": // serialization_failure, deadlock_detected
			return fmt.Errorf("%w: %s", store.ErrSerialization, pgErr.Message)
		}
	}
	return err
}

// unreachable reports whether err means the server could not be reached or
// dropped the connection, by error type and SQLSTATE, never by message
// text: a failed connect, a connection closed or reset under a statement,
// the server refusing work while it shuts down, crashes or starts up, or
// a deadline that expired while waiting on the server (a net.Error that
// times out), or a server that refuses writes because it is no longer the
// primary (during a failover). A cancelled context is not: the caller gave
// up.
func unreachable(err error) bool {
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) || errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"): // connection_exception class
			return true
		case pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03": // admin_shutdown, crash_shutdown, cannot_connect_now
			return true
		case pgErr.Code == "53300": // too_many_connections
			return true
		case pgErr.Code == "25006": // read_only_sql_transaction: a standby, or a primary being demoted in a failover
			return true
		}
		return false
	}
	var netErr net.Error
	return errors.As(err, &netErr)
}

// migrateLockKey is the advisory lock all nodes take while migrating.
const migrateLockKey = 7_302_115_001

// ErrMigrationChanged means a migration file differs from the one applied
// to the database: landed migrations are never edited, a change goes into a
// new migration.
var ErrMigrationChanged = errors.New("postgres: an applied migration was changed")

// Migrate applies every embedded migration not yet applied, in file-name
// order, each in its own transaction, under a session advisory lock.
//
// schema_migrations records the SHA-256 of each applied file. Before
// applying anything, every applied migration's recorded checksum is
// compared with the embedded file: when one differs Migrate refuses
// (ErrMigrationChanged, naming the file) and applies nothing. Rows
// recorded before checksums existed get theirs filled in from the file.
func (s *Store) Migrate(ctx context.Context) ([]string, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, mapErr(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(migrateLockKey)); err != nil {
		return nil, mapErr(err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(migrateLockKey)) //nolint:errcheck // the session's end releases the lock too
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
		ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum text`); err != nil {
		return nil, mapErr(err)
	}
	names, err := Migrations()
	if err != nil {
		return nil, err
	}
	recorded := map[string]*string{}
	rows, err := conn.Query(ctx, "SELECT version, checksum FROM schema_migrations")
	if err != nil {
		return nil, mapErr(err)
	}
	for rows.Next() {
		var v string
		var sum *string
		if err := rows.Scan(&v, &sum); err != nil {
			rows.Close()
			return nil, mapErr(err)
		}
		recorded[v] = sum
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, mapErr(err)
	}
	files := map[string][]byte{}
	for _, name := range names {
		sql, err := migrationsFS.ReadFile("migrations/" + name)
		if err != nil {
			return nil, err
		}
		files[name] = sql
		sum, ok := recorded[name]
		if ok && sum != nil && *sum != checksum(sql) {
			return nil, fmt.Errorf("%w: %s was applied with sha256 %s but the file now has sha256 %s; "+
				"restore the file as it was and put the change in a new migration", ErrMigrationChanged, name, *sum, checksum(sql))
		}
	}
	for _, name := range names {
		if sum, ok := recorded[name]; ok && sum == nil {
			if _, err := conn.Exec(ctx, "UPDATE schema_migrations SET checksum = $2 WHERE version = $1 AND checksum IS NULL",
				name, checksum(files[name])); err != nil {
				return nil, mapErr(err)
			}
		}
	}
	var applied []string
	for _, name := range names {
		if _, ok := recorded[name]; ok {
			continue
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, string(files[name])); err != nil {
				return fmt.Errorf("migration %s: %w", name, err)
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)", name, checksum(files[name]))
			return err
		})
		if err != nil {
			return applied, mapErr(err)
		}
		applied = append(applied, name)
	}
	return applied, nil
}

// Migrations lists the embedded migration files in order.
func Migrations() ([]string, error) {
	entries, err := fs.ReadDir(migrationsFS, "migrations")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sql") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// MigrationsDigest identifies the set of migrations (for test templates).
func MigrationsDigest() string {
	names, _ := Migrations()
	var b strings.Builder
	for _, n := range names {
		sql, _ := migrationsFS.ReadFile("migrations/" + n)
		b.WriteString(n)
		b.Write(sql)
	}
	return digest(b.String())
}
