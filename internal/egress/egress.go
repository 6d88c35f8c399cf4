// Package egress guards outbound connections to addresses a tenant names
// (webhook endpoints, merchant domain proofs) against server-side request
// forgery: a Policy of reachable destinations, checked on the URL when it is
// saved and on every address at connect time by the Dialer, and the HTTP
// client built on it.
package egress

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Policy says which destinations outbound requests may reach. The zero Policy allows
// public addresses over https only.
//
// Destinations are checked twice: the URL when an endpoint is saved (for a
// quick, friendly error), and — what actually protects — every address at
// connect time, in the dialer (see Dialer). Checking at connect time is what
// defeats DNS rebinding: the name is resolved once, each resolved address is
// checked, and the socket connects to exactly that checked address; the
// Control hook checks the address of the socket again just before connect.
type Policy struct {
	// AllowHTTPLoopback allows plain http:// URLs whose host is loopback
	// and lets the dialer reach loopback addresses (dev mode only).
	AllowHTTPLoopback bool
	// Allowed are prefixes reachable even though they are private,
	// loopback, link-local, … A cloud metadata address is reachable only
	// when a prefix of full length (a single address) names it.
	Allowed []netip.Prefix
}

// ErrDestinationRefused is wrapped by every refusal of a destination. Its
// text is part of the API's answer to a refused webhook URL.
var ErrDestinationRefused = errors.New("webhooks: destination refused")

// Ranges refused unless allowed, with the reason reported.
var deniedPrefixes = func() []struct {
	p      netip.Prefix
	reason string
} {
	list := []struct{ cidr, reason string }{
		{"0.0.0.0/8", "unspecified"},
		{"10.0.0.0/8", "private"},
		{"100.64.0.0/10", "shared address space"},
		{"127.0.0.0/8", "loopback"},
		{"169.254.0.0/16", "link-local"},
		{"172.16.0.0/12", "private"},
		{"192.0.0.0/24", "IETF protocol assignments"},
		{"192.0.2.0/24", "documentation"},
		{"192.88.99.0/24", "6to4 relay"},
		{"192.168.0.0/16", "private"},
		{"198.18.0.0/15", "benchmarking"},
		{"198.51.100.0/24", "documentation"},
		{"203.0.113.0/24", "documentation"},
		{"224.0.0.0/4", "multicast"},
		{"240.0.0.0/4", "reserved"},
		{"::/128", "unspecified"},
		{"::1/128", "loopback"},
		{"64:ff9b::/96", "NAT64"},
		{"64:ff9b:1::/48", "NAT64"},
		{"100::/64", "discard"},
		{"2001::/23", "IETF protocol assignments"},
		{"2001:db8::/32", "documentation"},
		{"2002::/16", "6to4"},
		{"fc00::/7", "private (unique local)"},
		{"fe80::/10", "link-local"},
		{"fec0::/10", "site-local"},
		{"ff00::/8", "multicast"},
	}
	out := make([]struct {
		p      netip.Prefix
		reason string
	}, len(list))
	for i, l := range list {
		out[i].p, out[i].reason = netip.MustParsePrefix(l.cidr), l.reason
	}
	return out
}()

// metadataAddrs are cloud instance metadata services. Some are public
// addresses (Azure's wire server), so they are listed on their own.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"), // AWS, GCP, Azure, OpenStack, …
	netip.MustParseAddr("169.254.170.2"),   // AWS ECS task metadata
	netip.MustParseAddr("169.254.169.123"), // AWS time sync
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
	netip.MustParseAddr("168.63.129.16"),   // Azure wire server
	netip.MustParseAddr("192.0.0.192"),     // Oracle Cloud
	netip.MustParseAddr("fd00:ec2::254"),   // AWS IMDS over IPv6
}

// CheckAddr reports whether the dialer may connect to ip, with the reason
// when it may not.
func (p Policy) CheckAddr(ip netip.Addr) error {
	ip = ip.Unmap()
	if ip.Is4In6() {
		ip = netip.AddrFrom4(ip.As4())
	}
	if !ip.IsValid() {
		return fmt.Errorf("%w: invalid address", ErrDestinationRefused)
	}
	if ip.Zone() != "" {
		ip = ip.WithZone("")
	}
	for _, m := range metadataAddrs {
		if ip == m {
			for _, a := range p.Allowed {
				if a.IsSingleIP() && a.Addr().Unmap() == ip {
					return nil
				}
			}
			return fmt.Errorf("%w: %s is a cloud metadata address", ErrDestinationRefused, ip)
		}
	}
	for _, a := range p.Allowed {
		if a.Contains(ip) {
			return nil
		}
	}
	if p.AllowHTTPLoopback && ip.IsLoopback() {
		return nil
	}
	for _, d := range deniedPrefixes {
		if d.p.Contains(ip) {
			return fmt.Errorf("%w: %s is a %s address", ErrDestinationRefused, ip, d.reason)
		}
	}
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsMulticast() || ip.IsUnspecified() || ip.IsInterfaceLocalMulticast() {
		return fmt.Errorf("%w: %s is not a public address", ErrDestinationRefused, ip)
	}
	return nil
}

// isLoopbackHost reports whether host names the local machine.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// CheckURL validates a destination URL: absolute https (http only to a
// loopback host with AllowHTTPLoopback), no credentials, no fragment, at
// most 2048 characters, and an IP literal host must pass CheckAddr.
func (p Policy) CheckURL(raw string) error {
	if len(raw) > 2048 {
		return errors.New("the URL is longer than 2048 characters")
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return errors.New("the URL must be absolute, like https://example.com/webhooks")
	}
	host := u.Hostname()
	switch u.Scheme {
	case "https":
	case "http":
		if !p.AllowHTTPLoopback || !isLoopbackHost(host) {
			return errors.New("the URL must use https (plain http is accepted only for loopback hosts in dev mode)")
		}
	default:
		return errors.New("the URL must use https")
	}
	if u.User != nil {
		return errors.New("the URL must not carry credentials")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return errors.New("the URL must not have a fragment")
	}
	if port := u.Port(); port != "" {
		if n, err := netipPort(port); err != nil || n == 0 {
			return errors.New("the URL has an invalid port")
		}
	}
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		if err := p.CheckAddr(ip); err != nil {
			return err
		}
	} else if isLoopbackHost(host) && !p.AllowHTTPLoopback {
		return fmt.Errorf("%w: %s is a loopback host", ErrDestinationRefused, host)
	}
	return nil
}

func netipPort(s string) (uint16, error) {
	ap, err := netip.ParseAddrPort("0.0.0.0:" + s)
	if err != nil {
		return 0, err
	}
	return ap.Port(), nil
}

// Resolver looks up a host's addresses (net.DefaultResolver.LookupNetIP
// fits). Tests inject one to make a name resolve to a refused address.
type Resolver func(ctx context.Context, network, host string) ([]netip.Addr, error)

// Dialer connects only to addresses the policy allows.
type Dialer struct {
	Policy  Policy
	Resolve Resolver
	Timeout time.Duration
}

// DialContext resolves addr's host, drops every refused address and
// connects to the first allowed one that answers, by address (so the name
// is not resolved a second time). The socket's Control hook checks the
// address again at connect time.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		resolve := d.Resolve
		if resolve == nil {
			resolve = net.DefaultResolver.LookupNetIP
		}
		lookupNet := "ip"
		switch network {
		case "tcp4":
			lookupNet = "ip4"
		case "tcp6":
			lookupNet = "ip6"
		}
		ips, err = resolve(ctx, lookupNet, host)
		if err != nil {
			return nil, err
		}
		if len(ips) == 0 {
			return nil, fmt.Errorf("webhooks: %s has no addresses", host)
		}
	}
	nd := &net.Dialer{Timeout: d.Timeout, Control: d.control}
	var firstErr error
	for _, ip := range ips {
		if err := d.Policy.CheckAddr(ip); err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("%s resolves to a refused address: %w", host, err)
				if host == ip.String() {
					firstErr = err
				}
			}
			continue
		}
		c, err := nd.DialContext(ctx, network, net.JoinHostPort(ip.Unmap().String(), port))
		if err == nil {
			return c, nil
		}
		if firstErr == nil || errors.Is(firstErr, ErrDestinationRefused) {
			firstErr = err
		}
	}
	return nil, firstErr
}

// control runs on the socket after it is made and before it connects.
func (d *Dialer) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparsable address %q", ErrDestinationRefused, address)
	}
	return d.Policy.CheckAddr(ap.Addr())
}

// NewHTTPClient returns the client outbound requests are sent with: the policy's
// dialer, no proxy from the environment, TLS 1.2+, redirects not followed
// (a 3xx is the answer, and counts as a failure), and timeout per request.
// tlsConf may be nil (system roots).
func NewHTTPClient(p Policy, resolve Resolver, timeout time.Duration, tlsConf *tls.Config) *http.Client {
	if tlsConf == nil {
		tlsConf = &tls.Config{}
	}
	if tlsConf.MinVersion == 0 {
		tlsConf.MinVersion = tls.VersionTLS12
	}
	d := &Dialer{Policy: p, Resolve: resolve, Timeout: 10 * time.Second}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
