package server_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/webhooks/verify"
)

func TestWebhookEndpointsAndEventsAPI(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		var mu sync.Mutex
		var got []*http.Request
		var bodies [][]byte
		rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			got, bodies = append(got, r), append(bodies, b)
			mu.Unlock()
		}))
		defer rc.Close()
		n := apptest.New(t, driver, func(c *app.Config) { c.Webhooks.DispatchInterval = 20 * time.Millisecond })
		_, key := n.Tenant(t)
		_, otherKey := n.Tenant(t)

		// Validation.
		for _, tc := range []struct {
			body  any
			param string
		}{
			{map[string]any{"url": "http://example.com/x", "enabled_events": []string{"*"}}, "url"},
			{map[string]any{"url": "https://10.0.0.1/x", "enabled_events": []string{"*"}}, "url"},
			{map[string]any{"url": "https://169.254.169.254/", "enabled_events": []string{"*"}}, "url"},
			{map[string]any{"url": "https://example.com/x", "enabled_events": []string{"Not A Type"}}, "enabled_events"},
			{map[string]any{"url": "https://example.com/x", "enabled_events": []string{}}, "enabled_events"},
			{map[string]any{"url": "https://example.com/x"}, "enabled_events"},
		} {
			r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/webhook_endpoints", Key: key, Body: tc.body})
			assert.Equal(t, 400, r.Status, "%v", tc.body)
			assert.Equal(t, tc.param, r.JSON["error"].(map[string]any)["param"], "%v", tc.body)
		}

		// Create: the secret is shown once, and never replayed.
		r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/webhook_endpoints", Key: key,
			Header: map[string]string{"Idempotency-Key": "create-1"},
			Body:   map[string]any{"url": rc.URL + "/hook", "enabled_events": []string{"webhook_endpoint.updated", "test.ping"}, "description": "main"}})
		require.Equal(t, 201, r.Status, string(r.Body))
		id := r.JSON["id"].(string)
		secret := r.JSON["secret"].(string)
		assert.True(t, strings.HasPrefix(secret, "whsec_"))
		assert.Equal(t, "webhook_endpoint", r.JSON["object"])
		assert.Equal(t, "enabled", r.JSON["status"])
		replay := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/webhook_endpoints", Key: key,
			Header: map[string]string{"Idempotency-Key": "create-1"},
			Body:   map[string]any{"url": rc.URL + "/hook", "enabled_events": []string{"webhook_endpoint.updated", "test.ping"}, "description": "main"}})
		assert.Equal(t, "true", replay.Header.Get("Idempotent-Replayed"))
		assert.NotContains(t, string(replay.Body), "whsec_")
		for _, path := range []string{"/v1/webhook_endpoints", "/v1/webhook_endpoints/" + id} {
			r := n.Do(t, apptest.Req{Method: "GET", Path: path, Key: key})
			require.Equal(t, 200, r.Status)
			assert.NotContains(t, string(r.Body), "whsec_")
			assert.NotContains(t, string(r.Body), secret[6:])
		}
		assert.Equal(t, 404, n.Do(t, apptest.Req{Method: "GET", Path: "/v1/webhook_endpoints/" + id, Key: otherKey}).Status)

		// Update emits webhook_endpoint.updated, which the endpoint receives, signed.
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/webhook_endpoints/" + id, Key: key, Body: map[string]any{"description": "renamed"}})
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, "renamed", r.JSON["description"])
		require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 1 }, 10*time.Second, 10*time.Millisecond)
		v, err := verify.New(secret)
		require.NoError(t, err)
		mu.Lock()
		require.NoError(t, v.Verify(bodies[0], got[0].Header))
		evID := got[0].Header.Get("webhook-id")
		mu.Unlock()

		// Events: list with type filter and cursor, get, deliveries, attempts, redeliver.
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/events?limit=1", Key: key})
		require.Equal(t, 200, r.Status)
		data := r.JSON["data"].([]any)
		require.Len(t, data, 1)
		assert.Equal(t, evID, data[0].(map[string]any)["id"], "newest first")
		assert.Equal(t, true, r.JSON["has_more"])
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/events?limit=5&starting_after=" + evID, Key: key})
		require.Equal(t, 200, r.Status)
		data = r.JSON["data"].([]any)
		require.Len(t, data, 1)
		assert.Equal(t, "webhook_endpoint.created", data[0].(map[string]any)["type"])
		assert.Equal(t, false, r.JSON["has_more"])
		assert.NotContains(t, string(r.Body), "whsec_")
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/events?type=webhook_endpoint.*", Key: key})
		assert.Len(t, r.JSON["data"], 2)
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/events?type=charge.succeeded", Key: key})
		assert.Len(t, r.JSON["data"], 0)
		assert.Equal(t, 400, n.Do(t, apptest.Req{Method: "GET", Path: "/v1/events?limit=1000", Key: key}).Status)
		assert.Equal(t, 400, n.Do(t, apptest.Req{Method: "GET", Path: "/v1/events?starting_after=evt_nope", Key: key}).Status)
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/events/" + evID, Key: key})
		require.Equal(t, 200, r.Status)
		assert.Equal(t, "webhook_endpoint.updated", r.JSON["type"])
		assert.Equal(t, 404, n.Do(t, apptest.Req{Method: "GET", Path: "/v1/events/" + evID, Key: otherKey}).Status)
		require.Eventually(t, func() bool {
			r := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/events/" + evID + "/attempts", Key: key})
			return r.Status == 200 && len(r.JSON["data"].([]any)) == 1
		}, 5*time.Second, 10*time.Millisecond)
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/webhook_endpoints/" + id + "/attempts", Key: key})
		require.Equal(t, 200, r.Status)
		att := r.JSON["data"].([]any)[0].(map[string]any)
		assert.Equal(t, float64(200), att["status_code"])
		assert.Equal(t, "succeeded", att["outcome"])
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/events/" + evID + "/deliveries", Key: key})
		require.Equal(t, 200, r.Status)
		assert.Equal(t, "succeeded", r.JSON["data"].([]any)[0].(map[string]any)["status"])
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/events/" + evID + "/redeliver", Key: key})
		require.Equal(t, 202, r.Status, string(r.Body))
		require.Len(t, r.JSON["data"], 1)
		require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 2 }, 10*time.Second, 10*time.Millisecond)
		mu.Lock()
		assert.Equal(t, evID, got[1].Header.Get("webhook-id"), "a redelivery keeps the webhook-id")
		mu.Unlock()

		// Rotate: a new secret, shown once; the old one keeps signing for expires_in.
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/webhook_endpoints/" + id + "/rotate_secret", Key: key, Body: map[string]any{"expires_in": 3600}})
		require.Equal(t, 200, r.Status, string(r.Body))
		newSecret := r.JSON["secret"].(string)
		assert.NotEqual(t, secret, newSecret)
		assert.NotNil(t, r.JSON["previous_secret_expires_at"])
		assert.Equal(t, 400, n.Do(t, apptest.Req{Method: "POST", Path: "/v1/webhook_endpoints/" + id + "/rotate_secret", Key: key, Body: map[string]any{"expires_in": -1}}).Status)

		// Disable, enable, delete.
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/webhook_endpoints/" + id + "/disable", Key: key})
		require.Equal(t, 200, r.Status)
		assert.Equal(t, "disabled", r.JSON["status"])
		assert.Equal(t, "user", r.JSON["disabled_reason"])
		assert.Equal(t, 400, n.Do(t, apptest.Req{Method: "POST", Path: "/v1/events/" + evID + "/redeliver", Key: key, Body: map[string]any{"endpoint": id}}).Status)
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/webhook_endpoints/" + id + "/enable", Key: key})
		assert.Equal(t, "enabled", r.JSON["status"])
		r = n.Do(t, apptest.Req{Method: "DELETE", Path: "/v1/webhook_endpoints/" + id, Key: key})
		require.Equal(t, 200, r.Status)
		assert.Equal(t, true, r.JSON["deleted"])
		assert.Equal(t, 404, n.Do(t, apptest.Req{Method: "GET", Path: "/v1/webhook_endpoints/" + id, Key: key}).Status)

		// Secrets never reach the audit trail or the event payloads.
		entries, err := n.App.Audit.List(context.Background(), audit.Filter{Limit: 1000})
		require.NoError(t, err)
		for _, e := range entries {
			for _, s := range []string{secret, newSecret, secret[6:], newSecret[6:]} {
				assert.NotContains(t, string(e.Data), s)
			}
		}
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/events?limit=100", Key: key})
		assert.NotContains(t, string(r.Body), secret[6:])
		assert.NotContains(t, string(r.Body), newSecret[6:])
		assert.NotContains(t, n.Logs.String(), secret[6:])
		assert.NotContains(t, n.Logs.String(), newSecret[6:])
	})
}
