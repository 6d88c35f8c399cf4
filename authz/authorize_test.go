package authz_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/internal/apierr"
)

const redirectURI = "https://agent.test/callback"

// codeEnv is an issuer with a payment_mandate type that grants any terms
// and an agent of the authorization code grant.
type codeEnv struct {
	*env
	clock          *fakeClock
	agent, secret  string
	verifier       string
	challenge      string
	grantedDetails json.RawMessage
}

func newCodeEnv(t *testing.T) *codeEnv {
	clock := newFakeClock()
	return codeEnvFor(t, newEnv(t, codeOptions(clock)), clock)
}

// codeOptions gives the issuer clock and a payment_mandate type that
// grants any terms.
func codeOptions(clock *fakeClock) func(*authz.Options) {
	reg := authz.NewDetailTypeRegistry()
	reg.Register("payment_mandate", authz.DetailType{Single: true, Validate: func(_ context.Context, _ authz.DetailContext, raw json.RawMessage) (json.RawMessage, error) {
		return raw, nil
	}})
	return func(o *authz.Options) { o.Now = clock.now; o.Details = reg }
}

// codeEnvFor adds an authorization code agent to e.
func codeEnvFor(t *testing.T, e *env, clock *fakeClock) *codeEnv {
	c := &codeEnv{env: e, clock: clock}
	c.agent, c.secret = e.secretAgent(authz.AgentInput{
		GrantTypes: []string{authz.GrantAuthorizationCode, authz.GrantRefreshToken}, RedirectURIs: []string{redirectURI},
		Scopes: []string{"charges:write", authz.ScopeOfflineAccess}})
	c.verifier = strings.Repeat("v", 20) + randomish()
	sum := sha256.Sum256([]byte(c.verifier))
	c.challenge = base64.RawURLEncoding.EncodeToString(sum[:])
	c.grantedDetails = json.RawMessage(`[{"type":"payment_mandate","mandate_id":"mdt_granted"}]`)
	return c
}

func randomish() string {
	return base64.RawURLEncoding.EncodeToString([]byte(time.Now().String()))
}

func (c *codeEnv) parForm() url.Values {
	return url.Values{
		"response_type": {"code"}, "client_id": {c.agent}, "redirect_uri": {redirectURI}, "state": {"state-1234567"},
		"scope": {"charges:write"}, "code_challenge": {c.challenge}, "code_challenge_method": {"S256"},
		"authorization_details": {`[{"type":"payment_mandate","currency":"USD","budget":20000}]`},
	}
}

// par pushes form for the agent and decodes the answer.
func (c *codeEnv) par(form url.Values) (int, map[string]any) {
	r := httptest.NewRequest("POST", testIssuer+authz.PathPAR, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.SetBasicAuth(c.agent, c.secret)
	w := httptest.NewRecorder()
	c.iss.PushedAuthorize(w, r, nil)
	var out map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &out)
	return w.Code, out
}

func (c *codeEnv) pushed() string {
	st, body := c.par(c.parForm())
	require.Equal(c.t, http.StatusCreated, st, body)
	return body["request_uri"].(string)
}

func (c *codeEnv) start(requestURI string) (*authz.AuthRequest, error) {
	q := url.Values{"client_id": {c.agent}, "request_uri": {requestURI}}
	r := httptest.NewRequest("GET", testIssuer+authz.PathAuthorize+"?"+q.Encode(), nil)
	return c.iss.StartAuthorize(context.Background(), r)
}

// approved runs the flow up to the redirect with a code.
func (c *codeEnv) approved() url.Values {
	req, err := c.start(c.pushed())
	require.NoError(c.t, err)
	req, err = c.iss.Decide(context.Background(), c.tenant, "cus_payer", req.ID, true, c.grantedDetails)
	require.NoError(c.t, err)
	to, err := c.iss.CodeRedirect(context.Background(), req)
	require.NoError(c.t, err)
	u, err := url.Parse(to)
	require.NoError(c.t, err)
	require.Equal(c.t, redirectURI, u.Scheme+"://"+u.Host+u.Path)
	return u.Query()
}

func (c *codeEnv) redeem(code, verifier string) (int, map[string]any) {
	st, body, _ := token(c.t, c.iss, c.agent, c.secret, url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {redirectURI}, "code_verifier": {verifier}}, nil)
	return st, body
}

func TestAuthorizeCodeGrant(t *testing.T) {
	c := newCodeEnv(t)
	q := c.approved()
	assert.Equal(t, testIssuer, q.Get("iss"), "RFC 9207: the response names its issuer")
	assert.Equal(t, "state-1234567", q.Get("state"))
	require.True(t, strings.HasPrefix(q.Get("code"), "ppc_"))

	st, body := c.redeem(q.Get("code"), c.verifier)
	require.Equal(t, 200, st, body)
	tok := body["access_token"].(string)
	at, err := c.iss.Verify(context.Background(), tok)
	require.NoError(t, err)
	assert.JSONEq(t, string(c.grantedDetails), string(at.AuthorizationDetails))
	assert.Equal(t, c.agent, at.ClientID)
	assert.Equal(t, "charges:write", at.Scope)
	assert.NotNil(t, body["authorization_details"])

	// A second redemption is refused and revokes what the first issued.
	st, body = c.redeem(q.Get("code"), c.verifier)
	require.Equal(t, 400, st, body)
	assert.Equal(t, "invalid_grant", body["error"])
	out, err := c.iss.Introspect(context.Background(), authz.Caller{TenantID: c.tenant}, tok, "")
	require.NoError(t, err)
	assert.Equal(t, false, out["active"], "the token issued for a reused code is revoked")
}

func TestAuthorizeCodeWrongVerifierAndExpiry(t *testing.T) {
	c := newCodeEnv(t)
	q := c.approved()
	st, body := c.redeem(q.Get("code"), strings.Repeat("x", 43))
	require.Equal(t, 400, st, body)
	assert.Equal(t, "invalid_grant", body["error"])

	q = c.approved()
	c.clock.advance(authz.CodeTTL + time.Second)
	st, body = c.redeem(q.Get("code"), c.verifier)
	require.Equal(t, 400, st, body)
	assert.Equal(t, "invalid_grant", body["error"], body)
}

func TestAuthorizePKCES256Only(t *testing.T) {
	c := newCodeEnv(t)
	for name, edit := range map[string]func(url.Values){
		"plain":   func(f url.Values) { f.Set("code_challenge_method", "plain"); f.Set("code_challenge", c.verifier) },
		"missing": func(f url.Values) { f.Del("code_challenge"); f.Del("code_challenge_method") },
		"no method": func(f url.Values) {
			f.Del("code_challenge_method")
		},
	} {
		t.Run(name, func(t *testing.T) {
			f := c.parForm()
			edit(f)
			st, body := c.par(f)
			require.Equal(t, 400, st, body)
			assert.Equal(t, "invalid_request", body["error"])
			assert.Contains(t, body["error_description"], "S256")
		})
	}
}

func TestAuthorizeRedirectExact(t *testing.T) {
	c := newCodeEnv(t)
	for _, uri := range []string{"https://agent.test/callback/", "https://agent.test/callback?x=1", "https://evil.test/callback", ""} {
		f := c.parForm()
		f.Set("redirect_uri", uri)
		st, body := c.par(f)
		require.Equal(t, 400, st, "%s: %v", uri, body)
	}
	// A loopback redirect URI matches exactly too, port included.
	id, secret := c.secretAgent(authz.AgentInput{GrantTypes: []string{authz.GrantAuthorizationCode},
		RedirectURIs: []string{"http://127.0.0.1:8765/cb"}})
	c.agent, c.secret = id, secret
	f := c.parForm()
	f.Set("client_id", id)
	f.Set("redirect_uri", "http://127.0.0.1:9999/cb")
	st, body := c.par(f)
	require.Equal(t, 400, st, body)
	f.Set("redirect_uri", "http://127.0.0.1:8765/cb")
	st, body = c.par(f)
	require.Equal(t, 201, st, body)
}

func TestAuthorizePARSingleUseAndExpiry(t *testing.T) {
	c := newCodeEnv(t)
	uri := c.pushed()
	_, err := c.start(uri)
	require.NoError(t, err)
	_, err = c.start(uri)
	var ae *authz.AuthorizeError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "invalid_request_uri", ae.Code)

	uri = c.pushed()
	c.clock.advance(authz.PARTTL + time.Second)
	_, err = c.start(uri)
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "invalid_request_uri", ae.Code)

	// Without a pushed request there is no authorization request at all.
	q := c.parForm()
	r := httptest.NewRequest("GET", testIssuer+authz.PathAuthorize+"?"+q.Encode(), nil)
	_, err = c.iss.StartAuthorize(context.Background(), r)
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "invalid_request", ae.Code)
}

func TestAuthorizePARRefusals(t *testing.T) {
	c := newCodeEnv(t)
	f := c.parForm()
	f.Set("authorization_details", `[{"type":"wire_transfer"}]`)
	st, body := c.par(f)
	require.Equal(t, 400, st, body)
	assert.Equal(t, "invalid_authorization_details", body["error"])

	f = c.parForm()
	f.Set("resource", "https://elsewhere.test/api")
	st, body = c.par(f)
	require.Equal(t, 400, st, body)
	assert.Equal(t, "invalid_target", body["error"])

	// A wrong secret is an unauthenticated client.
	c.secret = "pps_wrong"
	st, body = c.par(c.parForm())
	require.Equal(t, 401, st, body)

	// An agent without the grant may not push.
	id, secret := c.secretAgent(authz.AgentInput{})
	c.agent, c.secret = id, secret
	f = c.parForm()
	f.Set("client_id", id)
	st, body = c.par(f)
	require.Equal(t, 400, st, body)
}

func TestAuthorizeDenyAndTenants(t *testing.T) {
	c := newCodeEnv(t)
	ctx := context.Background()
	req, err := c.start(c.pushed())
	require.NoError(t, err)

	// A payer of another tenant cannot decide on this tenant's request.
	_, err = c.iss.Decide(ctx, "ten_other", "cus_other", req.ID, true, c.grantedDetails)
	var nf *apierr.NotFound
	require.ErrorAs(t, err, &nf)
	_, err = c.iss.GetAuthRequest(ctx, "ten_other", req.ID)
	require.Error(t, err)

	req, err = c.iss.Decide(ctx, c.tenant, "cus_payer", req.ID, false, nil)
	require.NoError(t, err)
	to, err := c.iss.CodeRedirect(ctx, req)
	require.NoError(t, err)
	u, _ := url.Parse(to)
	assert.Equal(t, "access_denied", u.Query().Get("error"))
	assert.Equal(t, "state-1234567", u.Query().Get("state"))
	assert.Equal(t, testIssuer, u.Query().Get("iss"))
	assert.Empty(t, u.Query().Get("code"))

	// A decision is made once.
	_, err = c.iss.Decide(ctx, c.tenant, "cus_payer", req.ID, true, c.grantedDetails)
	var conflict *apierr.Conflict
	require.ErrorAs(t, err, &conflict)

	// And not after the request expired.
	req, err = c.start(c.pushed())
	require.NoError(t, err)
	c.clock.advance(authz.AuthorizeTTL + time.Second)
	_, err = c.iss.Decide(ctx, c.tenant, "cus_payer", req.ID, true, c.grantedDetails)
	require.True(t, errors.As(err, &conflict) && conflict.Code == "auth_request_expired", "%v", err)
}

func TestAuthorizeMetadata(t *testing.T) {
	c := newCodeEnv(t)
	m := c.iss.Metadata()
	assert.Equal(t, testIssuer+authz.PathAuthorize, m["authorization_endpoint"])
	assert.Equal(t, testIssuer+authz.PathPAR, m["pushed_authorization_request_endpoint"])
	assert.Equal(t, true, m["require_pushed_authorization_requests"])
	assert.Equal(t, true, m["authorization_response_iss_parameter_supported"])
	assert.Equal(t, []string{"S256"}, m["code_challenge_methods_supported"])
	assert.Contains(t, m["grant_types_supported"], authz.GrantAuthorizationCode)
}

func TestAuthorizeRequestsPruned(t *testing.T) {
	c := newCodeEnv(t)
	ctx := context.Background()
	req, err := c.start(c.pushed())
	require.NoError(t, err)
	_, err = c.iss.PruneExpired(ctx)
	require.NoError(t, err)
	_, err = c.iss.GetAuthRequest(ctx, c.tenant, req.ID)
	require.NoError(t, err, "a live request stays")
	c.clock.advance(authz.AuthorizeTTL + 2*time.Minute)
	_, err = c.iss.PruneExpired(ctx)
	require.NoError(t, err)
	_, err = c.iss.GetAuthRequest(ctx, c.tenant, req.ID)
	require.Error(t, err, "an unanswered request goes once it expired")
}

// TestAuthorizeCodeRace: a code redeemed by several requests at once gives
// at most one token, and that token is revoked when another request
// presented the same code (a reuse, whichever came first).
func TestAuthorizeCodeRace(t *testing.T) {
	c := newCodeEnv(t)
	q := c.approved()
	const n = 8
	type answer struct {
		st   int
		body map[string]any
	}
	answers := make(chan answer, n)
	start := make(chan struct{})
	for range n {
		go func() {
			<-start
			st, body := c.redeem(q.Get("code"), c.verifier)
			answers <- answer{st, body}
		}()
	}
	close(start)
	var tokens []string
	for range n {
		a := <-answers
		if a.st == 200 {
			tokens = append(tokens, a.body["access_token"].(string))
			continue
		}
		assert.Equal(t, "invalid_grant", a.body["error"], a.body)
	}
	require.LessOrEqual(t, len(tokens), 1)
	for _, tok := range tokens {
		out, err := c.iss.Introspect(context.Background(), authz.Caller{TenantID: c.tenant}, tok, "")
		require.NoError(t, err)
		assert.Equal(t, false, out["active"], "the code was presented again: its token is revoked")
	}
}
