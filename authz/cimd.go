package authz

// Client ID Metadata Documents: an agent whose client_id is an https URL.
// The URL's host must be allowed by exactly one tenant (ClientDomain)
// before anything is fetched; the document at the URL is fetched through
// the SSRF-guarded egress client, validated like a registration, cached by
// its HTTP caching headers, and the agent record is made in that tenant on
// first use (its id is the URL), so suspension, revocation, mandates and
// audit apply to it as to any agent.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/events"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/internal/egress"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/internal/logging"
	"github.com/perfectpay/perfectpay/store"
)

// ClientDomain is a host whose Client ID Metadata Documents a tenant
// accepts. A host belongs to one tenant at most.
type ClientDomain struct {
	Domain    string    `json:"domain"`
	TenantID  string    `json:"-"`
	CreatedAt time.Time `json:"created"`
}

// ClientDomainRepo stores the tenants' client domains.
type ClientDomainRepo interface {
	// CreateClientDomain adds a domain (store.ErrConflict if any tenant
	// has it, store.ErrNotFound without the tenant).
	CreateClientDomain(ctx context.Context, d *ClientDomain) error
	// GetClientDomain finds a domain in any tenant.
	GetClientDomain(ctx context.Context, domain string) (*ClientDomain, error)
	// ListClientDomains lists a tenant's domains by name.
	ListClientDomains(ctx context.Context, tenantID string) ([]ClientDomain, error)
	// DeleteClientDomain removes a domain of the tenant (store.ErrNotFound
	// if the tenant has no such domain).
	DeleteClientDomain(ctx context.Context, tenantID, domain string) error
}

// Limits of Client ID Metadata Documents.
const (
	maxClientDomains = 100
	cimdMaxBytes     = 5 << 10
	cimdMaxJWKSBytes = 16 << 10 // ten RSA-4096 keys fit
	// CIMDTimeout bounds fetching a document.
	CIMDTimeout = 5 * time.Second
	// cimdDefaultTTL applies without Cache-Control max-age; cimdMinTTL and
	// cimdMaxTTL bound max-age (no-store and no-cache are not cached).
	cimdDefaultTTL = 5 * time.Minute
	cimdMinTTL     = 30 * time.Second
	cimdMaxTTL     = 24 * time.Hour
	cimdCacheMax   = 10_000
)

// defaultCIMDClient reaches public addresses only (Options.CIMDClient
// replaces it in tests).
var defaultCIMDClient = egress.NewHTTPClient(egress.Policy{}, nil, CIMDTimeout, nil)

var domainRE = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)

// NormalizeClientDomain lowercases a host name and checks it is a DNS name
// of at least two labels (no IP literal, port, wildcard or scheme).
func NormalizeClientDomain(d string) (string, error) {
	d = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
	if len(d) > 253 || !domainRE.MatchString(d) {
		return "", apierr.BadParam("domain", "domain must be a host name like agents.example.com (no scheme, port, path or wildcard)")
	}
	return d, nil
}

// AddClientDomain lets agents whose client_id is an https URL on domain
// authenticate as agents of tenantID. A domain belongs to one tenant.
func (i *Issuer) AddClientDomain(ctx context.Context, tenantID, domain string) (*ClientDomain, error) {
	domain, err := NormalizeClientDomain(domain)
	if err != nil {
		return nil, err
	}
	d := &ClientDomain{Domain: domain, TenantID: tenantID, CreatedAt: i.stamp()}
	err = i.db.InTx(ctx, func(tx Tx) error {
		have, err := tx.ListClientDomains(ctx, tenantID)
		if err != nil {
			return err
		}
		if len(have) >= maxClientDomains {
			return apierr.BadParam("domain", "a tenant may allow at most %d client domains", maxClientDomains)
		}
		if err := tx.CreateClientDomain(ctx, d); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return &apierr.Conflict{Param: "domain", Message: "domain " + domain +
					" is already allowed (by this or another account); a domain belongs to one account"}
			}
			return err
		}
		return audit.Record(ctx, tx, "client_domain.added", domain, map[string]any{"domain": domain})
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// ListClientDomains lists tenantID's client domains.
func (i *Issuer) ListClientDomains(ctx context.Context, tenantID string) ([]ClientDomain, error) {
	var out []ClientDomain
	err := i.db.Autocommit(ctx, func(tx Tx) error {
		var err error
		out, err = tx.ListClientDomains(ctx, tenantID)
		return err
	})
	return out, err
}

// RemoveClientDomain stops accepting URL client ids on domain. Agents made
// from it stay (with their history) but can no longer authenticate.
func (i *Issuer) RemoveClientDomain(ctx context.Context, tenantID, domain string) error {
	domain, err := NormalizeClientDomain(domain)
	if err != nil {
		return err
	}
	return i.db.InTx(ctx, func(tx Tx) error {
		if err := tx.DeleteClientDomain(ctx, tenantID, domain); err != nil {
			return err
		}
		return audit.Record(ctx, tx, "client_domain.removed", domain, map[string]any{"domain": domain})
	})
}

// IsURLClientID reports whether id is meant as a Client ID Metadata
// Document URL.
func IsURLClientID(id string) bool { return strings.HasPrefix(id, "https://") }

// checkClientIDURL checks the shape the draft requires of a URL client id:
// https, a host, a path other than "/", no userinfo, no fragment, no dot
// segments (also percent-encoded), at most 2048 characters. It returns the
// lowercased host.
func checkClientIDURL(raw string) (string, error) {
	if len(raw) > 2048 || !ids.Storable(raw) {
		return "", errors.New("the client_id URL is longer than 2048 characters or not valid UTF-8")
	}
	if logging.RedactPAN(raw) != raw {
		return "", errors.New("the client_id URL must not hold a card number")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Opaque != "" {
		return "", errors.New("the client_id URL must be an absolute https URL")
	}
	if u.User != nil || strings.Contains(raw, "#") {
		return "", errors.New("the client_id URL must not carry credentials or a fragment")
	}
	p := u.EscapedPath()
	if p == "" || p == "/" {
		return "", errors.New("the client_id URL must have a path")
	}
	for _, seg := range strings.Split(p, "/") {
		switch strings.ToLower(seg) {
		case ".", "..", "%2e", "%2e%2e", ".%2e", "%2e.":
			return "", errors.New("the client_id URL must not have dot segments")
		}
	}
	return strings.ToLower(u.Hostname()), nil
}

// clientMetadata is the part of a Client ID Metadata Document we read;
// other members are ignored.
type clientMetadata struct {
	ClientID                string          `json:"client_id"`
	ClientName              string          `json:"client_name"`
	RedirectURIs            []string        `json:"redirect_uris"`
	GrantTypes              []string        `json:"grant_types"`
	Scope                   string          `json:"scope"`
	TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method"`
	JWKS                    json.RawMessage `json:"jwks"`
	JWKSURI                 string          `json:"jwks_uri"`
	ClientSecret            json.RawMessage `json:"client_secret"`
}

// cimdEntry is a validated document (as the agent input it becomes) and
// until when it may be used without fetching it again.
type cimdEntry struct {
	in    AgentInput
	until time.Time
}

type cimdCache struct {
	mu     sync.Mutex
	m      map[string]cimdEntry
	flight map[string]*cimdFetch // fetches under way, shared by concurrent requests
}

// cimdFetch is a fetch under way; done closes when in and err are set.
type cimdFetch struct {
	done chan struct{}
	in   AgentInput
	err  error
}

func (i *Issuer) cimdClient() *http.Client {
	if i.opt.CIMDClient != nil {
		return i.opt.CIMDClient
	}
	return defaultCIMDClient
}

// cimdRefusal makes an invalid_client answer about a URL client id.
func cimdRefusal(reason error) error {
	return invalidClient("The client's metadata document cannot be used: " + reason.Error() + ".")
}

// urlAgent resolves a URL client id to its agent: the host must be
// allowed by a tenant (checked before anything is fetched), the document
// fresh or fetched again, and the agent record made or brought up to date
// with the document (audited).
func (i *Issuer) urlAgent(ctx context.Context, id string) (*agentClient, error) {
	host, err := checkClientIDURL(id)
	if err != nil {
		return nil, cimdRefusal(err)
	}
	var dom *ClientDomain
	var a *Agent
	err = i.db.Autocommit(ctx, func(tx Tx) error {
		var err error
		if dom, err = tx.GetClientDomain(ctx, host); err != nil {
			return err
		}
		a, err = tx.GetAgent(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			a, err = nil, nil
		}
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, invalidClient("The client_id's host is not allowed as a client domain by any account.")
	}
	if err != nil {
		return nil, err
	}
	if a != nil && a.TenantID != dom.TenantID {
		return nil, invalidClient("The client_id's host is now allowed by another account than the agent's.")
	}
	in, err := i.cimdDocument(ctx, id)
	if err != nil {
		return nil, err
	}
	if a == nil {
		a, err = i.createURLAgent(ctx, dom.TenantID, id, in)
	} else if !sameAgentInput(a, in) {
		a, err = i.refreshURLAgent(ctx, a, in)
	}
	if err != nil {
		return nil, err
	}
	return newAgentClient(a)
}

func sameAgentInput(a *Agent, in AgentInput) bool {
	return a.Name == in.Name && sameJSON(a.JWKS, in.JWKS) && slices.Equal(a.RedirectURIs, in.RedirectURIs) &&
		slices.Equal(a.GrantTypes, in.GrantTypes) && slices.Equal(a.Scopes, in.Scopes)
}

// sameJSON compares two JSON values by meaning: PostgreSQL's jsonb keeps
// neither the order of members nor the spacing.
func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(x, y)
}

func (i *Issuer) createURLAgent(ctx context.Context, tenantID, id string, in AgentInput) (*Agent, error) {
	now := i.stamp()
	a := &Agent{
		ID: id, TenantID: tenantID, Name: in.Name, Status: AgentActive, AuthMethod: in.AuthMethod, JWKS: in.JWKS,
		GrantTypes: in.GrantTypes, Scopes: in.Scopes, Audiences: []string{}, RedirectURIs: in.RedirectURIs,
		CreatedAt: now, UpdatedAt: now,
	}
	if a.RedirectURIs == nil {
		a.RedirectURIs = []string{}
	}
	actx := audit.WithActor(ctx, agentActor(ctx, tenantID, id))
	err := i.db.InTx(actx, func(tx Tx) error {
		if err := tx.CreateAgent(actx, a); err != nil {
			return err
		}
		if err := audit.Record(actx, tx, "agent.created", a.ID, map[string]any{"name": a.Name, "auth_method": a.AuthMethod,
			"grant_types": a.GrantTypes, "scopes": a.Scopes, "source": "client_id_metadata_document"}); err != nil {
			return err
		}
		return events.Emit(actx, tx, tenantID, "agent.created", a)
	})
	if errors.Is(err, store.ErrConflict) { // another request made it first
		var other *Agent
		err = i.db.Autocommit(ctx, func(tx Tx) error {
			var err error
			other, err = tx.GetAgent(ctx, id)
			return err
		})
		if err == nil && other.TenantID != tenantID {
			return nil, invalidClient("The client_id's host is now allowed by another account than the agent's.")
		}
		return other, err
	}
	if err != nil {
		return nil, err
	}
	return a, nil
}

// refreshURLAgent brings the agent record up to date with a changed
// document (new keys take effect at once).
func (i *Issuer) refreshURLAgent(ctx context.Context, a *Agent, in AgentInput) (*Agent, error) {
	actx := audit.WithActor(ctx, agentActor(ctx, a.TenantID, a.ID))
	return i.updateAgent(actx, a.TenantID, a.ID, "agent.metadata_refreshed", func(_ Tx, a *Agent) error {
		a.Name, a.JWKS, a.GrantTypes, a.Scopes, a.RedirectURIs = in.Name, in.JWKS, in.GrantTypes, in.Scopes, in.RedirectURIs
		if a.RedirectURIs == nil {
			a.RedirectURIs = []string{}
		}
		return nil
	})
}

// cimdDocument returns the validated document at id, from the cache while
// fresh, fetched otherwise. A fetch failure after expiry refuses the client.
func (i *Issuer) cimdDocument(ctx context.Context, id string) (AgentInput, error) {
	now := i.now()
	c := &i.cimd
	c.mu.Lock()
	if e, hit := c.m[id]; hit && now.Before(e.until) {
		c.mu.Unlock()
		return e.in, nil
	}
	if f, ok := c.flight[id]; ok { // another request is fetching it: share its answer
		c.mu.Unlock()
		select {
		case <-f.done:
			return f.in, f.err
		case <-ctx.Done():
			return AgentInput{}, ctx.Err()
		}
	}
	f := &cimdFetch{done: make(chan struct{})}
	if c.flight == nil {
		c.flight = map[string]*cimdFetch{}
	}
	c.flight[id] = f
	c.mu.Unlock()

	in, ttl, err := i.fetchCIMD(ctx, id)
	if err != nil {
		i.log.InfoContext(ctx, "client metadata document refused", "client_id", id, "err", err)
		f.err = cimdRefusal(err)
	}
	f.in = in
	c.mu.Lock()
	delete(c.flight, id)
	delete(c.m, id)
	if err == nil && ttl > 0 {
		if c.m == nil || len(c.m) >= cimdCacheMax {
			c.m = map[string]cimdEntry{}
		}
		c.m[id] = cimdEntry{in: in, until: now.Add(ttl)}
	}
	c.mu.Unlock()
	close(f.done)
	return f.in, f.err
}

// fetchCIMD fetches and validates the document at id (and the key set at
// its jwks_uri, if it names one instead of inline jwks) and says how long
// the result may be cached: the shorter of the two lifetimes.
func (i *Issuer) fetchCIMD(ctx context.Context, id string) (AgentInput, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, CIMDTimeout)
	defer cancel()
	body, ttl, err := i.getJSON(ctx, id, cimdMaxBytes)
	if err != nil {
		return AgentInput{}, 0, err
	}
	md, err := parseCIMD(id, body)
	if err != nil {
		return AgentInput{}, 0, err
	}
	if len(md.JWKS) == 0 {
		if _, err := checkClientIDURL(md.JWKSURI); err != nil {
			return AgentInput{}, 0, errors.New("its jwks_uri must be an https URL with a path")
		}
		keys, keysTTL, err := i.getJSON(ctx, md.JWKSURI, cimdMaxJWKSBytes)
		if err != nil {
			return AgentInput{}, 0, fmt.Errorf("its jwks_uri: %w", err)
		}
		md.JWKS, ttl = keys, min(ttl, keysTTL)
	}
	in, err := i.cimdInput(id, md)
	return in, ttl, err
}

// getJSON fetches an application/json resource of at most limit bytes
// through the guarded client, with the lifetime its caching headers give.
func (i *Issuer) getJSON(ctx context.Context, u string, limit int64) ([]byte, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, errors.New("the URL cannot be fetched")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := i.cimdClient().Do(req)
	if err != nil {
		if errors.Is(err, egress.ErrDestinationRefused) {
			return nil, 0, errors.New("its host resolves to an address that may not be reached")
		}
		if errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "Timeout") {
			return nil, 0, errors.New("fetching it timed out")
		}
		return nil, 0, errors.New("fetching it failed")
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("fetching it answered HTTP %d (redirects are not followed)", resp.StatusCode)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, 0, errors.New("it is not served as application/json")
	}
	if resp.ContentLength > limit {
		return nil, 0, fmt.Errorf("it is larger than %d bytes", limit)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, 0, errors.New("reading it failed")
	}
	if int64(len(body)) > limit {
		return nil, 0, fmt.Errorf("it is larger than %d bytes", limit)
	}
	return body, cacheTTLOf(resp.Header), nil
}

// parseCIMD reads a document and checks what concerns it alone.
func parseCIMD(id string, body []byte) (*clientMetadata, error) {
	var md clientMetadata
	if err := json.Unmarshal(body, &md); err != nil {
		return nil, errors.New("it is not a JSON object")
	}
	switch {
	case md.ClientID != id:
		return nil, errors.New("its client_id is not exactly the URL it was fetched from")
	case len(md.ClientSecret) > 0:
		return nil, errors.New("it must not hold a client_secret")
	case md.TokenEndpointAuthMethod != AuthPrivateKeyJWT:
		return nil, errors.New("token_endpoint_auth_method must be private_key_jwt (a public document holds no shared secret, and public clients are not accepted)")
	case len(md.JWKS) > 0 && md.JWKSURI != "":
		return nil, errors.New("it must have jwks or jwks_uri, not both")
	case len(md.JWKS) == 0 && md.JWKSURI == "":
		return nil, errors.New("it has neither jwks nor jwks_uri")
	}
	for _, text := range append([]string{md.ClientName, md.JWKSURI}, md.RedirectURIs...) {
		if logging.RedactPAN(text) != text { // stored and shown as the agent's
			return nil, errors.New("it must not hold card numbers")
		}
	}
	return &md, nil
}

// cimdInput validates a document as the registration of the agent it
// describes.
func (i *Issuer) cimdInput(id string, md *clientMetadata) (AgentInput, error) {
	in := AgentInput{Name: md.ClientName, AuthMethod: AuthPrivateKeyJWT, JWKS: md.JWKS, GrantTypes: md.GrantTypes,
		RedirectURIs: md.RedirectURIs}
	if in.Name == "" {
		in.Name = id
	}
	if len(in.Name) > 200 {
		in.Name = in.Name[:200]
	}
	if len(in.GrantTypes) == 0 && len(in.RedirectURIs) > 0 {
		in.GrantTypes = []string{GrantAuthorizationCode}
	}
	if md.Scope != "" {
		in.Scopes = strings.Fields(md.Scope)
	}
	if err := i.checkAgentInput(&in); err != nil {
		var ae *apierr.Invalid
		if errors.As(err, &ae) {
			return AgentInput{}, errors.New(ae.Message)
		}
		return AgentInput{}, errors.New("its metadata are not valid")
	}
	return in, nil
}

// cacheTTLOf reads how long a response may be cached: no-store and
// no-cache not at all, max-age bounded to [cimdMinTTL, cimdMaxTTL],
// cimdDefaultTTL without either.
func cacheTTLOf(h http.Header) time.Duration {
	ttl := cimdDefaultTTL
	for _, v := range h.Values("Cache-Control") {
		for _, d := range strings.Split(v, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(name) {
			case "no-store", "no-cache":
				return 0
			case "max-age":
				n, err := strconv.Atoi(strings.Trim(val, `"`))
				if err != nil || n <= 0 {
					return 0
				}
				ttl = time.Duration(n) * time.Second
			}
		}
	}
	return min(max(ttl, cimdMinTTL), cimdMaxTTL)
}
