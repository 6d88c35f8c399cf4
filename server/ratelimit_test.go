package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/abuse"
	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/server"
	"github.com/perfectpay/perfectpay/store/pgtest"
	"github.com/perfectpay/perfectpay/webhooks"
)

// testClock is a clock the tests move by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// defended starts a node with the abuse defences on, limits lifted except
// those opts set, on a fake clock.
func defended(t *testing.T, driver, dbURL string, opts ...func(*app.Config)) (*apptest.Node, *testClock) {
	t.Helper()
	all := append([]func(*app.Config){func(c *app.Config) {
		c.Abuse.Enabled = true
		c.Abuse.Limits = abuse.Limits{}
		c.Abuse.Auth = abuse.GuardConfig{}
	}}, opts...)
	var n *apptest.Node
	if driver == "postgres" && dbURL != "" {
		n = apptest.NewWithURL(t, driver, dbURL, all...)
	} else {
		n = apptest.New(t, driver, all...)
	}
	require.NotNil(t, n.App.Defences)
	clk := &testClock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	n.App.Defences.Limiter.SetClock(clk.Now)
	n.App.Defences.Guard.SetClock(clk.Now)
	return n, clk
}

func TestRateLimitPerKeyAnswers429AndRecovers(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n, clk := defended(t, driver, "", func(c *app.Config) {
			c.Abuse.Limits.Key = abuse.Limit{Rate: 2, Per: time.Second, Burst: 3}
		})
		_, sk := n.Tenant(t)
		_, other := n.Tenant(t)
		get := func(key string) *apptest.Response {
			return n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: key})
		}
		for i := range 3 {
			r := get(sk)
			require.Equal(t, 200, r.Status, "request %d of the burst: %s", i+1, r.Body)
			assert.Equal(t, `"key";q=3;w=2`, r.Header.Get("RateLimit-Policy"))
		}
		r := get(sk)
		require.Equal(t, http.StatusTooManyRequests, r.Status, string(r.Body))
		assert.Equal(t, "rate_limit_error", r.ErrorType())
		assert.Equal(t, "rate_limited", r.ErrorCode())
		assert.Equal(t, "1", r.Header.Get("Retry-After"))
		assert.Equal(t, `"key";r=0;t=2`, r.Header.Get("RateLimit"))

		assert.Equal(t, 200, get(other).Status, "another key has its own budget")

		clk.Advance(499 * time.Millisecond)
		assert.Equal(t, http.StatusTooManyRequests, get(sk).Status, "not yet")
		clk.Advance(time.Millisecond)
		r = get(sk)
		assert.Equal(t, 200, r.Status, "recovered after Retry-After: %s", r.Body)
		assert.Equal(t, `"key";r=0;t=2`, r.Header.Get("RateLimit"))
	})
}

// Tokenizations and charges have budgets of their own, and a tenant's or
// a key's override replaces the default.
func TestRateLimitBudgetsAndOverrides(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n, clk := defended(t, driver, "", func(c *app.Config) {
			c.Abuse.Limits.Tokenize = abuse.Limit{Rate: 1, Per: time.Minute, Burst: 2}
			c.Abuse.Limits.Key = abuse.Limit{Rate: 1, Per: time.Minute, Burst: 100}
		})
		boot, _ := n.Tenant(t)
		pk := apptest.Key(boot, accounts.KindPublishable, accounts.ModeTest)
		card := map[string]any{"card": map[string]any{"number": "4242424242424242", "exp_month": 12, "exp_year": 2035, "cvc": "123"}}
		for range 2 {
			r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/tokens", Key: pk, Body: card})
			require.Equal(t, 200, r.Status, string(r.Body))
		}
		r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/tokens", Key: pk, Body: card})
		require.Equal(t, http.StatusTooManyRequests, r.Status, string(r.Body))
		assert.Contains(t, r.Header.Values("RateLimit-Policy"), `"tokenize";q=2;w=120`)
		assert.Equal(t, "60", r.Header.Get("Retry-After"))
		// The key's general budget is untouched by the tokenization limit.
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tokens/tok_none", Key: pk})
		assert.NotEqual(t, http.StatusTooManyRequests, r.Status)

		// An override for this key lifts its tokenization limit.
		for _, k := range boot.Keys {
			if k.Key.Kind == accounts.KindPublishable && k.Key.Mode == accounts.ModeTest {
				n.App.Defences.SetKeyLimits(k.Key.ID, abuse.Limits{Tokenize: abuse.Limit{Rate: 100, Per: time.Second, Burst: 100}})
			}
		}
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/tokens", Key: pk, Body: card})
		assert.Equal(t, 200, r.Status, "the key's override applies: %s", r.Body)
		// A tenant's override applies to its keys without one of their own.
		boot2, _ := n.Tenant(t)
		pk2 := apptest.Key(boot2, accounts.KindPublishable, accounts.ModeTest)
		n.App.Defences.SetTenantLimits(boot2.Tenant.ID, abuse.Limits{Tokenize: abuse.Limit{Rate: 1, Per: time.Minute, Burst: 1}})
		require.Equal(t, 200, n.Do(t, apptest.Req{Method: "POST", Path: "/v1/tokens", Key: pk2, Body: card}).Status)
		assert.Equal(t, http.StatusTooManyRequests, n.Do(t, apptest.Req{Method: "POST", Path: "/v1/tokens", Key: pk2, Body: card}).Status)
		clk.Advance(time.Minute)
		assert.Equal(t, 200, n.Do(t, apptest.Req{Method: "POST", Path: "/v1/tokens", Key: pk2, Body: card}).Status)
	})
}

// Behind a trusted proxy the client is the last untrusted hop of
// X-Forwarded-For; from anyone else the header is ignored.
func TestRateLimitPerIPHonoursTrustedProxiesOnly(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n, _ := defended(t, driver, "", func(c *app.Config) {
			c.Abuse.Limits.IP = abuse.Limit{Rate: 1, Per: time.Minute, Burst: 2}
		})
		_, sk := n.Tenant(t)
		from := func(xff string) int {
			return n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: sk, Header: map[string]string{"X-Forwarded-For": xff}}).Status
		}
		// Untrusted peer (the test client on loopback): the header is
		// ignored, every request is the peer's.
		assert.Equal(t, 200, from("203.0.113.1"))
		assert.Equal(t, 200, from("203.0.113.2"))
		assert.Equal(t, http.StatusTooManyRequests, from("203.0.113.3"), "spoofed X-Forwarded-For does not buy a new budget")

		n2, _ := defended(t, driver, "", func(c *app.Config) {
			c.Abuse.Limits.IP = abuse.Limit{Rate: 1, Per: time.Minute, Burst: 2}
			c.Abuse.TrustedProxies = []string{"127.0.0.0/8", "::1", "10.0.0.0/8"}
		})
		_, sk2 := n2.Tenant(t)
		from2 := func(xff string) int {
			return n2.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: sk2, Header: map[string]string{"X-Forwarded-For": xff}}).Status
		}
		assert.Equal(t, 200, from2("198.51.100.7, 10.1.2.3"))
		assert.Equal(t, 200, from2("1.1.1.1, 198.51.100.7"), "the spoofable left part is not the client")
		assert.Equal(t, http.StatusTooManyRequests, from2("198.51.100.7"), "same client behind the proxy")
		assert.Equal(t, 200, from2("198.51.100.8"), "another client behind the proxy")
	})
}

// The token endpoint limits each client on its own budget.
func TestRateLimitTokenEndpointPerClient(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n, _ := defended(t, driver, "", func(c *app.Config) {
			c.Abuse.Limits.TokenClient = abuse.Limit{Rate: 1, Per: time.Minute, Burst: 2}
		})
		post := func(client string) *apptest.Response {
			form := url.Values{"grant_type": {"client_credentials"}, "client_id": {client}, "client_secret": {"nope"}}
			return n.Do(t, apptest.Req{Method: "POST", Path: "/oauth2/token", Body: form.Encode(),
				Header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}})
		}
		assert.NotEqual(t, http.StatusTooManyRequests, post("agt_one").Status)
		assert.NotEqual(t, http.StatusTooManyRequests, post("agt_one").Status)
		r := post("agt_one")
		assert.Equal(t, http.StatusTooManyRequests, r.Status, string(r.Body))
		assert.Contains(t, r.Header.Values("RateLimit-Policy"), `"token_client";q=2;w=120`)
		assert.NotEqual(t, http.StatusTooManyRequests, post("agt_two").Status, "another client has its own budget")
	})
}

// Brute force of API keys from one IP: throttled, then blocked for the
// cool-down with 429 whatever the request carries (a valid key too), the
// block audited and emitted as an event once.
func TestBruteForceOfKeysIsBlockedAndAudited(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n, clk := defended(t, driver, "", func(c *app.Config) {
			c.Abuse.Auth = abuse.GuardConfig{
				Window: 10 * time.Minute, ThrottleAfter: 3, Throttle: abuse.Limit{Rate: 1, Per: 5 * time.Second, Burst: 1},
				BlockAfter: 5, Cooldown: 15 * time.Minute,
			}
		})
		_, sk := n.Tenant(t)
		try := func(key string) *apptest.Response {
			return n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: key})
		}
		for i := range 3 {
			r := try("sk_test_guess" + strings.Repeat("x", i))
			require.Equal(t, 401, r.Status, "guess %d: %s", i, r.Body)
		}
		require.Equal(t, 401, try("sk_test_guess4").Status, "throttled: one attempt per 5s")
		r := try("sk_test_guess5")
		require.Equal(t, http.StatusTooManyRequests, r.Status, "throttled: %s", r.Body)
		assert.Equal(t, "5", r.Header.Get("Retry-After"))
		clk.Advance(5 * time.Second)
		require.Equal(t, 401, try("sk_test_guess6").Status, "the fifth failure")

		clk.Advance(5 * time.Second)
		r = try(sk)
		require.Equal(t, http.StatusTooManyRequests, r.Status, "blocked, even with a valid key: %s", r.Body)
		assert.Equal(t, "rate_limit_error", r.ErrorType())
		assert.Equal(t, "rate_limited", r.ErrorCode(), "the same answer as any limit: no hint")
		assert.NotContains(t, strings.ToLower(string(r.Body)), "key")
		assert.Equal(t, "895", r.Header.Get("Retry-After"), "blocked at the fifth failure, 5s ago, for 15m")

		entries, err := n.App.Audit.List(context.Background(), audit.Filter{Action: server.ActionSourceBlocked})
		require.NoError(t, err)
		require.Len(t, entries, 1, "one block, audited once")
		assert.Equal(t, "ip:127.0.0.1", entries[0].Target)
		assert.NotContains(t, string(entries[0].Data), "guess", "the guessed keys are not recorded")
		evs, _, err := n.App.Webhooks.ListEvents(context.Background(), webhooks.EventFilter{Type: server.ActionSourceBlocked, Limit: 10})
		require.NoError(t, err)
		require.Len(t, evs, 1)
		var ev struct {
			Object abuse.Block `json:"object"`
		}
		require.NoError(t, json.Unmarshal(evs[0].Data, &ev))
		assert.Equal(t, abuse.Source{Kind: "ip", Value: "127.0.0.1"}, ev.Object.Source)
		assert.Equal(t, 5, ev.Object.Failures)

		clk.Advance(15 * time.Minute)
		assert.Equal(t, 200, try(sk).Status, "the cool-down is over")
	})
}

// Failed client secrets against one client at the token endpoint block
// that client, from any address.
func TestBruteForceOfClientSecretsBlocksTheClient(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n, _ := defended(t, driver, "", func(c *app.Config) {
			c.Abuse.Auth = abuse.GuardConfig{Window: 10 * time.Minute, BlockAfter: 3, Cooldown: time.Hour}
		})
		post := func(client string) *apptest.Response {
			form := url.Values{"grant_type": {"client_credentials"}}
			r, err := http.NewRequest("POST", n.URL+"/oauth2/token", strings.NewReader(form.Encode()))
			require.NoError(t, err)
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.SetBasicAuth(client, "wrong-secret")
			resp, err := http.DefaultClient.Do(r)
			require.NoError(t, err)
			resp.Body.Close()
			return &apptest.Response{Status: resp.StatusCode, Header: resp.Header}
		}
		for range 3 {
			require.Equal(t, 401, post("agt_victim").Status)
		}
		assert.Equal(t, http.StatusTooManyRequests, post("agt_victim").Status, "blocked")
		entries, err := n.App.Audit.List(context.Background(), audit.Filter{Action: server.ActionSourceBlocked})
		require.NoError(t, err)
		var targets []string
		for _, e := range entries {
			targets = append(targets, e.Target)
		}
		assert.ElementsMatch(t, []string{"ip:127.0.0.1", "client:agt_victim"}, targets)
	})
}

// Two nodes, each told the cluster has two: each enforces half the limit,
// so spread over both a key gets the limit, not twice it.
func TestRateLimitHoldsOverTwoNodes(t *testing.T) {
	url := pgtest.NewURL(t)
	opt := func(c *app.Config) {
		c.Abuse.Nodes = 2
		c.Abuse.Limits.Key = abuse.Limit{Rate: 10, Per: time.Minute, Burst: 10}
	}
	a, _ := defended(t, "postgres", url, opt)
	b, _ := defended(t, "postgres", url, opt)
	_, sk := a.Tenant(t)
	ok := 0
	for i := range 40 {
		n := a
		if i%2 == 1 {
			n = b
		}
		if n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: sk}).Status == 200 {
			ok++
		}
	}
	assert.Equal(t, 10, ok, "the cluster admits the limit (at most one more per node)")
	// All on one node: that node's share only — stricter, never looser.
	_, sk2 := a.Tenant(t)
	ok = 0
	for range 20 {
		if a.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: sk2}).Status == 200 {
			ok++
		}
	}
	assert.Equal(t, 5, ok)
}
