// Package accounts holds tenants (merchants and platforms) and their API keys.
package accounts

import (
	"context"
	"time"
)

// Tenant is a merchant or platform using the API.
type Tenant struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Status    string    `json:"status"` // active | revoked
	CreatedAt time.Time `json:"created"`
}

// Tenant statuses.
const (
	TenantActive  = "active"
	TenantRevoked = "revoked"
)

// Key kinds.
const (
	KindSecret      = "secret"      // sk_…: everything
	KindPublishable = "publishable" // pk_…: tokenization only
	KindRestricted  = "restricted"  // rk_…: listed scopes only
)

// Modes.
const (
	ModeTest = "test"
	ModeLive = "live"
)

// APIKey is a stored API key. The secret itself is never stored: only its
// keyed hash, plus the prefix and last four characters for display.
type APIKey struct {
	ID         string
	TenantID   string
	Kind       string
	Mode       string
	Prefix     string // e.g. "sk_test_"
	Last4      string
	Hash       []byte // HMAC-SHA256(pepper, secret)
	Scopes     []string
	Name       string
	CreatedAt  time.Time
	ExpiresAt  *time.Time // set when the key was rolled: valid until then
	RevokedAt  *time.Time
	LastUsedAt *time.Time
	RolledTo   string // id of the key that replaced this one
}

// Active reports whether the key authenticates at time now.
func (k *APIKey) Active(now time.Time) bool {
	if k.RevokedAt != nil && !k.RevokedAt.After(now) {
		return false
	}
	if k.ExpiresAt != nil && !k.ExpiresAt.After(now) {
		return false
	}
	return true
}

// Repo is the storage the accounts domain needs.
type Repo interface {
	CreateTenant(ctx context.Context, t *Tenant) error
	GetTenant(ctx context.Context, id string) (*Tenant, error)
	UpdateTenant(ctx context.Context, t *Tenant) error

	CreateAPIKey(ctx context.Context, k *APIKey) error
	// GetAPIKeyByHash finds a key by the keyed hash of its secret.
	GetAPIKeyByHash(ctx context.Context, hash []byte) (*APIKey, error)
	// GetAPIKeyAndTenant finds a key by the keyed hash of its secret
	// together with its tenant, in one read: every request made with an
	// API key starts with it.
	GetAPIKeyAndTenant(ctx context.Context, hash []byte) (*APIKey, *Tenant, error)
	GetAPIKey(ctx context.Context, tenantID, id string) (*APIKey, error)
	ListAPIKeys(ctx context.Context, tenantID string) ([]APIKey, error)
	UpdateAPIKey(ctx context.Context, k *APIKey) error
}
