// Command mcp drives PerfectPay's MCP server with the official Go SDK's
// client, the way an AI agent's runtime would: it starts from nothing but
// the endpoint's URL, is told by the 401 where to get a token (RFC 9728),
// gets one for the MCP resource (RFC 8707) carrying its mandate, and then
// calls the tools: read the mandate, find the shop, pay, be refused above
// the cap, give the mandate up, be refused after.
//
// The tenant's side (registering the agent, tokenizing the card, granting
// the mandate) is done with the tenant's secret key first, as a merchant
// or a payer's app would.
//
//	perfectpay serve --dev | tee /tmp/pp.out &
//	go run ./examples/mcp --url http://127.0.0.1:8080 --key sk_test_…
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func main() {
	fs := flag.NewFlagSet("mcp", flag.ExitOnError)
	base := fs.String("url", "http://127.0.0.1:8080", "PerfectPay server base URL")
	key := fs.String("key", os.Getenv("PERFECTPAY_SECRET_KEY"), "the tenant's secret key (sk_test_…)")
	pk := fs.String("publishable-key", os.Getenv("PERFECTPAY_PUBLISHABLE_KEY"), "the tenant's publishable key (pk_test_…)")
	_ = fs.Parse(os.Args[1:])
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := Run(ctx, Config{URL: strings.TrimRight(*base, "/"), SecretKey: *key, PublishableKey: *pk}, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mcp example:", err)
		os.Exit(1)
	}
}

// Config says which server and tenant to use.
type Config struct {
	URL            string
	SecretKey      string
	PublishableKey string
}

// Run sets the tenant up, then plays the agent over MCP, narrating to out.
// It fails at the first step that does not behave as described.
func Run(ctx context.Context, cfg Config, out io.Writer) error {
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	t := &tenant{cfg: cfg}

	// The tenant's side, with its secret key.
	books, err := t.merchant(ctx, "books.acme.example")
	if err != nil {
		return err
	}
	card, err := t.card(ctx)
	if err != nil {
		return err
	}
	agent, secret, err := t.agent(ctx)
	if err != nil {
		return err
	}
	mandate, err := t.mandate(ctx, agent, card, books)
	if err != nil {
		return err
	}
	say("tenant: agent %s may spend 100.00 USD, at most 40.00 per purchase, at Acme Books (mandate %s)", agent, mandate)

	// The agent's side: it knows only the MCP endpoint's URL.
	endpoint := cfg.URL + "/mcp"
	resp, err := http.Post(endpoint, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	if err != nil {
		return err
	}
	resp.Body.Close()
	m := regexp.MustCompile(`resource_metadata="([^"]+)"`).FindStringSubmatch(resp.Header.Get("WWW-Authenticate"))
	if resp.StatusCode != http.StatusUnauthorized || m == nil {
		return fmt.Errorf("an unauthenticated call: HTTP %d, WWW-Authenticate %q; want 401 naming resource_metadata", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	say("agent: POST /mcp without a token → 401, resource_metadata=%s", m[1])
	var prm struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
	}
	if err := t.getJSON(ctx, m[1], &prm); err != nil {
		return err
	}
	if len(prm.AuthorizationServers) == 0 {
		return errors.New("the protected resource metadata names no authorization server")
	}
	var asm struct {
		TokenEndpoint string `json:"token_endpoint"`
	}
	if err := t.getJSON(ctx, prm.AuthorizationServers[0]+"/.well-known/oauth-authorization-server", &asm); err != nil {
		return err
	}
	say("agent: resource %s is served by %s (token endpoint %s)", prm.Resource, prm.AuthorizationServers[0], asm.TokenEndpoint)
	tok, err := t.token(ctx, asm.TokenEndpoint, agent, secret, mandate, prm.Resource)
	if err != nil {
		return err
	}
	say("agent: got a token for %s with the mandate in authorization_details", prm.Resource)

	client := mcp.NewClient(&mcp.Implementation{Name: "perfectpay-example-agent", Version: "1.0.0"}, nil)
	session, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint,
		HTTPClient: &http.Client{Transport: bearer(tok)}}, nil)
	if err != nil {
		return err
	}
	defer session.Close()
	call := func(tool string, args map[string]any) (*mcp.CallToolResult, error) {
		res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", tool, err)
		}
		say("agent: %s → %s", tool, firstText(res))
		return res, nil
	}
	if res, err := call("get_mandate", nil); err != nil || res.IsError {
		return fmt.Errorf("get_mandate failed: %v", err)
	}
	if res, err := call("find_merchant", map[string]any{"domain": "books.acme.example"}); err != nil || res.IsError {
		return fmt.Errorf("find_merchant failed: %v", err)
	}
	pay := func(amount int, idem string) (*mcp.CallToolResult, error) {
		return call("pay", map[string]any{"amount": amount, "currency": "usd", "merchant": books,
			"description": "a paperback", "idempotency_key": idem})
	}
	if res, err := pay(1999, "example-1"); err != nil || res.IsError {
		return fmt.Errorf("a payment within the mandate was not made: %v", err)
	}
	if res, err := pay(4500, "example-2"); err != nil || !res.IsError {
		return fmt.Errorf("a payment above the cap was not refused: %v", err)
	}
	if res, err := call("revoke", nil); err != nil || res.IsError {
		return fmt.Errorf("revoke failed: %v", err)
	}
	if res, err := pay(500, "example-3"); err != nil || !res.IsError {
		return fmt.Errorf("a payment after revocation was not refused: %v", err)
	}
	say("The end: every tool behaved as described.")
	return nil
}

func firstText(res *mcp.CallToolResult) string {
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			return t.Text
		}
	}
	return ""
}

type bearer string

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(b))
	return http.DefaultTransport.RoundTrip(r)
}

// tenant calls the REST API with the tenant's keys.
type tenant struct{ cfg Config }

// local maps an advertised URL (the server's public URL) onto the URL we
// were given, so the example also works against a server whose public
// URL is not where we reach it.
func (t *tenant) local(advertised string) string {
	u, err := url.Parse(advertised)
	if err != nil {
		return advertised
	}
	return t.cfg.URL + u.Path
}

func (t *tenant) getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.local(u), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", u, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (t *tenant) do(ctx context.Context, method, path, key string, body any, want int) (map[string]any, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, t.cfg.URL+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: HTTP %d %v", method, path, resp.StatusCode, out["error"])
	}
	return out, nil
}

func (t *tenant) merchant(ctx context.Context, domain string) (string, error) {
	out, err := t.do(ctx, http.MethodGet, "/v1/merchants?domain="+url.QueryEscape(domain), t.cfg.SecretKey, nil, http.StatusOK)
	if err != nil {
		return "", err
	}
	data, _ := out["data"].([]any)
	if len(data) == 0 {
		return "", fmt.Errorf("no merchant has verified %s (start the server with --dev for the demo shops)", domain)
	}
	id, _ := data[0].(map[string]any)["id"].(string)
	return id, nil
}

func (t *tenant) card(ctx context.Context) (string, error) {
	key := t.cfg.PublishableKey
	if key == "" {
		key = t.cfg.SecretKey
	}
	out, err := t.do(ctx, http.MethodPost, "/v1/tokens", key, map[string]any{"card": map[string]any{
		"number": "4242424242424242", "exp_month": 12, "exp_year": time.Now().Year() + 3, "cvc": "123", "name": "Ada Lovelace"}}, http.StatusOK)
	if err != nil {
		return "", err
	}
	id, _ := out["id"].(string)
	return id, nil
}

func (t *tenant) agent(ctx context.Context) (id, secret string, err error) {
	out, err := t.do(ctx, http.MethodPost, "/v1/agents", t.cfg.SecretKey, map[string]any{
		"name": "MCP shopping agent", "token_endpoint_auth_method": "client_secret_basic",
		"scopes": []string{"charges:read", "charges:write", "mandates:read"}}, http.StatusCreated)
	if err != nil {
		return "", "", err
	}
	id, _ = out["id"].(string)
	secret, _ = out["client_secret"].(string)
	return id, secret, nil
}

func (t *tenant) mandate(ctx context.Context, agent, card, merchant string) (string, error) {
	out, err := t.do(ctx, http.MethodPost, "/v1/mandates", t.cfg.SecretKey, map[string]any{
		"agent": agent, "payer": "self", "currency": "usd", "budget": 10000, "max_amount_per_charge": 4000,
		"payment_methods": []string{card}, "allowed_merchants": []string{merchant}, "description": "paperbacks"}, http.StatusCreated)
	if err != nil {
		return "", err
	}
	id, _ := out["id"].(string)
	return id, nil
}

func (t *tenant) token(ctx context.Context, endpoint, id, secret, mandate, resource string) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"charges:read charges:write mandates:read"},
		"resource":              {resource},
		"authorization_details": {fmt.Sprintf(`[{"type":"payment_mandate","mandate_id":%q}]`, mandate)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.local(endpoint), strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", err
	}
	tok, _ := out["access_token"].(string)
	if resp.StatusCode != http.StatusOK || tok == "" {
		return "", fmt.Errorf("token endpoint: HTTP %d %v %v", resp.StatusCode, out["error"], out["error_description"])
	}
	return tok, nil
}
