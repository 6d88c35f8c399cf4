package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/internal/page"
	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/vault"
)

func newPayments[X Tx](t *testing.T, b store.Backend[X], sim *payments.Simulated) *payments.Service {
	v := newVault(b, keyring(t, 0, 0, 1), sim)
	return payments.NewService(store.Bind(b, func(x X) payments.Tx { return x }), v, sim, payments.Config{
		MaxAmount: 100_000_000, Timeout: 500 * time.Millisecond, Retries: 2, ResolveAfter: time.Millisecond,
	}, nil)
}

// token tokenizes a test card through the payment core's vault.
func token(t *testing.T, s *payments.Service, tenantID, number string) string {
	t.Helper()
	v := s.Vault()
	tok, err := v.Tokenize(context.Background(), tenantID, false, testCard(number))
	require.NoError(t, err)
	return tok.ID
}

func testCharges[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	sim := newSimulated(b, payments.SimulatedConfig{})
	s := newPayments(t, b, sim)
	tn := MakeTenant(t, b)
	o := payments.Owner{TenantID: tn.ID}

	// Every test card of the simulated acquirer.
	for number, want := range map[string]string{
		"4242424242424242": "", "5555555555554444": "", "378282246310005": "", "6011111111111117": "",
		"4000000000000002": "generic_decline", "4000000000009995": "insufficient_funds",
		"4000000000009987": "lost_card", "4000000000009979": "stolen_card", "4000000000000069": "expired_card",
		"4000000000000127": "incorrect_cvc", "4000000000000119": "processing_error", "4100000000000019": "fraudulent",
	} {
		c, err := s.Create(ctx, payments.ChargeParams{Owner: o, Amount: 1000, Currency: "usd", PaymentMethod: token(t, s, tn.ID, number), Capture: true})
		if want == "" {
			require.NoError(t, err, number)
			assert.Equal(t, payments.StatusSucceeded, c.Status, number)
			assert.Equal(t, int64(1000), c.AmountCaptured)
			assert.True(t, c.Paid)
			continue
		}
		var ce *payments.CardError
		require.ErrorAs(t, err, &ce, number)
		assert.Equal(t, payments.StatusFailed, c.Status, number)
		assert.Equal(t, want, ce.DeclineCode, number)
		assert.Equal(t, want, c.DeclineCode, number)
		assert.Equal(t, payments.ErrorCode(want), c.FailureCode, number)
		assert.Zero(t, c.AmountCaptured)
	}

	// Validation: limits, currency, token of another tenant.
	tok := token(t, s, tn.ID, "4242424242424242")
	for _, p := range []payments.ChargeParams{
		{Owner: o, Amount: 0, Currency: "usd", PaymentMethod: tok},
		{Owner: o, Amount: 100_000_001, Currency: "usd", PaymentMethod: tok},
		{Owner: o, Amount: 100, Currency: "xyz", PaymentMethod: tok},
		{Owner: o, Amount: 100, Currency: "usd", PaymentMethod: "tok_missing"},
		{Owner: payments.Owner{TenantID: tn.ID, Livemode: true}, Amount: 100, Currency: "usd", PaymentMethod: tok},
		{Owner: o, Amount: 100, Currency: "usd", PaymentMethod: tok, Description: "card 4242 4242 4242 4242"},
	} {
		_, err := s.Create(ctx, p)
		var pe *apierr.Invalid
		require.ErrorAs(t, err, &pe, "%+v", p)
	}

	// Authorize, partial capture, then refunds up to the captured amount.
	c, err := s.Create(ctx, payments.ChargeParams{Owner: o, Amount: 5000, Currency: "jpy", PaymentMethod: tok})
	require.NoError(t, err)
	assert.Equal(t, payments.StatusRequiresCapture, c.Status)
	assert.Equal(t, "jpy", c.Currency)
	over := int64(5001)
	_, err = s.Capture(ctx, o, c.ID, &over)
	var pe *apierr.Invalid
	require.ErrorAs(t, err, &pe)
	part := int64(3000)
	c, err = s.Capture(ctx, o, c.ID, &part)
	require.NoError(t, err)
	assert.Equal(t, payments.StatusSucceeded, c.Status)
	assert.Equal(t, int64(3000), c.AmountCaptured)
	_, err = s.Capture(ctx, o, c.ID, nil)
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, apierr.Code("charge_already_captured"), pe.Code)
	_, err = s.Void(ctx, o, c.ID)
	require.ErrorAs(t, err, &pe, "a captured charge cannot be voided")

	amt := int64(1000)
	r, err := s.Refund(ctx, payments.RefundParams{Owner: o, ChargeID: c.ID, Amount: &amt})
	require.NoError(t, err)
	assert.Equal(t, payments.RefundSucceeded, r.Status)
	big := int64(2001)
	_, err = s.Refund(ctx, payments.RefundParams{Owner: o, ChargeID: c.ID, Amount: &big})
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, apierr.Code("amount_too_large"), pe.Code)
	r, err = s.Refund(ctx, payments.RefundParams{Owner: o, ChargeID: c.ID}) // the rest
	require.NoError(t, err)
	assert.Equal(t, int64(2000), r.Amount)
	c, err = s.Get(ctx, o, c.ID)
	require.NoError(t, err)
	assert.Equal(t, int64(3000), c.AmountRefunded)
	assert.True(t, c.Refunded)
	_, err = s.Refund(ctx, payments.RefundParams{Owner: o, ChargeID: c.ID})
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, apierr.Code("charge_already_refunded"), pe.Code)

	// Void an authorization; then it can neither be captured nor refunded.
	c, err = s.Create(ctx, payments.ChargeParams{Owner: o, Amount: 700, Currency: "bhd", PaymentMethod: tok})
	require.NoError(t, err)
	c, err = s.Void(ctx, o, c.ID)
	require.NoError(t, err)
	assert.Equal(t, payments.StatusCanceled, c.Status)
	_, err = s.Capture(ctx, o, c.ID, nil)
	require.ErrorAs(t, err, &pe)
	_, err = s.Refund(ctx, payments.RefundParams{Owner: o, ChargeID: c.ID})
	require.ErrorAs(t, err, &pe)

	// Concurrent refunds never exceed the captured amount.
	c, err = s.Create(ctx, payments.ChargeParams{Owner: o, Amount: 1000, Currency: "usd", PaymentMethod: tok, Capture: true})
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	refunded := int64(0)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := int64(300)
			r, err := s.Refund(ctx, payments.RefundParams{Owner: o, ChargeID: c.ID, Amount: &a})
			if err == nil && r.Status == payments.RefundSucceeded {
				mu.Lock()
				refunded += r.Amount
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, int64(900), refunded)
	c, err = s.Get(ctx, o, c.ID)
	require.NoError(t, err)
	assert.Equal(t, int64(900), c.AmountRefunded)

	// Pagination, newest first, with a cursor.
	var seen []string
	after := ""
	for {
		page, more, err := s.List(ctx, o, page.Page{Limit: 5, StartingAfter: after})
		require.NoError(t, err)
		for _, ch := range page {
			seen = append(seen, ch.ID)
		}
		if !more {
			break
		}
		after = page[len(page)-1].ID
	}
	assert.Len(t, seen, 15)
	assert.Equal(t, c.ID, seen[0])
	_, _, err = s.List(ctx, o, page.Page{Limit: 5, StartingAfter: "ch_missing"})
	require.ErrorAs(t, err, &pe)
	other, _, err := s.List(ctx, payments.Owner{TenantID: MakeTenant(t, b).ID}, page.Page{Limit: 10})
	require.NoError(t, err)
	assert.Empty(t, other)

	// The steps run in a transaction the caller owns, next to its own
	// writes: an error after Open leaves nothing behind.
	boom := errors.New("over budget")
	ck, err := s.Check(payments.ChargeParams{Owner: o, Amount: 6000, Currency: "usd", PaymentMethod: tok, MandateID: "mdt_1"})
	require.NoError(t, err)
	err = b.InTx(ctx, func(tx X) error {
		if _, _, err := s.Open(ctx, tx, ck); err != nil {
			return err
		}
		_, err := tx.GetTenant(ctx, tn.ID) // the caller's own repositories
		require.NoError(t, err)
		return boom
	})
	require.ErrorIs(t, err, boom)
	ck, err = s.Check(payments.ChargeParams{Owner: o, Amount: 100, Currency: "usd", PaymentMethod: tok,
		MandateID: "mdt_1", AgentID: "agt_1", MerchantID: "acct_1", Purchase: &payments.Purchase{Description: "2 books",
			LineItems: []payments.LineItem{{Name: "book", Quantity: 2, UnitAmount: 50}}, OrderURL: "https://shop.example/o/1"}})
	require.NoError(t, err)
	var mc *payments.Charge
	var card *vault.Card
	in(t, b, func(tx X) error {
		var err error
		mc, card, err = s.Open(ctx, tx, ck)
		return err
	})
	ans := s.Authorize(ctx, mc, card)
	in(t, b, func(tx X) error {
		c, changed, err := s.Record(ctx, tx, tn.ID, mc.ID, ans)
		require.NoError(t, err)
		assert.True(t, changed)
		assert.Equal(t, payments.StatusRequiresCapture, c.Status)
		_, changed, err = s.Record(ctx, tx, tn.ID, mc.ID, ans)
		assert.False(t, changed, "an answer is recorded once")
		return err
	})
	_, err = s.Capture(ctx, o, mc.ID, nil)
	require.NoError(t, err)
	got, err := s.Get(ctx, o, mc.ID)
	require.NoError(t, err)
	assert.Equal(t, "mdt_1", got.MandateID)
	assert.Equal(t, "agt_1", got.AgentID)
	assert.Equal(t, "acct_1", got.MerchantID)
	require.NotNil(t, got.Purchase)
	assert.Equal(t, int64(2), got.Purchase.LineItems[0].Quantity)
	page, _, err := s.List(ctx, o, page.Page{Limit: 100})
	require.NoError(t, err)
	assert.Len(t, page, 16, "the refused charge left no row")
}

func testChargeTimeouts[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	sim := newSimulated(b, payments.SimulatedConfig{})
	s := newPayments(t, b, sim)
	tn := MakeTenant(t, b)
	o := payments.Owner{TenantID: tn.ID}
	tok := token(t, s, tn.ID, "4242424242424242")

	// One lost answer: the retry with the same reference gets the first
	// outcome; the acquirer authorized once.
	sim.InjectFault(payments.OpAuthorize, payments.FaultTimeout, 1)
	c, err := s.Create(ctx, payments.ChargeParams{Owner: o, Amount: 100, Currency: "usd", PaymentMethod: tok, Capture: true})
	require.NoError(t, err)
	assert.Equal(t, payments.StatusSucceeded, c.Status)
	auth, ok := sim.Authorization(c.ID)
	require.True(t, ok)
	assert.Equal(t, int64(100), auth.Captured)

	// Every attempt lost: failed with processing_error, and the
	// authorization the acquirer made is reversed.
	sim.InjectFault(payments.OpAuthorize, payments.FaultTimeout, 3)
	c, err = s.Create(ctx, payments.ChargeParams{Owner: o, Amount: 200, Currency: "usd", PaymentMethod: tok, Capture: true})
	var ce *payments.CardError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, payments.StatusFailed, c.Status)
	assert.Equal(t, "processing_error", c.FailureCode)
	assert.False(t, c.ReversalPending)
	auth, _ = sim.Authorization(c.ID)
	assert.True(t, auth.Voided)
	assert.Zero(t, auth.Captured)

	// The reversal fails too: kept pending, and the resolver sends it.
	sim.InjectFault(payments.OpAuthorize, payments.FaultTimeout, 3)
	sim.InjectFault(payments.OpVoid, payments.FaultError, 3)
	c, err = s.Create(ctx, payments.ChargeParams{Owner: o, Amount: 300, Currency: "usd", PaymentMethod: tok, Capture: true})
	require.ErrorAs(t, err, &ce)
	assert.True(t, c.ReversalPending)
	time.Sleep(5 * time.Millisecond)
	n, err := s.Resolve(ctx, 10)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	auth, _ = sim.Authorization(c.ID)
	assert.True(t, auth.Voided)
	n, err = s.Resolve(ctx, 10)
	require.NoError(t, err)
	assert.Zero(t, n, "resolved")

	// A charge left pending by a node that died mid-call is completed by
	// the resolver with the same reference.
	pending := &payments.Charge{ID: "ch_orphan" + tn.ID[4:12], TenantID: tn.ID, Status: payments.StatusPending, Amount: 400,
		Currency: "usd", CaptureNow: true, PaymentMethod: tok, Created: now(), Updated: now()}
	in(t, b, func(tx X) error { return tx.CreateCharge(ctx, pending) })
	time.Sleep(5 * time.Millisecond)
	_, err = s.Resolve(ctx, 10)
	require.NoError(t, err)
	c, err = s.Get(ctx, o, pending.ID)
	require.NoError(t, err)
	assert.Equal(t, payments.StatusSucceeded, c.Status)

	// A refund whose answers are all lost stays pending; the resolver
	// completes it with the same reference, refunding once.
	c, err = s.Create(ctx, payments.ChargeParams{Owner: o, Amount: 500, Currency: "usd", PaymentMethod: tok, Capture: true})
	require.NoError(t, err)
	sim.InjectFault(payments.OpRefund, payments.FaultTimeout, 3)
	r, err := s.Refund(ctx, payments.RefundParams{Owner: o, ChargeID: c.ID})
	require.NoError(t, err)
	assert.Equal(t, payments.RefundPending, r.Status)
	time.Sleep(5 * time.Millisecond)
	_, err = s.Resolve(ctx, 10)
	require.NoError(t, err)
	in(t, b, func(tx X) error {
		got, err := tx.GetRefund(ctx, tn.ID, r.ID)
		require.NoError(t, err)
		assert.Equal(t, payments.RefundSucceeded, got.Status)
		return nil
	})
	auth, _ = sim.Authorization(c.ID)
	assert.Equal(t, int64(500), auth.Refunded)

	// A processor that refuses every call (nothing happened) fails the
	// charge without a reversal.
	sim.InjectFault(payments.OpAuthorize, payments.FaultError, 3)
	c, err = s.Create(ctx, payments.ChargeParams{Owner: o, Amount: 600, Currency: "usd", PaymentMethod: tok})
	require.ErrorAs(t, err, &ce)
	assert.False(t, c.ReversalPending)
	assert.Equal(t, 3, c.Attempts)
}

// testUpdateChargeWritesItsState: UpdateCharge writes a charge's state
// (status, amounts captured and refunded, codes, attempts, claim, times of
// update, capture and cancellation) and nothing it was made with: an
// amount, card, description, metadata or creation time in the update is
// ignored, the checks hold against the stored amount, and a rolled-back
// update leaves the charge as it was.
func testUpdateChargeWritesItsState[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	sim := newSimulated(b, payments.SimulatedConfig{})
	s := newPayments(t, b, sim)
	tn := MakeTenant(t, b)
	o := payments.Owner{TenantID: tn.ID}
	c, err := s.Create(ctx, payments.ChargeParams{Owner: o, Amount: 1000, Currency: "usd",
		PaymentMethod: token(t, s, tn.ID, "4242424242424242"), Description: "a book", Metadata: map[string]string{"order": "1"}})
	require.NoError(t, err)
	require.Equal(t, payments.StatusRequiresCapture, c.Status)
	other := token(t, s, tn.ID, "5555555555554444")
	get := func() *payments.Charge {
		var got *payments.Charge
		require.NoError(t, b.InTx(ctx, func(tx X) error {
			var err error
			got, err = tx.GetCharge(ctx, tn.ID, c.ID)
			return err
		}))
		return got
	}
	before := get()

	now := time.Now().UTC().Truncate(time.Microsecond)
	upd := *before
	upd.Status, upd.AmountCaptured, upd.AuthCode, upd.Attempts = payments.StatusSucceeded, 800, "A1", 2
	upd.Updated, upd.CapturedAt = now, &now
	upd.Amount, upd.PaymentMethod, upd.Description = 5000, other, "something else"
	upd.Metadata = map[string]string{"order": "2"}
	upd.Created = now.Add(time.Hour)

	// Rolled back: nothing changes.
	rollback := errors.New("roll back")
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error {
		u := upd
		require.NoError(t, tx.UpdateCharge(ctx, &u, payments.StatusRequiresCapture))
		return rollback
	}), rollback)
	assert.Equal(t, before.Status, get().Status)

	// Capturing more than the stored amount is refused, whatever the update says.
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error {
		u := upd
		u.AmountCaptured = 1500
		return tx.UpdateCharge(ctx, &u, payments.StatusRequiresCapture)
	}), store.ErrConflict)

	require.NoError(t, b.InTx(ctx, func(tx X) error {
		u := upd
		return tx.UpdateCharge(ctx, &u, payments.StatusRequiresCapture)
	}))
	got := get()
	assert.Equal(t, payments.StatusSucceeded, got.Status)
	assert.Equal(t, int64(800), got.AmountCaptured)
	assert.Equal(t, "A1", got.AuthCode)
	assert.Equal(t, 2, got.Attempts)
	require.NotNil(t, got.CapturedAt)
	assert.True(t, now.Equal(*got.CapturedAt))
	assert.Equal(t, before.Amount, got.Amount, "the amount the charge was made with")
	assert.Equal(t, before.PaymentMethod, got.PaymentMethod, "the card the charge was made with")
	assert.Equal(t, before.Description, got.Description)
	assert.Equal(t, before.Metadata, got.Metadata)
	assert.True(t, before.Created.Equal(got.Created), "the creation time")
}
