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

// usersStore is a store with five users of two tenants, usr_1, usr_10
// (whose id starts usr_1's) and usr_2 of ten_a, usr_3 and usr_30 of
// ten_b: the users, and the tenant of users[u].
func usersStore(t *testing.T) (*Store, func(err error, fn func(tx *Tx)), []string, func(u int) string) {
	s, in := tenantStore(t, "ten_a", "ten_b")
	users := []string{"usr_1", "usr_10", "usr_2", "usr_3", "usr_30"}
	tenantOf := func(u int) string { return []string{"ten_a", "ten_a", "ten_a", "ten_b", "ten_b"}[u] }
	in(nil, func(tx *Tx) {
		for u, id := range users {
			require.NoError(t, tx.CreateUser(context.Background(), &accounts.User{ID: id, TenantID: tenantOf(u),
				Email: id + "@example.com"}))
		}
	})
	return s, in, users, tenantOf
}
