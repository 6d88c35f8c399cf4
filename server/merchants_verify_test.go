package server_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/internal/egress"
	"github.com/perfectpay/perfectpay/merchants"
)

// fakeDNS answers TXT and address lookups from maps; a name in temporary
// fails as an unreachable resolver would.
type fakeDNS struct {
	mu        sync.Mutex
	txt       map[string][]string
	addrs     map[string][]netip.Addr
	temporary map[string]bool
}

func (f *fakeDNS) LookupTXT(_ context.Context, name string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.temporary[name] {
		return nil, &net.DNSError{Err: "server misbehaving", Name: name, IsTemporary: true}
	}
	if r, ok := f.txt[name]; ok {
		return r, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (f *fakeDNS) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a, ok := f.addrs[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func (f *fakeDNS) setTXT(name string, values ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if values == nil {
		delete(f.txt, name)
		return
	}
	f.txt[name] = values
}

// proofSite is a local HTTPS server (httptest's certificate names
// example.com) serving the well-known file.
type proofSite struct {
	mu   sync.Mutex
	body string
	srv  *httptest.Server
}

func (p *proofSite) set(body string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.body = body
}

func newProofSite(t *testing.T) *proofSite {
	p := &proofSite{}
	p.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		body := p.body
		p.mu.Unlock()
		if r.URL.Path != merchants.WellKnownPath || body == "" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, body)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// clock is a settable clock for the merchants service.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestMerchantDomainVerification: a merchant proves a domain by a DNS TXT
// record or an HTTPS well-known file (fake resolver, local HTTPS server
// whose loopback address the test allows); a missing or wrong proof, an
// expired challenge and a private address fail; proven domains are
// re-checked, survive a transient failure, and are unverified with a
// merchant.domain_unverified event when the proof is gone.
func TestMerchantDomainVerification(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		site := newProofSite(t)
		siteURL, err := url.Parse(site.srv.URL)
		require.NoError(t, err)
		port := siteURL.Port()
		loopback := netip.MustParseAddr("127.0.0.1")
		dns := &fakeDNS{txt: map[string][]string{}, temporary: map[string]bool{}, addrs: map[string][]netip.Addr{
			"example.com":          {loopback},
			"internal.example.com": {netip.MustParseAddr("10.1.2.3")},
		}}
		roots := site.srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
		checker := merchants.NewChecker(dns, egress.Policy{Allowed: []netip.Prefix{netip.PrefixFrom(loopback, 32)}},
			10*time.Second, &tls.Config{RootCAs: roots})
		_, err = fmt.Sscan(port, &checker.Port)
		require.NoError(t, err)
		n.App.Merchants.SetChecker(checker)
		clk := &clock{t: time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)}
		n.App.Merchants.SetClock(clk.now)

		_, key := n.Tenant(t)
		_, otherKey := n.Tenant(t)
		r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/merchants", Key: key, Body: map[string]any{
			"display_name": "Example Books", "mcc": "5942", "country": "US",
			"domains": []string{"example.com", "shop.example.net", "late.example.org", "internal.example.com"}}})
		require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
		id := r.JSON["id"].(string)
		base := "/v1/merchants/" + id + "/domains/"
		post := func(k, path string) *apptest.Response {
			return n.Do(t, apptest.Req{Method: "POST", Path: path, Key: k})
		}
		challenge := func(domain string) map[string]any {
			t.Helper()
			r := post(key, base+domain+"/challenge")
			require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
			return r.JSON
		}
		verified := func(domain string) bool {
			t.Helper()
			r := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/merchants?domain=" + domain, Key: otherKey})
			require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
			return len(r.JSON["data"].([]any)) == 1
		}

		// The tenant's own profiles, listed with a cursor.
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/merchants", Key: key})
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		require.Len(t, r.JSON["data"], 1)
		assert.Equal(t, id, r.JSON["data"].([]any)[0].(map[string]any)["id"])
		assert.Equal(t, false, r.JSON["has_more"])
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/merchants?starting_after=" + id, Key: key})
		require.Equal(t, http.StatusOK, r.Status)
		assert.Empty(t, r.JSON["data"])
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/merchants?starting_after=acct_nothere", Key: key})
		assert.Equal(t, http.StatusBadRequest, r.Status)
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/merchants", Key: otherKey})
		require.Equal(t, http.StatusOK, r.Status)
		assert.Empty(t, r.JSON["data"], "another tenant's profiles are not listed")

		// Only the owner, only claimed domains, only after a challenge.
		assert.Equal(t, http.StatusNotFound, post(otherKey, base+"example.com/challenge").Status)
		assert.Equal(t, http.StatusNotFound, post(key, base+"unclaimed.example/challenge").Status)
		r = post(key, base+"example.com/verify")
		require.Equal(t, http.StatusBadRequest, r.Status)
		assert.Equal(t, string(merchants.CodeChallengeMissing), r.ErrorCode())

		// HTTPS proof.
		ch := challenge("example.com")
		token := ch["token"].(string)
		assert.Equal(t, "domain_challenge", ch["object"])
		assert.Equal(t, "_perfectpay-challenge.example.com", ch["dns_name"])
		assert.Equal(t, merchants.TXTPrefix+token, ch["dns_value"])
		assert.Equal(t, "https://example.com"+merchants.WellKnownPath, ch["https_url"])
		assert.Equal(t, token, challenge("example.com")["token"], "the pending challenge is given again")
		r = post(key, base+"example.com/verify")
		require.Equal(t, http.StatusBadRequest, r.Status, "nothing published yet")
		assert.Equal(t, string(merchants.CodeNotProven), r.ErrorCode())
		assert.Contains(t, r.JSON["error"].(map[string]any)["message"], "has no TXT record")
		site.set("not-the-token")
		assert.Equal(t, string(merchants.CodeNotProven), post(key, base+"example.com/verify").ErrorCode(), "a wrong token proves nothing")
		assert.False(t, verified("example.com"))
		site.set(token)
		r = post(key, base+"example.com/verify")
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		assert.Contains(t, r.JSON["domains"], map[string]any{"domain": "example.com", "verified": true,
			"verified_at": clk.now().Format(time.RFC3339), "method": "https"})
		assert.True(t, verified("example.com"))

		// DNS proof; a wrong TXT value proves nothing.
		token2 := challenge("shop.example.net")["token"].(string)
		dns.setTXT("_perfectpay-challenge.shop.example.net", "v=spf1 -all", merchants.TXTPrefix+"wrong")
		assert.Equal(t, string(merchants.CodeNotProven), post(key, base+"shop.example.net/verify").ErrorCode())
		dns.setTXT("_perfectpay-challenge.shop.example.net", "v=spf1 -all", merchants.TXTPrefix+token2)
		r = post(key, base+"shop.example.net/verify")
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		assert.True(t, verified("shop.example.net"))

		// Updating the profile keeps the proven domains' state, re-checks included.
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/merchants", Key: key, Body: map[string]any{
			"display_name": "Example Books & More", "mcc": "5942", "country": "US",
			"domains": []string{"example.com", "shop.example.net", "late.example.org", "internal.example.com"}}})
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		assert.True(t, verified("example.com") && verified("shop.example.net"))

		// A domain resolving to a private address is never fetched.
		challenge("internal.example.com")
		r = post(key, base+"internal.example.com/verify")
		require.Equal(t, http.StatusBadRequest, r.Status)
		assert.Contains(t, r.JSON["error"].(map[string]any)["message"], "refused")

		// Expiry: a challenge not proven in time cannot be used; a new one is issued.
		old := challenge("late.example.org")["token"].(string)
		clk.add(merchants.ChallengeTTL + time.Minute)
		dns.setTXT("_perfectpay-challenge.late.example.org", merchants.TXTPrefix+old)
		r = post(key, base+"late.example.org/verify")
		require.Equal(t, http.StatusBadRequest, r.Status)
		assert.Equal(t, string(merchants.CodeChallengeExpired), r.ErrorCode())
		assert.False(t, verified("late.example.org"))
		fresh := challenge("late.example.org")["token"].(string)
		assert.NotEqual(t, old, fresh)

		// Re-verification: both proofs still there.
		ctx := context.Background()
		clk.add(merchants.ReverifyInterval)
		checked, lost, err := n.App.Merchants.ReverifyDue(ctx)
		require.NoError(t, err)
		assert.Equal(t, 2, checked)
		assert.Equal(t, 0, lost)

		// The HTTPS proof disappears, the DNS resolver fails for a while:
		// the DNS-proven domain survives (nothing conclusive), the HTTPS one
		// is unverified after ReverifyFailures failed checks in a row.
		site.set("")
		dns.mu.Lock()
		dns.temporary["_perfectpay-challenge.shop.example.net"] = true
		dns.mu.Unlock()
		clk.add(merchants.ReverifyInterval)
		for i := 1; i <= merchants.ReverifyFailures; i++ {
			// Three sweepers at once (nodes): each domain is checked once.
			type result struct{ checked, lost int }
			results := make(chan result, 3)
			for range 3 {
				go func() {
					c, l, err := n.App.Merchants.ReverifyDue(ctx)
					assert.NoError(t, err)
					results <- result{c, l}
				}()
			}
			checked, lost = 0, 0
			for range 3 {
				r := <-results
				checked, lost = checked+r.checked, lost+r.lost
			}
			assert.Equal(t, 2, checked, "check %d", i)
			if i < merchants.ReverifyFailures {
				assert.Equal(t, 0, lost)
				assert.True(t, verified("example.com"), "still verified after %d failed checks", i)
			} else {
				assert.Equal(t, 1, lost)
			}
			clk.add(merchants.RetryInterval)
		}
		assert.False(t, verified("example.com"))
		assert.True(t, verified("shop.example.net"))
		checked, _, err = n.App.Merchants.ReverifyDue(ctx)
		require.NoError(t, err)
		assert.Equal(t, 1, checked, "an unverified domain is not re-checked")

		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/events?limit=100", Key: key})
		require.Equal(t, http.StatusOK, r.Status)
		var types []string
		for _, e := range r.JSON["data"].([]any) {
			ev := e.(map[string]any)
			types = append(types, ev["type"].(string))
			if ev["type"] == "merchant.domain_unverified" {
				obj := ev["data"].(map[string]any)["object"].(map[string]any)
				assert.Equal(t, "example.com", obj["domain"])
				assert.Equal(t, id, obj["merchant"])
			}
		}
		assert.Contains(t, types, "merchant.domain_verified")
		assert.Contains(t, types, "merchant.domain_unverified")

		// Every step was audited.
		entries, err := n.App.Audit.List(ctx, audit.Filter{Target: id, Limit: 1000})
		require.NoError(t, err)
		var actions []string
		for _, e := range entries {
			actions = append(actions, e.Action+" "+string(e.Data))
		}
		for _, want := range []string{"merchant.domain_challenge_created", "merchant.domain_verification_failed",
			"merchant.domain_verified", "merchant.domain_recheck_failed", "merchant.domain_unverified"} {
			assert.True(t, strings.Contains(strings.Join(actions, "\n"), want+" "), "audited: %s", want)
		}
		assert.False(t, strings.Contains(strings.Join(actions, " "), token), "tokens are not audited")
	})
}
