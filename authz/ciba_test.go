package authz_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/authz"
)

type cibaEnv struct {
	*codeEnv
	ping chan *http.Request
}

func newCIBAEnv(t *testing.T, mode string) *cibaEnv {
	c := newCodeEnv(t)
	e := &cibaEnv{codeEnv: c, ping: make(chan *http.Request, 4)}
	in := authz.AgentInput{GrantTypes: []string{authz.GrantCIBA}, Scopes: []string{"charges:write"}, BackchannelMode: mode}
	if mode == authz.BackchannelPing {
		srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			r2 := r.Clone(context.Background())
			r2.Body = io.NopCloser(strings.NewReader(string(body)))
			e.ping <- r2
			w.WriteHeader(http.StatusNoContent)
		}))
		t.Cleanup(srv.Close)
		in.BackchannelEndpoint = srv.URL + "/ciba"
		c.iss = c.issuer(func(o *authz.Options) {
			o.Now = c.clock.now
			o.Details = c.iss.Options().Details
			o.PingClient = srv.Client()
		})
	}
	c.agent, c.secret = c.secretAgent(in)
	return e
}

func (e *cibaEnv) bcForm() url.Values {
	return url.Values{"login_hint": {"cus_payer"}, "binding_message": {"W4SK"}, "scope": {"openid charges:write"},
		"authorization_details": {`[{"type":"payment_mandate","currency":"USD","budget":5000}]`}}
}

func (e *cibaEnv) bc(form url.Values, checks authz.CIBAChecks) (int, map[string]any) {
	r := httptest.NewRequest("POST", testIssuer+authz.PathBCAuthorize, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.SetBasicAuth(e.agent, e.secret)
	w := httptest.NewRecorder()
	e.iss.BackchannelAuthorize(w, r, checks)
	var out map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &out)
	return w.Code, out
}

func (e *cibaEnv) started(checks authz.CIBAChecks) string {
	st, body := e.bc(e.bcForm(), checks)
	require.Equal(e.t, 200, st, body)
	assert.EqualValues(e.t, 5, body["interval"])
	assert.EqualValues(e.t, 300, body["expires_in"])
	return body["auth_req_id"].(string)
}

func (e *cibaEnv) poll(id string) (int, map[string]any) {
	st, body, _ := token(e.t, e.iss, e.agent, e.secret, url.Values{"grant_type": {authz.GrantCIBA}, "auth_req_id": {id}}, nil)
	return st, body
}

func TestCIBAPollApproved(t *testing.T) {
	e := newCIBAEnv(t, authz.BackchannelPoll)
	ctx := context.Background()
	payers := map[string]bool{"cus_payer": true}
	checks := authz.CIBAChecks{Payer: func(_ context.Context, _, id string) (bool, error) { return payers[id], nil },
		ApprovalURL: func(id string) string { return testIssuer + "/consent/" + id }}
	id := e.started(checks)

	st, body := e.poll(id)
	require.Equal(t, 400, st)
	assert.Equal(t, "authorization_pending", body["error"])
	st, body = e.poll(id)
	require.Equal(t, 400, st)
	assert.Equal(t, "slow_down", body["error"], "a poll within the interval")
	e.clock.advance(authz.CIBAInterval)
	st, body = e.poll(id)
	require.Equal(t, 400, st)
	assert.Equal(t, "authorization_pending", body["error"])

	// The request waits on the payer's page list.
	pending, err := e.iss.ListAuthRequests(ctx, e.tenant, "cus_payer", 10)
	require.NoError(t, err)
	require.Len(t, pending, 1)
	assert.Equal(t, "W4SK", pending[0].BindingMessage)

	// Only the payer named by login_hint may answer.
	_, err = e.iss.Decide(ctx, e.tenant, "cus_someone_else", id, true, e.grantedDetails)
	require.Error(t, err)
	req, err := e.iss.Decide(ctx, e.tenant, "cus_payer", id, true, e.grantedDetails)
	require.NoError(t, err)
	e.iss.PingClient(ctx, req) // poll mode: nothing to do

	e.clock.advance(authz.CIBAInterval)
	st, body = e.poll(id)
	require.Equal(t, 200, st, body)
	at, err := e.iss.Verify(ctx, body["access_token"].(string))
	require.NoError(t, err)
	assert.JSONEq(t, string(e.grantedDetails), string(at.AuthorizationDetails))
	assert.Equal(t, "charges:write", at.Scope)

	st, body = e.poll(id)
	require.Equal(t, 400, st)
	assert.Equal(t, "invalid_grant", body["error"], "an auth_req_id gives one token")

	// Another agent cannot redeem it, nor learn of it.
	other, secret := e.secretAgent(authz.AgentInput{GrantTypes: []string{authz.GrantCIBA}})
	st, body, _ = token(t, e.iss, other, secret, url.Values{"grant_type": {authz.GrantCIBA}, "auth_req_id": {id}}, nil)
	require.Equal(t, 400, st)
	assert.Equal(t, "invalid_grant", body["error"])

	// An unknown payer is refused up front.
	f := e.bcForm()
	f.Set("login_hint", "cus_nobody")
	st, body = e.bc(f, checks)
	require.Equal(t, 400, st)
	assert.Equal(t, "unknown_user_id", body["error"])
}

func TestCIBADeniedAndExpired(t *testing.T) {
	e := newCIBAEnv(t, authz.BackchannelPoll)
	ctx := context.Background()
	id := e.started(authz.CIBAChecks{})
	_, err := e.iss.Decide(ctx, e.tenant, "cus_payer", id, false, nil)
	require.NoError(t, err)
	st, body := e.poll(id)
	require.Equal(t, 400, st)
	assert.Equal(t, "access_denied", body["error"])

	id = e.started(authz.CIBAChecks{})
	e.clock.advance(authz.CIBADefaultExpiry + time.Second)
	st, body = e.poll(id)
	require.Equal(t, 400, st)
	assert.Equal(t, "expired_token", body["error"])
	_, err = e.iss.Decide(ctx, e.tenant, "cus_payer", id, true, e.grantedDetails)
	require.Error(t, err, "an expired request cannot be approved")
}

func TestCIBARefusals(t *testing.T) {
	e := newCIBAEnv(t, authz.BackchannelPoll)
	for name, c := range map[string]struct {
		edit func(url.Values)
		code string
	}{
		"no login_hint":     {func(f url.Values) { f.Del("login_hint") }, "invalid_request"},
		"long binding":      {func(f url.Values) { f.Set("binding_message", strings.Repeat("x", 65)) }, "invalid_binding_message"},
		"card in binding":   {func(f url.Values) { f.Set("binding_message", "4242 4242 4242 4242") }, "invalid_binding_message"},
		"no details":        {func(f url.Values) { f.Del("authorization_details") }, "invalid_authorization_details"},
		"unknown type":      {func(f url.Values) { f.Set("authorization_details", `[{"type":"x"}]`) }, "invalid_authorization_details"},
		"id_token_hint":     {func(f url.Values) { f.Set("id_token_hint", "x") }, "invalid_request"},
		"scope not allowed": {func(f url.Values) { f.Set("scope", "mandates:read") }, "invalid_scope"},
		"token in poll":     {func(f url.Values) { f.Set("client_notification_token", "t") }, "invalid_request"},
	} {
		t.Run(name, func(t *testing.T) {
			f := e.bcForm()
			c.edit(f)
			st, body := e.bc(f, authz.CIBAChecks{})
			require.Equal(t, 400, st, body)
			assert.Equal(t, c.code, body["error"], body)
		})
	}
	// An agent not registered for CIBA.
	e.agent, e.secret = e.secretAgent(authz.AgentInput{})
	st, body := e.bc(e.bcForm(), authz.CIBAChecks{})
	require.Equal(t, 400, st, body)
	assert.Equal(t, "unauthorized_client", body["error"])
}

func TestCIBAPing(t *testing.T) {
	e := newCIBAEnv(t, authz.BackchannelPing)
	ctx := context.Background()
	f := e.bcForm()
	st, body := e.bc(f, authz.CIBAChecks{})
	require.Equal(t, 400, st, "ping mode needs a client_notification_token: %v", body)

	f.Set("client_notification_token", "notify-8c1f7e")
	st, body = e.bc(f, authz.CIBAChecks{})
	require.Equal(t, 200, st, body)
	id := body["auth_req_id"].(string)

	req, err := e.iss.Decide(ctx, e.tenant, "cus_payer", id, true, e.grantedDetails)
	require.NoError(t, err)
	e.iss.PingClient(ctx, req)
	var got *http.Request
	select {
	case got = <-e.ping:
	case <-time.After(30 * time.Second):
		t.Fatal("no ping arrived")
	}
	assert.Equal(t, "Bearer notify-8c1f7e", got.Header.Get("Authorization"))
	raw, _ := io.ReadAll(got.Body)
	assert.JSONEq(t, `{"auth_req_id":"`+id+`"}`, string(raw))

	st, body = e.poll(id)
	require.Equal(t, 200, st, body)
}
