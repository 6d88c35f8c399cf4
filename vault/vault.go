// Package vault tokenizes cards: it validates a card, verifies its CVC once
// with the processor, and stores the card number encrypted, returning a
// token (tok_…) that the rest of the system uses instead.
//
// # Key hierarchy
//
//	KEK (versioned; config, environment or file; never in the database)
//	 └─ tenant key        one per tenant, wrapped by the KEK (vault_tenant_keys)
//	     └─ data key      one per token, wrapped by the tenant key (vault_tokens)
//	         └─ card      AES-256-GCM ciphertext of the card number and name
//
// Every layer is AES-256-GCM with additional authenticated data naming the
// tenant and the row (tenant key id, token id), so a ciphertext or wrapped
// key copied onto another row, or another tenant, does not decrypt.
//
// Destroying a tenant's key (ShredTenant) makes every card of that tenant
// unrecoverable, backups included: crypto-shredding. Deleting a token erases
// its data key and ciphertext.
//
// Rotating the KEK adds a version; new tenant keys are wrapped with the
// active version. Rewrap re-wraps tenant keys to the active version: it
// unwraps tenant keys only, never a data key or a card number, and its cost
// is one row per tenant however many cards there are. After a rewrap that
// reports nothing left, min_decryption_version can be raised so the old KEK
// is refused, then removed.
//
// The card fingerprint is an HMAC-SHA256 of the card number under a key
// derived (HKDF) from the tenant key: stable within a tenant, unlinkable
// across tenants, and not computable without the key (PCI DSS 3.5.1.1).
package vault

import (
	"context"
	"errors"
	"time"

	"github.com/perfectpay/perfectpay/audit"
)

// CVC check outcomes of the zero-amount verification at tokenization.
const (
	CVCPass        = "pass"
	CVCFail        = "fail"
	CVCUnavailable = "unavailable"
)

// Errors of the token lifecycle.
var (
	ErrTokenDeleted = errors.New("vault: token was deleted")
	ErrKeyDestroyed = errors.New("vault: the tenant key was destroyed (crypto-shredded)")
)

// TenantKey is one tenant's key, wrapped by a KEK version.
type TenantKey struct {
	ID          string
	TenantID    string
	KEKVersion  int
	Wrapped     []byte // nil once destroyed
	CreatedAt   time.Time
	RewrappedAt *time.Time
	DestroyedAt *time.Time
}

// Token is a stored card: its masked view in clear, the card itself only as
// ciphertext. It never holds a CVC.
type Token struct {
	ID          string
	TenantID    string
	TenantKeyID string
	Livemode    bool
	Brand       string
	Last4       string
	ExpMonth    int
	ExpYear     int
	Fingerprint string
	CVCCheck    string
	WrappedDEK  []byte // data key wrapped by the tenant key; nil once deleted
	Ciphertext  []byte // the card, encrypted with the data key; nil once deleted
	CreatedAt   time.Time
	DeletedAt   *time.Time
}

// Card is a card in clear. It exists only in memory: at tokenization and
// when the payment core detokenizes a token for the processor.
type Card struct {
	Number   string
	ExpMonth int
	ExpYear  int
	Name     string
	Brand    string
	// CVC is set only at tokenization, for the one verification.
	CVC string
}

// Last4 returns the last four digits of the card number.
func (c *Card) Last4() string {
	if len(c.Number) < 4 {
		return ""
	}
	return c.Number[len(c.Number)-4:]
}

// Repo is the storage the vault needs.
type Repo interface {
	// EnsureTenantKey stores k unless the tenant already has a live key,
	// and returns the tenant's live key (k or the existing one).
	EnsureTenantKey(ctx context.Context, k *TenantKey) (*TenantKey, error)
	GetTenantKey(ctx context.Context, id string) (*TenantKey, error)
	// LiveTenantKey returns the tenant's live key (store.ErrNotFound: none).
	LiveTenantKey(ctx context.Context, tenantID string) (*TenantKey, error)
	// TenantKeysToRewrap lists live tenant keys not wrapped under version,
	// in id order after afterID.
	TenantKeysToRewrap(ctx context.Context, version int, afterID string, limit int) ([]TenantKey, error)
	// RewrapTenantKey replaces the wrapping of key id when it is still under
	// fromVersion; store.ErrConflict otherwise (another rewrap got there).
	RewrapTenantKey(ctx context.Context, id string, fromVersion, toVersion int, wrapped []byte, at time.Time) error
	// DestroyTenantKey erases the material of the tenant's live key.
	DestroyTenantKey(ctx context.Context, tenantID string, at time.Time) (*TenantKey, error)
	// CountTenantKeys counts live tenant keys per KEK version.
	CountTenantKeys(ctx context.Context) (map[int]int, error)

	CreateToken(ctx context.Context, t *Token) error
	// GetToken returns a token of the tenant, deleted ones included.
	GetToken(ctx context.Context, tenantID, id string) (*Token, error)
	// GetTokenAndKey returns a token of the tenant (deleted ones included)
	// with the tenant key it names, in one statement: the key is nil when
	// its row is gone.
	GetTokenAndKey(ctx context.Context, tenantID, id string) (*Token, *TenantKey, error)
	// DeleteToken erases the token's data key and ciphertext.
	DeleteToken(ctx context.Context, tenantID, id string, at time.Time) error
}

// Tx is what a vault transaction touches.
type Tx interface {
	Repo
	audit.Writer
}

// Verifier runs the zero-amount card verification at tokenization. It
// returns a CVC check outcome and never fails: a processor that cannot be
// reached gives CVCUnavailable.
type Verifier interface {
	VerifyCard(ctx context.Context, c *Card) string
}
