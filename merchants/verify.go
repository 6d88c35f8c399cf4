package merchants

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/events"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/internal/egress"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/store"
)

// Domain verification works the way certificate authorities (ACME's
// dns-01 and http-01) and payment platforms check a domain: the merchant
// asks for a challenge token, publishes it, and asks for a check. The token
// is proof when either
//
//   - a TXT record at _perfectpay-challenge.<domain> reads
//     "perfectpay-domain-verification=<token>", or
//   - https://<domain>/.well-known/perfectpay-domain-verification answers
//     200 with the token as its body (a valid certificate for the domain,
//     no redirect followed).
//
// The HTTPS check goes through the SSRF-guarded client of internal/egress:
// the name is resolved once, private, loopback and metadata addresses are
// refused at connect time. A proven domain is re-checked on a schedule;
// when the proof is gone for ReverifyFailures checks in a row the domain is
// no longer verified and the tenant gets merchant.domain_unverified.
const (
	// DNSLabel prefixes the domain for the TXT record.
	DNSLabel = "_perfectpay-challenge."
	// TXTPrefix starts the TXT record's value.
	TXTPrefix = "perfectpay-domain-verification="
	// WellKnownPath is the HTTPS proof's path.
	WellKnownPath = "/.well-known/perfectpay-domain-verification"

	// ChallengeTTL is how long a token may serve for a first proof.
	ChallengeTTL = 7 * 24 * time.Hour
	// ReverifyInterval is the time between re-checks of a proven domain;
	// RetryInterval the time to the next try after a failed re-check.
	ReverifyInterval = 24 * time.Hour
	RetryInterval    = time.Hour
	// ReverifyFailures failed re-checks in a row unverify a domain.
	ReverifyFailures = 3
	// maxProofBody bounds the well-known file read.
	maxProofBody = 1024
)

// Resolver is the DNS a Checker uses: TXT records for the proof and
// addresses for the HTTPS connection. *net.Resolver fits; tests use a fake.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Checker looks for a domain's proof.
type Checker struct {
	Resolver Resolver
	// Client fetches the well-known file; NewChecker makes it SSRF-guarded.
	Client *http.Client
	// Port is the HTTPS port (0: 443). Tests point it at a local server.
	Port int
}

// NewChecker returns a checker that resolves with r and fetches over the
// SSRF-guarded client of internal/egress (policy p, certificates
// verified against roots; nil means the system's).
func NewChecker(r Resolver, p egress.Policy, timeout time.Duration, tlsConf *tls.Config) *Checker {
	return &Checker{Resolver: r, Client: egress.NewHTTPClient(p, r.LookupNetIP, timeout, tlsConf)}
}

// ErrDomainNotClaimed: the merchant's profile does not list the domain.
var ErrDomainNotClaimed = errors.New("merchants: domain not claimed")

// ErrNoProof is wrapped by a check that found no valid proof.
var ErrNoProof = errors.New("merchants: no proof of domain control")

// Check looks for token at domain, by DNS first, then HTTPS. It returns the
// method that proved it, or an error wrapping ErrNoProof that says what was
// found; transient is true when no answer was conclusive (DNS temporarily
// failing and the HTTPS server unreachable), so a re-check should not count
// it against the domain.
func (c *Checker) Check(ctx context.Context, domain, token string) (method string, transient bool, err error) {
	want := TXTPrefix + token
	records, dnsErr := c.Resolver.LookupTXT(ctx, DNSLabel+domain)
	if dnsErr == nil && slices.ContainsFunc(records, func(r string) bool { return strings.TrimSpace(r) == want }) {
		return MethodDNS, false, nil
	}
	var dnsWhy string
	var de *net.DNSError
	switch {
	case dnsErr == nil:
		dnsWhy = fmt.Sprintf("no TXT record at %s%s reads %q", DNSLabel, domain, want)
	case errors.As(dnsErr, &de) && de.IsNotFound:
		dnsWhy = fmt.Sprintf("%s%s has no TXT record", DNSLabel, domain)
	default:
		transient = true
		dnsWhy = fmt.Sprintf("the TXT lookup of %s%s failed (%v)", DNSLabel, domain, dnsErr)
	}
	httpsWhy, reached := c.fetch(ctx, domain, token)
	if httpsWhy == "" {
		return MethodHTTPS, false, nil
	}
	return "", transient && !reached, fmt.Errorf("%w: %s; %s", ErrNoProof, dnsWhy, httpsWhy)
}

// fetch looks for the well-known file; it returns "" when it holds token,
// else why not, and whether the server answered at all.
func (c *Checker) fetch(ctx context.Context, domain, token string) (why string, reached bool) {
	host := domain
	if c.Port != 0 {
		host = net.JoinHostPort(domain, fmt.Sprint(c.Port))
	}
	url := "https://" + host + WellKnownPath
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Sprintf("%s cannot be requested", url), false
	}
	resp, err := c.Client.Do(req)
	if err != nil {
		return fmt.Sprintf("GET %s failed (%v)", url, err), false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxProofBody+1))
	switch {
	case resp.StatusCode != http.StatusOK:
		return fmt.Sprintf("GET %s answered %d (redirects are not followed)", url, resp.StatusCode), true
	case err != nil || len(body) > maxProofBody:
		return fmt.Sprintf("GET %s did not answer with the token alone", url), true
	case string(bytes.TrimSpace(body)) != token:
		return fmt.Sprintf("GET %s does not hold the token", url), true
	}
	return "", true
}

// Codes of a verification the merchant can act on (an *apierr.Invalid
// about domain).
const (
	CodeChallengeMissing apierr.Code = "domain_challenge_missing"
	CodeChallengeExpired apierr.Code = "domain_challenge_expired"
	CodeNotProven        apierr.Code = "domain_verification_failed"
)

// unverified is a verification the merchant can act on: code says which.
func unverified(code apierr.Code, format string, args ...any) error {
	return apierr.Invalidf("domain", code, format, args...)
}

// Challenge is what the merchant publishes to prove a domain.
type Challenge struct {
	Domain    string    `json:"domain"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	// DNSName and DNSValue are the TXT record; HTTPSURL and the token as
	// its body the well-known file. Either proves the domain.
	DNSName  string `json:"dns_name"`
	DNSValue string `json:"dns_value"`
	HTTPSURL string `json:"https_url"`
}

func challengeOf(d *Domain) *Challenge {
	return &Challenge{Domain: d.Name, Token: d.Token, ExpiresAt: *d.TokenExpiresAt,
		DNSName: DNSLabel + d.Name, DNSValue: TXTPrefix + d.Token, HTTPSURL: "https://" + d.Name + WellKnownPath}
}

func newToken() string {
	b := make([]byte, 20)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// ownDomain loads the tenant's merchant id and the index of domain in it;
// store.ErrNotFound when the merchant is not the tenant's or does not
// claim the domain.
func ownDomain(ctx context.Context, tx Tx, tenantID, id, domain string) (*Merchant, int, error) {
	if err := tx.LockMerchant(ctx, id); err != nil {
		return nil, 0, err
	}
	m, err := tx.GetMerchant(ctx, id)
	if err != nil {
		return nil, 0, err
	}
	if m.TenantID != tenantID {
		return nil, 0, store.ErrNotFound
	}
	i := slices.IndexFunc(m.Domains, func(d Domain) bool { return d.Name == domain })
	if i < 0 {
		return nil, 0, fmt.Errorf("%w: merchant %s does not claim %s", ErrDomainNotClaimed, id, domain)
	}
	return m, i, nil
}

// StartVerification gives the tenant's merchant id a challenge for domain:
// the pending one while it is valid, else a new one.
func (s *Service) StartVerification(ctx context.Context, tenantID, id, domain string) (*Challenge, error) {
	domain = mandates.NormalizeDomain(domain)
	var ch *Challenge
	err := s.db.InTx(ctx, func(tx Tx) error {
		m, i, err := ownDomain(ctx, tx, tenantID, id, domain)
		if err != nil {
			return err
		}
		d := &m.Domains[i]
		now := s.now().UTC().Truncate(time.Microsecond)
		if d.Token != "" && (d.Verified() || d.TokenExpiresAt.After(now)) {
			ch = challengeOf(d)
			return nil
		}
		exp := now.Add(ChallengeTTL)
		d.Token, d.TokenExpiresAt, m.UpdatedAt = newToken(), &exp, now
		if err := tx.UpdateMerchant(ctx, m); err != nil {
			return err
		}
		ch = challengeOf(d)
		return audit.RecordFor(ctx, tx, tenantID, "merchant.domain_challenge_created", m.ID, map[string]any{"domain": domain, "expires_at": exp})
	})
	return ch, err
}

// Verify checks the proof of domain for the tenant's merchant id now, and
// marks the domain verified when it holds (ErrDomainTaken when another
// merchant holds it verified). A missing proof is an *apierr.Invalid saying
// what was looked for and found.
func (s *Service) Verify(ctx context.Context, tenantID, id, domain string) (*Merchant, error) {
	domain = mandates.NormalizeDomain(domain)
	var token string
	err := s.db.InTx(ctx, func(tx Tx) error {
		m, i, err := ownDomain(ctx, tx, tenantID, id, domain)
		if err != nil {
			return err
		}
		d := m.Domains[i]
		switch {
		case d.Token == "":
			return unverified(CodeChallengeMissing, "No challenge for %s yet: POST /v1/merchants/%s/domains/%s/challenge first.", domain, id, domain)
		case !d.Verified() && !d.TokenExpiresAt.After(s.now()):
			return unverified(CodeChallengeExpired, "The challenge for %s expired at %s: ask for a new one.", domain, d.TokenExpiresAt.Format(time.RFC3339))
		}
		token = d.Token
		return nil
	})
	if err != nil {
		return nil, err
	}
	method, _, checkErr := s.checker().Check(ctx, domain, token)
	var m *Merchant
	err = s.db.InTx(ctx, func(tx Tx) error {
		var i int
		var err error
		if m, i, err = ownDomain(ctx, tx, tenantID, id, domain); err != nil {
			return err
		}
		d := &m.Domains[i]
		if d.Token != token {
			return unverified(CodeChallengeMissing, "The challenge for %s changed while it was checked: check again.", domain)
		}
		if checkErr != nil {
			return audit.RecordFor(ctx, tx, tenantID, "merchant.domain_verification_failed", m.ID, map[string]any{"domain": domain, "reason": checkErr.Error()})
		}
		now := s.now().UTC().Truncate(time.Microsecond)
		next := now.Add(ReverifyInterval)
		wasVerified := d.Verified()
		if !wasVerified {
			d.VerifiedAt = &now
		}
		d.Method, d.CheckedAt, d.NextCheckAt, d.FailedChecks, m.UpdatedAt = method, &now, &next, 0, now
		if err := tx.UpdateMerchant(ctx, m); errors.Is(err, store.ErrConflict) {
			return ErrDomainTaken
		} else if err != nil {
			return err
		}
		if err := audit.RecordFor(ctx, tx, tenantID, "merchant.domain_verified", m.ID, map[string]any{"domain": domain, "method": method}); err != nil {
			return err
		}
		if wasVerified {
			return nil
		}
		return events.Emit(ctx, tx, tenantID, "merchant.domain_verified", domainEvent(m, domain, method))
	})
	if err != nil {
		return nil, err
	}
	if checkErr != nil {
		return nil, unverified(CodeNotProven, "%s is not verified: %s.", domain, strings.TrimPrefix(checkErr.Error(), ErrNoProof.Error()+": "))
	}
	return m, nil
}

func domainEvent(m *Merchant, domain, method string) map[string]any {
	return map[string]any{"object": "merchant_domain", "merchant": m.ID, "domain": domain, "method": method}
}

// ReverifyDue re-checks every proven domain whose next check is due (in
// batches) and returns how many were checked and unverified.
func (s *Service) ReverifyDue(ctx context.Context) (checked, unverified int, err error) {
	for {
		var due []DomainRef
		err := s.db.InTx(ctx, func(tx Tx) error {
			var err error
			due, err = tx.DueDomainChecks(ctx, s.now(), 100)
			return err
		})
		if err != nil || len(due) == 0 {
			return checked, unverified, err
		}
		for _, ref := range due {
			claimed, lost, err := s.reverify(ctx, ref)
			if err != nil {
				return checked, unverified, err
			}
			if claimed {
				checked++
			}
			if lost {
				unverified++
			}
		}
	}
}

// reverify claims one due check and runs it (claimed is false when another
// node took it first); lost reports that the domain was unverified.
func (s *Service) reverify(ctx context.Context, ref DomainRef) (claimed, lost bool, err error) {
	var token string
	err = s.db.InTx(ctx, func(tx Tx) error {
		// Lock the profile first, as every change of it does (one lock
		// order), then claim the check.
		m, i, err := ownDomain(ctx, tx, ref.TenantID, ref.MerchantID, ref.Domain)
		if errors.Is(err, ErrDomainNotClaimed) || errors.Is(err, store.ErrNotFound) {
			return nil // removed from the profile since it was listed
		}
		if err != nil {
			return err
		}
		now := s.now().UTC().Truncate(time.Microsecond)
		ok, err := tx.ClaimDomainCheck(ctx, ref.MerchantID, ref.Domain, now, now.Add(RetryInterval))
		if err == nil && ok {
			claimed, token = true, m.Domains[i].Token
		}
		return err
	})
	if err != nil || !claimed {
		return false, false, err
	}
	method, transient, checkErr := s.checker().Check(ctx, ref.Domain, token)
	err = s.db.InTx(ctx, func(tx Tx) error {
		m, i, err := ownDomain(ctx, tx, ref.TenantID, ref.MerchantID, ref.Domain)
		if err != nil {
			return err
		}
		d := &m.Domains[i]
		if !d.Verified() || d.Token != token {
			return nil // changed meanwhile
		}
		now := s.now().UTC().Truncate(time.Microsecond)
		switch {
		case checkErr == nil:
			next := now.Add(ReverifyInterval)
			d.Method, d.CheckedAt, d.NextCheckAt, d.FailedChecks = method, &now, &next, 0
		case transient:
			next := now.Add(RetryInterval)
			d.CheckedAt, d.NextCheckAt = &now, &next
		default:
			d.FailedChecks++
			next := now.Add(RetryInterval)
			d.CheckedAt, d.NextCheckAt = &now, &next
			if d.FailedChecks >= ReverifyFailures {
				lost = true
				d.VerifiedAt, d.NextCheckAt, d.Token, d.TokenExpiresAt, d.Method = nil, nil, "", nil, ""
			}
		}
		m.UpdatedAt = now
		if err := tx.UpdateMerchant(ctx, m); err != nil {
			return err
		}
		if !lost {
			if checkErr != nil {
				return audit.RecordFor(ctx, tx, ref.TenantID, "merchant.domain_recheck_failed", m.ID, map[string]any{"domain": ref.Domain, "reason": checkErr.Error(), "failed_checks": d.FailedChecks})
			}
			return nil
		}
		if err := audit.RecordFor(ctx, tx, ref.TenantID, "merchant.domain_unverified", m.ID, map[string]any{"domain": ref.Domain, "reason": checkErr.Error()}); err != nil {
			return err
		}
		ev := domainEvent(m, ref.Domain, "")
		delete(ev, "method")
		ev["reason"] = checkErr.Error()
		return events.Emit(ctx, tx, ref.TenantID, "merchant.domain_unverified", ev)
	})
	return true, lost, err
}

// RunReverifier re-checks due domains every interval until ctx ends.
func (s *Service) RunReverifier(ctx context.Context, interval time.Duration, log interface {
	Error(msg string, args ...any)
	Info(msg string, args ...any)
}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		checked, lost, err := s.ReverifyDue(ctx)
		if err != nil && ctx.Err() == nil {
			log.Error("domain re-verification failed", "err", err)
		} else if checked > 0 {
			log.Info("domains re-verified", "checked", checked, "unverified", lost)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
