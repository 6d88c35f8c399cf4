package server_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/app/apptest"
)

// A restricted key with keys:write must not obtain a more powerful key by
// rolling one: rolling returns the replacement's secret.
func TestRestrictedKeyCannotRollMorePowerfulKey(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		b, sk := n.Tenant(t)
		var secretID string
		for _, k := range b.Keys {
			if k.Key.Kind == accounts.KindSecret && k.Secret == sk {
				secretID = k.Key.ID
			}
		}
		require.NotEmpty(t, secretID)

		mk := func(scopes ...string) (id, secret string) {
			r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys", Key: sk,
				Body: map[string]any{"type": "restricted", "scopes": scopes}})
			require.Equal(t, 201, r.Status, string(r.Body))
			return r.JSON["id"].(string), r.JSON["secret"].(string)
		}
		rkID, rk := mk("keys:write")
		wideID, _ := mk("keys:write", "charges:write")

		r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys/" + secretID + "/roll", Key: rk, Body: map[string]any{}})
		assert.Equal(t, 403, r.Status, string(r.Body))
		assert.Nil(t, r.JSON["secret"], "no secret key handed to a restricted key")

		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys/" + wideID + "/roll", Key: rk, Body: map[string]any{}})
		assert.Equal(t, 403, r.Status, string(r.Body))

		// The secret key still works: the refused roll changed nothing.
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: sk})
		assert.Equal(t, 200, r.Status)

		// Rolling a key no more powerful than itself (itself) is fine.
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys/" + rkID + "/roll", Key: rk, Body: map[string]any{}})
		assert.Equal(t, 201, r.Status, string(r.Body))
	})
}

// TestRestrictedKeyCannotRevokeMorePowerfulKey: a restricted key with
// keys:write may not revoke the tenant's secret key (locking the owner out).
func TestRestrictedKeyCannotRevokeMorePowerfulKey(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		b, sk := n.Tenant(t)
		r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys", Key: sk, Body: map[string]any{"type": "restricted", "scopes": []string{"keys:write", "keys:read"}}})
		require.Equal(t, 201, r.Status, string(r.Body))
		rk, rkID := r.JSON["secret"].(string), r.JSON["id"].(string)
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys/" + b.Keys[0].Key.ID + "/revoke", Key: rk})
		assert.Equal(t, 403, r.Status, string(r.Body))
		assert.Equal(t, 200, n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: sk}).Status, "the secret key still works")
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys/" + rkID + "/revoke", Key: rk})
		assert.Equal(t, 200, r.Status, "a key may revoke itself")
	})
}
