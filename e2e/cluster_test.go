package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/store/pgtest"
)

// cluster is several `perfectpay serve` processes on one database.
type cluster struct {
	dbURL string
	env   []string // the PERFECTPAY_* settings every node (and the CLI) gets
	nodes []*apptest.Proc
	db    *pgxpool.Pool // direct access for checking invariants
}

// publicURL is the cluster's one public base URL (what a load balancer in
// front of the nodes would answer to): the issuer every node names in and
// expects of tokens.
const publicURL = "http://perfectpay.e2e.test"

// nodeEnv is what StartProcess does not set itself: one public URL (so a
// token issued by one node is valid on every node), the shared vault and
// webhook keys (so a card tokenized on one node is readable on every
// node), the pool size, and velocity limits, fraud signals and the abuse
// defences off so that tests and benchmarks measure budgets, not velocity
// or rate limits (their loads put far more than the default 60 charges an
// hour on one card, and far more requests from one address than a
// per-IP limit allows); the defences have their own tests.
func nodeEnv(maxConns int) []string {
	cfg := apptest.Config("postgres", "")
	return []string{
		"PERFECTPAY_SERVER_PUBLIC_URL=" + publicURL,
		"PERFECTPAY_VAULT_KEKS=" + cfg.Vault.KEKs,
		"PERFECTPAY_WEBHOOKS_SECRET_KEY=" + cfg.Webhooks.SecretKey,
		fmt.Sprintf("PERFECTPAY_STORE_POSTGRES_MAX_CONNS=%d", maxConns),
		"PERFECTPAY_PIPELINE_AGENT_CHARGES_PER_HOUR=0",
		"PERFECTPAY_PIPELINE_AGENT_DECLINES_PER_HOUR=0",
		"PERFECTPAY_PIPELINE_MANDATE_CHARGES_PER_HOUR=0",
		"PERFECTPAY_PIPELINE_MANDATE_DECLINES_PER_HOUR=0",
		"PERFECTPAY_FRAUD_ENABLED=false",
		"PERFECTPAY_ABUSE_ENABLED=false",
	}
}

// startCluster starts n nodes on a fresh database; all are killed when
// the test ends.
func startCluster(t testing.TB, n, maxConns int, extra ...string) *cluster {
	t.Helper()
	c := &cluster{dbURL: pgtest.NewURL(t)}
	c.env = append(nodeEnv(maxConns), extra...)
	for range n {
		// One at a time: StartProcess fails the test from its own goroutine.
		c.nodes = append(c.nodes, apptest.StartProcess(t, c.dbURL, c.env...))
	}
	pool, err := pgxpool.New(context.Background(), c.dbURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	c.db = pool
	return c
}

// cli runs a perfectpay subcommand against the cluster's database.
func (c *cluster) cli(t testing.TB, args ...string) []byte {
	t.Helper()
	cfg := apptest.Config("postgres", c.dbURL)
	cmd := exec.Command(apptest.Binary(t), args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(),
		"PERFECTPAY_STORE_DRIVER=postgres",
		"PERFECTPAY_STORE_POSTGRES_URL="+c.dbURL,
		"PERFECTPAY_SECRETS_HMAC_KEY="+cfg.Secrets.HMACKey,
		"PERFECTPAY_ISSUER_SIGNING_KEK="+cfg.Issuer.SigningKEK,
		"PERFECTPAY_DEV_MODE=true",
		"PERFECTPAY_LOG_LEVEL=error",
	)
	cmd.Env = append(cmd.Env, c.env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "perfectpay %v: %s", args, stderr.String())
	return out
}

// tenant creates a tenant with `perfectpay tenants create` and returns its
// id, test secret key and test publishable key.
func (c *cluster) tenant(t testing.TB, name string) (id, secret, publishable string) {
	t.Helper()
	var out struct {
		Tenant struct {
			ID string `json:"id"`
		} `json:"tenant"`
		Keys map[string]string `json:"keys"`
	}
	require.NoError(t, json.Unmarshal(c.cli(t, "tenants", "create", "--name", name), &out))
	require.NotEmpty(t, out.Keys["secret_test"])
	return out.Tenant.ID, out.Keys["secret_test"], out.Keys["publishable_test"]
}

// httpClient keeps enough idle connections for the tests' concurrency. Its
// timeouts are generous: they end a hung test, they are not what a test
// asserts (a busy machine may take seconds to accept a connection).
var httpClient = &http.Client{
	Timeout: 5 * time.Minute,
	Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Minute, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        2000,
		MaxIdleConnsPerHost: 1000,
		IdleConnTimeout:     90 * time.Second,
	},
}

// call is one API request; Auth is sent as a Bearer credential.
type call struct {
	Method, Path, Auth string
	Body               any
	Header             map[string]string
}

// send performs a call against base without failing the test (safe in
// goroutines).
func send(base string, c call) (*apptest.Response, error) {
	var body io.Reader
	if c.Body != nil {
		raw, err := json.Marshal(c.Body)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(c.Method, base+c.Path, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Auth != "" {
		req.Header.Set("Authorization", "Bearer "+c.Auth)
	}
	for k, v := range c.Header {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := &apptest.Response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
	if len(raw) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out.JSON); err != nil {
			return nil, fmt.Errorf("%s %s: bad JSON: %w", c.Method, c.Path, err)
		}
	}
	return out, nil
}

// do is send that fails the test on a transport error.
func do(t testing.TB, base string, c call) *apptest.Response {
	t.Helper()
	r, err := send(base, c)
	require.NoError(t, err)
	return r
}

// form posts an OAuth form with HTTP Basic client authentication (or a
// tenant key as Bearer when user is empty).
func form(t testing.TB, base, path, user, pass, bearer string, f url.Values) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("POST", base+path, strings.NewReader(f.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := httpClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out map[string]any
	if len(raw) > 0 {
		require.NoError(t, json.Unmarshal(raw, &out), string(raw))
	}
	return resp.StatusCode, out
}

func randKey() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// shop is a payer tenant with cards, a merchant account to buy from, and
// helpers for agents, mandates and tokens, set up through the API of the
// given node.
type shop struct {
	c        *cluster
	base     string // node used for set-up
	tenantID string
	key      string // the payer tenant's secret key
	card     string // approves
	declines string // the simulated acquirer declines it
	merchant string // acct_…
}

func newShop(t testing.TB, c *cluster) *shop {
	t.Helper()
	s := &shop{c: c, base: c.nodes[0].URL}
	var pk string
	s.tenantID, s.key, pk = c.tenant(t, "Payer "+randKey())
	s.card = s.tokenize(t, pk, "4242424242424242")
	s.declines = s.tokenize(t, pk, "4000000000000002")
	_, mk, _ := c.tenant(t, "Acme Books "+randKey())
	r := do(t, s.base, call{Method: "POST", Path: "/v1/merchants", Auth: mk, Body: map[string]any{
		"display_name": "Acme Books", "mcc": "5942", "country": "US", "domains": []string{"acme-books.example"}}})
	require.Contains(t, []int{200, 201}, r.Status, string(r.Body))
	s.merchant = r.JSON["id"].(string)
	return s
}

func (s *shop) tokenize(t testing.TB, pk, number string) string {
	t.Helper()
	r := do(t, s.base, call{Method: "POST", Path: "/v1/tokens", Auth: pk, Body: map[string]any{"card": map[string]any{
		"number": number, "exp_month": 12, "exp_year": time.Now().Year() + 2, "cvc": "123", "name": "Pat Payer"}}})
	require.Equal(t, 200, r.Status, string(r.Body))
	return r.JSON["id"].(string)
}

// agent registers an agent that authenticates with client_secret_basic and
// may use client credentials and token exchange.
type agent struct{ id, secret string }

func (s *shop) agent(t testing.TB) agent {
	t.Helper()
	r := do(t, s.base, call{Method: "POST", Path: "/v1/agents", Auth: s.key, Body: map[string]any{
		"name": "agent " + randKey(), "token_endpoint_auth_method": "client_secret_basic",
		"grant_types": []string{authz.GrantClientCredentials, authz.GrantTokenExchange}, "scopes": []string{"charges:write"}}})
	require.Equal(t, 201, r.Status, string(r.Body))
	return agent{id: r.JSON["id"].(string), secret: r.JSON["client_secret"].(string)}
}

// terms are a mandate's limits for agent a on this shop's cards and merchant.
func (s *shop) terms(budget int64) map[string]any {
	return map[string]any{"currency": "USD", "budget": budget, "max_amount_per_charge": budget,
		"payment_methods": []string{s.card, s.declines}, "allowed_merchants": []string{s.merchant}}
}

// mandate creates an active root mandate (the tenant pays) for a.
func (s *shop) mandate(t testing.TB, a agent, budget int64) string {
	t.Helper()
	body := s.terms(budget)
	body["agent"], body["payer"], body["description"] = a.id, "self", "supplies for the team"
	r := do(t, s.base, call{Method: "POST", Path: "/v1/mandates", Auth: s.key, Body: body})
	require.Equal(t, 201, r.Status, string(r.Body))
	require.Equal(t, "active", r.JSON["status"])
	return r.JSON["id"].(string)
}

// token gets a's access token for mandate m with client credentials on base.
func (s *shop) token(t testing.TB, base string, a agent, m string) string {
	t.Helper()
	code, body := form(t, base, "/oauth2/token", a.id, a.secret, "", url.Values{
		"grant_type": {"client_credentials"}, "scope": {"charges:write"},
		"authorization_details": {fmt.Sprintf(`[{"type":"payment_mandate","mandate_id":%q}]`, m)}})
	require.Equal(t, 200, code, body)
	return body["access_token"].(string)
}

// delegate has agent b exchange a's token (RFC 8693) for its own with a
// smaller budget, which creates a child mandate; it returns b's token and
// the child mandate's id.
func (s *shop) delegate(t testing.TB, b agent, subject string, budget int64) (string, string) {
	t.Helper()
	detail := s.terms(budget)
	detail["type"] = "payment_mandate"
	raw, _ := json.Marshal([]any{detail})
	code, body := form(t, s.base, "/oauth2/token", b.id, b.secret, "", url.Values{
		"grant_type": {authz.GrantTokenExchange}, "subject_token": {subject},
		"subject_token_type": {authz.TokenTypeAccessToken}, "scope": {"charges:write"},
		"authorization_details": {string(raw)}})
	require.Equal(t, 200, code, body)
	tok := body["access_token"].(string)
	details, _ := claimsOf(t, tok)["authorization_details"].([]any)
	require.Len(t, details, 1)
	child, _ := details[0].(map[string]any)["mandate_id"].(string)
	require.NotEmpty(t, child)
	return tok, child
}

// claimsOf decodes a JWT's payload without verifying it.
func claimsOf(t testing.TB, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	require.Len(t, parts, 3)
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	return m
}

// chargeBody is an agent charge of amount on card at the shop's merchant.
func (s *shop) chargeBody(amount int64, card string) map[string]any {
	return map[string]any{"amount": amount, "currency": "USD", "payment_method": card, "merchant": s.merchant,
		"description": "printer paper"}
}

// charge sends an agent charge with a fresh idempotency key.
func (s *shop) charge(base, tok string, amount int64, card string) (*apptest.Response, error) {
	return sendIdempotent(base, call{Method: "POST", Path: "/v1/charges", Auth: tok, Body: s.chargeBody(amount, card),
		Header: map[string]string{"Idempotency-Key": "e2e-" + randKey()}})
}

// sendIdempotent sends c, which carries an Idempotency-Key, as a careful
// client does: after a transport error (the request may or may not have
// reached the server) or while the first attempt is still being answered
// (409 idempotency_key_in_use) it sends the same request with the same key
// again, so the answer is the outcome of the one charge the key names.
func sendIdempotent(base string, c call) (*apptest.Response, error) {
	var errs []error
	deadline := time.Now().Add(5 * time.Minute)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("no answer in 5 minutes (%d attempts with one Idempotency-Key): %w", attempt, errors.Join(errs...))
			}
			time.Sleep(time.Duration(min(attempt, 10)) * 100 * time.Millisecond) // back off
		}
		r, err := send(base, c)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if _, code, _ := errorOf(r); r.Status == http.StatusConflict && (code == "idempotency_key_in_use" || code == "charge_in_progress") {
			continue
		}
		return r, nil
	}
}

// getMandate reads a mandate through the API.
func (s *shop) getMandate(t testing.TB, base, id string) map[string]any {
	t.Helper()
	r := do(t, base, call{Method: "GET", Path: "/v1/mandates/" + id, Auth: s.key})
	require.Equal(t, 200, r.Status, string(r.Body))
	return r.JSON
}

// errorOf returns error.type, error.code and error.message.
func errorOf(r *apptest.Response) (typ, code, msg string) {
	e, _ := r.JSON["error"].(map[string]any)
	typ, _ = e["type"].(string)
	code, _ = e["code"].(string)
	msg, _ = e["message"].(string)
	return typ, code, msg
}

// reasonCodes are the decision's reason codes of a refused charge.
func reasonCodes(r *apptest.Response) []string {
	var out []string
	dec, _ := r.JSON["decision"].(map[string]any)
	rs, _ := dec["reasons"].([]any)
	for _, x := range rs {
		if m, ok := x.(map[string]any); ok {
			c, _ := m["code"].(string)
			out = append(out, c)
		}
	}
	return out
}
