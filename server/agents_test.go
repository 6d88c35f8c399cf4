package server_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/perfectpay/perfectpay/app/apptest"
)

func TestAgentsLifecycle(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		_, key := n.Tenant(t)
		_, otherKey := n.Tenant(t)

		// A secret agent: the secret is shown once, never again.
		id, secret := secretAgent(t, n, key, nil)
		require.NotEmpty(t, secret)
		r := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/agents/" + id, Key: key})
		require.Equal(t, 200, r.Status)
		assert.Nil(t, r.JSON["client_secret"])
		assert.Equal(t, "active", r.JSON["status"])
		assert.Equal(t, []any{"charges:read", "charges:write", "mandates:read"}, r.JSON["scopes"])
		assert.NotContains(t, string(r.Body), secret)

		// Idempotent replays never carry the secret.
		body := map[string]any{"name": "idem", "token_endpoint_auth_method": "client_secret_basic"}
		r1 := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents", Key: key, Body: body, Header: map[string]string{"Idempotency-Key": "a1"}})
		r2 := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents", Key: key, Body: body, Header: map[string]string{"Idempotency-Key": "a1"}})
		require.Equal(t, 201, r1.Status)
		assert.NotEmpty(t, r1.JSON["client_secret"])
		assert.Equal(t, r1.JSON["id"], r2.JSON["id"])
		assert.Nil(t, r2.JSON["client_secret"])

		// Another tenant sees nothing.
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/agents/" + id, Key: otherKey})
		assert.Equal(t, 404, r.Status)
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents/" + id + "/revoke", Key: otherKey})
		assert.Equal(t, 404, r.Status)

		// A private_key_jwt agent; private keys and bad input are refused.
		jid, k := jwtAgent(t, n, key, nil)
		for _, tc := range []struct {
			name  string
			body  map[string]any
			param string
		}{
			{"no name", map[string]any{"token_endpoint_auth_method": "client_secret_basic"}, "name"},
			{"bad method", map[string]any{"name": "x", "token_endpoint_auth_method": "client_secret_post"}, "token_endpoint_auth_method"},
			{"no jwks", map[string]any{"name": "x", "token_endpoint_auth_method": "private_key_jwt"}, "jwks"},
			{"private jwk", map[string]any{"name": "x", "token_endpoint_auth_method": "private_key_jwt",
				"jwks": map[string]any{"keys": []any{map[string]any{"kty": "EC", "crv": "P-256", "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
					"y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM", "d": "870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE"}}}}, "jwks"},
			{"bad scope", map[string]any{"name": "x", "token_endpoint_auth_method": "client_secret_basic", "scopes": []string{"admin"}}, "scopes"},
			{"bad grant", map[string]any{"name": "x", "token_endpoint_auth_method": "client_secret_basic", "grant_types": []string{"password"}}, "grant_types"},
			{"unknown field", map[string]any{"name": "x", "token_endpoint_auth_method": "client_secret_basic", "jwks_uri": "https://x"}, "jwks_uri"},
		} {
			r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents", Key: key, Body: tc.body})
			assert.Equal(t, 400, r.Status, tc.name)
			assert.Equal(t, tc.param, r.JSON["error"].(map[string]any)["param"], tc.name)
		}

		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/agents?limit=2", Key: key})
		require.Equal(t, 200, r.Status)
		assert.Len(t, r.JSON["data"], 2)
		assert.Equal(t, true, r.JSON["has_more"])
		last := r.JSON["data"].([]any)[1].(map[string]any)["id"].(string)
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/agents?starting_after=" + last, Key: key})
		assert.Len(t, r.JSON["data"], 1)
		assert.Equal(t, false, r.JSON["has_more"])

		// Replacing keys: the old key stops authenticating at once.
		_, err := jwtToken(t, n, jid, k, nil)
		require.NoError(t, err)
		k2 := newAgentKey(t)
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents/" + jid + "/keys", Key: key, Body: map[string]any{"jwks": k2.jwks()}})
		require.Equal(t, 200, r.Status, string(r.Body))
		_, err = jwtToken(t, n, jid, k, nil)
		require.Error(t, err)
		_, err = jwtToken(t, n, jid, k2, nil)
		require.NoError(t, err)

		// A secret agent's key replacement generates a new secret.
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents/" + id + "/keys", Key: key})
		require.Equal(t, 200, r.Status, string(r.Body))
		secret2 := r.JSON["client_secret"].(string)
		cc := clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: n.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}
		_, err = cc.Token(context.Background())
		require.Error(t, err, "old secret")
		tok := secretToken(t, n, id, secret2)

		// Suspend: no new tokens, live tokens fail; resume restores both.
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents/" + id + "/suspend", Key: key})
		require.Equal(t, 200, r.Status)
		assert.Equal(t, "suspended", r.JSON["status"])
		cc.ClientSecret = secret2
		_, err = cc.Token(context.Background())
		require.Error(t, err)
		assert.Equal(t, false, introspect(t, n, key, tok.AccessToken)["active"])
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents/" + id + "/resume", Key: key})
		require.Equal(t, 200, r.Status)
		assert.Equal(t, true, introspect(t, n, key, tok.AccessToken)["active"])

		// Revoke: final, and every token of the agent is invalid at once.
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents/" + id + "/revoke", Key: key})
		require.Equal(t, 200, r.Status)
		assert.Equal(t, "revoked", r.JSON["status"])
		assert.Equal(t, false, introspect(t, n, key, tok.AccessToken)["active"])
		_, err = cc.Token(context.Background())
		require.Error(t, err)
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents/" + id + "/resume", Key: key})
		assert.Equal(t, 409, r.Status)
		assert.Equal(t, "agent_revoked", r.ErrorCode())
		what, err := n.App.Issuer.IsRevoked(context.Background(), "", id, "")
		require.NoError(t, err)
		assert.Equal(t, "agent", what)
	})
}

func introspect(t testing.TB, n *apptest.Node, key, tok string) map[string]any {
	t.Helper()
	st, body, _ := postForm(t, n, formReq{path: "/oauth2/introspect", bearer: key, form: url.Values{"token": {tok}}})
	require.Equal(t, 200, st, body)
	return body
}
