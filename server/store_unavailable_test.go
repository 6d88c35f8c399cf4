package server_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/idempotency"
	"github.com/perfectpay/perfectpay/server"
	"github.com/perfectpay/perfectpay/store/pgtest"
)

// outageNode starts a node whose store the test can take away and give
// back: the memory store's simulated outage, or a private PostgreSQL
// cluster stopped and started with pg_ctl (never the shared server).
func outageNode(t *testing.T, driver string, opts ...func(*app.Config)) (n *apptest.Node, down, up func()) {
	t.Helper()
	if driver == "memory" {
		n = apptest.New(t, driver, opts...)
		return n, func() { n.App.Memory.SetUnavailable(true) }, func() { n.App.Memory.SetUnavailable(false) }
	}
	c := pgtest.NewCluster(t)
	n = apptest.NewWithURL(t, driver, c.NewURL(t), opts...)
	var before string
	return n, func() {
			before = n.App.Postgres.SessionName()
			c.Stop(t)
		}, func() {
			c.Start(t)
			// The node reconnects under a new session on its own; wait for
			// it, so the test looks at a node that noticed the restart.
			waitFor(t, "a new node session", 60*time.Second, func() bool {
				name := n.App.Postgres.SessionName()
				return name != "" && name != before
			})
		}
}

func assertUnavailable(t *testing.T, r *apptest.Response) {
	t.Helper()
	require.Equal(t, 503, r.Status, string(r.Body))
	assert.Equal(t, "api_error", r.ErrorType())
	assert.Equal(t, "store_unavailable", r.ErrorCode())
	assert.Equal(t, "2", r.Header.Get("Retry-After"))
}

// While the store is unreachable every request answers 503 store_unavailable
// with Retry-After (never 500), and a request that failed so leaves no
// Idempotency-Key claim: the same-key retry runs once the store is back.
func TestStoreUnavailableAnswers503(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n, down, up := outageNode(t, driver)
		_, key := n.Tenant(t)
		body := map[string]any{"name": "outage", "token_endpoint_auth_method": "client_secret_basic"}
		idem := map[string]string{"Idempotency-Key": "outage-1"}

		down()
		assertUnavailable(t, n.Do(t, apptest.Req{Method: "GET", Path: "/v1/agents", Key: key}))
		assertUnavailable(t, n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents", Key: key, Body: body, Header: idem}))
		r := n.Do(t, apptest.Req{Method: "GET", Path: "/readyz"})
		assert.Equal(t, 503, r.Status)
		up()

		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents", Key: key, Body: body, Header: idem})
		require.Equal(t, 201, r.Status, string(r.Body))
		again := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents", Key: key, Body: body, Header: idem})
		require.Equal(t, 201, again.Status)
		assert.Equal(t, "true", again.Header.Get("Idempotent-Replayed"))
		assert.Equal(t, r.JSON["id"], again.JSON["id"])
	})
}

// A request that claimed its Idempotency-Key and then lost the store could
// not release the claim. Once the store is back the claim is abandoned (the
// node's session changed), so the client's retry runs at once instead of
// getting 409 until the claim's lock lapses.
func TestClaimHeldAcrossOutageIsRetakeable(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n, down, up := outageNode(t, driver)
		b, key := n.Tenant(t)
		body := map[string]any{"name": "held", "token_endpoint_auth_method": "client_secret_basic"}
		raw, err := json.Marshal(body)
		require.NoError(t, err)
		idem := map[string]string{"Idempotency-Key": "held-1"}

		// The claim a request made just before the store went away.
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Microsecond)
		require.NoError(t, n.App.Idempotency.InTx(ctx, func(tx idempotency.Repo) error {
			_, err := tx.ClaimIdempotency(ctx, &idempotency.Record{
				TenantID: b.Tenant.ID, CredentialID: b.Keys[0].Key.ID, Key: "held-1", Method: "POST", Path: "/v1/agents",
				RequestHash: server.RequestHash(n.App.Server.IdempotencyHMACKey, "POST", "/v1/agents", raw),
				State:       idempotency.StateInProgress, CreatedAt: now, LockedUntil: now.Add(time.Hour), ExpiresAt: now.Add(24 * time.Hour),
			})
			return err
		}))
		r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents", Key: key, Body: body, Header: idem})
		require.Equal(t, 409, r.Status, "the claim holds while its request may still run: %s", r.Body)

		down()
		up()
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents", Key: key, Body: body, Header: idem})
		require.Equal(t, 201, r.Status, "the claim of the request cut off by the outage is retakeable at once: %s", r.Body)
	})
}

// waitFor polls cond with a generous deadline: a bound for a broken
// implementation, not a timing assertion.
func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A charge whose processor call was under way when the store went away
// cannot be recorded: the request answers 503 and the charge stays
// pending. The node keeps the answer and records it once the store is back
// (well before the resolver's ResolveAfter sweep, two minutes here), and
// the client's same-key retry gets that charge's outcome.
func TestChargeCutOffByOutageIsRecordedWhenStoreReturns(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n, down, up := outageNode(t, driver, func(c *app.Config) {
			c.Payments.Simulator.Latency = time.Second
			c.Payments.ResolveAfter = 2 * time.Minute
		})
		boot, sk := n.Tenant(t)
		pk := apptest.Key(boot, accounts.KindPublishable, accounts.ModeTest)
		tok := tokenize(t, n, pk, "4242424242424242", "123")
		body := map[string]any{"amount": 1234, "currency": "usd", "payment_method": tok}

		answer := make(chan *apptest.Response, 1)
		go func() { answer <- charge(t, n, sk, body, "cut-1") }()
		var id string
		waitFor(t, "the charge to be opened", 60*time.Second, func() bool {
			r := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/charges", Key: sk})
			if data, _ := r.JSON["data"].([]any); len(data) == 1 {
				id, _ = data[0].(map[string]any)["id"].(string)
			}
			return id != ""
		})
		down()
		first := <-answer
		assertUnavailable(t, first)
		up()

		var status string
		waitFor(t, "the kept answer to be recorded", 60*time.Second, func() bool {
			r := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/charges/" + id, Key: sk})
			require.Equal(t, 200, r.Status, string(r.Body))
			status, _ = r.JSON["status"].(string)
			return status != "pending"
		})

		again := charge(t, n, sk, body, "cut-1")
		switch status {
		case "succeeded":
			require.Equal(t, 200, again.Status, string(again.Body))
			assert.Equal(t, id, again.JSON["id"])
		default:
			require.Equal(t, 402, again.Status, "the retry gets the charge's outcome (%s): %s", status, again.Body)
			c, _ := again.JSON["charge"].(map[string]any)
			assert.Equal(t, id, c["id"])
		}
		r := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/charges", Key: sk})
		assert.Len(t, r.JSON["data"], 1, "one charge for one Idempotency-Key")
	})
}
