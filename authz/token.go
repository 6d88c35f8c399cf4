package authz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Actor is one link of a delegation chain (RFC 8693 §4.1): the current
// actor outermost, prior actors nested in Act.
type Actor struct {
	Sub string `json:"sub"`
	Act *Actor `json:"act,omitempty"`
}

// Depth is the number of actors in the chain starting at a.
func (a *Actor) Depth() int {
	n := 0
	for ; a != nil; a = a.Act {
		n++
	}
	return n
}

// Chain lists the actors, current first.
func (a *Actor) Chain() []string {
	var out []string
	for ; a != nil; a = a.Act {
		out = append(out, a.Sub)
	}
	return out
}

// Confirmation binds a token to a key (RFC 9449 §6: the JWK SHA-256
// thumbprint of the DPoP key).
type Confirmation struct {
	JKT string `json:"jkt"`
}

// Audience is the aud claim: a string or an array of strings on the wire,
// always an array when we write it.
type Audience []string

// UnmarshalJSON accepts both shapes.
func (a *Audience) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*a = Audience{s}
		return nil
	}
	var ss []string
	if err := json.Unmarshal(b, &ss); err != nil {
		return errors.New("aud must be a string or an array of strings")
	}
	*a = ss
	return nil
}

// AccessToken is the verified claims of one of our JWT access tokens
// (RFC 9068). Resource endpoints receive it as server.Principal.Agent.
type AccessToken struct {
	Issuer               string          `json:"iss"`
	Subject              string          `json:"sub"`
	Audience             Audience        `json:"aud"`
	ClientID             string          `json:"client_id"`
	TenantID             string          `json:"tenant_id"`
	JTI                  string          `json:"jti"`
	IssuedAt             int64           `json:"iat"`
	NotBefore            int64           `json:"nbf,omitempty"`
	Expiry               int64           `json:"exp"`
	Scope                string          `json:"scope,omitempty"`
	AuthorizationDetails json.RawMessage `json:"authorization_details,omitempty"`
	Act                  *Actor          `json:"act,omitempty"`
	MayAct               *Actor          `json:"may_act,omitempty"`
	Cnf                  *Confirmation   `json:"cnf,omitempty"`
	// DelegatedFrom lists the jtis of the tokens this one was derived from
	// by token exchange, oldest first: its token family. Revoking any of
	// them revokes this one.
	DelegatedFrom []string `json:"delegated_from,omitempty"`

	// Raw is the compact JWS the claims came from.
	Raw string `json:"-"`
}

// Scopes splits the scope claim.
func (t *AccessToken) Scopes() []string { return strings.Fields(t.Scope) }

// HasScope reports whether the token carries scope.
func (t *AccessToken) HasScope(scope string) bool { return slices.Contains(t.Scopes(), scope) }

// ExpiresAt is the exp claim as a time.
func (t *AccessToken) ExpiresAt() time.Time { return time.Unix(t.Expiry, 0) }

// DPoPBound reports whether the token is bound to a DPoP key.
func (t *AccessToken) DPoPBound() bool { return t.Cnf != nil && t.Cnf.JKT != "" }

// TokenError is why a presented token or proof was refused. Code is the
// RFC 6750 / RFC 9449 error code.
type TokenError struct {
	Code        string // invalid_token, invalid_dpop_proof, use_dpop_nonce
	Description string
	// Revoked names what was revoked (RevokedToken, ...), when that is why.
	Revoked string
	// Suspended: the agent named by Revoked was suspended, not revoked.
	Suspended bool
}

func (e *TokenError) Error() string { return e.Code + ": " + e.Description }

func invalidToken(format string, args ...any) *TokenError {
	return &TokenError{Code: "invalid_token", Description: fmt.Sprintf(format, args...)}
}

// clockSkew is the leeway on exp, nbf and iat.
const clockSkew = 30 * time.Second

// maxTokenBytes bounds a presented token.
const maxTokenBytes = 16 << 10

// sign signs claims with the current key.
func (i *Issuer) sign(ctx context.Context, claims *AccessToken) (string, error) {
	s := i.keys.signer(ctx)
	if s == nil {
		return "", errors.New("authz: no signing key available")
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	return s.token.sign(payload)
}

// SignMandate signs a mandate's canonical JSON as a compact JWS (typ
// mandate+jws) with the current signing key, verifiable offline against
// the JWKS. It implements mandates.Signer.
func (i *Issuer) SignMandate(ctx context.Context, payload []byte) (string, error) {
	s := i.keys.signer(ctx)
	if s == nil {
		return "", errors.New("authz: no signing key available")
	}
	jws, err := s.mandate.Sign(payload)
	if err != nil {
		return "", err
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		return "", err
	}
	return lowS(jose.SignatureAlgorithm(s.alg), out)
}

// VerifySignedMandate checks a signed mandate (SignMandate's compact JWS,
// typ mandate+jws) against our published keys and returns the signed
// canonical JSON.
func (i *Issuer) VerifySignedMandate(ctx context.Context, compact string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(compact, signingAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, errors.New("authz: the signed mandate is not a JWS signed with an accepted algorithm")
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "mandate+jws" {
		return nil, errors.New("authz: the signed mandate's typ header must be mandate+jws")
	}
	key, ok := i.keys.publicKey(ctx, h.KeyID)
	if !ok || (key.Algorithm != "" && key.Algorithm != h.Algorithm) {
		return nil, errors.New("authz: the signed mandate names a key we do not publish")
	}
	if err := checkLowS(jws); err != nil {
		return nil, err
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return nil, errors.New("authz: the signed mandate's signature does not verify")
	}
	return payload, nil
}

// parseToken verifies signature, header and time claims of a token, but
// not its audience or revocation.
func (i *Issuer) parseToken(ctx context.Context, raw string) (*AccessToken, error) {
	if raw == "" || len(raw) > maxTokenBytes {
		return nil, invalidToken("The access token is missing or too long.")
	}
	if at, kid, ok := i.keys.verified.get(raw); ok {
		if _, known := i.keys.publicKey(ctx, kid); known {
			return i.checkTimes(at)
		}
	}
	jws, err := jose.ParseSignedCompact(raw, signingAlgs)
	if err != nil {
		return nil, invalidToken("The access token is not a JWS signed with an accepted algorithm.")
	}
	if len(jws.Signatures) != 1 {
		return nil, invalidToken("The access token must carry exactly one signature.")
	}
	h := jws.Signatures[0].Protected
	typ, _ := h.ExtraHeaders[jose.HeaderType].(string)
	if !strings.EqualFold(typ, "at+jwt") && !strings.EqualFold(typ, "application/at+jwt") {
		return nil, invalidToken("The access token's typ header must be at+jwt.")
	}
	if h.KeyID == "" {
		return nil, invalidToken("The access token names no key (kid).")
	}
	if h.JSONWebKey != nil || h.ExtraHeaders["jku"] != nil || h.ExtraHeaders["x5u"] != nil {
		return nil, invalidToken("The access token carries its own key; only our published keys are trusted.")
	}
	key, ok := i.keys.publicKey(ctx, h.KeyID)
	if !ok {
		return nil, invalidToken("The access token was signed by a key we do not know (kid %q).", h.KeyID)
	}
	if key.Algorithm != "" && key.Algorithm != h.Algorithm {
		return nil, invalidToken("The access token's algorithm does not match its key.")
	}
	if checkLowS(jws) != nil {
		return nil, invalidToken("The access token's ECDSA signature is not in low-S form.")
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return nil, invalidToken("The access token's signature does not verify.")
	}
	var at AccessToken
	if err := json.Unmarshal(payload, &at); err != nil {
		return nil, invalidToken("The access token's claims are malformed.")
	}
	at.Raw = raw
	if at.Issuer != i.opt.Issuer {
		return nil, invalidToken("The access token was issued by %q, not by this server.", at.Issuer)
	}
	if at.Subject == "" || at.ClientID == "" || at.TenantID == "" || at.JTI == "" || at.Expiry == 0 || at.IssuedAt == 0 {
		return nil, invalidToken("The access token lacks a required claim.")
	}
	i.keys.verified.put(raw, h.KeyID, &at)
	return i.checkTimes(&at)
}

// checkTimes checks the time claims of a token whose signature and other
// claims verified, and returns a copy of it for the caller.
func (i *Issuer) checkTimes(at *AccessToken) (*AccessToken, error) {
	now := i.now()
	if now.After(time.Unix(at.Expiry, 0).Add(clockSkew)) {
		return nil, invalidToken("The access token expired.")
	}
	if at.NotBefore != 0 && now.Add(clockSkew).Before(time.Unix(at.NotBefore, 0)) {
		return nil, invalidToken("The access token is not valid yet.")
	}
	if now.Add(clockSkew).Before(time.Unix(at.IssuedAt, 0)) {
		return nil, invalidToken("The access token was issued in the future.")
	}
	c := *at
	return &c, nil
}

// Verify checks a JWT access token for use at our resource endpoints:
// algorithm allow-list (ES256, EdDSA), a kid of ours, typ at+jwt, iss,
// aud naming this API, exp/nbf/iat with 30 s skew, and that neither the
// token, its agent, its tenant nor any agent of its delegation chain was
// revoked. DPoP binding is checked by
// VerifyRequest.
func (i *Issuer) Verify(ctx context.Context, raw string) (*AccessToken, error) {
	return i.verifyFor(ctx, raw, i.opt.Audience)
}

// verifyFor is Verify for the resource aud names.
func (i *Issuer) verifyFor(ctx context.Context, raw, resource string) (*AccessToken, error) {
	at, err := i.parseToken(ctx, raw)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(at.Audience, resource) {
		return nil, invalidToken("The access token is not meant for this resource (aud).")
	}
	what, id, err := i.chainRevoked(ctx, at)
	if err != nil {
		return nil, err
	}
	if what != "" {
		// Name what was revoked, as the charge transaction's re-check does;
		// a suspended agent is said to be suspended.
		if what == RevokedAgent {
			if a, err := i.GetAgent(ctx, at.TenantID, id); err == nil && a.Status == AgentSuspended {
				return nil, &TokenError{Code: "invalid_token", Description: "The agent " + id + " was suspended.", Revoked: what, Suspended: true}
			}
		}
		return nil, &TokenError{Code: "invalid_token", Description: "The " + what + " " + id + " was revoked.", Revoked: what}
	}
	return at, nil
}
