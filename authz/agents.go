package authz

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/events"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/internal/page"
	"github.com/perfectpay/perfectpay/store"
)

// inputErr is a refused agent field; the HTTP layer shows it as a 400
// about param.
func inputErr(param, format string, args ...any) error {
	return apierr.BadParam(param, format, args...)
}

// AgentInput is what a tenant registers.
type AgentInput struct {
	Name       string
	AuthMethod string
	JWKS       json.RawMessage
	GrantTypes []string
	Scopes     []string
	Audiences  []string
	// RedirectURIs (authorization_code), BackchannelMode and
	// BackchannelEndpoint (CIBA).
	RedirectURIs        []string
	BackchannelMode     string
	BackchannelEndpoint string
}

// GrantTypesSupported are the grants agents may be registered for.
var GrantTypesSupported = []string{GrantClientCredentials, GrantRefreshToken, GrantTokenExchange, GrantAuthorizationCode, GrantCIBA}

// maxAgentKeys bounds an agent's JWKS.
const maxAgentKeys = 10

// normalizeJWKS checks a JWKS for private_key_jwt and returns it with
// public keys only, in a canonical form: 1 to 10 keys, public, of a type
// and size we verify (P-256/P-384, Ed25519, RSA ≥ 2048 bits), algorithms
// from the assertion allow-list, key ids unique.
func normalizeJWKS(raw json.RawMessage) (json.RawMessage, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, inputErr("jwks", "jwks is not a valid JSON Web Key Set: %v", err)
	}
	if len(set.Keys) == 0 || len(set.Keys) > maxAgentKeys {
		return nil, inputErr("jwks", "jwks must hold 1 to %d keys", maxAgentKeys)
	}
	kids := map[string]bool{}
	out := jose.JSONWebKeySet{}
	for n, k := range set.Keys {
		if !k.Valid() || !k.IsPublic() {
			return nil, inputErr("jwks", "key %d must be a valid public key (never send private keys)", n)
		}
		switch pk := k.Key.(type) {
		case *ecdsa.PublicKey:
			if pk.Curve != elliptic.P256() && pk.Curve != elliptic.P384() {
				return nil, inputErr("jwks", "key %d: EC keys must be on P-256 or P-384", n)
			}
		case ed25519.PublicKey:
		case *rsa.PublicKey:
			if pk.N.BitLen() < 2048 {
				return nil, inputErr("jwks", "key %d: RSA keys must have at least 2048 bits", n)
			}
		default:
			return nil, inputErr("jwks", "key %d has an unsupported key type", n)
		}
		if k.Algorithm != "" && !slices.Contains(assertionAlgs, jose.SignatureAlgorithm(k.Algorithm)) {
			return nil, inputErr("jwks", "key %d: alg %s is not accepted (use one of %v)", n, k.Algorithm, assertionAlgs)
		}
		if k.Use != "" && k.Use != "sig" {
			return nil, inputErr("jwks", "key %d: use must be sig", n)
		}
		if kids[k.KeyID] {
			return nil, inputErr("jwks", "key ids must be unique (%q repeats)", k.KeyID)
		}
		kids[k.KeyID] = true
		out.Keys = append(out.Keys, k.Public())
	}
	return json.Marshal(out)
}

func (i *Issuer) checkAgentInput(in *AgentInput) error {
	if in.Name == "" || len(in.Name) > 200 {
		return inputErr("name", "name is required and at most 200 characters")
	}
	switch in.AuthMethod {
	case AuthPrivateKeyJWT:
		if len(in.JWKS) == 0 {
			return inputErr("jwks", "private_key_jwt needs the agent's public keys as jwks")
		}
		jwks, err := normalizeJWKS(in.JWKS)
		if err != nil {
			return err
		}
		in.JWKS = jwks
	case AuthClientSecretBasic:
		if len(in.JWKS) > 0 {
			return inputErr("jwks", "jwks is only for private_key_jwt")
		}
	default:
		return inputErr("token_endpoint_auth_method", "token_endpoint_auth_method must be private_key_jwt or client_secret_basic")
	}
	if len(in.GrantTypes) == 0 {
		in.GrantTypes = []string{GrantClientCredentials, GrantTokenExchange}
	}
	for _, g := range in.GrantTypes {
		if !slices.Contains(GrantTypesSupported, g) {
			return inputErr("grant_types", "unsupported grant type %q (supported: %v)", g, GrantTypesSupported)
		}
	}
	if len(in.Scopes) == 0 {
		in.Scopes = slices.Clone(DefaultAgentScopes)
	}
	for _, s := range in.Scopes {
		if !slices.Contains(AgentScopes, s) {
			return inputErr("scopes", "unknown scope %q (agents may hold %v)", s, AgentScopes)
		}
	}
	if len(in.Audiences) > 10 {
		return inputErr("audiences", "at most 10 audiences")
	}
	for _, a := range in.Audiences {
		if u, err := url.Parse(a); err != nil || u.Scheme == "" || u.Host == "" {
			return inputErr("audiences", "audience %q is not an absolute URI", a)
		}
	}
	if err := checkPeopleInput(in); err != nil {
		return err
	}
	slices.Sort(in.GrantTypes)
	in.GrantTypes = slices.Compact(in.GrantTypes)
	slices.Sort(in.Scopes)
	in.Scopes = slices.Compact(in.Scopes)
	return nil
}

// newSecret makes a client secret (256 random bits) and its stored hash.
func (i *Issuer) newSecret(ctx context.Context) (string, []byte) {
	secret := "pps_" + randomToken(32)
	h, _ := secretHasher{i.opt.Pepper}.Hash(ctx, []byte(secret))
	return secret, h
}

func (i *Issuer) stamp() time.Time { return i.now().UTC().Truncate(time.Microsecond) }

// CreateAgent registers an agent of tenantID. For client_secret_basic it
// returns the generated secret, which is shown once and stored only as a
// keyed hash.
func (i *Issuer) CreateAgent(ctx context.Context, tenantID string, in AgentInput) (*Agent, string, error) {
	if err := i.checkAgentInput(&in); err != nil {
		return nil, "", err
	}
	now := i.stamp()
	a := &Agent{
		ID: ids.New("agt"), TenantID: tenantID, Name: in.Name, Status: AgentActive, AuthMethod: in.AuthMethod,
		JWKS: in.JWKS, GrantTypes: in.GrantTypes, Scopes: in.Scopes, Audiences: in.Audiences, CreatedAt: now, UpdatedAt: now,
		RedirectURIs: in.RedirectURIs, BackchannelMode: in.BackchannelMode, BackchannelEndpoint: in.BackchannelEndpoint,
	}
	if a.RedirectURIs == nil {
		a.RedirectURIs = []string{}
	}
	if a.Audiences == nil {
		a.Audiences = []string{}
	}
	var secret string
	if in.AuthMethod == AuthClientSecretBasic {
		secret, a.SecretHash = i.newSecret(ctx)
	}
	err := i.db.InTx(ctx, func(tx Tx) error {
		if err := tx.CreateAgent(ctx, a); err != nil {
			return err
		}
		if err := audit.Record(ctx, tx, "agent.created", a.ID, map[string]any{
			"name": a.Name, "auth_method": a.AuthMethod, "grant_types": a.GrantTypes, "scopes": a.Scopes}); err != nil {
			return err
		}
		return events.Emit(ctx, tx, tenantID, "agent.created", a)
	})
	if err != nil {
		return nil, "", err
	}
	return a, secret, nil
}

// GetAgent returns an agent of tenantID (store.ErrNotFound otherwise).
func (i *Issuer) GetAgent(ctx context.Context, tenantID, id string) (*Agent, error) {
	var a *Agent
	err := i.db.InTx(ctx, func(tx Tx) error {
		var err error
		a, err = tx.GetAgent(ctx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	if a.TenantID != tenantID {
		return nil, store.ErrNotFound
	}
	return a, nil
}

// ListAgents returns a page of tenantID's agents, oldest first, and
// whether more follow.
func (i *Issuer) ListAgents(ctx context.Context, tenantID string, p page.Page) ([]Agent, bool, error) {
	if err := page.Check(p.Limit); err != nil {
		return nil, false, err
	}
	var out []Agent
	err := i.db.InTx(ctx, func(tx Tx) error {
		var err error
		out, err = tx.ListAgents(ctx, tenantID, p.StartingAfter, page.Fetch(p.Limit))
		return err
	})
	if err != nil {
		return nil, false, err
	}
	out, more := page.Trim(out, p.Limit)
	return out, more, nil
}

// updateAgent loads an agent of the tenant, applies fn, saves it, audits
// action, emits the event and tells every node to drop its cached copy.
func (i *Issuer) updateAgent(ctx context.Context, tenantID, id, action string, fn func(tx Tx, a *Agent) error) (*Agent, error) {
	var a *Agent
	err := i.db.InTx(ctx, func(tx Tx) error {
		var err error
		if a, err = tx.GetAgent(ctx, id); err != nil {
			return err
		}
		if a.TenantID != tenantID {
			return store.ErrNotFound
		}
		if err := fn(tx, a); err != nil {
			return err
		}
		a.UpdatedAt = i.stamp()
		if err := tx.UpdateAgent(ctx, a); err != nil {
			return err
		}
		if err := audit.Record(ctx, tx, action, a.ID, map[string]any{"status": a.Status}); err != nil {
			return err
		}
		if err := events.Emit(ctx, tx, tenantID, action, a); err != nil {
			return err
		}
		return tx.NotifyAuthz(ctx, "agent:"+a.ID)
	})
	if err != nil {
		return nil, err
	}
	i.agents.drop(a.ID)
	return a, nil
}

// ErrAgentRevoked is returned when changing a revoked agent.
var ErrAgentRevoked = fmt.Errorf("%w: the agent is revoked", store.ErrConflict)

// ReplaceKeys replaces the agent's credentials: a new JWKS for
// private_key_jwt, or a newly generated secret (returned, shown once) for
// client_secret_basic. Assertions signed with removed keys and the old
// secret stop working at once; issued tokens stay valid.
func (i *Issuer) ReplaceKeys(ctx context.Context, tenantID, id string, jwks json.RawMessage) (*Agent, string, error) {
	var secret string
	a, err := i.updateAgent(ctx, tenantID, id, "agent.keys_replaced", func(_ Tx, a *Agent) error {
		if a.Status == AgentRevoked {
			return ErrAgentRevoked
		}
		if IsURLClientID(a.ID) {
			return inputErr("jwks", "this agent's keys come from its Client ID Metadata Document: change the document")
		}
		switch a.AuthMethod {
		case AuthPrivateKeyJWT:
			if len(jwks) == 0 {
				return inputErr("jwks", "jwks is required")
			}
			n, err := normalizeJWKS(jwks)
			if err != nil {
				return err
			}
			a.JWKS = n
		default:
			if len(jwks) > 0 {
				return inputErr("jwks", "this agent uses client_secret_basic: send no jwks and a new secret is generated")
			}
			secret, a.SecretHash = i.newSecret(ctx)
		}
		return nil
	})
	return a, secret, err
}

// SuspendAgent stops the agent from getting tokens and makes its tokens
// fail verification until ResumeAgent.
func (i *Issuer) SuspendAgent(ctx context.Context, tenantID, id string) (*Agent, error) {
	a, err := i.updateAgent(ctx, tenantID, id, "agent.suspended", func(tx Tx, a *Agent) error {
		if a.Status == AgentRevoked {
			return ErrAgentRevoked
		}
		now := i.stamp()
		a.Status, a.SuspendedAt = AgentSuspended, &now
		if err := tx.Revoke(ctx, &Revocation{Kind: RevokedAgent, ID: a.ID, TenantID: a.TenantID, Reason: "suspended", RevokedAt: now}); err != nil {
			return err
		}
		return tx.NotifyAuthz(ctx, "revocation")
	})
	if err == nil {
		i.revoked.drop()
	}
	return a, err
}

// ResumeAgent lifts a suspension.
func (i *Issuer) ResumeAgent(ctx context.Context, tenantID, id string) (*Agent, error) {
	a, err := i.updateAgent(ctx, tenantID, id, "agent.resumed", func(tx Tx, a *Agent) error {
		if a.Status == AgentRevoked {
			return ErrAgentRevoked
		}
		a.Status, a.SuspendedAt = AgentActive, nil
		if err := tx.Unrevoke(ctx, RevokedAgent, a.ID); err != nil {
			return err
		}
		return tx.NotifyAuthz(ctx, "revocation")
	})
	if err == nil {
		i.revoked.drop()
	}
	return a, err
}

// RevokeAgent revokes the agent for good: it gets no more tokens and every
// token it holds, or that was delegated through it, fails verification and
// the charge pipeline's revocation check at once.
func (i *Issuer) RevokeAgent(ctx context.Context, tenantID, id string) (*Agent, error) {
	a, err := i.updateAgent(ctx, tenantID, id, "agent.revoked", func(tx Tx, a *Agent) error {
		if a.Status == AgentRevoked {
			return nil
		}
		now := i.stamp()
		a.Status, a.RevokedAt = AgentRevoked, &now
		if err := tx.Revoke(ctx, &Revocation{Kind: RevokedAgent, ID: a.ID, TenantID: a.TenantID, Reason: "revoked", RevokedAt: now}); err != nil {
			return err
		}
		return tx.NotifyAuthz(ctx, "revocation")
	})
	if err == nil {
		i.revoked.drop()
	}
	return a, err
}

// RevokeTenant records that every token of the tenant is revoked (the
// accounts domain calls it when a tenant is closed).
func (i *Issuer) RevokeTenant(ctx context.Context, tenantID string) error {
	err := i.db.InTx(ctx, func(tx Tx) error {
		if err := tx.Revoke(ctx, &Revocation{Kind: RevokedTenant, ID: tenantID, TenantID: tenantID, Reason: "revoked", RevokedAt: i.stamp()}); err != nil {
			return err
		}
		if err := audit.RecordFor(ctx, tx, tenantID, "tenant.tokens_revoked", tenantID, nil); err != nil {
			return err
		}
		return tx.NotifyAuthz(ctx, "revocation")
	})
	if err == nil {
		i.revoked.drop()
	}
	return err
}
