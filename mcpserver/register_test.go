package mcpserver_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/audit"
)

func register(t *testing.T, n *apptest.Node, token, body string) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, n.URL+"/oauth2/register", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out := map[string]any{}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out, resp.Header
}

// TestDynamicRegistration: RFC 7591 registration needs the tenant's
// initial access token (a restricted key with agents:register); the
// client it registers is an agent of that tenant that can get tokens.
func TestDynamicRegistration(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		_, sk := n.Tenant(t)
		meta := `{"client_name":"travel agent","grant_types":["client_credentials"],"scope":"charges:read mandates:read"}`

		// No initial access token, a bad one: refused, nothing registered.
		code, body, h := register(t, n, "", meta)
		assert.Equal(t, 401, code)
		assert.Equal(t, "invalid_token", body["error"])
		assert.Contains(t, h.Get("WWW-Authenticate"), "Bearer")
		code, body, _ = register(t, n, "rk_test_notarealkey0000000000000000", meta)
		assert.Equal(t, 401, code)
		assert.Equal(t, "invalid_token", body["error"])

		// A restricted key without the scope may not register.
		r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys", Key: sk, Header: map[string]string{"Idempotency-Key": "k1"},
			Body: map[string]any{"type": "restricted", "scopes": []string{"agents:read"}}})
		require.Equal(t, 201, r.Status, string(r.Body))
		code, body, _ = register(t, n, r.JSON["secret"].(string), meta)
		assert.Equal(t, 403, code)
		assert.Equal(t, "insufficient_scope", body["error"])

		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys", Key: sk, Header: map[string]string{"Idempotency-Key": "k2"},
			Body: map[string]any{"type": "restricted", "scopes": []string{"agents:register"}}})
		require.Equal(t, 201, r.Status, string(r.Body))
		iat := r.JSON["secret"].(string)

		// Bad metadata: RFC 7591's error, nothing registered.
		for _, bad := range []string{
			`{"client_name":"x","grant_types":["password"]}`,
			`{"client_name":"x","jwks_uri":"https://agent.example/jwks.json"}`,
			`{"client_name":"x","scope":"everything"}`,
			`{"client_name":"4242424242424242"}`,
			`[1,2]`,
		} {
			code, body, _ = register(t, n, iat, bad)
			assert.Equal(t, 400, code, bad)
			assert.Equal(t, "invalid_client_metadata", body["error"], bad)
			assert.NotContains(t, body["error_description"], "4242424242424242")
		}

		code, body, _ = register(t, n, iat, meta)
		require.Equal(t, 201, code, body)
		id, secret := body["client_id"].(string), body["client_secret"].(string)
		assert.Equal(t, "client_secret_basic", body["token_endpoint_auth_method"])
		assert.Equal(t, "charges:read mandates:read", body["scope"])

		// The registered client is an agent of the tenant and gets tokens.
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/agents/" + id, Key: sk})
		require.Equal(t, 200, r.Status, string(r.Body))
		form := url.Values{"grant_type": {"client_credentials"}, "scope": {"charges:read"}}
		req, _ := http.NewRequest(http.MethodPost, n.URL+"/oauth2/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(id, secret)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, 200, resp.StatusCode)

		// The registration is audited as the key's act.
		entries, err := n.App.Audit.List(context.Background(), audit.Filter{Action: "agent.created", Limit: 10})
		require.NoError(t, err)
		require.NotEmpty(t, entries)
		assert.Equal(t, audit.ActorAPIKey, entries[len(entries)-1].ActorType)

		// The authorization server metadata names the endpoint.
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/.well-known/oauth-authorization-server"})
		assert.True(t, strings.HasSuffix(r.JSON["registration_endpoint"].(string), "/oauth2/register"))
	})
}
