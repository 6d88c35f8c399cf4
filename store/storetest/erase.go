package storetest

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/events"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/store"
)

// testForgetEventIPs: an erasure removes the "ip" of the events of the
// tenant whose data's "object" holds one and names the person, as a
// string, as its "user"; it changes nothing else of them, and no other
// event: not one whose user is a number, a boolean or null (no person's
// id is one), nor one that names the person outside its object, nor one
// without an address at the object's top, nor another person's (whose id
// the person's starts) or another tenant's. A rollback undoes it; a
// second erasure finds nothing.
func testForgetEventIPs[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	tn := MakeTenant(t, b)
	other := MakeTenant(t, b)
	type ev struct {
		tenant, data string
		forgot       string // the data once usr_1's addresses are forgotten; "" when unchanged
	}
	evs := []ev{
		{tn.ID, `{"object":{"object":"login","user":"usr_1","ip":"192.0.2.1","kind":"payer"}}`,
			`{"object":{"object":"login","user":"usr_1","kind":"payer"}}`},
		{tn.ID, `{"object":{"user":"usr_1","ip":"192.0.2.2","created":1767225600.5},"livemode":false,"request":{"id":"req_1"}}`,
			`{"object":{"user":"usr_1","created":1767225600.5},"livemode":false,"request":{"id":"req_1"}}`},
		{tn.ID, `{"object":{"user":"usr_1","ip":null}}`, `{"object":{"user":"usr_1"}}`},
		{tn.ID, `{"object":{"user":"usr_10","ip":"192.0.2.3"}}`, ""},
		{tn.ID, `{"object":{"user":7,"ip":"192.0.2.4"}}`, ""},
		{tn.ID, `{"object":{"user":true,"ip":"192.0.2.5"}}`, ""},
		{tn.ID, `{"object":{"user":null,"ip":"192.0.2.6"}}`, ""},
		{tn.ID, `{"object":{"user":{"id":"usr_1"},"ip":"192.0.2.7"}}`, ""},
		{tn.ID, `{"user":"usr_1","object":{"object":"login","ip":"192.0.2.8"}}`, ""},
		{tn.ID, `{"OBJECT":{"user":"usr_1","ip":"192.0.2.9"}}`, ""},
		{tn.ID, `{"object":{"user":"usr_1","new_ip":true}}`, ""},
		{tn.ID, `{"object":{"user":"usr_1","card":{"ip":"192.0.2.10"}}}`, ""},
		{tn.ID, `{"object":{"id":"ch_1","object":"charge","amount":1250}}`, ""},
		{tn.ID, `{"object":"ip"}`, ""},
		{other.ID, `{"object":{"user":"usr_1","ip":"192.0.2.11"}}`, ""},
	}
	at, eventIDs := now(), make([]string, len(evs))
	for i := range evs {
		e := &events.Event{ID: ids.New("evt"), TenantID: evs[i].tenant, Type: "user.suspicious_login",
			Data: json.RawMessage(evs[i].data), CreatedAt: at}
		in(t, b, func(tx X) error { return tx.EnqueueEvent(ctx, e) })
		eventIDs[i] = e.ID
	}
	check := func(forgotten bool) {
		t.Helper()
		in(t, b, func(tx X) error {
			for i, e := range evs {
				got, err := tx.GetEvent(ctx, e.tenant, eventIDs[i])
				require.NoError(t, err)
				want := e.data
				if forgotten && e.forgot != "" {
					want = e.forgot
				}
				assert.JSONEq(t, want, string(got.Data), "%s", e.data)
			}
			return nil
		})
	}
	forget := func(tenantID, userID string) int {
		var n int
		in(t, b, func(tx X) error {
			var err error
			n, err = tx.ForgetEventIPs(ctx, tenantID, userID)
			return err
		})
		return n
	}

	require.ErrorIs(t, b.InTx(ctx, func(tx X) error {
		n, err := tx.ForgetEventIPs(ctx, tn.ID, "usr_1")
		require.NoError(t, err)
		assert.Equal(t, 3, n)
		return errBoom
	}), errBoom)
	check(false)

	for _, who := range []string{"7", "true", "null", "", `{"id": "usr_1"}`, "usr_"} {
		assert.Zero(t, forget(tn.ID, who), "%q names nobody's events", who)
	}
	check(false)
	assert.Equal(t, 3, forget(tn.ID, "usr_1"))
	check(true)
	assert.Zero(t, forget(tn.ID, "usr_1"), "nothing left to forget")
	check(true)
}
