// Package store holds what every storage backend and every domain agree on:
// the sentinel errors and the transaction contract.
//
// Domain types and the narrow repository interfaces live in their domain
// packages (accounts, audit, ...). A backend (store/memory, store/postgres)
// offers one concrete transaction type that implements all of them, and
// Bind narrows it to the interface a domain declares, checked at compile time.
package store

import (
	"context"
	"errors"
)

// Sentinel errors. Backends wrap their native errors into these so callers
// can use errors.Is without knowing the backend.
var (
	// ErrNotFound means the row does not exist (or is not visible to the caller).
	ErrNotFound = errors.New("store: not found")
	// ErrConflict means a uniqueness or state constraint refused the write.
	ErrConflict = errors.New("store: conflict")
	// ErrSerialization means the transaction lost a race and may be retried.
	ErrSerialization = errors.New("store: serialization failure")
	// ErrUnavailable means the backend could not be reached: connection
	// refused or lost, server shutting down or starting up. A transaction
	// failing so was rolled back, unless the connection was lost during its
	// COMMIT, when its outcome is unknown; answer "retry later".
	ErrUnavailable = errors.New("store: unavailable")
)

// Backend is a storage backend whose transactions have the concrete type X.
type Backend[X any] interface {
	// InTx runs fn in one transaction: committed when fn returns nil,
	// rolled back (leaving nothing behind) when it returns an error.
	InTx(ctx context.Context, fn func(tx X) error) error
	// Autocommit runs fn outside a transaction: each statement commits on
	// its own. For reads and single-statement writes on hot paths, where
	// BEGIN/COMMIT would double the round trips. Never for multi-step changes.
	Autocommit(ctx context.Context, fn func(tx X) error) error
	// Ping reports whether the backend is reachable.
	Ping(ctx context.Context) error
	// Close releases the backend's resources.
	Close()
}

// Runner runs a function in a transaction typed as the domain's own
// interface T. Domains depend on Runner[T], never on a backend.
type Runner[T any] interface {
	InTx(ctx context.Context, fn func(tx T) error) error
	Autocommit(ctx context.Context, fn func(tx T) error) error
}

// Bind narrows a backend's transaction type X to a domain interface T.
// The conversion function is usually `func(x X) T { return x }`, which only
// compiles when X implements T.
func Bind[T, X any](b Backend[X], as func(X) T) Runner[T] {
	return binder[T, X]{b: b, as: as}
}

type binder[T, X any] struct {
	b  Backend[X]
	as func(X) T
}

func (r binder[T, X]) InTx(ctx context.Context, fn func(tx T) error) error {
	return r.b.InTx(ctx, func(x X) error { return fn(r.as(x)) })
}

func (r binder[T, X]) Autocommit(ctx context.Context, fn func(tx T) error) error {
	return r.b.Autocommit(ctx, func(x X) error { return fn(r.as(x)) })
}
