package memory

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/perfectpay/perfectpay/accounts"
)

// seedStore makes a store with the tenants and runs add for the rows 0 to
// n-1, 1,000 a transaction, as the benchmarks fill a store that has run
// for a while.
func seedStore(b *testing.B, tenants []string, n int, add func(tx *Tx, j int) error) *Store {
	s := New()
	ctx := context.Background()
	if err := s.InTx(ctx, func(tx *Tx) error {
		for _, id := range tenants {
			if err := tx.CreateTenant(ctx, &accounts.Tenant{ID: id}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; i += 1000 {
		if err := s.InTx(ctx, func(tx *Tx) error {
			for j := i; j < min(i+1000, n); j++ {
				if err := add(tx, j); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// eachRolledBack runs fn once per benchmark iteration in a transaction
// that is rolled back, so that every iteration finds the store as seeded.
func eachRolledBack(b *testing.B, s *Store, fn func(tx *Tx)) {
	for b.Loop() {
		if err := s.InTx(context.Background(), func(tx *Tx) error {
			fn(tx)
			return errRolledBack
		}); !errors.Is(err, errRolledBack) {
			b.Fatal(err)
		}
	}
}

// tenantIDs names n tenants ten_0000, ten_0001, …
func tenantIDs(n int) []string {
	ids := make([]string, n)
	for k := range ids {
		ids[k] = fmt.Sprintf("ten_%04d", k)
	}
	return ids
}
