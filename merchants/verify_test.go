package merchants_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/internal/egress"
	"github.com/perfectpay/perfectpay/merchants"
)

type resolver struct {
	txt   map[string][]string
	err   error
	addrs []netip.Addr
}

func (r resolver) LookupTXT(_ context.Context, name string) ([]string, error) {
	if r.err != nil {
		return nil, r.err
	}
	if v, ok := r.txt[name]; ok {
		return v, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (r resolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	if len(r.addrs) == 0 {
		return nil, &net.DNSError{Err: "no such host", IsNotFound: true}
	}
	return r.addrs, nil
}

// site serves answers by path on a local HTTPS server (certificate for
// example.com) and returns a checker pointed at it through the guarded
// client, its loopback address allowed.
func site(t *testing.T, r resolver, h http.HandlerFunc) *merchants.Checker {
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	lo := netip.MustParseAddr("127.0.0.1")
	if r.addrs == nil {
		r.addrs = []netip.Addr{lo}
	}
	c := merchants.NewChecker(r, egress.Policy{Allowed: []netip.Prefix{netip.PrefixFrom(lo, 32)}}, 10*time.Second,
		&tls.Config{RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs})
	c.Port, err = strconv.Atoi(u.Port())
	require.NoError(t, err)
	return c
}

func TestCheckerProofs(t *testing.T) {
	ctx := context.Background()
	const token = "abc123"
	serve := func(body string, status int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != merchants.WellKnownPath {
				http.NotFound(w, r)
				return
			}
			if status == http.StatusFound {
				http.Redirect(w, r, "https://elsewhere.example/"+merchants.WellKnownPath, status)
				return
			}
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
		}
	}
	for _, tc := range []struct {
		name      string
		r         resolver
		h         http.HandlerFunc
		method    string
		transient bool
		why       string
	}{
		{name: "TXT among others", r: resolver{txt: map[string][]string{"_perfectpay-challenge.example.com": {"v=spf1 -all", " perfectpay-domain-verification=abc123 "}}},
			h: serve("", 404), method: merchants.MethodDNS},
		{name: "TXT at the domain itself does not count", r: resolver{txt: map[string][]string{"example.com": {"perfectpay-domain-verification=abc123"}}},
			h: serve("", 404), why: "has no TXT record"},
		{name: "well-known file with a newline", h: serve(token+"\n", 200), method: merchants.MethodHTTPS},
		{name: "wrong token", h: serve("abc1234", 200), why: "does not hold the token"},
		{name: "token inside a page", h: serve("<html>"+token+"</html>", 200), why: "does not hold the token"},
		{name: "oversized body", h: serve(strings.Repeat(token, 1000), 200), why: "token alone"},
		{name: "redirect not followed", h: serve("", http.StatusFound), why: "answered 302"},
		{name: "resolver down, server answering 404", r: resolver{err: &net.DNSError{Err: "timeout", IsTimeout: true}},
			h: serve("", 404), why: "lookup", transient: false},
		{name: "resolver down, server unreachable", r: resolver{err: &net.DNSError{Err: "timeout", IsTimeout: true}, addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}},
			h: serve("", 404), why: "refused", transient: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := site(t, tc.r, tc.h)
			method, transient, err := c.Check(ctx, "example.com", token)
			assert.Equal(t, tc.transient, transient)
			if tc.method != "" {
				require.NoError(t, err)
				assert.Equal(t, tc.method, method)
				return
			}
			require.ErrorIs(t, err, merchants.ErrNoProof)
			assert.Contains(t, err.Error(), tc.why)
		})
	}
}

// TestCheckerCertificateMustMatch: a server whose certificate does not
// name the domain proves nothing.
func TestCheckerCertificateMustMatch(t *testing.T) {
	c := site(t, resolver{}, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("abc123")) })
	_, _, err := c.Check(context.Background(), "shop.example.net", "abc123")
	require.ErrorIs(t, err, merchants.ErrNoProof)
	assert.Contains(t, err.Error(), "certificate")
}
