package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/app/apptest"
)

// TestMCPStdio runs `perfectpay mcp --stdio`'s server (on an in-memory
// transport instead of stdin/stdout) against a node: a local client sees
// the remote tools, reads its mandate, pays and is refused above its cap,
// every call going to /mcp with the agent's token.
func TestMCPStdio(t *testing.T) {
	n := apptest.New(t, "memory")
	demo, err := n.App.SeedDemo(context.Background())
	require.NoError(t, err)
	sk := apptest.Key(demo.Tenant, accounts.KindSecret, accounts.ModeTest)
	var books string
	for _, m := range demo.Merchants {
		if m.Merchant.MCC == "5942" {
			books = m.Merchant.ID
		}
	}
	r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/tokens", Key: apptest.Key(demo.Tenant, accounts.KindPublishable, accounts.ModeTest),
		Body: map[string]any{"card": map[string]any{"number": "4242424242424242", "exp_month": 12, "exp_year": time.Now().Year() + 2, "cvc": "123"}}})
	require.Equal(t, 200, r.Status, string(r.Body))
	card := r.JSON["id"].(string)
	r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents", Key: sk, Body: map[string]any{"name": "stdio agent",
		"token_endpoint_auth_method": "client_secret_basic", "scopes": []string{"charges:read", "charges:write", "mandates:read"}}})
	require.Equal(t, 201, r.Status, string(r.Body))
	agent, secret := r.JSON["id"].(string), r.JSON["client_secret"].(string)
	r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/mandates", Key: sk, Body: map[string]any{"agent": agent, "payer": "self",
		"currency": "usd", "budget": 10000, "max_amount_per_charge": 3000, "payment_methods": []string{card}, "allowed_merchants": []string{books}}})
	require.Equal(t, 201, r.Status, string(r.Body))
	mandate := r.JSON["id"].(string)

	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"charges:write mandates:read"},
		"resource":              {n.App.Issuer.Options().Issuer + "/mcp"},
		"authorization_details": {fmt.Sprintf(`[{"type":"payment_mandate","mandate_id":%q}]`, mandate)}}
	req, _ := http.NewRequest(http.MethodPost, n.URL+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(agent, secret)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tok))
	resp.Body.Close()
	require.NotEmpty(t, tok.AccessToken)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ct, st := mcp.NewInMemoryTransports()
	done := make(chan error, 1)
	go func() { done <- serveStdio(ctx, n.URL+"/mcp", tok.AccessToken, st) }()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "local", Version: "1"}, nil).Connect(ctx, ct, nil)
	require.NoError(t, err)

	var names []string
	for tool, err := range cs.Tools(ctx, nil) {
		require.NoError(t, err)
		names = append(names, tool.Name)
	}
	assert.Contains(t, names, "pay")
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "get_mandate"})
	require.NoError(t, err)
	assert.False(t, res.IsError)
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "pay", Arguments: map[string]any{"amount": 1500, "currency": "usd", "merchant": books, "idempotency_key": "s1"}})
	require.NoError(t, err)
	assert.False(t, res.IsError)
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "pay", Arguments: map[string]any{"amount": 5000, "currency": "usd", "merchant": books, "idempotency_key": "s2"}})
	require.NoError(t, err)
	assert.True(t, res.IsError, "above the cap")

	require.NoError(t, cs.Close())
	cancel()
	if err := <-done; err != nil {
		assert.ErrorIs(t, err, context.Canceled, "the stdio server stops with its context")
	}
}

// TestMCPCommandRefusals: no token, no --stdio, a URL that would send the
// token in clear: each refused before anything is served.
func TestMCPCommandRefusals(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"mcp", "--stdio"}, "", "PERFECTPAY_ACCESS_TOKEN"},
		{[]string{"mcp"}, "tok", "only --stdio"},
		{[]string{"mcp", "--stdio", "--url", "http://pay.example/mcp"}, "tok", "https://"},
	} {
		t.Setenv(mcpTokenEnv, tc.env)
		cmd := mcpCmd()
		cmd.SetArgs(tc.args[1:])
		cmd.SetOut(&strings.Builder{})
		cmd.SetErr(&strings.Builder{})
		err := cmd.Execute()
		require.Error(t, err, tc.args)
		assert.Contains(t, err.Error(), tc.want)
	}
}
