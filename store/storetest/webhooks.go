package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/events"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/webhooks"
)

func newEndpoint(tenantID string, events ...string) *webhooks.Endpoint {
	t := now()
	return &webhooks.Endpoint{
		ID: ids.New("we"), TenantID: tenantID, URL: "https://example.com/hook", Events: events,
		Status: webhooks.EndpointEnabled, Secret: []byte("sealed"), CreatedAt: t, UpdatedAt: t,
	}
}

func newEvent(tenantID, typ string) *events.Event {
	return &events.Event{ID: ids.New("evt"), TenantID: tenantID, Type: typ, Data: json.RawMessage(`{"object":{"id":"x"}}`), CreatedAt: now()}
}

func deliveriesOf[X Tx](t *testing.T, b store.Backend[X], tenantID, eventID string) []webhooks.Delivery {
	var out []webhooks.Delivery
	in(t, b, func(tx X) error {
		var err error
		out, err = tx.ListDeliveries(context.Background(), tenantID, eventID)
		return err
	})
	return out
}

func testWebhookEndpoints[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	tn, other := MakeTenant(t, b), MakeTenant(t, b)
	e := newEndpoint(tn.ID, "charge.succeeded")
	in(t, b, func(tx X) error { return tx.CreateEndpoint(ctx, e) })
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.CreateEndpoint(ctx, e) }), store.ErrConflict)
	orphan := newEndpoint("ten_missing", "*")
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.CreateEndpoint(ctx, orphan) }), store.ErrNotFound)
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { _, err := tx.GetEndpoint(ctx, other.ID, e.ID); return err }), store.ErrNotFound)

	in(t, b, func(tx X) error {
		got, err := tx.LockEndpoint(ctx, tn.ID, e.ID)
		require.NoError(t, err)
		assert.Equal(t, []string{"charge.succeeded"}, got.Events)
		assert.Equal(t, []byte("sealed"), got.Secret)
		assert.Nil(t, got.PrevSecret)
		exp := now().Add(time.Hour)
		got.URL, got.Events, got.PrevSecret, got.PrevSecretExpiresAt = "https://example.org/x", []string{"*"}, []byte("old"), &exp
		return tx.UpdateEndpoint(ctx, got)
	})
	in(t, b, func(tx X) error {
		list, err := tx.ListEndpoints(ctx, tn.ID)
		require.NoError(t, err)
		require.Len(t, list, 1)
		assert.Equal(t, "https://example.org/x", list[0].URL)
		assert.Equal(t, []byte("old"), list[0].PrevSecret)
		require.NotNil(t, list[0].PrevSecretExpiresAt)
		list, err = tx.ListEndpoints(ctx, other.ID)
		require.NoError(t, err)
		assert.Empty(t, list)
		return nil
	})

	// Failure streak and disabling.
	t0 := now()
	in(t, b, func(tx X) error {
		since, err := tx.MarkEndpointFailing(ctx, e.ID, t0)
		require.NoError(t, err)
		assert.True(t, since.Equal(t0))
		since, err = tx.MarkEndpointFailing(ctx, e.ID, t0.Add(time.Hour))
		require.NoError(t, err)
		assert.True(t, since.Equal(t0), "the streak keeps its start")
		require.NoError(t, tx.MarkEndpointHealthy(ctx, e.ID))
		got, err := tx.GetEndpoint(ctx, tn.ID, e.ID)
		require.NoError(t, err)
		assert.Nil(t, got.FailingSince)
		ok, err := tx.DisableEndpoint(ctx, tn.ID, e.ID, webhooks.DisabledGone, t0)
		require.NoError(t, err)
		assert.True(t, ok)
		ok, err = tx.DisableEndpoint(ctx, tn.ID, e.ID, webhooks.DisabledGone, t0)
		require.NoError(t, err)
		assert.False(t, ok, "already disabled")
		got, err = tx.GetEndpoint(ctx, tn.ID, e.ID)
		require.NoError(t, err)
		assert.Equal(t, webhooks.EndpointDisabled, got.Status)
		assert.Equal(t, webhooks.DisabledGone, got.DisabledReason)
		return nil
	})
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.DeleteEndpoint(ctx, other.ID, e.ID) }), store.ErrNotFound)
	in(t, b, func(tx X) error { return tx.DeleteEndpoint(ctx, tn.ID, e.ID) })
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { _, err := tx.GetEndpoint(ctx, tn.ID, e.ID); return err }), store.ErrNotFound)
}

func testWebhookFanOut[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	tn, other := MakeTenant(t, b), MakeTenant(t, b)
	all := newEndpoint(tn.ID, "*")
	charges := newEndpoint(tn.ID, "charge.succeeded", "charge.failed")
	mandates := newEndpoint(tn.ID, "mandate.created")
	off := newEndpoint(tn.ID, "*")
	off.Status = webhooks.EndpointDisabled
	foreign := newEndpoint(other.ID, "*")
	in(t, b, func(tx X) error {
		for _, e := range []*webhooks.Endpoint{all, charges, mandates, off, foreign} {
			if err := tx.CreateEndpoint(ctx, e); err != nil {
				return err
			}
		}
		return nil
	})
	ev := newEvent(tn.ID, "charge.succeeded")
	in(t, b, func(tx X) error { return tx.EnqueueEvent(ctx, ev) })
	ds := deliveriesOf(t, b, tn.ID, ev.ID)
	require.Len(t, ds, 2)
	got := map[string]bool{}
	for _, d := range ds {
		got[d.EndpointID] = true
		assert.Equal(t, webhooks.DeliveryPending, d.Status)
		assert.Equal(t, 0, d.Attempts)
		assert.True(t, d.NextAttemptAt.Equal(ev.CreatedAt), "due at once")
	}
	assert.Equal(t, map[string]bool{all.ID: true, charges.ID: true}, got)

	// A rolled-back transaction leaves neither the event nor its deliveries.
	lost := newEvent(tn.ID, "charge.succeeded")
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error {
		require.NoError(t, tx.EnqueueEvent(ctx, lost))
		return errBoom
	}), errBoom)
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { _, err := tx.GetEvent(ctx, tn.ID, lost.ID); return err }), store.ErrNotFound)
	assert.Empty(t, deliveriesOf(t, b, tn.ID, lost.ID))
	var claimed []webhooks.Claimed
	in(t, b, func(tx X) error {
		var err error
		claimed, err = tx.ClaimDeliveries(ctx, now().Add(time.Second), now().Add(time.Minute), 100, "tok")
		return err
	})
	assert.Len(t, claimed, 2, "only the committed event's deliveries exist")

	// Redelivery rows need an event of the same tenant.
	d := &webhooks.Delivery{ID: ids.New("whd"), TenantID: tn.ID, EventID: "evt_missing", EndpointID: all.ID,
		Status: webhooks.DeliveryPending, NextAttemptAt: now(), CreatedAt: now(), UpdatedAt: now()}
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.CreateDelivery(ctx, d) }), store.ErrNotFound)
	d.EventID = ev.ID
	in(t, b, func(tx X) error { return tx.CreateDelivery(ctx, d) })
	assert.Len(t, deliveriesOf(t, b, tn.ID, ev.ID), 3)

	// Cancelling an endpoint's pending deliveries.
	in(t, b, func(tx X) error {
		n, err := tx.CancelDeliveries(ctx, tn.ID, all.ID, "endpoint deleted", now())
		require.NoError(t, err)
		assert.Equal(t, 2, n, "the fanned-out one (claimed, still pending) and the redelivery")
		return nil
	})
	for _, d := range deliveriesOf(t, b, tn.ID, ev.ID) {
		if d.EndpointID == all.ID {
			assert.Equal(t, webhooks.DeliveryCanceled, d.Status)
			assert.Equal(t, "endpoint deleted", d.LastError)
			assert.NotNil(t, d.CompletedAt)
		}
	}
}

func testWebhookClaims[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	tn := MakeTenant(t, b)
	ep := newEndpoint(tn.ID, "*")
	in(t, b, func(tx X) error { return tx.CreateEndpoint(ctx, ep) })
	const n = 60
	for range n {
		in(t, b, func(tx X) error { return tx.EnqueueEvent(ctx, newEvent(tn.ID, "thing.happened")) })
	}
	t0 := now().Add(time.Second)
	lease := t0.Add(time.Minute)

	// Concurrent claimers never share a delivery.
	var mu sync.Mutex
	seen := map[string]string{}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := fmt.Sprintf("tok%d", w)
			for {
				var got []webhooks.Claimed
				err := b.InTx(ctx, func(tx X) error {
					var err error
					got, err = tx.ClaimDeliveries(ctx, t0, lease, 7, tok)
					return err
				})
				if !assert.NoError(t, err) || len(got) == 0 {
					return
				}
				mu.Lock()
				for _, c := range got {
					if prev, dup := seen[c.Delivery.ID]; dup {
						t.Errorf("delivery %s claimed by %s and %s", c.Delivery.ID, prev, tok)
					}
					seen[c.Delivery.ID] = tok
					assert.Equal(t, 1, c.Delivery.Attempts)
					assert.Equal(t, tok, c.Delivery.ClaimToken)
					assert.True(t, c.Delivery.NextAttemptAt.Equal(lease))
					require.NotNil(t, c.Endpoint)
					assert.Equal(t, ep.ID, c.Endpoint.ID)
					assert.Equal(t, []byte("sealed"), c.Endpoint.Secret)
					assert.Equal(t, "thing.happened", c.Event.Type)
					assert.JSONEq(t, `{"object":{"id":"x"}}`, string(c.Event.Data))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.Len(t, seen, n, "every delivery claimed exactly once")

	claimAt := func(at time.Time, tok string) []webhooks.Claimed {
		var got []webhooks.Claimed
		in(t, b, func(tx X) error {
			var err error
			got, err = tx.ClaimDeliveries(ctx, at, at.Add(time.Minute), 1000, tok)
			return err
		})
		return got
	}
	assert.Empty(t, claimAt(lease.Add(-time.Microsecond), "x"), "leased rows are not due")
	// The lease lapses (the dispatcher died): the rows come due again.
	again := claimAt(lease, "second")
	require.Len(t, again, n)
	assert.Equal(t, 2, again[0].Delivery.Attempts)

	// Completion needs the current lease.
	d := again[0].Delivery
	stale := d
	stale.ClaimToken = "tok0"
	at := lease.Add(time.Second)
	stale.Status, stale.CompletedAt = webhooks.DeliverySucceeded, &at
	in(t, b, func(tx X) error {
		ok, err := tx.CompleteDelivery(ctx, &stale)
		require.NoError(t, err)
		assert.False(t, ok, "a lost lease does not complete")
		d.Status, d.LastStatus, d.LastError, d.UpdatedAt, d.CompletedAt = webhooks.DeliverySucceeded, 204, "", at, &at
		ok, err = tx.CompleteDelivery(ctx, &d)
		require.NoError(t, err)
		assert.True(t, ok)
		ok, err = tx.CompleteDelivery(ctx, &d)
		require.NoError(t, err)
		assert.False(t, ok, "completes once")
		return nil
	})
	// A retry: pending again, due later.
	r := again[1].Delivery
	next := at.Add(5 * time.Second)
	r.Status, r.NextAttemptAt, r.LastStatus, r.LastError, r.UpdatedAt = webhooks.DeliveryPending, next, 500, "HTTP 500", at
	in(t, b, func(tx X) error {
		ok, err := tx.CompleteDelivery(ctx, &r)
		require.NoError(t, err)
		assert.True(t, ok)
		return nil
	})
	far := lease.Add(time.Hour)
	due := claimAt(next, "third")
	require.Len(t, due, 1, "only the retry is due before the other leases lapse")
	assert.Equal(t, r.ID, due[0].Delivery.ID)
	assert.Equal(t, 3, due[0].Delivery.Attempts)
	for _, ds := range [][]webhooks.Delivery{deliveriesOf(t, b, tn.ID, d.EventID)} {
		require.Len(t, ds, 1)
		assert.Equal(t, webhooks.DeliverySucceeded, ds[0].Status)
		assert.Equal(t, 204, ds[0].LastStatus)
		assert.Empty(t, ds[0].ClaimToken)
	}
	assert.Len(t, claimAt(far, "fourth"), n-1, "all but the succeeded one")

	// A deleted endpoint's deliveries are still claimed (to be cancelled), without it.
	in(t, b, func(tx X) error { return tx.DeleteEndpoint(ctx, tn.ID, ep.ID) })
	left := claimAt(far.Add(time.Hour), "fifth")
	require.Len(t, left, n-1)
	assert.Nil(t, left[0].Endpoint)
}

func testWebhookEventsAndAttempts[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	tn, other := MakeTenant(t, b), MakeTenant(t, b)
	var evs []*events.Event
	for i := range 7 {
		typ := "charge.succeeded"
		if i%2 == 1 {
			typ = "mandate.created"
		}
		e := newEvent(tn.ID, typ)
		evs = append(evs, e)
		in(t, b, func(tx X) error { return tx.EnqueueEvent(ctx, e) })
	}
	in(t, b, func(tx X) error { return tx.EnqueueEvent(ctx, newEvent(other.ID, "charge.succeeded")) })
	list := func(f webhooks.EventFilter) []string {
		var out []events.Event
		in(t, b, func(tx X) error {
			var err error
			out, err = tx.ListEvents(ctx, f)
			return err
		})
		var idsOut []string
		for _, e := range out {
			idsOut = append(idsOut, e.ID)
		}
		return idsOut
	}
	assert.Equal(t, []string{evs[6].ID, evs[5].ID, evs[4].ID}, list(webhooks.EventFilter{TenantID: tn.ID, Limit: 3}), "newest first")
	assert.Equal(t, []string{evs[3].ID, evs[2].ID, evs[1].ID}, list(webhooks.EventFilter{TenantID: tn.ID, Limit: 3, StartingAfter: evs[4].ID}))
	assert.Equal(t, []string{evs[0].ID}, list(webhooks.EventFilter{TenantID: tn.ID, Limit: 3, StartingAfter: evs[1].ID}))
	assert.Equal(t, []string{evs[5].ID, evs[3].ID, evs[1].ID}, list(webhooks.EventFilter{TenantID: tn.ID, Type: "mandate.created"}))
	assert.Equal(t, []string{evs[6].ID, evs[4].ID}, list(webhooks.EventFilter{TenantID: tn.ID, Type: "charge.*", Limit: 2}))
	assert.Empty(t, list(webhooks.EventFilter{TenantID: tn.ID, Type: "charge"}))
	assert.Len(t, list(webhooks.EventFilter{TenantID: other.ID}), 1)
	in(t, b, func(tx X) error {
		got, err := tx.GetEvent(ctx, tn.ID, evs[2].ID)
		require.NoError(t, err)
		assert.Equal(t, "charge.succeeded", got.Type)
		assert.JSONEq(t, `{"object":{"id":"x"}}`, string(got.Data))
		assert.True(t, got.CreatedAt.Equal(evs[2].CreatedAt))
		_, err = tx.GetEvent(ctx, other.ID, evs[2].ID)
		require.ErrorIs(t, err, store.ErrNotFound)
		return nil
	})

	var atts []*webhooks.Attempt
	for i := range 5 {
		ep := "we_a"
		if i%2 == 1 {
			ep = "we_b"
		}
		next := now().Add(time.Minute)
		a := &webhooks.Attempt{ID: ids.New("wha"), TenantID: tn.ID, DeliveryID: "whd_1", EventID: evs[i%2].ID,
			EndpointID: ep, Attempt: i + 1, URL: "https://example.com", StatusCode: 500, LatencyMS: 12,
			Error: "HTTP 500", Outcome: "retry", NextAttemptAt: &next, CreatedAt: now()}
		atts = append(atts, a)
		in(t, b, func(tx X) error { return tx.AppendAttempt(ctx, a) })
	}
	listA := func(f webhooks.AttemptFilter) []webhooks.Attempt {
		var out []webhooks.Attempt
		in(t, b, func(tx X) error {
			var err error
			out, err = tx.ListAttempts(ctx, f)
			return err
		})
		return out
	}
	got := listA(webhooks.AttemptFilter{TenantID: tn.ID, EndpointID: "we_a", Limit: 2})
	require.Len(t, got, 2)
	assert.Equal(t, atts[4].ID, got[0].ID)
	assert.Equal(t, atts[2].ID, got[1].ID)
	assert.Equal(t, 500, got[0].StatusCode)
	assert.Equal(t, int64(12), got[0].LatencyMS)
	assert.Equal(t, "retry", got[0].Outcome)
	require.NotNil(t, got[0].NextAttemptAt)
	got = listA(webhooks.AttemptFilter{TenantID: tn.ID, EndpointID: "we_a", StartingAfter: atts[2].ID})
	require.Len(t, got, 1)
	assert.Equal(t, atts[0].ID, got[0].ID)
	assert.Len(t, listA(webhooks.AttemptFilter{TenantID: tn.ID, EventID: evs[1].ID}), 2)
	assert.Empty(t, listA(webhooks.AttemptFilter{TenantID: other.ID}))
}
