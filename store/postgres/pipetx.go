package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/perfectpay/perfectpay/charging"
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
	// merge, when set, says the write is one row of a kind that several
	// of are sent as one multi-row statement (see merger); rows then
	// reads that statement's result.
	merge *merger
	dest  []any
	rows  func(pgx.Rows) error
	// barrier says no row is merged across this statement (SAVEPOINT:
	// a row moved ahead of it would escape its rollback).
	barrier bool
}

const beginSQL = "begin isolation level read committed"

func newPipeTx(conn *pgxpool.Conn) *pipeTx { return &pipeTx{conn: conn} }

// pending says whether anything must be sent before the next statement.
func (p *pipeTx) pending() bool { return !p.begun || len(p.queue) > 0 }

// send pipelines BEGIN (the first time) and the queued writes, then last
// (when not empty), and reads the results of everything before last. The
// caller reads last's result from the returned batch and closes it.
func (p *pipeTx) send(ctx context.Context, last string, args []any) (pgx.BatchResults, error) {
	var tail []queued
	if last != "" {
		tail = []queued{{sql: last, args: args}}
	}
	return p.sendTail(ctx, tail)
}

// sendTail is send with any number of statements after the queued
// writes; the caller reads their results in order.
func (p *pipeTx) sendTail(ctx context.Context, tail []queued) (pgx.BatchResults, error) {
	b := &pgx.Batch{}
	begin := !p.begun
	if begin {
		b.Queue(beginSQL)
		p.begun = true
	}
	q := mergeQueue(p.queue)
	p.queue = nil
	for _, w := range q {
		b.Queue(w.sql, w.args...)
	}
	for _, st := range tail {
		b.Queue(st.sql, st.args...)
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
		switch {
		case w.rows != nil:
			var rows pgx.Rows
			if rows, err = br.Query(); err == nil { //nolint:rowserrcheck // w.rows reads them and checks Err
				err = w.rows(rows)
			}
		case w.scan != nil:
			err = w.scan(br.QueryRow())
		default:
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

// laterRow queues one row of m's kind (see merger); dest receive the
// columns the row's statement returns, if any.
func (p *pipeTx) laterRow(m *merger, args []any, dest ...any) {
	w := queued{sql: m.single, args: args, merge: m}
	if len(dest) > 0 {
		w.dest = dest
		w.scan = func(r pgx.Row) error { return r.Scan(dest...) }
	}
	p.queue = append(p.queue, w)
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
// reads the row the statement returns. A queued write must not read or
// change the rows merged writes insert (oauth_tokens, audit_*; see
// mergeQueue): those may be sent ahead of it.
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

// laterRow is later for one row of m's kind: on a pipelined transaction
// it may be sent with other rows of its kind as one statement.
func (t *Tx) laterRow(ctx context.Context, m *merger, args []any, dest ...any) error {
	if p, ok := t.tx.(*pipeTx); ok {
		p.laterRow(m, args, dest...)
		return nil
	}
	if len(dest) > 0 {
		return mapErr(t.tx.QueryRow(ctx, m.single, args...).Scan(dest...))
	}
	_, err := t.tx.Exec(ctx, m.single, args...)
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

// Prefetch runs reads in one round trip (with whatever the transaction
// has queued): each read sends one statement first (or none), whose text
// and arguments do not depend on another read's result. Each read runs
// twice: first against a recorder that collects its first statement (its
// result is discarded), then against the pipeline's result for that
// statement, which it reads as it would a direct answer. A read that
// then needs a further statement (a claim that found the key taken, a
// revocation check that walks on to a delegator) is run again, whole and
// directly, once the pipeline is read. It returns the first error a read
// returned.
func (t *Tx) Prefetch(ctx context.Context, reads ...func(tx charging.Tx) error) error {
	rec := &recorder{}
	counts := make([]int, len(reads))
	for i, read := range reads {
		one := &recorder{}
		_ = read(&Tx{tx: one, s: t.s})
		if len(one.stmts) > 0 {
			rec.stmts = append(rec.stmts, one.stmts[0])
			counts[i] = 1
		}
	}
	errs := make([]error, len(reads))
	if len(rec.stmts) == 0 {
		return t.readsNotSent(reads, counts, errs)
	}
	var br pgx.BatchResults
	switch q := t.tx.(type) {
	case *pipeTx:
		var err error
		if br, err = q.sendTail(ctx, rec.stmts); err != nil {
			// Each read sees the failure, so none keeps what its
			// recorded run left behind.
			for i, read := range reads {
				if counts[i] == 1 {
					errs[i] = read(&Tx{tx: failing{err}, s: t.s})
				}
			}
			return mapErr(err)
		}
	case *pgxpool.Pool:
		b := &pgx.Batch{}
		for _, st := range rec.stmts {
			b.Queue(st.sql, st.args...)
		}
		br = q.SendBatch(ctx, b)
	default:
		return fmt.Errorf("postgres: Prefetch on %T", t.tx)
	}
	var again []int
	for i, read := range reads {
		if counts[i] == 0 {
			continue
		}
		rp := &replayer{br: br}
		errs[i] = read(&Tx{tx: rp, s: t.s})
		if rp.overflow {
			again = append(again, i)
		}
	}
	if err := br.Close(); err != nil {
		return mapErr(err)
	}
	for _, i := range again {
		errs[i] = reads[i](t)
	}
	return t.readsNotSent(reads, counts, errs)
}

// readsNotSent runs the reads that sent no statement (they run nothing
// on the server, or fail before) and returns the first error of all reads.
func (t *Tx) readsNotSent(reads []func(tx charging.Tx) error, counts []int, errs []error) error {
	var first error
	for i, read := range reads {
		if counts[i] == 0 {
			errs[i] = read(t)
		}
		if errs[i] != nil && first == nil {
			first = errs[i]
		}
	}
	return first
}

// failing answers every statement with err.
type failing struct{ err error }

func (f failing) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) {
	return pgconn.CommandTag{}, f.err
}

func (f failing) Query(context.Context, string, ...any) (pgx.Rows, error) { return nil, f.err }

func (f failing) QueryRow(context.Context, string, ...any) pgx.Row { return errRow(f) }

// recorder collects the statements a read sends; their results are
// errors nobody looks at.
type recorder struct{ stmts []queued }

var errRecorded = errors.New("postgres: statement recorded for a prefetch")

func (r *recorder) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	r.stmts = append(r.stmts, queued{sql: sql, args: args})
	return pgconn.CommandTag{}, errRecorded
}

func (r *recorder) Query(_ context.Context, sql string, args ...any) (pgx.Rows, error) {
	r.stmts = append(r.stmts, queued{sql: sql, args: args})
	return nil, errRecorded
}

func (r *recorder) QueryRow(_ context.Context, sql string, args ...any) pgx.Row {
	r.stmts = append(r.stmts, queued{sql: sql, args: args})
	return errRow{errRecorded}
}

// replayer answers a read's first statement with its prefetched result;
// a further statement is not answered (overflow: the read runs again).
type replayer struct {
	br             pgx.BatchResults
	used, overflow bool
}

var errNotPrefetched = errors.New("postgres: statement not prefetched")

func (r *replayer) next() bool {
	if r.used {
		r.overflow = true
		return false
	}
	r.used = true
	return true
}

func (r *replayer) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) {
	if !r.next() {
		return pgconn.CommandTag{}, errNotPrefetched
	}
	return r.br.Exec()
}

func (r *replayer) Query(context.Context, string, ...any) (pgx.Rows, error) {
	if !r.next() {
		return nil, errNotPrefetched
	}
	return r.br.Query() //nolint:rowserrcheck // the read closes the rows and checks Err
}

func (r *replayer) QueryRow(context.Context, string, ...any) pgx.Row {
	if !r.next() {
		return errRow{errNotPrefetched}
	}
	return r.br.QueryRow()
}
