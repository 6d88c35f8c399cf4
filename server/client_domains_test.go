package server_test

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
)

// TestClientDomains: a tenant allows hosts for URL client ids; a host
// belongs to one tenant; bad names are refused with a clear error; only
// the tenant removes its own; agents are reachable by client id through
// /v1/agents/by_client_id.
func TestClientDomains(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		_, sk := n.Tenant(t)
		_, other := n.Tenant(t)
		add := func(key, domain string) *apptest.Response {
			return n.Do(t, apptest.Req{Method: "POST", Path: "/v1/client_domains", Key: key, Body: map[string]any{"domain": domain}})
		}

		r := add(sk, "Agents.Example.com")
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, "agents.example.com", r.JSON["domain"])
		assert.Equal(t, 409, add(other, "agents.example.com").Status, "a host belongs to one tenant")
		for _, bad := range []string{"https://agents.example.com", "127.0.0.1", "*.example.com", ""} {
			r = add(sk, bad)
			require.Equal(t, 400, r.Status, bad)
			assert.Equal(t, "domain", r.JSON["error"].(map[string]any)["param"])
		}

		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/client_domains", Key: sk})
		require.Equal(t, 200, r.Status, string(r.Body))
		require.Len(t, r.JSON["data"], 1)
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/client_domains", Key: other})
		assert.Empty(t, r.JSON["data"])

		assert.Equal(t, 404, n.Do(t, apptest.Req{Method: "DELETE", Path: "/v1/client_domains/agents.example.com", Key: other}).Status)
		assert.Equal(t, 200, n.Do(t, apptest.Req{Method: "DELETE", Path: "/v1/client_domains/agents.example.com", Key: sk}).Status)
		assert.Equal(t, 404, n.Do(t, apptest.Req{Method: "DELETE", Path: "/v1/client_domains/agents.example.com", Key: sk}).Status)

		id, _ := secretAgent(t, n, sk, nil)
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/agents/by_client_id?client_id=" + url.QueryEscape(id), Key: sk})
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, id, r.JSON["client_id"])
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/agents/by_client_id?client_id=" +
			url.QueryEscape("https://agents.example.com/a.json"), Key: sk})
		assert.Equal(t, 404, r.Status)
	})
}
