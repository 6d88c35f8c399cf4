package authz

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/store"
)

// Caller is who calls introspection or revocation: a tenant (by API key)
// or an agent (by client authentication).
type Caller struct {
	TenantID string
	// AgentID is set when an agent authenticated.
	AgentID string
}

// sees reports whether the caller may learn about a token of tenantID
// issued to clientID with the given chain. A tenant sees all of its
// tokens; an agent sees its own, those delegated through it, and those
// whose may_act names it.
func (c Caller) sees(tenantID, clientID string, at *AccessToken) bool {
	if c.TenantID != tenantID {
		return false
	}
	if c.AgentID == "" || c.AgentID == clientID {
		return true
	}
	if at == nil {
		return false
	}
	return slices.Contains(at.Act.Chain(), c.AgentID) || (at.MayAct != nil && at.MayAct.Sub == c.AgentID)
}

// AuthenticateAgent authenticates an agent at introspection or revocation
// the way the token endpoint does (client_secret_basic or
// private_key_jwt). Errors are RFC 6749 errors (WriteOAuthError).
func (i *Issuer) AuthenticateAgent(r *http.Request, form url.Values) (*Agent, error) {
	c, err := i.authenticateClient(r.Context(), r, form)
	if err != nil {
		return nil, err
	}
	return c.(*agentClient).agent, nil
}

// WriteOAuthError writes err in RFC 6749's error shape.
func (i *Issuer) WriteOAuthError(w http.ResponseWriter, r *http.Request, err error) {
	i.writeTokenError(r.Context(), w, nil, err)
}

// ErrInvalidRequest is an RFC 6749 invalid_request with a description.
func ErrInvalidRequest(desc string) error { return fosite.ErrInvalidRequest.WithHint(desc) }

var inactive = map[string]any{"active": false}

// Introspect answers RFC 7662 for caller: active=false for expired,
// revoked, unknown or foreign tokens.
func (i *Issuer) Introspect(ctx context.Context, caller Caller, token, hint string) (map[string]any, error) {
	if strings.HasPrefix(token, refreshPrefix) {
		return i.introspectRefresh(ctx, caller, token)
	}
	at, err := i.parseToken(ctx, token)
	if err != nil {
		return inactive, nil //nolint:nilerr // RFC 7662: a token that does not verify is inactive, not an error
	}
	if !caller.sees(at.TenantID, at.ClientID, at) {
		return inactive, nil
	}
	what, _, err := i.chainRevoked(ctx, at)
	if err != nil {
		return nil, err
	}
	if what != "" {
		return inactive, nil
	}
	// What the token's authorization_details grant must still stand (a
	// mandate revoked, or one of its ancestors, ends the token too).
	states, err := i.details.states(ctx, at.TenantID, at.AuthorizationDetails)
	if _, ok := detailRefusal(err); ok {
		return inactive, nil // a type this node no longer knows
	}
	if err != nil {
		return nil, err
	}
	extra := map[string]any{}
	for _, st := range states {
		if !st.Active {
			return inactive, nil
		}
		for k, v := range st.Extra {
			extra[k] = v
		}
	}
	out := map[string]any{
		"active": true, "iss": at.Issuer, "sub": at.Subject, "aud": at.Audience, "client_id": at.ClientID,
		"jti": at.JTI, "iat": at.IssuedAt, "exp": at.Expiry, "token_type": "Bearer", "tenant_id": at.TenantID,
	}
	if at.NotBefore != 0 {
		out["nbf"] = at.NotBefore
	}
	if at.Scope != "" {
		out["scope"] = at.Scope
	}
	if len(at.AuthorizationDetails) > 0 {
		out["authorization_details"] = at.AuthorizationDetails
	}
	if at.Act != nil {
		out["act"] = at.Act
	}
	if at.MayAct != nil {
		out["may_act"] = at.MayAct
	}
	if at.Cnf != nil {
		out["cnf"] = at.Cnf
		out["token_type"] = "DPoP"
	}
	for k, v := range extra {
		if _, taken := out[k]; !taken {
			out[k] = v
		}
	}
	return out, nil
}

func (i *Issuer) refreshSession(ctx context.Context, token string) (*TokenSession, *storedRequest, error) {
	sig := refreshStrategy{i}.RefreshTokenSignature(ctx, token)
	var ts *TokenSession
	err := i.db.Autocommit(ctx, func(tx Tx) error {
		var err error
		ts, err = tx.GetTokenSession(ctx, KindRefresh, sig)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	var sr storedRequest
	if err := json.Unmarshal(ts.Data, &sr); err != nil {
		return nil, nil, err
	}
	return ts, &sr, nil
}

func (i *Issuer) introspectRefresh(ctx context.Context, caller Caller, token string) (map[string]any, error) {
	ts, sr, err := i.refreshSession(ctx, token)
	if errors.Is(err, store.ErrNotFound) {
		return inactive, nil
	}
	if err != nil {
		return nil, err
	}
	if !ts.Active || !ts.ExpiresAt.After(i.now()) || !caller.sees(ts.TenantID, ts.ClientID, nil) {
		return inactive, nil
	}
	what, err := i.revoked.check(ctx, "", ts.ClientID, ts.TenantID)
	if err != nil {
		return nil, err
	}
	if what != "" {
		return inactive, nil
	}
	// The grant behind the refresh token must still stand, as for access
	// tokens (a revoked mandate ends its refresh tokens too).
	var sess session
	if err := json.Unmarshal(sr.Session, &sess); err != nil {
		return nil, err
	}
	states, err := i.details.states(ctx, ts.TenantID, sess.AuthorizationDetails)
	if _, ok := detailRefusal(err); ok {
		return inactive, nil
	}
	if err != nil {
		return nil, err
	}
	for _, st := range states {
		if !st.Active {
			return inactive, nil
		}
	}
	return map[string]any{
		"active": true, "iss": i.opt.Issuer, "client_id": ts.ClientID, "tenant_id": ts.TenantID,
		"scope": strings.Join(sr.GrantedScope, " "), "iat": ts.CreatedAt.Unix(), "exp": ts.ExpiresAt.Unix(),
		"token_type": "refresh_token",
	}, nil
}

// RevokeToken is RFC 7009: it revokes an access token (by jti, recorded
// for every node and for the charge pipeline) or a refresh token (with
// its whole grant family). Unknown tokens and tokens the caller may not
// see are ignored, as the RFC asks. An agent may revoke only its own
// tokens.
func (i *Issuer) RevokeToken(ctx context.Context, caller Caller, token, hint string) error {
	if strings.HasPrefix(token, refreshPrefix) {
		ts, _, err := i.refreshSession(ctx, token)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if caller.TenantID != ts.TenantID || (caller.AgentID != "" && caller.AgentID != ts.ClientID) {
			return nil
		}
		return i.revokeFamily(ctx, ts.RequestID)
	}
	at, err := i.parseToken(ctx, token)
	if err != nil {
		return nil //nolint:nilerr // RFC 7009: invalid or expired, nothing left to revoke
	}
	if caller.TenantID != at.TenantID || (caller.AgentID != "" && caller.AgentID != at.ClientID) {
		return nil
	}
	now := i.stamp()
	err = i.db.InTx(ctx, func(tx Tx) error {
		// A token a grant was delegated from is revoked for good: tokens
		// for that grant are issued with its jti long after it expired.
		if err := tx.LockTokenFamily(ctx, at.JTI); err != nil {
			return err
		}
		delegated, err := tx.DelegatedFrom(ctx, at.JTI)
		if err != nil {
			return err
		}
		var exp *time.Time
		if !delegated {
			e := time.Unix(at.Expiry, 0).Add(clockSkew).UTC()
			exp = &e
		}
		if err := tx.Revoke(ctx, &Revocation{Kind: RevokedToken, ID: at.JTI, TenantID: at.TenantID, Reason: "revoked",
			RevokedAt: now, ExpiresAt: exp}); err != nil {
			return err
		}
		if err := audit.Record(ctx, tx, "token.revoked", at.JTI, map[string]any{"client_id": at.ClientID}); err != nil {
			return err
		}
		return tx.NotifyAuthz(ctx, "revocation")
	})
	if err == nil {
		i.revoked.drop()
	}
	return err
}

// Metadata is the RFC 8414 authorization server metadata.
func (i *Issuer) Metadata() map[string]any {
	iss := i.opt.Issuer
	m := map[string]any{
		"issuer":                                iss,
		"token_endpoint":                        iss + PathToken,
		"introspection_endpoint":                iss + PathIntrospect,
		"revocation_endpoint":                   iss + PathRevoke,
		"registration_endpoint":                 iss + PathRegister,
		"jwks_uri":                              iss + PathJWKS,
		"grant_types_supported":                 GrantTypesSupported,
		"response_types_supported":              []string{},
		"scopes_supported":                      AgentScopes,
		"token_endpoint_auth_methods_supported": []string{AuthPrivateKeyJWT, AuthClientSecretBasic},
		"token_endpoint_auth_signing_alg_values_supported":         algNames(assertionAlgs),
		"introspection_endpoint_auth_methods_supported":            []string{AuthPrivateKeyJWT, AuthClientSecretBasic, "bearer"},
		"revocation_endpoint_auth_methods_supported":               []string{AuthPrivateKeyJWT, AuthClientSecretBasic, "bearer"},
		"introspection_endpoint_auth_signing_alg_values_supported": algNames(assertionAlgs),
		"revocation_endpoint_auth_signing_alg_values_supported":    algNames(assertionAlgs),
		"code_challenge_methods_supported":                         []string{"S256"},
		"dpop_signing_alg_values_supported":                        DPoPAlgs(),
		"authorization_details_types_supported":                    i.details.Types(),
		"access_token_signing_alg_values_supported":                []string{i.opt.SigningAlg},
	}
	i.peopleMetadata(m)
	m["client_id_metadata_document_supported"] = true
	return m
}

func algNames(algs []jose.SignatureAlgorithm) []string {
	out := make([]string, len(algs))
	for n, a := range algs {
		out[n] = string(a)
	}
	return out
}
