package egress_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/internal/egress"
)

func TestPolicyRefusesPrivateAddresses(t *testing.T) {
	p := egress.Policy{}
	refused := []string{
		"127.0.0.1", "127.1.2.3", "::1", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
		"169.254.169.254", "169.254.1.1", "100.100.100.200", "168.63.129.16", "fd00:ec2::254", "fc00::1",
		"fe80::1", "224.0.0.1", "ff02::1", "0.0.0.0", "::", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
		"100.64.0.1", "198.18.0.1", "255.255.255.255",
	}
	for _, a := range refused {
		err := p.CheckAddr(netip.MustParseAddr(a))
		assert.ErrorIs(t, err, egress.ErrDestinationRefused, a)
	}
	for _, a := range []string{"93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "172.32.0.1"} {
		assert.NoError(t, p.CheckAddr(netip.MustParseAddr(a)), a)
	}
	allowed := egress.Policy{Allowed: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("169.254.0.0/16")}}
	assert.NoError(t, allowed.CheckAddr(netip.MustParseAddr("10.9.9.9")))
	assert.NoError(t, allowed.CheckAddr(netip.MustParseAddr("169.254.1.1")))
	assert.ErrorIs(t, allowed.CheckAddr(netip.MustParseAddr("169.254.169.254")), egress.ErrDestinationRefused,
		"a metadata address needs to be allowed by itself")
	single := egress.Policy{Allowed: []netip.Prefix{netip.MustParsePrefix("169.254.169.254/32")}}
	assert.NoError(t, single.CheckAddr(netip.MustParseAddr("169.254.169.254")))
	dev := egress.Policy{AllowHTTPLoopback: true}
	assert.NoError(t, dev.CheckAddr(netip.MustParseAddr("127.0.0.1")))
	assert.Error(t, dev.CheckAddr(netip.MustParseAddr("10.0.0.1")), "dev mode opens loopback only")
}

func TestCheckURL(t *testing.T) {
	prod := egress.Policy{}
	dev := egress.Policy{AllowHTTPLoopback: true}
	cases := []struct {
		url       string
		prod, dev bool
	}{
		{"https://example.com/hooks", true, true},
		{"https://example.com:8443/hooks?x=1", true, true},
		{"http://example.com/hooks", false, false},
		{"http://localhost:3000/hooks", false, true},
		{"http://127.0.0.1:3000/hooks", false, true},
		{"http://[::1]:3000/hooks", false, true},
		{"https://127.0.0.1/hooks", false, true},
		{"https://localhost/hooks", false, true},
		{"https://10.0.0.1/hooks", false, false},
		{"https://169.254.169.254/latest/meta-data", false, false},
		{"https://[fd00:ec2::254]/", false, false},
		{"ftp://example.com/", false, false},
		{"https://user:pw@example.com/", false, false},
		{"https://example.com/#frag", false, false},
		{"example.com/hooks", false, false},
		{"https:///nohost", false, false},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.prod, prod.CheckURL(tc.url) == nil, "prod %s", tc.url)
		assert.Equal(t, tc.dev, dev.CheckURL(tc.url) == nil, "dev %s", tc.url)
	}
}

func TestDialerRefusesAtConnectTime(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	resolve := func(names map[string][]string) egress.Resolver {
		return func(_ context.Context, _, host string) ([]netip.Addr, error) {
			var out []netip.Addr
			for _, a := range names[host] {
				out = append(out, netip.MustParseAddr(a))
			}
			return out, nil
		}
	}
	names := map[string][]string{
		"loop.test":     {"127.0.0.1"},
		"private.test":  {"10.0.0.7"},
		"metadata.test": {"169.254.169.254"},
		"mixed.test":    {"10.0.0.7", "127.0.0.1"},
	}
	d := &egress.Dialer{Policy: egress.Policy{}, Resolve: resolve(names), Timeout: time.Second}
	for _, host := range []string{"127.0.0.1", "loop.test", "private.test", "metadata.test", "mixed.test"} {
		_, err := d.DialContext(context.Background(), "tcp", host+":"+strconv.Itoa(port))
		require.ErrorIs(t, err, egress.ErrDestinationRefused, host)
	}
	assert.Equal(t, int32(0), hits.Load())
	// The same name reaches the server when its prefix is allowed.
	d.Policy.Allowed = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	c, err := d.DialContext(context.Background(), "tcp", "loop.test:"+strconv.Itoa(port))
	require.NoError(t, err)
	c.Close()
}
