package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"mime"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/perfectpay/perfectpay/abuse"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/events"
	"github.com/perfectpay/perfectpay/store"
)

// AbuseTx is the transaction a block is recorded in: its audit entry and
// its event commit together.
type AbuseTx interface {
	audit.Writer
	events.Outbox
}

// Defences are the abuse defences the server applies to every
// authenticated route and to the OAuth endpoints. A nil *Defences turns
// them all off.
type Defences struct {
	// Limiter holds the rate limits' state (this node's).
	Limiter *abuse.Limiter
	// Limits are this node's share of the default limits; SetTenantLimits
	// and SetKeyLimits override them per tenant and per API key.
	Limits abuse.Limits
	mu     sync.RWMutex
	tenant map[string]abuse.Limits
	key    map[string]abuse.Limits
	textMu sync.RWMutex
	texts  map[limitID]limitText
	// Guard throttles and blocks sources of failed authentications.
	Guard *abuse.Guard
	// CardTesting, when set, watches tokenizations and charges.
	CardTesting *abuse.CardTesting
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// Record writes the audit entry and event of a block.
	Record store.Runner[AbuseTx]
}

// Event and audit action of a source blocked for repeated failures.
const (
	ActionSourceBlocked = "security.source_blocked"
)

// sourceIP is the client's address: the peer, or — when the peer is a
// trusted proxy — the last address of X-Forwarded-For that is not a
// trusted proxy itself. A malformed header is ignored (the peer counts).
func (s *Server) sourceIP(r *http.Request) string {
	peer := clientIP(r)
	d := s.Abuse
	if d == nil || len(d.TrustedProxies) == 0 || !d.trusted(peer) {
		return peer
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		for _, p := range strings.Split(h, ",") {
			hops = append(hops, strings.TrimSpace(p))
		}
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(hops[i])
		if err != nil {
			return peer
		}
		client = a.Unmap().String()
		if !d.trusted(client) {
			break
		}
	}
	return client
}

func (d *Defences) trusted(ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range d.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// rateLimited is the answer over a limit or from a blocked source: the
// same for both, so a blocked source learns nothing about why.
func rateLimited(retry time.Duration) *Error {
	secs := max(1, int(math.Ceil(retry.Seconds())))
	e := Errorf(http.StatusTooManyRequests, TypeRateLimit, "rate_limited", "",
		"Too many requests. Retry after %d seconds.", secs)
	e.RetryAfter = secs
	return e
}

// spend takes one request from key's budget under lim and adds the
// policy and its state to the response headers (IETF draft
// "RateLimit header fields for HTTP": RateLimit-Policy and RateLimit).
func (d *Defences) spend(w http.ResponseWriter, name, key string, lim abuse.Limit) *Error {
	if lim.Off() {
		return nil
	}
	lt := d.limitText(name, lim)
	// The state is kept per limit too: a key whose limit changes (an
	// override) starts afresh under the new one.
	var buf [160]byte
	dec := d.Limiter.AllowBytes(append(append(buf[:0], lt.prefix...), key...), lim, 1)
	b := append(buf[:0], lt.quoted...)
	b = append(b, ";r="...)
	b = strconv.AppendInt(b, int64(dec.Remaining), 10)
	b = append(b, ";t="...)
	b = strconv.AppendInt(b, int64(ceilSeconds(dec.Reset)), 10)
	h := w.Header()
	h[headerRateLimitPolicy] = append(h[headerRateLimitPolicy], lt.policy)
	h[headerRateLimit] = append(h[headerRateLimit], string(b))
	if !dec.Allowed {
		return rateLimited(dec.RetryAfter)
	}
	return nil
}

// The rate-limit headers, in canonical form.
var (
	headerRateLimitPolicy = textproto.CanonicalMIMEHeaderKey("RateLimit-Policy")
	headerRateLimit       = textproto.CanonicalMIMEHeaderKey("RateLimit")
)

// limitText is what a limit's answers share, made once per limit: the
// prefix of its limiter keys, its quoted name and its RateLimit-Policy.
type limitText struct{ prefix, quoted, policy string }

type limitID struct {
	name string
	lim  abuse.Limit
}

func (d *Defences) limitText(name string, lim abuse.Limit) limitText {
	id := limitID{name, lim}
	d.textMu.RLock()
	lt, ok := d.texts[id]
	d.textMu.RUnlock()
	if ok {
		return lt
	}
	quoted := strconv.Quote(name)
	burst := max(1, lim.Burst)
	window := time.Duration(math.Ceil(float64(lim.Per)/float64(lim.Rate))) * time.Duration(burst)
	lt = limitText{prefix: fmt.Sprintf("%s:%d/%d/%d:", name, lim.Rate, lim.Per, lim.Burst), quoted: quoted,
		policy: fmt.Sprintf("%s;q=%d;w=%d", quoted, burst, ceilSeconds(window))}
	d.textMu.Lock()
	if d.texts == nil || len(d.texts) >= 1024 { // limits come from the config: a handful
		d.texts = map[limitID]limitText{}
	}
	d.texts[id] = lt
	d.textMu.Unlock()
	return lt
}

func ceilSeconds(d time.Duration) int { return int(math.Ceil(d.Seconds())) }

// SetTenantLimits overrides, for the tenant's credentials, the limits l
// sets (this node's share).
func (d *Defences) SetTenantLimits(tenantID string, l abuse.Limits) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.tenant == nil {
		d.tenant = map[string]abuse.Limits{}
	}
	d.tenant[tenantID] = l
}

// SetKeyLimits overrides, for one API key, the limits l sets (this
// node's share); a key's override wins over its tenant's.
func (d *Defences) SetKeyLimits(keyID string, l abuse.Limits) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.key == nil {
		d.key = map[string]abuse.Limits{}
	}
	d.key[keyID] = l
}

// limitsFor are the limits of a principal: the defaults, its tenant's
// override, its key's override.
func (d *Defences) limitsFor(p *Principal) abuse.Limits {
	l := d.Limits
	d.mu.RLock()
	defer d.mu.RUnlock()
	if o, ok := d.tenant[p.TenantID]; ok {
		l = l.With(o)
	}
	if p.Key != nil {
		if o, ok := d.key[p.CredentialID]; ok {
			l = l.With(o)
		}
	}
	return l
}

// limitSource runs before authentication: a blocked source gets 429; the
// source IP spends from its budget; a failed authentication counts
// against the source.
func (s *Server) limitSource(next handlerFunc) handlerFunc {
	d := s.Abuse
	if d == nil {
		return next
	}
	return func(w http.ResponseWriter, r *http.Request) error {
		ip := state(r).ip
		src := abuse.Source{Kind: "ip", Value: ip}
		if ok, retry := d.Guard.Check(src); !ok {
			return rateLimited(retry)
		}
		if err := d.spend(w, "ip", ip, d.Limits.IP); err != nil {
			return err
		}
		err := next(w, r)
		if e := (*Error)(nil); errors.As(err, &e) && e.Status == http.StatusUnauthorized && e.Code != "use_dpop_nonce" {
			s.recordBlocks(r.Context(), "", ActionSourceBlocked, d.Guard.Fail(src))
		}
		return err
	}
}

// limitPrincipal runs after authentication: the credential spends from
// its budget, and tokenizations and charges from theirs.
func (s *Server) limitPrincipal(method, path string, next handlerFunc) handlerFunc {
	d := s.Abuse
	if d == nil {
		return next
	}
	budget := ""
	switch {
	case method == http.MethodPost && path == "/v1/tokens":
		budget = "tokenize"
	case method == http.MethodPost && path == "/v1/charges":
		budget = "charge"
	}
	watched := next
	if budget != "" {
		watched = s.watchCards(budget == "charge", next)
	}
	return func(w http.ResponseWriter, r *http.Request) error {
		p := PrincipalFrom(r)
		if p == nil {
			return next(w, r)
		}
		l := d.limitsFor(p)
		name, lim := "key", l.Key
		if p.Agent != nil {
			name, lim = "agent", l.Agent
		}
		if err := d.spend(w, name, p.CredentialID, lim); err != nil {
			return err
		}
		switch budget {
		case "tokenize":
			if err := d.spend(w, budget, p.CredentialID, l.Tokenize); err != nil {
				return err
			}
		case "charge":
			if err := d.spend(w, budget, p.CredentialID, l.Charge); err != nil {
				return err
			}
		}
		return watched(w, r)
	}
}

// limitRaw guards the OAuth endpoints, which authenticate their clients
// themselves: the source IP and the client (client_id, HTTP Basic user or
// a client assertion's subject) are checked against the guard, the IP
// spends from its budget and, at the token endpoint, the client from its
// own. A 401, or an invalid_client or invalid_dpop_proof error, counts as
// a failure of both.
func (s *Server) limitRaw(path string, next http.Handler) http.Handler {
	d := s.Abuse
	if d == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := state(r).ip
		srcs := []abuse.Source{{Kind: "ip", Value: ip}}
		client := oauthClientID(r)
		if client != "" {
			srcs = append(srcs, abuse.Source{Kind: "client", Value: client})
		}
		if ok, retry := d.Guard.Check(srcs...); !ok {
			s.writeError(w, r, rateLimited(retry))
			return
		}
		if err := d.spend(w, "ip", ip, d.Limits.IP); err != nil {
			s.writeError(w, r, err)
			return
		}
		if client != "" && path == authz.PathToken {
			if err := d.spend(w, "token_client", client, d.Limits.TokenClient); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		rec := &oauthRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.failed() {
			s.recordBlocks(r.Context(), "", ActionSourceBlocked, d.Guard.Fail(srcs...))
		}
	})
}

// oauthClientID is the client a request to an OAuth endpoint names, when
// it has the shape of a client id; it only keys limits and never
// authenticates anything.
func oauthClientID(r *http.Request) string {
	if u, _, ok := r.BasicAuth(); ok {
		if v, err := url.QueryUnescape(u); err == nil {
			return clientIDShape(v)
		}
		return ""
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); r.Method != http.MethodPost || mt != "application/x-www-form-urlencoded" {
		return ""
	}
	b, err := readBody(r)
	if err != nil {
		return ""
	}
	form, err := url.ParseQuery(string(b))
	if err != nil {
		return ""
	}
	if c := form.Get("client_id"); c != "" {
		return clientIDShape(c)
	}
	if a := form.Get("client_assertion"); a != "" {
		parts := strings.Split(a, ".")
		if len(parts) != 3 {
			return ""
		}
		raw, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			return ""
		}
		var claims struct {
			Sub string `json:"sub"`
		}
		if json.Unmarshal(raw, &claims) != nil {
			return ""
		}
		return clientIDShape(claims.Sub)
	}
	return ""
}

// clientIDShape returns v when it looks like a client id (short, letters,
// digits, '_' and '-' only), else "" — so nothing an attacker sends ends
// up as free text in the audit trail.
func clientIDShape(v string) string {
	if v == "" || len(v) > 64 {
		return ""
	}
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return ""
		}
	}
	return v
}

// oauthRecorder notes the status and the start of the body of an OAuth
// answer, to tell a failed client authentication.
type oauthRecorder struct {
	http.ResponseWriter
	status int
	head   []byte
}

func (o *oauthRecorder) WriteHeader(code int) {
	if o.status == 0 {
		o.status = code
	}
	o.ResponseWriter.WriteHeader(code)
}

func (o *oauthRecorder) Write(b []byte) (int, error) {
	if o.status == 0 {
		o.status = http.StatusOK
	}
	if n := 512 - len(o.head); n > 0 {
		o.head = append(o.head, b[:min(n, len(b))]...)
	}
	return o.ResponseWriter.Write(b)
}

func (o *oauthRecorder) Unwrap() http.ResponseWriter { return o.ResponseWriter }

func (o *oauthRecorder) failed() bool {
	switch o.status {
	case http.StatusUnauthorized:
		return true
	case http.StatusBadRequest:
		var body struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(o.head, &body)
		return body.Error == "invalid_client" || body.Error == "invalid_dpop_proof"
	}
	return false
}

// recordBlocks writes each new block's audit entry and event (action),
// together. Blocks of authentication failures are the platform's (no
// tenant); card-testing blocks belong to the tenant whose credential made
// the attempt.
func (s *Server) recordBlocks(ctx context.Context, tenantID, action string, blocks []abuse.Block) {
	if len(blocks) == 0 || s.Abuse.Record == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	for _, b := range blocks {
		s.log.WarnContext(ctx, "source blocked", "kind", b.Source.Kind, "source", b.Source.Value,
			"until", b.Until, "reason", b.Reason)
		err := s.Abuse.Record.InTx(ctx, func(tx AbuseTx) error {
			if err := audit.RecordFor(ctx, tx, tenantID, action, b.Source.Kind+":"+b.Source.Value, b); err != nil {
				return err
			}
			return events.Emit(ctx, tx, tenantID, action, b)
		})
		if err != nil {
			s.log.ErrorContext(ctx, "recording a block failed", "err", err)
		}
	}
}
