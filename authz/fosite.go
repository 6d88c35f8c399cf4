package authz

// The fosite adapter: clients, session, storage, token strategies, client
// authentication and the secret hasher that fosite calls. fosite's API
// speaks go-jose v3 (OpenIDConnectClient, its default client assertion
// check); the adapter uses none of it: client assertions, access tokens
// and DPoP proofs are parsed and signed with go-jose v4 and explicit
// algorithm allow-lists, and fosite only sees our fosite.Client.

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/storage"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/store"
)

// agentClient is an Agent as fosite sees it.
type agentClient struct {
	agent *Agent
	keys  *jose.JSONWebKeySet // parsed JWKS (private_key_jwt)
}

var _ fosite.Client = (*agentClient)(nil)

func newAgentClient(a *Agent) (*agentClient, error) {
	c := &agentClient{agent: a}
	if len(a.JWKS) > 0 {
		var set jose.JSONWebKeySet
		if err := json.Unmarshal(a.JWKS, &set); err != nil {
			return nil, err
		}
		c.keys = &set
	}
	return c, nil
}

func (c *agentClient) GetID() string                   { return c.agent.ID }
func (c *agentClient) GetHashedSecret() []byte         { return c.agent.SecretHash }
func (c *agentClient) GetRedirectURIs() []string       { return c.agent.RedirectURIs }
func (c *agentClient) GetGrantTypes() fosite.Arguments { return c.agent.GrantTypes }
func (c *agentClient) GetResponseTypes() fosite.Arguments {
	if slices.Contains(c.agent.GrantTypes, GrantAuthorizationCode) {
		return fosite.Arguments{"code"}
	}
	return fosite.Arguments{}
}
func (c *agentClient) GetScopes() fosite.Arguments   { return c.agent.Scopes }
func (c *agentClient) IsPublic() bool                { return false }
func (c *agentClient) GetAudience() fosite.Arguments { return c.agent.Audiences }

// session is the fosite session of our tokens: what goes into the access
// token besides the request's scopes and audience.
type session struct {
	Subject              string                         `json:"sub"`
	TenantID             string                         `json:"tenant_id"`
	ClientID             string                         `json:"client_id"`
	GrantType            string                         `json:"grant_type"`
	ExpiresAt            map[fosite.TokenType]time.Time `json:"expires_at"`
	AuthorizationDetails json.RawMessage                `json:"authorization_details,omitempty"`
	Act                  *Actor                         `json:"act,omitempty"`
	MayAct               *Actor                         `json:"may_act,omitempty"`
	JKT                  string                         `json:"jkt,omitempty"`
	DelegatedFrom        []string                       `json:"delegated_from,omitempty"`
}

var _ fosite.Session = (*session)(nil)

func (s *session) SetExpiresAt(key fosite.TokenType, exp time.Time) {
	if s.ExpiresAt == nil {
		s.ExpiresAt = map[fosite.TokenType]time.Time{}
	}
	s.ExpiresAt[key] = exp
}

func (s *session) GetExpiresAt(key fosite.TokenType) time.Time { return s.ExpiresAt[key] }
func (s *session) GetUsername() string                         { return "" }
func (s *session) GetSubject() string                          { return s.Subject }

func (s *session) Clone() fosite.Session {
	c := *s
	c.ExpiresAt = make(map[fosite.TokenType]time.Time, len(s.ExpiresAt))
	for k, v := range s.ExpiresAt {
		c.ExpiresAt[k] = v
	}
	c.AuthorizationDetails = slices.Clone(s.AuthorizationDetails)
	c.DelegatedFrom = slices.Clone(s.DelegatedFrom)
	return &c
}

// secretHasher is fosite's Hasher for client secrets: a keyed SHA-256
// HMAC compared in constant time. Secrets are 256-bit random values, so a
// slow password hash (fosite's bcrypt default) would only cost throughput.
type secretHasher struct{ pepper []byte }

var _ fosite.Hasher = secretHasher{}

func (h secretHasher) Hash(_ context.Context, data []byte) ([]byte, error) {
	m := hmac.New(sha256.New, h.pepper)
	m.Write([]byte("client-secret\x00"))
	m.Write(data)
	return m.Sum(nil), nil
}

func (h secretHasher) Compare(ctx context.Context, hash, data []byte) error {
	want, _ := h.Hash(ctx, data)
	if len(hash) == 0 || !hmac.Equal(hash, want) {
		return fosite.ErrInvalidClient
	}
	return nil
}

func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("authz: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// --- token strategies ---

type ctxKey int

const (
	jktKey ctxKey = iota + 1
	urlsKey
)

func withJKT(ctx context.Context, jkt string) context.Context {
	return context.WithValue(ctx, jktKey, jkt)
}

func jktFrom(ctx context.Context) string { s, _ := ctx.Value(jktKey).(string); return s }

// withRequestURLs keeps the token request's URLs (the htu values a proof
// may name) for handlers that verify proofs of their own.
func withRequestURLs(ctx context.Context, urls []string) context.Context {
	return context.WithValue(ctx, urlsKey, urls)
}

func requestURLsFrom(ctx context.Context) []string { u, _ := ctx.Value(urlsKey).([]string); return u }

// accessStrategy mints RFC 9068 JWT access tokens; their signature (the
// storage key) is the jti.
type accessStrategy struct{ i *Issuer }

var _ oauth2.AccessTokenStrategy = accessStrategy{}

func (s accessStrategy) AccessTokenSignature(_ context.Context, token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		JTI string `json:"jti"`
	}
	_ = json.Unmarshal(payload, &c)
	return c.JTI
}

func (s accessStrategy) GenerateAccessToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	i := s.i
	sess, ok := r.GetSession().(*session)
	if !ok {
		return "", "", errors.New("authz: unexpected session type")
	}
	now := i.now()
	exp := sess.GetExpiresAt(fosite.AccessToken)
	if exp.IsZero() || exp.Sub(now) > i.opt.AccessTokenTTL {
		exp = now.Add(i.opt.AccessTokenTTL)
	}
	aud := []string(r.GetGrantedAudience())
	if len(aud) == 0 {
		aud = []string{i.opt.Audience}
	}
	claims := &AccessToken{
		Issuer: i.opt.Issuer, Subject: sess.Subject, Audience: aud, ClientID: r.GetClient().GetID(),
		TenantID: sess.TenantID, JTI: randomToken(18), IssuedAt: now.Unix(), NotBefore: now.Unix(), Expiry: exp.Unix(),
		Scope: strings.Join(r.GetGrantedScopes(), " "), AuthorizationDetails: sess.AuthorizationDetails,
		Act: sess.Act, MayAct: sess.MayAct, DelegatedFrom: sess.DelegatedFrom,
	}
	if sess.JKT != "" {
		claims.Cnf = &Confirmation{JKT: sess.JKT}
	}
	sess.SetExpiresAt(fosite.AccessToken, time.Unix(claims.Expiry, 0))
	tok, err := i.sign(ctx, claims)
	if err != nil {
		return "", "", err
	}
	return tok, claims.JTI, nil
}

func (s accessStrategy) ValidateAccessToken(ctx context.Context, _ fosite.Requester, token string) error {
	if _, err := s.i.Verify(ctx, token); err != nil {
		return fosite.ErrInvalidTokenFormat.WithWrap(err)
	}
	return nil
}

// refreshStrategy makes opaque refresh tokens; the store keeps only their
// keyed hash.
type refreshStrategy struct{ i *Issuer }

var _ oauth2.RefreshTokenStrategy = refreshStrategy{}

const refreshPrefix = "ppr_"

func (s refreshStrategy) RefreshTokenSignature(_ context.Context, token string) string {
	m := hmac.New(sha256.New, s.i.opt.Pepper)
	m.Write([]byte("refresh-token\x00"))
	m.Write([]byte(token))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s refreshStrategy) GenerateRefreshToken(ctx context.Context, _ fosite.Requester) (string, string, error) {
	tok := refreshPrefix + randomToken(32)
	return tok, s.RefreshTokenSignature(ctx, tok), nil
}

func (s refreshStrategy) ValidateRefreshToken(_ context.Context, r fosite.Requester, token string) error {
	if !strings.HasPrefix(token, refreshPrefix) {
		return fosite.ErrInvalidTokenFormat
	}
	if exp := r.GetSession().GetExpiresAt(fosite.RefreshToken); !exp.IsZero() && exp.Before(s.i.now()) {
		return fosite.ErrTokenExpired
	}
	return nil
}

// --- storage ---

// fositeStore is fosite's storage over our store.
type fositeStore struct{ i *Issuer }

var (
	_ fosite.ClientManager          = fositeStore{}
	_ oauth2.TokenRevocationStorage = fositeStore{}
)

func (s fositeStore) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	c, err := s.i.agents.get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fosite.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// ClientAssertionJWTValid and SetClientAssertionJWT serve fosite's default
// client authentication, which we replace (authenticateClient records the
// jti atomically instead of check-then-set).
func (s fositeStore) ClientAssertionJWTValid(context.Context, string) error { return nil }

func (s fositeStore) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	err := s.i.db.Autocommit(ctx, func(tx Tx) error { return tx.UseJTI(ctx, "client_assertion", jti, exp) })
	if errors.Is(err, store.ErrConflict) {
		return fosite.ErrJTIKnown
	}
	return err
}

// storedRequest is a fosite request as kept in TokenSession.Data.
type storedRequest struct {
	ID                string          `json:"id"`
	RequestedAt       time.Time       `json:"requested_at"`
	ClientID          string          `json:"client_id"`
	RequestedScope    []string        `json:"requested_scope"`
	GrantedScope      []string        `json:"granted_scope"`
	RequestedAudience []string        `json:"requested_audience"`
	GrantedAudience   []string        `json:"granted_audience"`
	Session           json.RawMessage `json:"session"`
}

func (s fositeStore) createSession(ctx context.Context, kind, sig, accessSig string, r fosite.Requester) error {
	write, err := s.sessionWrite(ctx, kind, sig, accessSig, r)
	if err != nil {
		return err
	}
	if rot := rotationFrom(ctx); rot != nil && rot.sig != "" {
		// A refresh grant: the new sessions are written with the spend.
		rot.writes = append(rot.writes, write)
		return nil
	}
	// Any other grant: by group commit, waiting for the batch to commit.
	return s.i.issued.do(ctx, write)
}

// sessionWrite prepares the storage of a token session (and, for an access
// token, its audit entry) as a write to run in a transaction.
func (s fositeStore) sessionWrite(ctx context.Context, kind, sig, accessSig string, r fosite.Requester) (func(Tx) error, error) {
	sess, _ := r.GetSession().(*session)
	if sess == nil {
		return nil, errors.New("authz: unexpected session type")
	}
	// An access token is a JWT that carries its claims: its session keeps
	// only what revocation needs (family, tenant, expiry), not the request,
	// which was most of what the store held per token. A refresh token's
	// session keeps the request the next grant is built from.
	var data []byte
	if kind != KindAccess {
		sj, err := json.Marshal(sess)
		if err != nil {
			return nil, err
		}
		data, err = json.Marshal(storedRequest{
			ID: r.GetID(), RequestedAt: r.GetRequestedAt(), ClientID: r.GetClient().GetID(),
			RequestedScope: r.GetRequestedScopes(), GrantedScope: r.GetGrantedScopes(),
			RequestedAudience: r.GetRequestedAudience(), GrantedAudience: r.GetGrantedAudience(), Session: sj,
		})
		if err != nil {
			return nil, err
		}
	}
	tokType := fosite.AccessToken
	if kind == KindRefresh {
		tokType = fosite.RefreshToken
	}
	now := s.i.now().UTC().Truncate(time.Microsecond)
	exp := sess.GetExpiresAt(tokType)
	if exp.IsZero() {
		exp = now.Add(s.i.opt.RefreshTokenTTL)
	}
	ts := &TokenSession{
		Kind: kind, Signature: sig, RequestID: r.GetID(), ClientID: r.GetClient().GetID(), TenantID: sess.TenantID,
		AccessSignature: accessSig, Active: true, Data: data, CreatedAt: now, ExpiresAt: exp.UTC().Truncate(time.Microsecond),
	}
	// The write may run in a batch that commits after this request ended.
	ctx = context.WithoutCancel(ctx)
	actx := audit.WithActor(ctx, agentActor(ctx, sess.TenantID, r.GetClient().GetID()))
	summary := &issuedSummary{ClientID: ts.ClientID, GrantType: sess.GrantType, ExpiresAt: ts.ExpiresAt,
		Scope: strings.Join(r.GetGrantedScopes(), " "), DPoPBound: sess.JKT != ""}
	if sess.Act != nil {
		summary.Act = sess.Act.Chain()
	}
	return func(tx Tx) error {
		if err := tx.CreateTokenSession(ctx, ts); err != nil {
			return err
		}
		if kind != KindAccess {
			return nil
		}
		return audit.Record(actx, tx, "token.issued", sig, summary)
	}, nil
}

// issuedSummary is the data of a token.issued audit entry. Its fields are
// in the order of their names, as the map it replaced was encoded, so the
// entries read as before; a struct encodes without sorting keys or boxing
// values, once per issued token.
type issuedSummary struct {
	Act       []string  `json:"act,omitempty"`
	ClientID  string    `json:"client_id"`
	DPoPBound bool      `json:"dpop_bound"`
	ExpiresAt time.Time `json:"expires_at"`
	GrantType string    `json:"grant_type"`
	Scope     string    `json:"scope"`
}

func (s fositeStore) getSession(ctx context.Context, kind, sig string, into fosite.Session) (fosite.Requester, error) {
	var ts *TokenSession
	err := s.i.db.Autocommit(ctx, func(tx Tx) error {
		var err error
		ts, err = tx.GetTokenSession(ctx, kind, sig)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, fosite.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var sr storedRequest
	if err := json.Unmarshal(ts.Data, &sr); err != nil {
		return nil, err
	}
	sess, ok := into.(*session)
	if !ok || sess == nil {
		sess = &session{}
	}
	if err := json.Unmarshal(sr.Session, sess); err != nil {
		return nil, err
	}
	client, err := s.GetClient(ctx, sr.ClientID)
	if err != nil {
		return nil, err
	}
	req := &fosite.Request{
		ID: sr.ID, RequestedAt: sr.RequestedAt, Client: client,
		RequestedScope: sr.RequestedScope, GrantedScope: sr.GrantedScope,
		RequestedAudience: sr.RequestedAudience, GrantedAudience: sr.GrantedAudience,
		Form: url.Values{}, Session: sess,
	}
	if !ts.Active {
		return req, fosite.ErrInactiveToken
	}
	return req, nil
}

func (s fositeStore) CreateAccessTokenSession(ctx context.Context, sig string, r fosite.Requester) error {
	return s.createSession(ctx, KindAccess, sig, "", r)
}

// GetAccessTokenSession finds nothing: access token sessions keep no
// request (see sessionWrite); an access token is checked by Verify.
func (s fositeStore) GetAccessTokenSession(context.Context, string, fosite.Session) (fosite.Requester, error) {
	return nil, fosite.ErrNotFound
}

func (s fositeStore) DeleteAccessTokenSession(ctx context.Context, sig string) error {
	return s.i.db.InTx(ctx, func(tx Tx) error { return tx.DeleteTokenSession(ctx, KindAccess, sig) })
}

func (s fositeStore) CreateRefreshTokenSession(ctx context.Context, sig, accessSig string, r fosite.Requester) error {
	return s.createSession(ctx, KindRefresh, sig, accessSig, r)
}

func (s fositeStore) GetRefreshTokenSession(ctx context.Context, sig string, sess fosite.Session) (fosite.Requester, error) {
	return s.getSession(ctx, KindRefresh, sig, sess)
}

func (s fositeStore) DeleteRefreshTokenSession(ctx context.Context, sig string) error {
	return s.i.db.InTx(ctx, func(tx Tx) error { return tx.DeleteTokenSession(ctx, KindRefresh, sig) })
}

// A refresh grant's spend of the presented refresh token, the storage of
// its new sessions and a family revocation are serialized per family:
// fosite's refresh handler calls RotateRefreshToken, CreateAccessTokenSession
// and CreateRefreshTokenSession between BeginTX and Commit, and Commit runs
// them as one transaction, under the family's lock, that first spends the
// old token (conditioned on it still being live). revokeFamily takes the
// same lock. So a racing request learns it lost (and revokes the family)
// only once the winner's new sessions are committed, and a revocation of
// the family that comes first leaves the old token spent, so the winner's
// spend fails instead of storing sessions the revocation missed.

// rotation is the refresh grant under way in a context from BeginTX.
type rotation struct {
	kind           string           // KindRefresh, or KindCode for a code's redemption
	requestID, sig string           // the grant family and the token spent
	writes         []func(Tx) error // the new sessions
}

type rotationKey struct{}

func rotationFrom(ctx context.Context) *rotation {
	r, _ := ctx.Value(rotationKey{}).(*rotation)
	return r
}

var _ storage.Transactional = fositeStore{}

// BeginTX starts collecting a refresh grant's writes (see rotation).
func (s fositeStore) BeginTX(ctx context.Context) (context.Context, error) {
	return context.WithValue(ctx, rotationKey{}, &rotation{}), nil
}

// Commit runs a refresh grant's spend and new sessions as one transaction.
// Writes of other grants were not deferred: nothing is left to do for them.
func (s fositeStore) Commit(ctx context.Context) error {
	rot := rotationFrom(ctx)
	if rot == nil || rot.sig == "" {
		return nil
	}
	kind, requestID, sig, writes := rot.kind, rot.requestID, rot.sig, rot.writes
	*rot = rotation{}
	return s.spend(ctx, kind, requestID, sig, writes)
}

// Rollback drops a refresh grant's deferred writes.
func (s fositeStore) Rollback(ctx context.Context) error {
	if rot := rotationFrom(ctx); rot != nil {
		*rot = rotation{}
	}
	return nil
}

// RotateRefreshToken spends the presented refresh token: at Commit, with
// the new sessions, within fosite's transaction; at once outside one.
func (s fositeStore) RotateRefreshToken(ctx context.Context, requestID, sig string) error {
	if rot := rotationFrom(ctx); rot != nil {
		rot.kind, rot.requestID, rot.sig, rot.writes = KindRefresh, requestID, sig, nil
		return nil
	}
	return s.spend(ctx, KindRefresh, requestID, sig, nil)
}

// spend marks refresh token (or authorization code, by kind) sig of family
// requestID used and runs writes, in one transaction under the family's
// lock. When the token was spent already (a racing request, or the
// family's revocation), that is reuse: the family is revoked.
func (s fositeStore) spend(ctx context.Context, kind, requestID, sig string, writes []func(Tx) error) error {
	err := s.i.db.InTx(ctx, func(tx Tx) error {
		if err := tx.LockTokenFamily(ctx, familyLockKey(requestID)); err != nil {
			return err
		}
		if err := tx.DeactivateTokenSession(ctx, kind, sig); err != nil {
			return err
		}
		for _, w := range writes {
			if err := w(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, store.ErrConflict) {
		if rerr := s.i.revokeFamily(ctx, requestID); rerr != nil {
			return rerr
		}
		return fosite.ErrInactiveToken
	}
	if errors.Is(err, store.ErrNotFound) {
		return fosite.ErrNotFound
	}
	return err
}

// familyLockKey names a grant family's lock among LockTokenFamily's keys
// (which are otherwise access token ids).
func familyLockKey(requestID string) string { return "grant:" + requestID }

// RevokeRefreshToken and RevokeAccessToken are fosite's reuse response:
// both revoke the whole grant family.
func (s fositeStore) RevokeRefreshToken(ctx context.Context, requestID string) error {
	return s.i.revokeFamily(ctx, requestID)
}

func (s fositeStore) RevokeAccessToken(ctx context.Context, requestID string) error {
	return s.i.revokeFamily(ctx, requestID)
}

// --- client authentication ---

const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// assertionAlgs is the allow-list for private_key_jwt client assertions.
var assertionAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.EdDSA, jose.PS256, jose.RS256}

type assertionClaims struct {
	Iss string   `json:"iss"`
	Sub string   `json:"sub"`
	Aud Audience `json:"aud"`
	JTI string   `json:"jti"`
	Exp int64    `json:"exp"`
	Iat int64    `json:"iat"`
	Nbf int64    `json:"nbf"`
}

func invalidClient(hint string) error { return fosite.ErrInvalidClient.WithHint(hint) }

// authenticateClient is fosite's ClientAuthenticationStrategy: an agent
// authenticates with a private_key_jwt assertion (RFC 7523) or with its
// secret as HTTP Basic (client_secret_basic), never both, never in the body.
func (i *Issuer) authenticateClient(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
	var c *agentClient
	var err error
	if at := form.Get("client_assertion_type"); at != "" || form.Get("client_assertion") != "" {
		if at != assertionType {
			return nil, fosite.ErrInvalidRequest.WithHintf("client_assertion_type must be %s.", assertionType)
		}
		if _, _, basic := r.BasicAuth(); basic {
			return nil, fosite.ErrInvalidRequest.WithHint("Use one client authentication method, not two.")
		}
		c, err = i.verifyAssertion(ctx, form.Get("client_assertion"), form.Get("client_id"))
	} else {
		c, err = i.checkSecret(ctx, r, form)
	}
	if err != nil {
		return nil, err
	}
	a := c.agent
	if a.Status != AgentActive {
		return nil, invalidClient("The agent is " + a.Status + ".")
	}
	what, err := i.revoked.check(ctx, "", a.ID, a.TenantID)
	if err != nil {
		return nil, err
	}
	if what != "" {
		return nil, invalidClient("The agent's credentials were revoked (" + what + ").")
	}
	return c, nil
}

func (i *Issuer) checkSecret(ctx context.Context, r *http.Request, form url.Values) (*agentClient, error) {
	if form.Get("client_secret") != "" {
		return nil, invalidClient("Send the client secret as HTTP Basic (client_secret_basic), not in the body.")
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		return nil, invalidClient("Client authentication is required: HTTP Basic or a private_key_jwt client assertion.")
	}
	var err1, err2 error
	id, err1 = url.QueryUnescape(id)
	secret, err2 = url.QueryUnescape(secret)
	if err1 != nil || err2 != nil || id == "" {
		return nil, invalidClient("The HTTP Basic credentials are malformed.")
	}
	if cid := form.Get("client_id"); cid != "" && cid != id {
		return nil, invalidClient("client_id does not match the authenticated client.")
	}
	c, err := i.agents.get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, invalidClient("Unknown client or wrong secret.")
	}
	if err != nil {
		return nil, err
	}
	if c.agent.AuthMethod != AuthClientSecretBasic {
		return nil, invalidClient("This agent authenticates with " + c.agent.AuthMethod + ".")
	}
	if err := i.fositeConfig.GetSecretsHasher(ctx).Compare(ctx, c.agent.SecretHash, []byte(secret)); err != nil {
		return nil, invalidClient("Unknown client or wrong secret.")
	}
	return c, nil
}

// verifyAssertion checks a client assertion: an allowed asymmetric
// algorithm, a key from the agent's JWKS, iss = sub = client id, aud naming
// our issuer or token endpoint, exp in the future and at most
// AssertionMaxLifetime after iat (or now), and a jti never seen before on
// any node.
func (i *Issuer) verifyAssertion(ctx context.Context, raw, formClientID string) (*agentClient, error) {
	if raw == "" || len(raw) > 16<<10 {
		return nil, fosite.ErrInvalidRequest.WithHint("client_assertion is missing or too long.")
	}
	jws, err := jose.ParseSignedCompact(raw, assertionAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, invalidClient("client_assertion is not a JWS signed with an accepted algorithm.")
	}
	var unverified assertionClaims
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &unverified); err != nil {
		return nil, invalidClient("client_assertion's claims are malformed.")
	}
	id := unverified.Sub
	if formClientID != "" && formClientID != id {
		return nil, invalidClient("client_id does not match the assertion's sub.")
	}
	if id == "" {
		return nil, invalidClient("client_assertion has no sub.")
	}
	c, err := i.agents.get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, invalidClient("Unknown client.")
	}
	if err != nil {
		return nil, err
	}
	if c.agent.AuthMethod != AuthPrivateKeyJWT || c.keys == nil {
		return nil, invalidClient("This agent authenticates with " + c.agent.AuthMethod + ".")
	}
	if checkLowS(jws) != nil {
		return nil, invalidClient("client_assertion's ECDSA signature is not in low-S form (s > n/2).")
	}
	h := jws.Signatures[0].Protected
	var payload []byte
	verified := false
	for _, k := range c.keys.Keys {
		if h.KeyID != "" && k.KeyID != h.KeyID {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != h.Algorithm {
			continue
		}
		if p, err := jws.Verify(k); err == nil {
			payload, verified = p, true
			break
		}
	}
	if !verified {
		return nil, invalidClient("client_assertion's signature does not verify with the agent's keys.")
	}
	var cl assertionClaims
	if err := json.Unmarshal(payload, &cl); err != nil {
		return nil, invalidClient("client_assertion's claims are malformed.")
	}
	now := i.now()
	switch {
	case cl.Iss != id || cl.Sub != id:
		return nil, invalidClient("client_assertion's iss and sub must both be the client id.")
	case !slices.ContainsFunc(cl.Aud, func(a string) bool { return slices.Contains(i.assertionAudiences, a) }):
		return nil, invalidClient("client_assertion's aud must name this issuer or its token endpoint.")
	case cl.Exp == 0 || now.After(time.Unix(cl.Exp, 0).Add(clockSkew)):
		return nil, invalidClient("client_assertion has expired or has no exp.")
	case cl.Nbf != 0 && now.Add(clockSkew).Before(time.Unix(cl.Nbf, 0)):
		return nil, invalidClient("client_assertion is not valid yet.")
	case cl.Iat != 0 && now.Add(clockSkew).Before(time.Unix(cl.Iat, 0)):
		return nil, invalidClient("client_assertion was issued in the future.")
	case cl.JTI == "" || len(cl.JTI) > 256:
		return nil, invalidClient("client_assertion needs a jti.")
	}
	start := now
	if cl.Iat != 0 {
		start = time.Unix(cl.Iat, 0)
	}
	if time.Unix(cl.Exp, 0).Sub(start) > i.opt.AssertionMaxLifetime {
		return nil, invalidClient("client_assertion lives longer than the accepted maximum of " + i.opt.AssertionMaxLifetime.String() + ".")
	}
	if err := (fositeStore{i}).SetClientAssertionJWT(ctx, id+":"+cl.JTI, time.Unix(cl.Exp, 0).Add(clockSkew)); err != nil {
		if errors.Is(err, fosite.ErrJTIKnown) {
			return nil, invalidClient("The client_assertion's jti was already used (replay).")
		}
		return nil, err
	}
	return c, nil
}

// agentActor is the audit actor of a request made by an agent, keeping
// the IP and request id the HTTP layer put in ctx.
func agentActor(ctx context.Context, tenantID, clientID string) audit.Actor {
	a := audit.ActorFrom(ctx)
	a.TenantID, a.Type, a.ID = tenantID, audit.ActorAgent, clientID
	return a
}
