package charging_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/memory"
	"github.com/perfectpay/perfectpay/store/postgres"
)

// pausing runs a function once before the next transaction it is asked
// for, then runs the transaction: a window between everything the charge
// does before its transaction (verification, loading, policy) and the
// transaction itself.
type pausing struct {
	store.Runner[charging.Tx]
	mu     sync.Mutex
	before func()
}

func (p *pausing) InTx(ctx context.Context, fn func(tx charging.Tx) error) error {
	p.mu.Lock()
	f := p.before
	p.before = nil
	p.mu.Unlock()
	if f != nil {
		f()
	}
	return p.Runner.InTx(ctx, fn)
}

func (p *pausing) pauseNextTx(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.before = f
}

// TestRevokedBetweenVerificationAndReservation verifies an agent's token,
// lets the pipeline load the mandate and decide, and revokes the token,
// the agent (or suspends it) or the mandate just before the charge
// transaction begins: every cache and every earlier check saw the
// credential live, so only the transaction's own re-check can refuse the
// charge, with the revocation's code, and nothing is reserved.
func TestRevokedBetweenVerificationAndReservation(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		var db store.Runner[charging.Tx]
		if n.App.Postgres != nil {
			db = store.Bind(n.App.Postgres, func(x *postgres.Tx) charging.Tx { return x })
		} else {
			db = store.Bind(n.App.Memory, func(x *memory.Tx) charging.Tx { return x })
		}
		runner := &pausing{Runner: db}
		svc := charging.New(runner, n.App.Payments, n.App.Pipeline.Policy(), charging.Config{}, apptest.Quiet())
		s := newShop(t, n)
		ctx := context.Background()

		for _, tc := range []struct {
			name, code string
			revoke     func(t *testing.T, a *agentCreds, mandate, raw string)
		}{
			{"token", "token_revoked", func(t *testing.T, a *agentCreds, _, raw string) {
				st, body := s.form(t, a, "/oauth2/revoke", url.Values{"token": {raw}})
				require.Equal(t, 200, st, body)
			}},
			{"agent", "agent_revoked", func(t *testing.T, a *agentCreds, _, _ string) {
				r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents/" + a.id + "/revoke", Key: s.key})
				require.Equal(t, 200, r.Status, string(r.Body))
			}},
			{"agent suspended", "agent_suspended", func(t *testing.T, a *agentCreds, _, _ string) {
				r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents/" + a.id + "/suspend", Key: s.key})
				require.Equal(t, 200, r.Status, string(r.Body))
			}},
			{"mandate", "mandate_revoked", func(t *testing.T, _ *agentCreds, mandate, _ string) {
				r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/mandates/" + mandate + "/revoke", Key: s.key})
				require.Equal(t, 200, r.Status, string(r.Body))
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				a := s.agent(t)
				mandate := s.mandate(t, a)
				raw := s.token(t, a, mandate)
				tok, err := n.App.Issuer.Verify(ctx, raw)
				require.NoError(t, err)

				// Unpaused, the same request is charged: the setup is sound.
				out, err := svc.Charge(ctx, tok, s.request(t, svc, 1000, tc.name+"-1"))
				require.NoError(t, err)
				require.Equal(t, payments.StatusSucceeded, out.Charge.Status)

				paused := false
				runner.pauseNextTx(func() {
					paused = true
					tc.revoke(t, a, mandate, raw)
				})
				out, err = svc.Charge(ctx, tok, s.request(t, svc, 1000, tc.name+"-2"))
				require.True(t, paused, "the charge reached its transaction")
				var rev *charging.RevokedError
				require.True(t, errors.As(err, &rev), "want a revocation refusal, got outcome %+v, error %v", out, err)
				assert.Equal(t, tc.code, rev.Code())
				if assert.NotNil(t, rev.Decision) && assert.NotEmpty(t, rev.Decision.Reasons) {
					assert.Equal(t, tc.code, rev.Decision.Reasons[0].Code, "the decision record names the revocation")
				}
				assert.EqualValues(t, 1000, s.spent(t, mandate), "nothing was reserved by the refused charge")
			})
		}
	})
}

// shop is a tenant with a card and a merchant to charge.
type shop struct {
	n        *apptest.Node
	key      string
	card     string
	merchant string
}

// agentCreds is an agent's client id and secret.
type agentCreds struct{ id, secret string }

func newShop(t *testing.T, n *apptest.Node) *shop {
	b, sk := n.Tenant(t)
	s := &shop{n: n, key: sk}
	r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/tokens", Key: apptest.Key(b, accounts.KindPublishable, accounts.ModeTest),
		Body: map[string]any{"card": map[string]any{"number": "4242424242424242", "exp_month": 12, "exp_year": 2040, "cvc": "123"}}})
	require.Equal(t, 200, r.Status, string(r.Body))
	s.card = r.JSON["id"].(string)
	_, mk := n.Tenant(t)
	r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/merchants", Key: mk, Body: map[string]any{
		"display_name": "Acme Books", "mcc": "5942", "country": "US", "domains": []string{"acmebooks.example"}}})
	require.Contains(t, []int{200, 201}, r.Status, string(r.Body))
	s.merchant = r.JSON["id"].(string)
	return s
}

func (s *shop) agent(t *testing.T) *agentCreds {
	r := s.n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents", Key: s.key, Body: map[string]any{
		"name": "buyer", "token_endpoint_auth_method": "client_secret_basic",
		"grant_types": []string{authz.GrantClientCredentials}, "scopes": []string{"charges:write"}}})
	require.Equal(t, 201, r.Status, string(r.Body))
	return &agentCreds{id: r.JSON["id"].(string), secret: r.JSON["client_secret"].(string)}
}

func (s *shop) mandate(t *testing.T, a *agentCreds) string {
	r := s.n.Do(t, apptest.Req{Method: "POST", Path: "/v1/mandates", Key: s.key, Body: map[string]any{
		"agent": a.id, "payer": "self", "currency": "USD", "budget": 10000, "max_amount_per_charge": 5000,
		"payment_methods": []string{s.card}, "allowed_merchants": []string{s.merchant}, "description": "books"}})
	require.Equal(t, 201, r.Status, string(r.Body))
	require.Equal(t, "active", r.JSON["status"])
	return r.JSON["id"].(string)
}

func (s *shop) token(t *testing.T, a *agentCreds, mandate string) string {
	st, body := s.form(t, a, "/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"charges:write"},
		"authorization_details": {fmt.Sprintf(`[{"type":"payment_mandate","mandate_id":%q}]`, mandate)}})
	require.Equal(t, 200, st, body)
	return body["access_token"].(string)
}

// form posts an OAuth form as the agent (HTTP Basic).
func (s *shop) form(t *testing.T, a *agentCreds, path string, form url.Values) (int, map[string]any) {
	req, err := http.NewRequest("POST", s.n.URL+path, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(a.id), url.QueryEscape(a.secret))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (s *shop) request(t *testing.T, svc *charging.Service, amount int64, key string) charging.Request {
	req, err := svc.NewRequest(charging.RawRequest{Amount: amount, Currency: "usd", PaymentMethod: s.card, MerchantID: s.merchant,
		Capture: true, IdempotencyKey: key, Purchase: &payments.Purchase{Description: "two paperbacks"}})
	require.NoError(t, err)
	return req
}

func (s *shop) spent(t *testing.T, mandate string) float64 {
	r := s.n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates/" + mandate, Key: s.key})
	require.Equal(t, 200, r.Status, string(r.Body))
	return r.JSON["spent"].(float64)
}
