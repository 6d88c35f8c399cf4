package server_test

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
)

// While the store is unreachable (an outage, a failover) the token
// endpoint, and client authentication on introspection, answer 503
// temporarily_unavailable with Retry-After, never 500; once the store is
// back the same request gets its token.
func TestTokenEndpointAnswers503WhileStoreAway(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n, down, up := outageNode(t, driver)
		_, key := n.Tenant(t)
		r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents", Key: key, Body: map[string]any{
			"name": "outage agent", "token_endpoint_auth_method": "client_secret_basic",
			"grant_types": []string{"client_credentials"}, "scopes": []string{"charges:read"}}})
		require.Equal(t, 201, r.Status, string(r.Body))
		agent := [2]string{r.JSON["id"].(string), r.JSON["client_secret"].(string)}
		token := formReq{path: "/oauth2/token", basic: agent, form: url.Values{
			"grant_type": {"client_credentials"}, "scope": {"charges:read"}}}
		introspect := formReq{path: "/oauth2/introspect", basic: agent, form: url.Values{"token": {"not-a-token"}}}

		down()
		for _, fr := range []formReq{token, introspect} {
			code, body, hdr := postForm(t, n, fr)
			assert.Equal(t, 503, code, "%s: %v", fr.path, body)
			assert.Equal(t, "temporarily_unavailable", body["error"], fr.path)
			assert.Equal(t, "2", hdr.Get("Retry-After"), fr.path)
		}
		up()

		code, body, _ := postForm(t, n, token)
		require.Equal(t, 200, code, "%v", body)
		assert.NotEmpty(t, body["access_token"])
	})
}
