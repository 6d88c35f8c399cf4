package memory

import "context"

// Savepoint runs fn so that its failure undoes what fn wrote (its part of
// the undo log) and nothing before it; the transaction goes on.
func (tx *Tx) Savepoint(_ context.Context, fn func() error) (err error) {
	mark := len(tx.undo)
	defer func() {
		if err == nil {
			return
		}
		for i := len(tx.undo) - 1; i >= mark; i-- {
			tx.undo[i]()
		}
		tx.undo = tx.undo[:mark]
	}()
	return fn()
}
