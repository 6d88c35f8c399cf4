package mcpserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/mcpserver"
)

// world is a tenant with a card, the demo merchants and two agents.
type world struct {
	n       *apptest.Node
	key     string
	card    string
	books   string // acct_… of Acme Books, domain books.acme.example
	music   string
	a, aSec string // the shopping agent
	b, bSec string // its sub-agent
}

func newWorld(t *testing.T, driver string, opts ...func(*app.Config)) *world {
	t.Helper()
	n := apptest.New(t, driver, opts...)
	demo, err := n.App.SeedDemo(context.Background())
	require.NoError(t, err)
	w := &world{n: n, key: apptest.Key(demo.Tenant, accounts.KindSecret, accounts.ModeTest)}
	for _, m := range demo.Merchants {
		switch m.Merchant.MCC {
		case "5942":
			w.books = m.Merchant.ID
		default:
			w.music = m.Merchant.ID
		}
	}
	pk := apptest.Key(demo.Tenant, accounts.KindPublishable, accounts.ModeTest)
	r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/tokens", Key: pk, Body: map[string]any{"card": map[string]any{
		"number": "4242424242424242", "exp_month": 12, "exp_year": time.Now().Year() + 2, "cvc": "123", "name": "Grace Hopper"}}})
	require.Equal(t, 200, r.Status, string(r.Body))
	w.card = r.JSON["id"].(string)
	w.a, w.aSec = w.agent(t, "shopping agent")
	w.b, w.bSec = w.agent(t, "paperback finder")
	return w
}

func (w *world) agent(t *testing.T, name string) (string, string) {
	t.Helper()
	r := w.n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents", Key: w.key, Body: map[string]any{
		"name": name, "token_endpoint_auth_method": "client_secret_basic",
		"grant_types": []string{authz.GrantClientCredentials, authz.GrantTokenExchange},
		"scopes":      []string{"charges:read", "charges:write", "mandates:read"}}})
	require.Equal(t, 201, r.Status, string(r.Body))
	return r.JSON["id"].(string), r.JSON["client_secret"].(string)
}

func (w *world) mandate(t *testing.T) string {
	t.Helper()
	r := w.n.Do(t, apptest.Req{Method: "POST", Path: "/v1/mandates", Key: w.key, Body: map[string]any{
		"agent": w.a, "payer": "self", "currency": "usd", "budget": 20000, "max_amount_per_charge": 5000,
		"approval_threshold": 3000, "payment_methods": []string{w.card}, "allowed_merchants": []string{w.books},
		"description": "books for the team"}})
	require.Equal(t, 201, r.Status, string(r.Body))
	return r.JSON["id"].(string)
}

// token asks the token endpoint for a token of the mandate, for the
// resources named (none: the API's default audience).
func (w *world) token(t *testing.T, tokenPath, mandate, scope string, resources ...string) (int, map[string]any) {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {scope},
		"authorization_details": {fmt.Sprintf(`[{"type":"payment_mandate","mandate_id":%q}]`, mandate)}}
	if len(resources) > 0 {
		form["resource"] = resources
	}
	req, err := http.NewRequest(http.MethodPost, w.n.URL+tokenPath, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(w.a, w.aSec)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return resp.StatusCode, body
}

// bearer adds an Authorization header to every request of the MCP client.
type bearer struct{ tok string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.tok)
	return http.DefaultTransport.RoundTrip(r)
}

func connect(t *testing.T, endpoint, tok string) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "test-agent", Version: "1"}, nil)
	s, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: endpoint,
		HTTPClient: &http.Client{Transport: bearer{tok}}, MaxRetries: -1}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func call(t *testing.T, s *mcp.ClientSession, tool string, args map[string]any) (*mcp.CallToolResult, map[string]any) {
	t.Helper()
	res, err := s.CallTool(context.Background(), &mcp.CallToolParams{Name: tool, Arguments: args})
	require.NoError(t, err, tool)
	out := map[string]any{}
	if res.StructuredContent != nil {
		b, err := json.Marshal(res.StructuredContent)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, &out))
	}
	return res, out
}

func textOf(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

var resourceMetadata = regexp.MustCompile(`resource_metadata="([^"]+)"`)

// getJSON reads a discovery document by the path of its advertised URL
// (the advertised host is the configured public URL, not the test's).
func getJSON(t *testing.T, n *apptest.Node, advertised string) map[string]any {
	t.Helper()
	u, err := url.Parse(advertised)
	require.NoError(t, err)
	r := n.Do(t, apptest.Req{Method: "GET", Path: u.Path})
	require.Equal(t, 200, r.Status, string(r.Body))
	return r.JSON
}

// TestAgentFromColdStart is an MCP client that knows only the endpoint's
// URL: it is told where to authorize, gets a token for the MCP resource,
// reads its mandate, pays, is refused above its cap, delegates to a
// sub-agent that pays with its own token, gives the mandate up, and is
// refused from then on — on both stores.
func TestAgentFromColdStart(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		w := newWorld(t, driver)
		mid := w.mandate(t)
		endpoint := w.n.URL + "/mcp"

		// 1. No token: 401 naming the protected resource metadata.
		r := w.n.Do(t, apptest.Req{Method: "POST", Path: "/mcp", Body: `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`})
		require.Equal(t, 401, r.Status, string(r.Body))
		m := resourceMetadata.FindStringSubmatch(r.Header.Get("WWW-Authenticate"))
		require.Len(t, m, 2, r.Header.Get("WWW-Authenticate"))
		assert.True(t, strings.HasSuffix(m[1], "/.well-known/oauth-protected-resource/mcp"), m[1])

		// 2. Discovery: the resource, then its authorization server.
		prm := getJSON(t, w.n, m[1])
		resource := prm["resource"].(string)
		assert.True(t, strings.HasSuffix(resource, "/mcp"), resource)
		as := prm["authorization_servers"].([]any)[0].(string)
		asMeta := getJSON(t, w.n, as+"/.well-known/oauth-authorization-server")
		assert.Equal(t, as, asMeta["issuer"])
		tokenURL, err := url.Parse(asMeta["token_endpoint"].(string))
		require.NoError(t, err)

		// 3. A token for the MCP resource (RFC 8707); aud names it alone.
		code, body := w.token(t, tokenURL.Path, mid, "charges:read charges:write mandates:read", resource)
		require.Equal(t, 200, code, body)
		tok := body["access_token"].(string)
		// ... so the REST API refuses it: no pass-through.
		r = w.n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates/" + mid, Key: tok})
		assert.Equal(t, 401, r.Status, string(r.Body))

		agentStory(t, w, mid, tok, func(tok string) *mcp.ClientSession { return connect(t, endpoint, tok) })
	})
}

// TestStdioProxy runs the same story through the stdio server (`perfectpay
// mcp --stdio`), which forwards every call to /mcp with the agent's token.
func TestStdioProxy(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		w := newWorld(t, driver)
		mid := w.mandate(t)
		code, body := w.token(t, "/oauth2/token", mid, "charges:read charges:write mandates:read", w.n.App.Issuer.Options().Issuer+"/mcp")
		require.Equal(t, 200, code, body)
		agentStory(t, w, mid, body["access_token"].(string), func(tok string) *mcp.ClientSession {
			remote := connect(t, w.n.URL+"/mcp", tok)
			proxy, err := mcpserver.Proxy(context.Background(), remote)
			require.NoError(t, err)
			ct, st := mcp.NewInMemoryTransports()
			ss, err := proxy.Connect(context.Background(), st, nil)
			require.NoError(t, err)
			t.Cleanup(func() { _ = ss.Close() })
			cs, err := mcp.NewClient(&mcp.Implementation{Name: "local-client", Version: "1"}, nil).Connect(context.Background(), ct, nil)
			require.NoError(t, err)
			t.Cleanup(func() { _ = cs.Close() })
			return cs
		})
	})
}

// agentStory: read the mandate, pay, be refused above the cap and at the
// wrong shop, be challenged, delegate to a sub-agent that pays with its own
// token, give the mandate up, and be refused from then on.
func agentStory(t *testing.T, w *world, mid, tok string, connect func(tok string) *mcp.ClientSession) {
	t.Helper()
	{
		s := connect(tok)

		// 4. get_mandate speaks in the mandate's terms.
		res, out := call(t, s, "get_mandate", nil)
		require.False(t, res.IsError, textOf(res))
		assert.Equal(t, mid, out["id"])
		assert.EqualValues(t, 20000, out["remaining_budget"])
		assert.Contains(t, textOf(res), "Acme Books")
		assert.Contains(t, textOf(res), "at most 50.00 USD per purchase")

		// 5. find_merchant by its verified domain.
		res, out = call(t, s, "find_merchant", map[string]any{"domain": "books.acme.example"})
		require.False(t, res.IsError, textOf(res))
		require.NotEmpty(t, out["merchants"])
		assert.Equal(t, w.books, out["merchants"].([]any)[0].(map[string]any)["id"])

		// 6. pay within the mandate.
		pay := map[string]any{"amount": 2500, "currency": "usd", "merchant": w.books, "description": "two paperbacks", "idempotency_key": "order-1"}
		res, out = call(t, s, "pay", pay)
		require.False(t, res.IsError, textOf(res))
		assert.Equal(t, "paid", out["outcome"])
		charge := out["charge"].(map[string]any)["id"].(string)
		// A retry of the same call pays nothing more.
		res, out = call(t, s, "pay", pay)
		require.False(t, res.IsError, textOf(res))
		assert.Equal(t, charge, out["charge"].(map[string]any)["id"])

		// 7. Above the cap: a tool error carrying the policy's reasons.
		res, out = call(t, s, "pay", map[string]any{"amount": 6000, "currency": "usd", "merchant": w.books, "idempotency_key": "order-2"})
		require.True(t, res.IsError)
		assert.Equal(t, "denied", out["outcome"])
		assert.Contains(t, textOf(res), "does not allow")
		assert.NotEmpty(t, out["reasons"])
		// At a merchant the mandate does not allow: refused too.
		res, _ = call(t, s, "pay", map[string]any{"amount": 1000, "currency": "usd", "merchant": w.music, "idempotency_key": "order-3"})
		require.True(t, res.IsError)

		// Above the approval threshold: an approval a person follows.
		res, out = call(t, s, "pay", map[string]any{"amount": 4000, "currency": "usd", "merchant": w.books, "idempotency_key": "order-4"})
		require.True(t, res.IsError)
		assert.Equal(t, "approval_required", out["outcome"])
		apr := out["approval"].(map[string]any)["id"].(string)
		res, out = call(t, s, "request_approval", map[string]any{"approval": apr})
		require.False(t, res.IsError, textOf(res))
		assert.Equal(t, "pending", out["status"])

		res, out = call(t, s, "get_charge", map[string]any{"id": charge})
		require.False(t, res.IsError, textOf(res))
		assert.EqualValues(t, 2500, out["amount"])
		res, out = call(t, s, "list_charges", nil)
		require.False(t, res.IsError, textOf(res))
		require.Len(t, out["charges"], 1)

		// 8. delegate: the sub-agent gets a child mandate and a token.
		res, out = call(t, s, "delegate", map[string]any{"agent": w.b, "budget": 3000, "max_amount_per_charge": 1500,
			"allowed_merchants": []string{w.books}, "description": "paperbacks"})
		require.False(t, res.IsError, textOf(res))
		child := out["mandate"].(string)
		require.NotEmpty(t, child)
		require.NotEqual(t, mid, child)
		sb := connect(out["access_token"].(string))
		res, out = call(t, sb, "get_mandate", nil)
		require.False(t, res.IsError, textOf(res))
		assert.Equal(t, child, out["id"])
		res, out = call(t, sb, "pay", map[string]any{"amount": 1200, "currency": "usd", "merchant": w.books, "idempotency_key": "sub-1"})
		require.False(t, res.IsError, textOf(res))
		assert.Equal(t, "paid", out["outcome"])
		res, _ = call(t, sb, "pay", map[string]any{"amount": 2000, "currency": "usd", "merchant": w.books, "idempotency_key": "sub-2"})
		require.True(t, res.IsError, "over the child's cap")

		// 9. The agent gives its mandate up; the child goes with it.
		res, out = call(t, s, "revoke", nil)
		require.False(t, res.IsError, textOf(res))
		assert.Contains(t, out["revoked"], child)

		// 10. The next pay is refused, for both.
		res, out = call(t, s, "pay", map[string]any{"amount": 1000, "currency": "usd", "merchant": w.books, "idempotency_key": "order-5"})
		require.True(t, res.IsError)
		assert.Equal(t, "revoked", out["outcome"], textOf(res))
		res, _ = call(t, sb, "pay", map[string]any{"amount": 1000, "currency": "usd", "merchant": w.books, "idempotency_key": "sub-3"})
		require.True(t, res.IsError)

		r := w.n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates/" + mid, Key: w.key})
		require.Equal(t, "revoked", r.JSON["status"])

		// Every tool call that acted is in the audit trail, naming its tool,
		// next to the entries of the charges, exchange and revocation.
		entries, err := w.n.App.Audit.List(context.Background(), audit.Filter{Action: "mcp.tool_called", Limit: 100})
		require.NoError(t, err)
		tools := map[string]int{}
		for _, e := range entries {
			var d map[string]any
			require.NoError(t, json.Unmarshal(e.Data, &d))
			tools[d["tool"].(string)]++
		}
		assert.Equal(t, map[string]int{"pay": 9, "delegate": 1, "revoke": 1}, tools)
	}
}

// TestAudienceBinding: a token minted for the API is refused at /mcp and
// one for /mcp at the API; a token that asked for both works at both; an
// unknown resource is refused at the token endpoint.
func TestAudienceBinding(t *testing.T) {
	w := newWorld(t, "memory")
	mid := w.mandate(t)
	api := w.n.App.Issuer.Options().Audience
	mcpRes := w.n.App.Issuer.Options().Issuer + "/mcp"
	list := `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`
	mcpHeaders := map[string]string{"Accept": "application/json, text/event-stream", "Mcp-Protocol-Version": "2025-06-18"}

	code, body := w.token(t, "/oauth2/token", mid, "charges:read mandates:read")
	require.Equal(t, 200, code, body)
	apiTok := body["access_token"].(string)
	r := w.n.Do(t, apptest.Req{Method: "POST", Path: "/mcp", Key: apiTok, Body: list, Header: mcpHeaders})
	assert.Equal(t, 401, r.Status, "an API token at /mcp: %s", r.Body)
	assert.Contains(t, r.Header.Get("WWW-Authenticate"), `resource_metadata=`)

	code, body = w.token(t, "/oauth2/token", mid, "charges:read mandates:read", mcpRes)
	require.Equal(t, 200, code, body)
	mcpTok := body["access_token"].(string)
	r = w.n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates/" + mid, Key: mcpTok})
	assert.Equal(t, 401, r.Status, "an MCP token at the API: %s", r.Body)
	assert.Contains(t, r.Header.Get("WWW-Authenticate"), `resource_metadata=`)

	code, body = w.token(t, "/oauth2/token", mid, "charges:read mandates:read", mcpRes, api)
	require.Equal(t, 200, code, body)
	both := body["access_token"].(string)
	r = w.n.Do(t, apptest.Req{Method: "POST", Path: "/mcp", Key: both, Body: list, Header: mcpHeaders})
	assert.Equal(t, 200, r.Status, string(r.Body))

	code, body = w.token(t, "/oauth2/token", mid, "charges:read", "https://elsewhere.example/api")
	assert.Equal(t, 400, code)
	assert.Equal(t, "invalid_target", body["error"])
	code, body = w.token(t, "/oauth2/token", mid, "charges:read", mcpRes+"#frag")
	assert.Equal(t, 400, code)
	assert.Equal(t, "invalid_target", body["error"])

	// A tool the token has no scope for: 403 insufficient_scope naming it,
	// the signal an MCP client steps up on.
	r = w.n.Do(t, apptest.Req{Method: "POST", Path: "/mcp", Key: mcpTok, Header: mcpHeaders,
		Body: `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"pay","arguments":{}}}`})
	assert.Equal(t, 403, r.Status, string(r.Body))
	assert.Contains(t, r.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`)
	assert.Contains(t, r.Header.Get("WWW-Authenticate"), `scope="charges:write"`)
	assert.Contains(t, r.Header.Get("WWW-Authenticate"), `resource_metadata=`)

	// A card number never reaches a tool.
	r = w.n.Do(t, apptest.Req{Method: "POST", Path: "/mcp", Key: mcpTok, Header: mcpHeaders,
		Body: `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"get_mandate","arguments":{"note":"4242424242424242"}}}`})
	assert.Equal(t, 400, r.Status, string(r.Body))
	assert.NotContains(t, string(r.Body), "4242424242424242")
}

// TestProtectedResourceMetadata: both documents name our issuer, DPoP
// algorithms and their own resource.
func TestProtectedResourceMetadata(t *testing.T) {
	n := apptest.New(t, "memory")
	iss := n.App.Issuer.Options().Issuer
	for path, res := range map[string]string{
		"/.well-known/oauth-protected-resource":     n.App.Issuer.Options().Audience,
		"/.well-known/oauth-protected-resource/mcp": iss + "/mcp",
	} {
		r := n.Do(t, apptest.Req{Method: "GET", Path: path})
		require.Equal(t, 200, r.Status, path)
		assert.Equal(t, res, r.JSON["resource"], path)
		assert.Equal(t, []any{iss}, r.JSON["authorization_servers"], path)
		assert.NotEmpty(t, r.JSON["dpop_signing_alg_values_supported"], path)
		assert.Equal(t, "*", r.Header.Get("Access-Control-Allow-Origin"), path)
	}
}

// TestToolsOverInMemoryTransport checks the tool list without HTTP: every
// documented tool is there with an input schema.
func TestToolsOverInMemoryTransport(t *testing.T) {
	n := apptest.New(t, "memory")
	srv := mcpserver.New(mcpserver.Deps{Charges: n.App.Pipeline, Issuer: n.App.Issuer, Mandates: n.App.Mandates, Merchants: n.App.Merchants})
	ct, st := mcp.NewInMemoryTransports()
	ctx := context.Background()
	ss, err := srv.MCP().Connect(ctx, st, nil)
	require.NoError(t, err)
	defer ss.Close()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil).Connect(ctx, ct, nil)
	require.NoError(t, err)
	defer cs.Close()
	tools, err := cs.ListTools(ctx, nil)
	require.NoError(t, err)
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
		assert.NotNil(t, tl.InputSchema, tl.Name)
	}
	assert.ElementsMatch(t, []string{"get_mandate", "find_merchant", "pay", "get_charge", "list_charges",
		"request_approval", "delegate", "revoke"}, names)
	// Without a verified token (no HTTP layer), a tool refuses to run.
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "get_mandate"})
	if err == nil {
		assert.True(t, res.IsError)
	}
	_ = io.Discard
}

// pay takes risk_signals as POST /v1/charges does: checked (a refused one
// is a tool error naming it, and pays nothing), then weighed by the charge
// policy, where they can deny or ask for review, never allow.
func TestPayRiskSignals(t *testing.T) {
	w := newWorld(t, "memory", func(c *app.Config) {
		c.Fraud.Enabled, c.Fraud.Screener, c.Fraud.VelocityLimits = true, "none", nil
	})
	mid := w.mandate(t)
	code, body := w.token(t, "/oauth2/token", mid, "charges:read charges:write mandates:read", w.n.App.Issuer.Options().Issuer+"/mcp")
	require.Equal(t, 200, code, body)
	s := connect(t, w.n.URL+"/mcp", body["access_token"].(string))
	pay := func(key string, signals ...map[string]any) map[string]any {
		return map[string]any{"amount": 1000, "currency": "usd", "merchant": w.books, "idempotency_key": key, "risk_signals": signals}
	}

	res, out := call(t, s, "pay", pay("rs-1", map[string]any{"type": "trusted_buyer", "score": 0, "action": "allow"}))
	require.False(t, res.IsError, textOf(res))
	assert.Equal(t, "paid", out["outcome"])
	res, out = call(t, s, "pay", pay("rs-2", map[string]any{"type": "account_takeover", "score": 91.5, "action": "block"}))
	require.True(t, res.IsError)
	assert.Equal(t, "denied", out["outcome"])
	assert.Contains(t, textOf(res), "the agent's own risk signal account_takeover (score 91.5) says block")
	res, out = call(t, s, "pay", pay("rs-3", map[string]any{"type": "x", "score": 150, "action": "review"}))
	require.True(t, res.IsError)
	assert.NotEqual(t, "denied", out["outcome"], "refused before the pipeline")
	assert.Contains(t, textOf(res), "risk_signals[0].score must be a number from 0 to 100")
	res, _ = call(t, s, "pay", pay("rs-4", map[string]any{"type": "new device", "score": 1, "action": "review"}))
	require.True(t, res.IsError)
	assert.Contains(t, textOf(res), "risk_signals[0].type must be")
	// A card number as a signal's type never reaches the tool: the HTTP
	// layer refuses the whole request.
	_, err := s.CallTool(context.Background(), &mcp.CallToolParams{Name: "pay",
		Arguments: pay("rs-5", map[string]any{"type": "4242424242424242", "score": 1, "action": "review"})})
	require.Error(t, err)
	lst := w.n.Do(t, apptest.Req{Method: "GET", Path: "/v1/charges", Key: w.key})
	require.Equal(t, 200, lst.Status)
	assert.Len(t, lst.JSON["data"], 1, "only the first purchase was paid")
}
