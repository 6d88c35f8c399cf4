package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	jose "github.com/go-jose/go-jose/v4"
)

// allowedAlgs is the verification allow-list: the server signs with ES256
// (EdDSA keys are accepted too). Anything else — "none", HS256 with the
// public key as a secret, RSA — is refused before a key is even looked up.
var allowedAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA}

// fetchJWKS downloads the server's public signing keys.
func (c *client) fetchJWKS(ctx context.Context) (*jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	if err := c.mustCall(ctx, http.MethodGet, "/.well-known/jwks.json", "", nil, &set); err != nil {
		return nil, err
	}
	if len(set.Keys) == 0 {
		return nil, fmt.Errorf("the JWKS has no keys")
	}
	return &set, nil
}

// verifyJWS checks a compact JWS against the JWKS: an allowed algorithm,
// exactly one signature, a kid the JWKS names, the expected typ, and a
// valid signature. It returns the verified payload and the kid.
func verifyJWS(set *jose.JSONWebKeySet, compact, typ string) ([]byte, string, error) {
	jws, err := jose.ParseSignedCompact(compact, allowedAlgs)
	if err != nil {
		return nil, "", fmt.Errorf("not a compact JWS with an allowed algorithm: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, "", fmt.Errorf("expected one signature, got %d", len(jws.Signatures))
	}
	h := jws.Signatures[0].Protected
	if got, _ := h.ExtraHeaders[jose.HeaderType].(string); got != typ {
		return nil, "", fmt.Errorf("typ is %q, want %q", got, typ)
	}
	keys := set.Key(h.KeyID)
	if len(keys) == 0 {
		return nil, "", fmt.Errorf("no key %q in the JWKS", h.KeyID)
	}
	payload, err := jws.Verify(keys[0].Public())
	if err != nil {
		return nil, "", fmt.Errorf("signature does not verify with key %s: %w", h.KeyID, err)
	}
	return payload, h.KeyID, nil
}

// accessClaims are the access token claims the story shows.
type accessClaims struct {
	Iss                  string          `json:"iss"`
	Sub                  string          `json:"sub"`
	ClientID             string          `json:"client_id"`
	Scope                string          `json:"scope"`
	Exp                  int64           `json:"exp"`
	Act                  json.RawMessage `json:"act"`
	AuthorizationDetails []struct {
		Type      string `json:"type"`
		MandateID string `json:"mandate_id"`
		Budget    int64  `json:"budget"`
		Currency  string `json:"currency"`
	} `json:"authorization_details"`
}

// verifyAccessToken verifies an RFC 9068 access token (typ at+jwt) the
// way a resource server would, and returns its claims.
func verifyAccessToken(set *jose.JSONWebKeySet, tok string) (*accessClaims, error) {
	payload, _, err := verifyJWS(set, tok, "at+jwt")
	if err != nil {
		return nil, err
	}
	var c accessClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, err
	}
	return &c, nil
}
