package authz

import (
	"context"
	"encoding/json"
	"time"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/events"
)

// Agent statuses.
const (
	AgentActive    = "active"
	AgentSuspended = "suspended"
	AgentRevoked   = "revoked"
)

// Token endpoint authentication methods an agent may use.
const (
	AuthPrivateKeyJWT     = "private_key_jwt"
	AuthClientSecretBasic = "client_secret_basic"
)

// Grant types.
const (
	GrantClientCredentials = "client_credentials"
	GrantRefreshToken      = "refresh_token"
	GrantTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange"
)

// CIBA token delivery modes an agent may register.
const (
	BackchannelPoll = "poll"
	BackchannelPing = "ping"
)

// Agent is an OAuth2 client of a tenant. Its id is the OAuth client_id.
type Agent struct {
	ID         string          `json:"id"`
	TenantID   string          `json:"-"`
	Name       string          `json:"name"`
	Status     string          `json:"status"`
	AuthMethod string          `json:"token_endpoint_auth_method"`
	JWKS       json.RawMessage `json:"jwks,omitempty"` // public keys (private_key_jwt)
	SecretHash []byte          `json:"-"`              // keyed hash (client_secret_basic)
	GrantTypes []string        `json:"grant_types"`
	Scopes     []string        `json:"scopes"`
	// Audiences the agent may request besides the API's own.
	Audiences []string `json:"audiences"`
	// RedirectURIs are where the authorization code grant may send the
	// payer back, matched exactly.
	RedirectURIs []string `json:"redirect_uris"`
	// BackchannelMode is the CIBA token delivery mode (poll or ping) and
	// BackchannelEndpoint the client notification endpoint of ping mode.
	BackchannelMode     string     `json:"backchannel_token_delivery_mode,omitempty"`
	BackchannelEndpoint string     `json:"backchannel_client_notification_endpoint,omitempty"`
	CreatedAt           time.Time  `json:"created"`
	UpdatedAt           time.Time  `json:"updated"`
	SuspendedAt         *time.Time `json:"suspended_at"`
	RevokedAt           *time.Time `json:"revoked_at"`
}

// Token session kinds.
const (
	KindAccess  = "access"
	KindRefresh = "refresh"
)

// TokenSession is an issued token as the store keeps it: access tokens by
// jti, refresh tokens by the keyed hash of their value (never the value).
// RequestID names the grant family: a refresh token and every token it was
// rotated into share it.
type TokenSession struct {
	Kind      string
	Signature string
	RequestID string
	ClientID  string
	TenantID  string
	// AccessSignature is, for a refresh token, the jti of the access token
	// issued with it.
	AccessSignature string
	Active          bool
	Data            json.RawMessage // the fosite request, encoded by authz
	CreatedAt       time.Time
	ExpiresAt       time.Time
}

// Revocation kinds.
const (
	RevokedToken  = "token"
	RevokedAgent  = "agent"
	RevokedTenant = "tenant"
)

// Revocation records that a token (by jti), an agent (by client id) or a
// whole tenant may no longer be used.
type Revocation struct {
	Kind      string
	ID        string
	TenantID  string
	Reason    string // "revoked", "suspended", "refresh_token_reuse", ...
	RevokedAt time.Time
	// ExpiresAt, when set, is when the record may be pruned (the token
	// expired by then anyway).
	ExpiresAt *time.Time
}

// SigningKey is one of the issuer's signing keys. The private key is
// sealed with the signing KEK (AES-256-GCM); the public key is kept in clear.
type SigningKey struct {
	KID        string
	Alg        string
	PublicJWK  json.RawMessage
	PrivateEnc []byte
	KEKID      string
	CreatedAt  time.Time
	// RetiredAt is when a newer key replaced this one for signing.
	RetiredAt *time.Time
	// ExpiresAt is when the public key leaves the JWKS: every token the key
	// signed has expired by then.
	ExpiresAt *time.Time
}

// Revocations is the check the charge pipeline runs inside its own
// transaction: a charge is denied when its token, agent or tenant was
// revoked before the transaction began.
type Revocations interface {
	// IsRevoked reports what of (token jti, agent client id, tenant) is
	// revoked: RevokedToken, RevokedAgent, RevokedTenant, or "" for none.
	// Empty arguments are not checked.
	IsRevoked(ctx context.Context, tokenJTI, clientID, tenantID string) (string, error)
}

// Delegation records that a grant (named by its detail type, e.g. a child
// mandate's id) was made by token exchange from a token family.
type Delegation struct {
	TenantID string
	GrantKey string
	// DelegatedFrom are the jtis of the subject token and its ancestors,
	// oldest first.
	DelegatedFrom []string
	CreatedAt     time.Time
}

// Repo is the storage the issuer needs.
type Repo interface {
	Revocations
	AuthRequestRepo

	CreateAgent(ctx context.Context, a *Agent) error
	// GetAgent finds an agent by client id, in any tenant.
	GetAgent(ctx context.Context, id string) (*Agent, error)
	// ListAgents lists a tenant's agents oldest first, after the agent
	// with id after (when set), at most limit.
	ListAgents(ctx context.Context, tenantID, after string, limit int) ([]Agent, error)
	UpdateAgent(ctx context.Context, a *Agent) error

	// UseJTI records a one-time identifier (client assertion or DPoP proof
	// jti) in namespace ns until exp. It fails with store.ErrConflict when
	// the same (ns, jti) is recorded and has not expired: a replay.
	UseJTI(ctx context.Context, ns, jti string, exp time.Time) error

	CreateTokenSession(ctx context.Context, s *TokenSession) error
	GetTokenSession(ctx context.Context, kind, signature string) (*TokenSession, error)
	DeleteTokenSession(ctx context.Context, kind, signature string) error
	// DeactivateTokenSession marks an active session inactive (refresh
	// rotation). It fails with store.ErrConflict when the session is
	// already inactive, so only one of two racing rotations wins.
	DeactivateTokenSession(ctx context.Context, kind, signature string) error
	// DeactivateTokenFamily marks every session of the grant family
	// inactive and returns the access tokens of the family still unexpired.
	DeactivateTokenFamily(ctx context.Context, requestID string, now time.Time) ([]TokenSession, error)

	// RecordDelegation stores d unless the grant already has one (the
	// first exchange that made the grant is its lineage).
	RecordDelegation(ctx context.Context, d *Delegation) error
	// GetDelegation returns the delegation of a grant (store.ErrNotFound).
	GetDelegation(ctx context.Context, tenantID, grantKey string) (*Delegation, error)
	// DelegatedFrom reports whether any grant was delegated from token jti.
	DelegatedFrom(ctx context.Context, jti string) (bool, error)
	// LockTokenFamily serializes, until the transaction ends, revoking a
	// token and recording a grant delegated from it, so neither misses
	// the other.
	LockTokenFamily(ctx context.Context, jti string) error

	// Revoke records r; revoking what is already revoked keeps the first
	// record unless the reason changes from "suspended" to a revocation.
	Revoke(ctx context.Context, r *Revocation) error
	// Unrevoke deletes a revocation record (resuming a suspended agent).
	Unrevoke(ctx context.Context, kind, id string) error

	CreateSigningKey(ctx context.Context, k *SigningKey) error
	// ListSigningKeys returns every signing key, newest first.
	ListSigningKeys(ctx context.Context) ([]SigningKey, error)
	UpdateSigningKey(ctx context.Context, k *SigningKey) error
	// DeleteSigningKey removes a signing key (a retired key whose tokens
	// have all expired).
	DeleteSigningKey(ctx context.Context, kid string) error
	// LockSigningKeys serializes key rotation across nodes until the
	// transaction ends.
	LockSigningKeys(ctx context.Context) error

	// NotifyAuthz tells every node (on commit) to drop cached state named
	// by payload ("agent:<id>", "revocation", "keys").
	NotifyAuthz(ctx context.Context, payload string) error

	// PruneAuthz deletes expired one-time identifiers, token sessions and
	// token revocations, returning how many rows went.
	PruneAuthz(ctx context.Context, before time.Time) (int, error)
}

// Tx is what an issuer transaction touches.
type Tx interface {
	Repo
	ClientDomainRepo
	audit.Writer
	events.Outbox
}

// Listener delivers NotifyAuthz payloads of every node. ListenAuthz blocks
// until ctx ends; fn must be quick and must not use the store. A payload of
// "*" means notifications may have been missed: drop everything.
type Listener interface {
	ListenAuthz(ctx context.Context, fn func(payload string)) error
}
