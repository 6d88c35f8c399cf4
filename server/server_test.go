package server_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/idempotency"
)

func TestHealthReadyMetricsAndRequestID(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		r := n.Do(t, apptest.Req{Method: "GET", Path: "/healthz"})
		assert.Equal(t, 200, r.Status)
		assert.True(t, strings.HasPrefix(r.Header.Get("Request-Id"), "req_"))
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/readyz"})
		assert.Equal(t, 200, r.Status)
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/nope"})
		assert.Equal(t, 404, r.Status)
		assert.Equal(t, "route_not_found", r.ErrorCode())
		assert.Equal(t, r.Header.Get("Request-Id"), r.JSON["error"].(map[string]any)["request_id"])
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/metrics"})
		assert.Equal(t, 200, r.Status)
		assert.Contains(t, string(r.Body), `perfectpay_http_requests_total{method="GET",route="/readyz",status="200"} 1`)
		assert.Contains(t, string(r.Body), `perfectpay_http_request_duration_seconds_bucket`)
	})
}

func TestAuthentication(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		b, sk := n.Tenant(t)
		pk := apptest.Key(b, accounts.KindPublishable, accounts.ModeTest)

		r := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant"})
		assert.Equal(t, 401, r.Status)
		assert.Equal(t, "missing_credentials", r.ErrorCode())
		assert.Equal(t, "authentication_error", r.ErrorType())

		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: "sk_test_notarealkey"})
		assert.Equal(t, 401, r.Status)
		assert.Equal(t, "invalid_api_key", r.ErrorCode())

		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: "some.jwt.value"})
		assert.Equal(t, 401, r.Status)

		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: sk})
		require.Equal(t, 200, r.Status)
		assert.Equal(t, b.Tenant.ID, r.JSON["id"])

		// HTTP Basic with the key as user name and an empty password.
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Header: map[string]string{
			"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(sk+":")),
		}})
		assert.Equal(t, 200, r.Status)

		// Publishable keys only tokenize.
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/api_keys", Key: pk})
		assert.Equal(t, 403, r.Status)
		assert.Equal(t, "permission_error", r.ErrorType())

		// Restricted keys carry exactly their scopes.
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys", Key: sk, Body: map[string]any{"type": "restricted", "scopes": []string{"charges:read"}}})
		require.Equal(t, 201, r.Status, string(r.Body))
		rk := r.JSON["secret"].(string)
		assert.True(t, strings.HasPrefix(rk, "rk_test_"))
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/api_keys", Key: rk})
		assert.Equal(t, 403, r.Status)
		assert.Equal(t, "insufficient_scope", r.ErrorCode())
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys", Key: sk, Body: map[string]any{"type": "restricted", "scopes": []string{"keys:read", "keys:write"}}})
		require.Equal(t, 201, r.Status)
		rk2 := r.JSON["secret"].(string)
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/api_keys", Key: rk2})
		assert.Equal(t, 200, r.Status)
		// ...and cannot mint a key more powerful than themselves.
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys", Key: rk2, Body: map[string]any{"type": "secret"}})
		assert.Equal(t, 403, r.Status)
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys", Key: rk2, Body: map[string]any{"type": "restricted", "scopes": []string{"audit:read"}}})
		assert.Equal(t, 403, r.Status)
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys", Key: sk, Body: map[string]any{"type": "restricted", "scopes": []string{"everything"}}})
		assert.Equal(t, 400, r.Status)
		assert.Equal(t, "scopes", r.JSON["error"].(map[string]any)["param"])

		// Another tenant's key ids are invisible.
		_, sk2 := n.Tenant(t)
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/api_keys/" + b.Keys[0].Key.ID, Key: sk2})
		assert.Equal(t, 404, r.Status)
	})
}

func TestStrictJSON(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		_, sk := n.Tenant(t)
		post := func(body any, hdr map[string]string) *apptest.Response {
			return n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys", Key: sk, Body: body, Header: hdr})
		}
		r := post(map[string]any{"type": "restricted", "scopes": []string{"charges:read"}, "colour": "red"}, nil)
		assert.Equal(t, 400, r.Status)
		assert.Equal(t, "unknown_parameter", r.ErrorCode())
		assert.Equal(t, "colour", r.JSON["error"].(map[string]any)["param"])

		r = post(`{"type": 5}`, nil)
		assert.Equal(t, 400, r.Status)
		assert.Equal(t, "type", r.JSON["error"].(map[string]any)["param"])

		r = post(`{"type": "secret"`, nil)
		assert.Equal(t, 400, r.Status)
		r = post(`{"type":"secret"} {"type":"secret"}`, nil)
		assert.Equal(t, 400, r.Status)

		r = post(`type=secret`, map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
		assert.Equal(t, 415, r.Status)
		assert.Equal(t, "unsupported_media_type", r.ErrorCode())

		big := `{"name":"` + strings.Repeat("x", 1<<20) + `"}`
		r = post(big, nil)
		assert.Equal(t, 413, r.Status)
		assert.Equal(t, "body_too_large", r.ErrorCode())

		// Nothing was created by any of the refused requests.
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/api_keys", Key: sk})
		assert.Len(t, r.JSON["data"], 2, "the tenant's own sk_test and pk_test only")
	})
}

func TestIdempotency(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		b, sk := n.Tenant(t)
		body := map[string]any{"type": "restricted", "scopes": []string{"charges:read"}}
		hdr := map[string]string{"Idempotency-Key": "create-1"}
		first := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys", Key: sk, Body: body, Header: hdr})
		require.Equal(t, 201, first.Status)
		secret := first.JSON["secret"].(string)

		again := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys", Key: sk, Body: body, Header: hdr})
		require.Equal(t, 201, again.Status)
		assert.Equal(t, "true", again.Header.Get("Idempotent-Replayed"))
		assert.Equal(t, first.JSON["id"], again.JSON["id"], "one key, not two")
		assert.NotContains(t, string(again.Body), secret, "a replay never shows the secret again")

		r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys", Key: sk, Header: hdr,
			Body: map[string]any{"type": "restricted", "scopes": []string{"charges:write"}}})
		assert.Equal(t, 422, r.Status)
		assert.Equal(t, "idempotency_error", r.ErrorType())

		// The same key from another credential is a different key.
		other := apptest.Key(b, accounts.KindSecret, accounts.ModeLive)
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys", Key: other, Body: body, Header: hdr})
		assert.Equal(t, 201, r.Status)
		assert.NotEqual(t, first.JSON["id"], r.JSON["id"])

		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys", Key: sk, Body: body,
			Header: map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}})
		assert.Equal(t, 400, r.Status)

		// A request still running with the key: 409 with Retry-After.
		now := time.Now().UTC()
		require.NoError(t, n.App.Idempotency.InTx(context.Background(), func(tx idempotency.Repo) error {
			_, err := tx.ClaimIdempotency(context.Background(), &idempotency.Record{
				TenantID: b.Tenant.ID, CredentialID: b.Keys[0].Key.ID, Key: "busy", Method: "POST", Path: "/v1/api_keys",
				RequestHash: hashOf("POST", "/v1/api_keys", `{"scopes":["charges:read"],"type":"restricted"}`),
				State:       idempotency.StateInProgress, CreatedAt: now, LockedUntil: now.Add(time.Minute), ExpiresAt: now.Add(time.Hour)})
			return err
		}))
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys", Key: sk, Body: body, Header: map[string]string{"Idempotency-Key": "busy"}})
		assert.Equal(t, 409, r.Status)
		assert.Equal(t, "idempotency_key_in_use", r.ErrorCode())
		assert.Equal(t, "1", r.Header.Get("Retry-After"))
	})
}

// TestIdempotencyConcurrent fires the same request 20 times at once: one
// key is created and every answer is either it or a 409.
func TestIdempotencyConcurrent(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		_, sk := n.Tenant(t)
		var wg sync.WaitGroup
		results := make([]*apptest.Response, 20)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys", Key: sk,
					Body: map[string]any{"type": "publishable"}, Header: map[string]string{"Idempotency-Key": "race"}})
			}()
		}
		wg.Wait()
		ids := map[any]bool{}
		for _, r := range results {
			switch r.Status {
			case 201:
				ids[r.JSON["id"]] = true
			case 409:
			default:
				t.Errorf("unexpected status %d: %s", r.Status, r.Body)
			}
		}
		assert.Len(t, ids, 1)
		r := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/api_keys", Key: sk})
		assert.Len(t, r.JSON["data"], 3, "exactly one key was created (the tenant's sk_test and pk_test, and this one)")
	})
}

func TestKeyRollAndRevoke(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		b, sk := n.Tenant(t)
		id := b.Keys[0].Key.ID

		r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys/" + id + "/roll", Key: sk, Body: map[string]any{"expires_in": 3600}})
		require.Equal(t, 201, r.Status, string(r.Body))
		newKey := r.JSON["secret"].(string)
		// Overlap: both work.
		assert.Equal(t, 200, n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: sk}).Status)
		assert.Equal(t, 200, n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: newKey}).Status)
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/api_keys/" + id, Key: newKey})
		assert.NotNil(t, r.JSON["expires_at"])
		assert.NotEmpty(t, r.JSON["rolled_to"])
		// Rolling twice is refused.
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys/" + id + "/roll", Key: newKey})
		assert.Equal(t, 400, r.Status)
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys/" + id + "/roll", Key: newKey, Body: map[string]any{"expires_in": -1}})
		assert.Equal(t, 400, r.Status)

		// Roll with no overlap: the old key stops at once.
		newID := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/api_keys/" + id, Key: newKey}).JSON["rolled_to"].(string)
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys/" + newID + "/roll", Key: newKey, Body: map[string]any{"expires_in": 0}})
		require.Equal(t, 201, r.Status)
		third := r.JSON["secret"].(string)
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: newKey})
		assert.Equal(t, 401, r.Status)
		assert.Equal(t, "api_key_revoked", r.ErrorCode())

		// Revoke: 401 at once.
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys/" + id + "/revoke", Key: third})
		require.Equal(t, 200, r.Status)
		assert.NotNil(t, r.JSON["revoked_at"])
		assert.Equal(t, 401, n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: sk}).Status)
		assert.Equal(t, 200, n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: third}).Status)
		assert.Equal(t, 404, n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys/key_nope/revoke", Key: third}).Status)
	})
}

// TestRevocationAcrossNodes: a key revoked through node A is refused by
// node B on the very next request (no cache to go stale).
func TestRevocationAcrossNodes(t *testing.T) {
	a := apptest.New(t, "postgres")
	b := apptest.NewWithURL(t, "postgres", a.App.Config.Store.Postgres.URL)
	boot, sk := a.Tenant(t)
	require.Equal(t, 200, b.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: sk}).Status)
	// A second test-mode secret key revokes the first (keys act only on
	// keys of their own mode).
	r := a.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys", Key: sk, Body: map[string]any{"type": "secret"}})
	require.Equal(t, 201, r.Status, string(r.Body))
	other := r.JSON["secret"].(string)
	r = a.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys/" + boot.Keys[0].Key.ID + "/revoke", Key: other})
	require.Equal(t, 200, r.Status)
	r = b.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: sk})
	assert.Equal(t, 401, r.Status)
	assert.Equal(t, "authentication_error", r.ErrorType())
	assert.Equal(t, "api_key_revoked", r.ErrorCode(), string(r.Body))
	assert.NotContains(t, string(r.Body), boot.Tenant.ID, "a refused key learns nothing of the tenant")
	assert.Equal(t, 200, b.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: other}).Status, "only the revoked key stops")
}

func TestMethodNotAllowedIsJSON(t *testing.T) {
	n := apptest.New(t, "memory")
	_, sk := n.Tenant(t)
	r := n.Do(t, apptest.Req{Method: http.MethodDelete, Path: "/v1/tenant", Key: sk})
	assert.Equal(t, 405, r.Status)
	assert.Equal(t, "method_not_allowed", r.ErrorCode())
}
