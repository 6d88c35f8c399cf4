package memory

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/vault"
)

// TestChargeMovedOffATokenFindsItsLastUseAgain: putCharge, the memory
// store's one writer of charges, keeps a token's last use for any charge
// it is given, one moved to another token or time included. No store
// method moves a charge (UpdateCharge keeps the payment method and the
// creation time, as PostgreSQL's does); the writer does not rely on that.
// noteUse finds the token's last use again from the charges: the newest
// left, or none, and the shred index follows. Each move is also rolled
// back once, which leaves both as they were.
func TestChargeMovedOffATokenFindsItsLastUseAgain(t *testing.T) {
	ctx := context.Background()
	s, in := tenantStore(t, "ten_a")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
	in(nil, func(tx *Tx) {
		_, err := tx.EnsureTenantKey(ctx, &vault.TenantKey{ID: "key_a", TenantID: "ten_a", KEKVersion: 1,
			Wrapped: []byte("w"), CreatedAt: t0})
		require.NoError(t, err)
		for _, id := range []string{"tok_a", "tok_b"} {
			require.NoError(t, tx.CreateToken(ctx, &vault.Token{ID: id, TenantID: "ten_a", TenantKeyID: "key_a",
				WrappedDEK: []byte("d"), Ciphertext: []byte("c"), CreatedAt: t0}))
		}
		for id, sec := range map[string]int{"ch_1": 10, "ch_2": 20} {
			require.NoError(t, tx.CreateCharge(ctx, &payments.Charge{ID: id, TenantID: "ten_a",
				Status: payments.StatusSucceeded, Amount: 1, AmountCaptured: 1, Currency: "eur", PaymentMethod: "tok_a",
				Created: at(sec), Updated: at(sec)}))
		}
	})
	// state is each token's last use (-1: none) and its due stamp in the
	// shred index, in seconds after t0.
	state := func() map[string][2]int64 {
		out := map[string][2]int64{}
		for _, id := range []string{"tok_a", "tok_b"} {
			last := int64(-1)
			if st, ok := s.d.payments.lastUse[useKey{"ten_a", id}]; ok {
				last = st.sec - t0.Unix()
			}
			out[id] = [2]int64{last, -1}
		}
		s.d.vault.shreddable.walk(func(k shredKey) bool {
			out[k.id] = [2]int64{out[k.id][0], k.due.sec - t0.Unix()}
			return true
		})
		return out
	}
	move := func(id, token string, sec int) {
		for _, err := range []error{errRolledBack, nil} {
			was := state()
			in(err, func(tx *Tx) {
				c, gerr := tx.GetCharge(ctx, "ten_a", id)
				require.NoError(t, gerr)
				c.PaymentMethod, c.Created = token, at(sec)
				tx.putCharge(cloneCharge(*c))
			})
			if err != nil {
				require.Equal(t, was, state(), "a rolled back move of %s", id)
			}
		}
	}
	require.Equal(t, map[string][2]int64{"tok_a": {20, 20}, "tok_b": {-1, 0}}, state())
	move("ch_2", "tok_b", 20) // tok_a's latest charge moves to tok_b
	require.Equal(t, map[string][2]int64{"tok_a": {10, 10}, "tok_b": {20, 20}}, state())
	move("ch_1", "tok_a", 5) // tok_a's only charge made earlier
	require.Equal(t, map[string][2]int64{"tok_a": {5, 5}, "tok_b": {20, 20}}, state())
	move("ch_1", "tok_b", 5) // tok_a left without a charge
	require.Equal(t, map[string][2]int64{"tok_a": {-1, 0}, "tok_b": {20, 20}}, state())
}
