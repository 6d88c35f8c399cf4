package postgres

import (
	"context"
	"errors"
	"maps"
)

// errSavepointOutsideTx is Savepoint called on Autocommit.
var errSavepointOutsideTx = errors.New("postgres: Savepoint outside a transaction")

// Savepoint runs fn in a savepoint of the transaction, costing no round
// trip of its own when fn succeeds: SAVEPOINT is queued ahead of fn's
// first statement, and fn's queued writes are sent together with RELEASE
// (one round trip, so a failing insert is known to be fn's and no later
// member's). When fn (or that round trip) fails, fn's writes not yet sent
// are dropped and, when fn sent anything, ROLLBACK TO SAVEPOINT (one round
// trip) undoes it and lifts the abort a failed statement left; the row
// locks fn took (PostgreSQL releases them with the rollback) are
// forgotten. Savepoints reuse one name: PostgreSQL resolves a name to the
// most recent savepoint, so nesting works too.
func (t *Tx) Savepoint(ctx context.Context, fn func() error) error {
	p, ok := t.tx.(*pipeTx)
	if !ok {
		return errSavepointOutsideTx
	}
	p.queue = append(p.queue, queued{sql: "savepoint member", barrier: true})
	mark, trips, locks := len(p.queue), p.trips, maps.Clone(p.locks)
	err := fn()
	if err == nil {
		err = p.flush(ctx, "release savepoint member")
		if err == nil {
			return nil
		}
		err = mapErr(err)
	}
	p.locks = locks
	if p.trips == trips {
		// Nothing since SAVEPOINT was sent: forget it with fn's writes.
		p.queue = p.queue[:mark-1]
		return err
	}
	p.queue = nil
	// At once, in the simple protocol: a transaction a failed statement
	// aborted refuses even to prepare the next round trip's statements.
	p.trips++
	if _, rerr := p.conn.Exec(ctx, "rollback to savepoint member; release savepoint member"); rerr != nil {
		return errors.Join(err, mapErr(rerr))
	}
	return err
}

// flush sends the queued writes and then stmt in one round trip.
func (p *pipeTx) flush(ctx context.Context, stmt string) error {
	br, err := p.send(ctx, stmt, nil)
	if err != nil {
		return err
	}
	_, err = br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}
