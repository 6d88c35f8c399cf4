package accounts

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/store"
)

// Tx is what an accounts transaction can touch.
type Tx interface {
	Repo
	audit.Writer
}

// Scopes a restricted key may carry.
var Scopes = []string{
	"charges:read", "charges:write",
	"tokens:read", "tokens:write",
	"mandates:read", "mandates:write",
	"agents:read", "agents:write", "agents:register",
	"approvals:write",
	"webhooks:read", "webhooks:write",
	"events:read",
	"keys:read", "keys:write",
	"merchants:read", "merchants:write",
	"audit:read",
	"customers:read", "customers:write",
	"users:write",
}

// Errors callers map to API errors.
var (
	ErrInvalidKey   = errors.New("accounts: invalid API key")
	ErrRevokedKey   = errors.New("accounts: API key revoked or expired")
	ErrInvalidScope = errors.New("accounts: unknown scope")
	// ErrTenantRevoked: the key is valid but its tenant was revoked. It
	// is an ErrRevokedKey too.
	ErrTenantRevoked = fmt.Errorf("%w: tenant revoked", ErrRevokedKey)
)

// Service manages tenants and keys.
type Service struct {
	db     store.Runner[Tx]
	pepper []byte
	now    func() time.Time
	tokens TenantTokens
}

// TenantTokens revokes every token a tenant's agents hold, on every node
// (the OAuth issuer: a revocation row and a notification).
type TenantTokens interface {
	RevokeTenant(ctx context.Context, tenantID string) error
}

// RevokeTenant closes tenant id for good: its status becomes revoked
// (audited as tenant.revoked), so every key of it is refused at once on
// every node (Authenticate reads the status), and the charge transaction
// refuses its agents' charges (it reads the status too); then its tokens
// are revoked through TenantTokens, which tells every node to drop its
// caches. Revoking again re-runs the token revocation only, so a retry
// after a failure in that second step completes it.
func (s *Service) RevokeTenant(ctx context.Context, id string) (*Tenant, error) {
	var t *Tenant
	err := s.db.InTx(ctx, func(tx Tx) error {
		var err error
		if t, err = tx.GetTenant(ctx, id); err != nil {
			return err
		}
		if t.Status == TenantRevoked {
			return nil
		}
		t.Status = TenantRevoked
		if err := tx.UpdateTenant(ctx, t); err != nil {
			return err
		}
		return audit.RecordFor(ctx, tx, id, "tenant.revoked", id, map[string]any{"name": t.Name})
	})
	if err != nil {
		return nil, err
	}
	if s.tokens != nil {
		if err := s.tokens.RevokeTenant(ctx, id); err != nil {
			return nil, fmt.Errorf("tenant %s is revoked, its tokens not yet (retry): %w", id, err)
		}
	}
	return t, nil
}

// NewService returns the accounts service. pepper keys the hash under which
// API key secrets are stored; every node must share it.
func NewService(db store.Runner[Tx], pepper []byte, tokens TenantTokens) *Service {
	return &Service{db: db, pepper: pepper, now: time.Now, tokens: tokens}
}

// NewKey is a freshly made key with its secret, which is shown once.
type NewKey struct {
	Key    *APIKey
	Secret string
}

// KeyPrefix returns the visible prefix of a key of kind and mode.
func KeyPrefix(kind, mode string) string {
	switch kind {
	case KindPublishable:
		return "pk_" + mode + "_"
	case KindRestricted:
		return "rk_" + mode + "_"
	default:
		return "sk_" + mode + "_"
	}
}

// LooksLikeKey reports whether s has the shape of one of our API keys.
func LooksLikeKey(s string) bool {
	for _, p := range []string{"sk_test_", "sk_live_", "pk_test_", "pk_live_", "rk_test_", "rk_live_"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

const secretChars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// 43 base62 characters carry 256 bits.
func randomSecret() string {
	var sb strings.Builder
	max := big.NewInt(int64(len(secretChars)))
	for range 43 {
		v, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic(err)
		}
		sb.WriteByte(secretChars[v.Int64()])
	}
	return sb.String()
}

// HashSecret is the keyed hash under which a secret is stored.
func (s *Service) HashSecret(secret string) []byte {
	m := hmac.New(sha256.New, s.pepper)
	m.Write([]byte(secret))
	return m.Sum(nil)
}

func (s *Service) makeKey(tenantID, kind, mode, name string, scopes []string) (*NewKey, error) {
	for _, sc := range scopes {
		if !slices.Contains(Scopes, sc) {
			return nil, fmt.Errorf("%w: %q", ErrInvalidScope, sc)
		}
	}
	secret := KeyPrefix(kind, mode) + randomSecret()
	k := &APIKey{
		ID:        ids.New("key"),
		TenantID:  tenantID,
		Kind:      kind,
		Mode:      mode,
		Prefix:    KeyPrefix(kind, mode),
		Last4:     secret[len(secret)-4:],
		Hash:      s.HashSecret(secret),
		Scopes:    scopes,
		Name:      name,
		CreatedAt: s.now().UTC().Truncate(time.Microsecond),
	}
	return &NewKey{Key: k, Secret: secret}, nil
}

// Bootstrap is a new tenant with its first keys.
type Bootstrap struct {
	Tenant *Tenant
	Keys   []*NewKey // secret test, publishable test, secret live, publishable live
}

// CreateTenant creates a tenant with a secret and a publishable key in each mode.
func (s *Service) CreateTenant(ctx context.Context, name string) (*Bootstrap, error) {
	t := &Tenant{ID: ids.New("ten"), Name: name, Status: TenantActive, CreatedAt: s.now().UTC().Truncate(time.Microsecond)}
	b := &Bootstrap{Tenant: t}
	for _, mode := range []string{ModeTest, ModeLive} {
		for _, kind := range []string{KindSecret, KindPublishable} {
			k, err := s.makeKey(t.ID, kind, mode, "default", nil)
			if err != nil {
				return nil, err
			}
			b.Keys = append(b.Keys, k)
		}
	}
	err := s.db.InTx(ctx, func(tx Tx) error {
		if err := tx.CreateTenant(ctx, t); err != nil {
			return err
		}
		for _, k := range b.Keys {
			if err := tx.CreateAPIKey(ctx, k.Key); err != nil {
				return err
			}
		}
		return audit.RecordFor(ctx, tx, t.ID, "tenant.created", t.ID, map[string]any{"name": name, "keys": len(b.Keys)})
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Principal is an authenticated API key.
type Principal struct {
	Tenant *Tenant
	Key    *APIKey
}

// HasScope reports whether the key may use scope.
func (p *Principal) HasScope(scope string) bool { return permits(p.Key, scope) }

// Authenticate resolves a presented secret. It fails with ErrInvalidKey for
// unknown keys and ErrRevokedKey for revoked or expired keys or tenants.
func (s *Service) Authenticate(ctx context.Context, secret string) (*Principal, error) {
	if !LooksLikeKey(secret) || len(secret) > 200 {
		return nil, ErrInvalidKey
	}
	h := s.HashSecret(secret)
	var p *Principal
	err := s.db.Autocommit(ctx, func(tx Tx) error {
		k, t, err := tx.GetAPIKeyAndTenant(ctx, h)
		if err != nil {
			return err
		}
		p = &Principal{Tenant: t, Key: k}
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrInvalidKey
	}
	if err != nil {
		return nil, err
	}
	// The lookup was by hash; compare again in constant time so the decision
	// never depends on a variable-time comparison of secret material.
	if subtle.ConstantTimeCompare(p.Key.Hash, h) != 1 || !strings.HasPrefix(secret, p.Key.Prefix) {
		return nil, ErrInvalidKey
	}
	if p.Tenant.Status != TenantActive {
		return nil, ErrTenantRevoked
	}
	if !p.Key.Active(s.now()) {
		return nil, ErrRevokedKey
	}
	return p, nil
}

// CreateKey makes a new key for the caller's tenant, under the key rules
// (see keyrules.go): refusals are *apierr.Invalid or *apierr.Forbidden.
func (s *Service) CreateKey(ctx context.Context, caller *APIKey, req KeyRequest) (*NewKey, error) {
	if caller == nil {
		return nil, ErrInvalidKey
	}
	if err := checkRequest(caller, &req); err != nil {
		return nil, err
	}
	if err := mayReach(caller, req.Kind, req.Mode, req.Scopes, createParams); err != nil {
		return nil, err
	}
	k, err := s.makeKey(caller.TenantID, req.Kind, req.Mode, req.Name, req.Scopes)
	if err != nil {
		return nil, err
	}
	err = s.db.InTx(ctx, func(tx Tx) error {
		if err := s.callerActive(ctx, tx, caller); err != nil {
			return err
		}
		if err := tx.CreateAPIKey(ctx, k.Key); err != nil {
			return err
		}
		return audit.Record(ctx, tx, "api_key.created", k.Key.ID, map[string]any{
			"kind": req.Kind, "mode": req.Mode, "scopes": req.Scopes, "by": caller.ID})
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

// callerActive re-reads the calling key inside the transaction, so a key
// revoked or rolled away meanwhile acts no more.
func (s *Service) callerActive(ctx context.Context, tx Tx, caller *APIKey) error {
	c, err := tx.GetAPIKey(ctx, caller.TenantID, caller.ID)
	if errors.Is(err, store.ErrNotFound) {
		return ErrInvalidKey
	}
	if err != nil {
		return err
	}
	if !c.Active(s.now()) {
		return ErrRevokedKey
	}
	t, err := tx.GetTenant(ctx, c.TenantID)
	if err != nil {
		return err
	}
	if t.Status != TenantActive {
		return ErrTenantRevoked
	}
	return nil
}

// ListKeys lists a tenant's keys (never their secrets).
func (s *Service) ListKeys(ctx context.Context, caller *APIKey) ([]APIKey, error) {
	if caller == nil {
		return nil, ErrInvalidKey
	}
	var all []APIKey
	err := s.db.InTx(ctx, func(tx Tx) error {
		var err error
		all, err = tx.ListAPIKeys(ctx, caller.TenantID)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, k := range all {
		if k.Mode == caller.Mode {
			out = append(out, k)
		}
	}
	return out, nil
}

// GetKey returns one key of the caller's tenant and mode: a key of the
// other mode is not found, as test-mode credentials never reach live-mode
// objects.
func (s *Service) GetKey(ctx context.Context, caller *APIKey, id string) (*APIKey, error) {
	if caller == nil {
		return nil, ErrInvalidKey
	}
	var out *APIKey
	err := s.db.InTx(ctx, func(tx Tx) error {
		var err error
		out, err = tx.GetAPIKey(ctx, caller.TenantID, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	if out.Mode != caller.Mode {
		return nil, store.ErrNotFound
	}
	return out, nil
}

// RollKey makes a replacement for key id of the caller's tenant; the old
// key keeps working for overlap (0 means it stops at once). The key rules
// hold: the caller obtains the replacement's secret.
func (s *Service) RollKey(ctx context.Context, caller *APIKey, id string, overlap time.Duration) (*NewKey, error) {
	if caller == nil {
		return nil, ErrInvalidKey
	}
	var nk *NewKey
	err := s.db.InTx(ctx, func(tx Tx) error {
		if err := s.callerActive(ctx, tx, caller); err != nil {
			return err
		}
		old, err := tx.GetAPIKey(ctx, caller.TenantID, id)
		if err != nil {
			return err
		}
		if err := mayReach(caller, old.Kind, old.Mode, old.Scopes, targetParams); err != nil {
			return err
		}
		now := s.now().UTC().Truncate(time.Microsecond)
		if !old.Active(now) || old.RolledTo != "" {
			return refuse(ErrKeyNotActive, "id", "the key %s is revoked, expired or already rolled", id)
		}
		nk, err = s.makeKey(caller.TenantID, old.Kind, old.Mode, old.Name, old.Scopes)
		if err != nil {
			return err
		}
		exp := now.Add(overlap)
		old.ExpiresAt = &exp
		old.RolledTo = nk.Key.ID
		if err := tx.UpdateAPIKey(ctx, old); err != nil {
			return err
		}
		if err := tx.CreateAPIKey(ctx, nk.Key); err != nil {
			return err
		}
		return audit.Record(ctx, tx, "api_key.rolled", old.ID, map[string]any{"new_key": nk.Key.ID, "old_expires_at": exp, "by": caller.ID})
	})
	if err != nil {
		return nil, err
	}
	return nk, nil
}

// RevokeKey revokes key id of the caller's tenant at once. The key rules
// hold: a key revokes only keys of its own mode no more powerful than
// itself (itself included).
func (s *Service) RevokeKey(ctx context.Context, caller *APIKey, id string) (*APIKey, error) {
	if caller == nil {
		return nil, ErrInvalidKey
	}
	var k *APIKey
	err := s.db.InTx(ctx, func(tx Tx) error {
		if err := s.callerActive(ctx, tx, caller); err != nil {
			return err
		}
		var err error
		k, err = tx.GetAPIKey(ctx, caller.TenantID, id)
		if err != nil {
			return err
		}
		if err := mayReach(caller, k.Kind, k.Mode, k.Scopes, targetParams); err != nil {
			return err
		}
		if k.RevokedAt != nil {
			return nil
		}
		now := s.now().UTC().Truncate(time.Microsecond)
		k.RevokedAt = &now
		if err := tx.UpdateAPIKey(ctx, k); err != nil {
			return err
		}
		return audit.Record(ctx, tx, "api_key.revoked", k.ID, map[string]any{"by": caller.ID})
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}
