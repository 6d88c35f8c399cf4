package memory

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
)

// tenantStore is a memory store holding the tenants named, and in, which
// runs fn in a transaction that ends with err: committed when err is nil,
// rolled back otherwise.
func tenantStore(t *testing.T, tenants ...string) (*Store, func(err error, fn func(tx *Tx))) {
	s := New()
	in := func(err error, fn func(tx *Tx)) {
		t.Helper()
		require.ErrorIs(t, s.InTx(context.Background(), func(tx *Tx) error { fn(tx); return err }), err)
	}
	in(nil, func(tx *Tx) {
		for _, tn := range tenants {
			require.NoError(t, tx.CreateTenant(context.Background(), &accounts.Tenant{ID: tn}))
		}
	})
	return s, in
}
