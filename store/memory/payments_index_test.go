package memory

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/store"
)

// paymentsFixture is a store with two tenants and helpers that create and
// update charges and refunds in transactions that commit or roll back.
type paymentsFixture struct {
	t   *testing.T
	s   *Store
	ctx context.Context
	t0  time.Time
	n   int
}

var errRolledBack = errors.New("rolled back")

func newPaymentsFixture(t *testing.T) *paymentsFixture {
	f := &paymentsFixture{t: t, s: New(), ctx: context.Background(), t0: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	f.tx(nil, func(tx *Tx) {
		for _, id := range []string{"ten_a", "ten_b"} {
			require.NoError(t, tx.CreateTenant(f.ctx, &accounts.Tenant{ID: id}))
		}
	})
	return f
}

// tx runs fn in a transaction that fails with err (nil commits).
func (f *paymentsFixture) tx(err error, fn func(tx *Tx)) {
	f.t.Helper()
	require.ErrorIs(f.t, f.s.InTx(f.ctx, func(tx *Tx) error { fn(tx); return err }), err)
}

// at is the i-th instant of the fixture's clock; a few instants repeat so
// that ties of the update time are exercised.
func (f *paymentsFixture) at(i int) time.Time { return f.t0.Add(time.Duration(i/3) * time.Second) }

// create adds n charges, each with a refund, of alternating tenants,
// merchants and modes; every third charge is pending, every fifth has a
// reversal pending and every other refund is pending.
func (f *paymentsFixture) create(n int, err error) {
	if err != nil {
		// The ids of a rolled back create are used again.
		defer func(n int) { f.n = n }(f.n)
	}
	f.tx(err, func(tx *Tx) {
		for range n {
			i := f.n
			f.n++
			c := &payments.Charge{ID: fmt.Sprintf("ch_%04d", i), TenantID: []string{"ten_a", "ten_b"}[i%2],
				Livemode: i%4 == 0, MerchantID: []string{"", "mer_1", "mer_2"}[i%3], Status: payments.StatusSucceeded,
				Amount: 100, AmountCaptured: 100, Currency: "eur", PaymentMethod: "tok_1", Description: "d",
				Created: f.at(i), Updated: f.at(i)}
			switch {
			case i%3 == 0:
				c.Status, c.AmountCaptured = payments.StatusPending, 0
			case i%5 == 0:
				c.Status, c.AmountCaptured, c.ReversalPending = payments.StatusFailed, 0, true
			}
			require.NoError(f.t, tx.CreateCharge(f.ctx, c))
			r := &payments.Refund{ID: fmt.Sprintf("re_%04d", i), TenantID: c.TenantID, ChargeID: c.ID, Amount: 1,
				Currency: "eur", Status: payments.RefundSucceeded, Created: f.at(i), Updated: f.at(i)}
			if i%2 == 0 {
				r.Status = payments.RefundPending
			}
			require.NoError(f.t, tx.CreateRefund(f.ctx, r))
		}
	})
}

// flip moves every k-th charge and refund into or out of its pending state.
func (f *paymentsFixture) flip(k int, err error) {
	f.tx(err, func(tx *Tx) {
		p := tx.d.payments
		for i := 0; i < f.n; i += k {
			c := cloneCharge(p.charges[fmt.Sprintf("ch_%04d", i)])
			from := c.Status
			c.Updated = f.at(f.n + i)
			switch {
			case c.Status == payments.StatusPending:
				c.Status, c.AuthCode = payments.StatusRequiresCapture, "ok"
			case c.ReversalPending:
				c.ReversalPending = false
			case c.Status == payments.StatusSucceeded:
				c.ReversalPending = true
			default:
				c.Status, c.AmountCaptured = payments.StatusSucceeded, c.Amount
			}
			require.NoError(f.t, tx.UpdateCharge(f.ctx, &c, from))
			r := p.refunds[fmt.Sprintf("re_%04d", i)]
			from = r.Status
			r.Status, r.Updated = payments.RefundPending, f.at(f.n+i)
			if from == payments.RefundPending {
				r.Status = payments.RefundFailed
			}
			require.NoError(f.t, tx.UpdateRefund(f.ctx, &r, from))
		}
	})
}

// TestResolverListsMatchTheTable reads the charges and refunds left to
// resolve through the store's work lists after creates, updates into and
// out of pending and retention's scrub, each also rolled back once, and
// compares them with the tables themselves filtered and sorted.
func TestResolverListsMatchTheTable(t *testing.T) {
	f := newPaymentsFixture(t)
	f.create(60, nil)
	f.create(20, errRolledBack)
	f.create(30, nil)
	f.flip(4, nil)
	f.flip(7, errRolledBack)
	f.flip(5, nil)
	scrub := func(err error) {
		f.tx(err, func(tx *Tx) {
			n, serr := tx.ScrubCharges(f.ctx, f.at(1000), 1000)
			require.NoError(t, serr)
			require.Positive(t, n)
		})
	}
	scrub(errRolledBack)
	scrub(nil)
	f.create(10, nil)

	p := f.s.d.payments
	require.Equal(t, 100, len(p.charges))
	var charges []payments.Charge
	var refunds []payments.Refund
	for _, c := range p.charges {
		if c.Status == payments.StatusPending || c.ReversalPending {
			charges = append(charges, c)
		}
	}
	for _, r := range p.refunds {
		if r.Status == payments.RefundPending {
			refunds = append(refunds, r)
		}
	}
	slices.SortFunc(charges, func(a, b payments.Charge) int {
		return cmp.Or(a.Updated.Compare(b.Updated), strings.Compare(a.ID, b.ID))
	})
	slices.SortFunc(refunds, func(a, b payments.Refund) int {
		return cmp.Or(a.Updated.Compare(b.Updated), strings.Compare(a.ID, b.ID))
	})
	require.Len(t, p.unresolved, len(charges), "the list holds exactly the unresolved charges")
	require.Len(t, p.pendingRefunds, len(refunds), "the list holds exactly the pending refunds")

	f.tx(nil, func(tx *Tx) {
		for _, before := range []int{0, 1, 10, 30, 100, 1000} {
			for _, limit := range []int{0, 1, 5, 1000} {
				got, err := tx.ChargesToResolve(f.ctx, f.at(before), limit)
				require.NoError(t, err)
				var want []payments.Charge
				for _, c := range charges {
					if len(want) < limit && c.Updated.Before(f.at(before)) {
						want = append(want, cloneCharge(c))
					}
				}
				require.Equal(t, want, got, "charges before %d, limit %d", before, limit)

				gotR, err := tx.RefundsToResolve(f.ctx, f.at(before), limit)
				require.NoError(t, err)
				var wantR []payments.Refund
				for _, r := range refunds {
					if len(wantR) < limit && r.Updated.Before(f.at(before)) {
						wantR = append(wantR, r)
					}
				}
				require.Equal(t, wantR, gotR, "refunds before %d, limit %d", before, limit)
			}
		}
	})
}

// move changes the merchant and the mode of every k-th charge, as only the
// memory store lets an update do: the charge must leave the old pages and
// join the new ones where its creation puts it.
func (f *paymentsFixture) move(k int, err error) {
	f.tx(err, func(tx *Tx) {
		for i := 0; i < f.n; i += k {
			c := cloneCharge(tx.d.payments.charges[fmt.Sprintf("ch_%04d", i)])
			c.MerchantID = map[string]string{"": "mer_1", "mer_1": "mer_2", "mer_2": ""}[c.MerchantID]
			c.Livemode = !c.Livemode
			// UpdateCharge keeps what a charge was made with (merchant,
			// mode), as PostgreSQL's does; putCharge, the store's one
			// writer of charges, keeps its lists for any charge.
			tx.putCharge(c)
		}
	})
}

// TestChargePagesMatchTheTable reads pages of charges, of each tenant and
// each merchant in each mode, through the store's lists after creates,
// updates of status, moves of merchant and mode and retention's scrub, each also
// rolled back once, and compares every page with the charges themselves
// filtered and sorted newest first.
func TestChargePagesMatchTheTable(t *testing.T) {
	f := newPaymentsFixture(t)
	f.create(60, nil)
	f.create(20, errRolledBack)
	f.create(30, nil)
	f.flip(4, nil)
	f.flip(7, errRolledBack)
	f.move(3, nil)
	f.move(4, errRolledBack)
	f.move(6, nil) // half of those moved by 3 move on, every other one back
	f.move(6, nil)
	f.move(6, nil)
	f.tx(errRolledBack, func(tx *Tx) {
		_, err := tx.ScrubCharges(f.ctx, f.at(1000), 1000)
		require.NoError(t, err)
	})
	f.tx(nil, func(tx *Tx) {
		_, err := tx.ScrubCharges(f.ctx, f.at(1000), 1000)
		require.NoError(t, err)
	})
	f.create(10, nil)

	p := f.s.d.payments
	require.Equal(t, 100, len(p.charges))
	var all []payments.Charge
	for _, c := range p.charges {
		all = append(all, c)
	}
	slices.SortFunc(all, func(a, b payments.Charge) int { return cmp.Compare(p.chargeSeq[b.ID], p.chargeSeq[a.ID]) })
	for k, l := range p.owned {
		require.Len(t, slices.Compact(slices.Clone(l)), len(l), "%s lists a charge twice", k)
	}

	type owner struct {
		tenant, merchant string
		live             bool
	}
	var owners []owner
	for _, live := range []bool{false, true} {
		owners = append(owners, owner{"ten_a", "", live}, owner{"ten_b", "", live},
			owner{"", "mer_1", live}, owner{"", "mer_2", live}, owner{"", "mer_none", live})
	}
	f.tx(nil, func(tx *Tx) {
		for _, o := range owners {
			mine := func(c payments.Charge) bool {
				if o.merchant != "" {
					return c.MerchantID == o.merchant && c.Livemode == o.live
				}
				return c.TenantID == o.tenant && c.Livemode == o.live
			}
			var theirs []payments.Charge
			for _, c := range all {
				if mine(c) {
					theirs = append(theirs, cloneCharge(c))
				}
			}
			if o.merchant != "mer_none" {
				require.NotEmpty(t, theirs, "%+v", o)
			}
			for _, limit := range []int{1, 7, 1000} {
				// Walk every page from the newest, as a client does.
				var walked []payments.Charge
				after := ""
				for {
					page, err := tx.ListCharges(f.ctx, o.tenant, payments.ListFilter{Livemode: o.live, MerchantID: o.merchant,
						Limit: limit, StartingAfter: after})
					require.NoError(t, err)
					if len(page) == 0 {
						require.Nil(t, page)
						break
					}
					walked = append(walked, page...)
					after = page[len(page)-1].ID
				}
				require.Equal(t, theirs, walked, "%+v, limit %d", o, limit)
			}
			for _, c := range all {
				_, err := tx.ListCharges(f.ctx, o.tenant, payments.ListFilter{Livemode: o.live, MerchantID: o.merchant,
					Limit: 3, StartingAfter: c.ID})
				if !mine(c) {
					require.ErrorIs(t, err, store.ErrNotFound, "%+v after %s", o, c.ID)
				}
			}
		}
	})
}
