package postgres

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pipeTx is a transaction that costs as few round trips as its reads
// allow: BEGIN is not sent on its own but ahead of the first statement,
// and writes whose result nobody waits for (inserts of new rows: a charge,
// its hold, a decision, an audit entry, an event) are queued and sent in
// one pipeline with the next read, or with COMMIT. A queued write that
// fails fails the transaction at that read or at the commit, with its own
// error; PostgreSQL skips the rest of the pipeline, so nothing after it
// runs.
type pipeTx struct {
	conn  *pgxpool.Conn
	begun bool // BEGIN was queued (it is sent with the first round trip)
	queue []queued
	// trips counts the round trips sent; committing says the last one
	// carried COMMIT (so a lost connection leaves the outcome unknown).
	trips      int
	committing bool
	// rows this transaction locked (FOR UPDATE), with the state it saw:
	// an update that only needs that state can be queued.
	locks map[string]string
}

// lock records a row this transaction locked and its state.
func (p *pipeTx) lock(key, state string) {
	if p.locks == nil {
		p.locks = map[string]string{}
	}
	p.locks[key] = state
}

// locked returns the state of a row this transaction locked.
func (p *pipeTx) locked(key string) (string, bool) {
	st, ok := p.locks[key]
	return st, ok
}

// queued is a write waiting for the next round trip; scan, when set,
// reads the row it returns.
type queued struct {
	sql  string
	args []any
	scan func(pgx.Row) error
}

const beginSQL = "begin isolation level read committed"

func newPipeTx(conn *pgxpool.Conn) *pipeTx { return &pipeTx{conn: conn} }

// pending says whether anything must be sent before the next statement.
func (p *pipeTx) pending() bool { return !p.begun || len(p.queue) > 0 }

// send pipelines BEGIN (the first time) and the queued writes, then last
// (when not empty), and reads the results of everything before last. The
// caller reads last's result from the returned batch and closes it.
func (p *pipeTx) send(ctx context.Context, last string, args []any) (pgx.BatchResults, error) {
	b := &pgx.Batch{}
	begin := !p.begun
	if begin {
		b.Queue(beginSQL)
		p.begun = true
	}
	q := p.queue
	p.queue = nil
	for _, w := range q {
		b.Queue(w.sql, w.args...)
	}
	if last != "" {
		b.Queue(last, args...)
	}
	p.trips++
	br := p.conn.SendBatch(ctx, b)
	if begin {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return nil, err
		}
	}
	for _, w := range q {
		var err error
		if w.scan != nil {
			err = w.scan(br.QueryRow())
		} else {
			_, err = br.Exec()
		}
		if err != nil {
			_ = br.Close()
			return nil, err
		}
	}
	return br, nil
}

// later queues a write; it is sent with the next round trip.
func (p *pipeTx) later(sql string, args []any, scan func(pgx.Row) error) {
	p.queue = append(p.queue, queued{sql: sql, args: args, scan: scan})
}

func (p *pipeTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if !p.pending() {
		p.trips++
		return p.conn.Exec(ctx, sql, args...)
	}
	br, err := p.send(ctx, sql, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

func (p *pipeTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if !p.pending() {
		p.trips++
		return p.conn.Query(ctx, sql, args...) //nolint:rowserrcheck // the caller reads the rows and checks Err
	}
	br, err := p.send(ctx, sql, args)
	if err != nil {
		return nil, err
	}
	rows, err := br.Query() //nolint:rowserrcheck // returned: the caller reads the rows and checks Err
	if err != nil {
		_ = br.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

func (p *pipeTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if !p.pending() {
		p.trips++
		return p.conn.QueryRow(ctx, sql, args...)
	}
	br, err := p.send(ctx, sql, args)
	if err != nil {
		return errRow{err}
	}
	return batchRow{br: br}
}

// commit sends what is queued and COMMIT in one round trip (nothing at
// all when the transaction never sent a statement).
func (p *pipeTx) commit(ctx context.Context) error {
	if !p.begun && len(p.queue) == 0 {
		return nil
	}
	p.committing = true
	br, err := p.send(ctx, "commit", nil)
	if err != nil {
		return err
	}
	_, err = br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

// rollback ends a transaction that was begun; a connection that cannot
// even roll back is closed, so the pool never hands out a connection in
// an unknown state.
func (p *pipeTx) rollback(ctx context.Context) {
	if p.trips == 0 {
		return
	}
	if _, err := p.conn.Exec(ctx, "rollback"); err != nil {
		_ = p.conn.Conn().Close(ctx)
	}
}

// batchRows are the rows of a pipeline's last statement: closing them
// closes the pipeline.
type batchRows struct {
	pgx.Rows
	br  pgx.BatchResults
	err error
}

func (r *batchRows) Close() {
	r.Rows.Close()
	if r.br != nil {
		r.err = r.br.Close()
		r.br = nil
	}
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

func (r *batchRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

// batchRow is the row of a pipeline's last statement.
type batchRow struct{ br pgx.BatchResults }

func (r batchRow) Scan(dest ...any) error {
	err := r.br.QueryRow().Scan(dest...)
	if cerr := r.br.Close(); err == nil {
		err = cerr
	}
	return err
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// later runs a write whose result nobody waits for: queued for the next
// round trip in a transaction, at once on Autocommit. scan, when set,
// reads the row the statement returns.
func (t *Tx) later(ctx context.Context, sql string, args []any, scan func(pgx.Row) error) error {
	if p, ok := t.tx.(*pipeTx); ok {
		p.later(sql, args, scan)
		return nil
	}
	if scan != nil {
		return mapErr(scan(t.tx.QueryRow(ctx, sql, args...)))
	}
	_, err := t.tx.Exec(ctx, sql, args...)
	return mapErr(err)
}

// runTx runs fn in one pipelined transaction on a pooled connection. It
// reports whether the failure may have been a stale connection found on
// the first round trip, before COMMIT was sent (safe to run again).
func (s *Store) runTx(ctx context.Context, fn func(tx *Tx) error) (stale bool, err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return true, err
	}
	p := newPipeTx(conn)
	done := false
	defer func() {
		if !done {
			p.rollback(context.WithoutCancel(ctx))
		}
		conn.Release()
	}()
	if err := fn(&Tx{tx: p, s: s}); err != nil {
		return p.trips <= 1 && !p.committing, err
	}
	err = p.commit(ctx)
	if err == nil {
		done = true
		return false, nil
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// The server answered: the transaction is rolled back (or must be).
		return false, err
	}
	return p.trips <= 1 && !p.committing, err
}

// defaultTracer traces the pools opened without Options.Tracer (tests
// that start whole nodes count statements with it).
var defaultTracer atomic.Pointer[pgx.QueryTracer]

// TraceNewPools makes t the tracer of every pool opened from now on
// without one of its own (nil: none). For tests.
func TraceNewPools(t pgx.QueryTracer) {
	if t == nil {
		defaultTracer.Store(nil)
		return
	}
	defaultTracer.Store(&t)
}
