package server_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/app/apptest"
)

// A test-mode key never reaches live mode: it cannot create a live key (and
// so charge a live card with it), nor roll or revoke one.
func TestTestKeyCannotMintLiveKey(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n, verify := verifiedNode(t, driver)
		b, sk := n.Tenant(t)
		verify(b.Tenant.ID) // live charges need a verified tenant
		liveCard := tokenize(t, n, apptest.Key(b, accounts.KindPublishable, accounts.ModeLive), "4242424242424242", "123")
		keysBefore := len(n.Do(t, apptest.Req{Method: "GET", Path: "/v1/api_keys", Key: sk}).JSON["data"].([]any))

		r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys", Key: sk,
			Body: map[string]any{"type": "restricted", "scopes": []string{"keys:write", "charges:write"}}})
		require.Equal(t, 201, r.Status, string(r.Body))
		rkTest := r.JSON["secret"].(string)
		require.True(t, strings.HasPrefix(rkTest, "rk_test_"))

		for name, caller := range map[string]string{"rk_test": rkTest, "sk_test": sk} {
			for _, body := range []map[string]any{
				{"type": "restricted", "scopes": []string{"charges:write"}, "mode": "live"},
				{"type": "secret", "mode": "live"},
				{"type": "publishable", "mode": "live"},
			} {
				r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys", Key: caller, Body: body})
				assert.Equal(t, 403, r.Status, "%s creating %v: %s", name, body, r.Body)
				assert.Equal(t, "mode_mismatch", r.ErrorCode(), name)
				assert.Equal(t, "permission_error", r.ErrorType(), name)
				assert.Nil(t, r.JSON["secret"], "no live secret handed to a test key")
				if s, ok := r.JSON["secret"].(string); ok {
					c := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/charges", Key: s,
						Body: map[string]any{"amount": 500, "currency": "usd", "payment_method": liveCard, "capture": true}})
					assert.NotEqual(t, 200, c.Status, "a key minted by a test key charged a live card: %s", c.Body)
				}
			}
		}

		// Nor roll or revoke a live key.
		var liveSecretID string
		for _, k := range b.Keys {
			if k.Key.Kind == accounts.KindSecret && k.Key.Mode == accounts.ModeLive {
				liveSecretID = k.Key.ID
			}
		}
		for _, action := range []string{"roll", "revoke"} {
			r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys/" + liveSecretID + "/" + action, Key: sk, Body: map[string]any{}})
			assert.Equal(t, 403, r.Status, "%s: %s", action, r.Body)
			assert.Equal(t, "mode_mismatch", r.ErrorCode(), action)
			assert.Nil(t, r.JSON["secret"])
		}
		live := apptest.Key(b, accounts.KindSecret, accounts.ModeLive)
		assert.Equal(t, 200, n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: live}).Status, "the live key still works")
		c := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/charges", Key: live,
			Body: map[string]any{"amount": 500, "currency": "usd", "payment_method": liveCard, "capture": true}})
		assert.Equal(t, 200, c.Status, "the live key charges its live card: %s", c.Body)

		// Only the restricted test key was added.
		keysAfter := len(n.Do(t, apptest.Req{Method: "GET", Path: "/v1/api_keys", Key: sk}).JSON["data"].([]any))
		assert.Equal(t, keysBefore+1, keysAfter)

		// A live key creates live keys (its own mode is the default).
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys", Key: live, Body: map[string]any{"type": "restricted", "scopes": []string{"charges:read"}}})
		require.Equal(t, 201, r.Status, string(r.Body))
		assert.Equal(t, "live", r.JSON["mode"])
		assert.True(t, strings.HasPrefix(r.JSON["secret"].(string), "rk_live_"))
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys", Key: live, Body: map[string]any{"type": "secret", "mode": "test"}})
		assert.Equal(t, 403, r.Status, "a live key does not create test keys either: %s", r.Body)
	})
}

// A key lists and reads only the keys of its own mode: a test key never
// sees a live key's id, prefix or last four characters.
func TestKeysReadOnlyInOwnMode(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		b, sk := n.Tenant(t)
		live := apptest.Key(b, accounts.KindSecret, accounts.ModeLive)
		for _, tc := range []struct{ key, mode, other string }{{sk, "test", "live"}, {live, "live", "test"}} {
			r := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/api_keys", Key: tc.key})
			require.Equal(t, 200, r.Status, string(r.Body))
			data := r.JSON["data"].([]any)
			require.NotEmpty(t, data)
			for _, k := range data {
				assert.Equal(t, tc.mode, k.(map[string]any)["mode"], "a %s key listed %v", tc.mode, k)
			}
			for _, k := range b.Keys {
				if k.Key.Mode != tc.other {
					continue
				}
				g := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/api_keys/" + k.Key.ID, Key: tc.key})
				assert.Equal(t, 404, g.Status, "a %s key read the %s key %s: %s", tc.mode, tc.other, k.Key.ID, g.Body)
				assert.Equal(t, "resource_missing", g.ErrorCode())
			}
		}
	})
}
