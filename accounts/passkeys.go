package accounts

import (
	"context"
	"errors"
	"time"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/store"
)

// Passkey is a WebAuthn credential of a user: a second factor, or a way
// to sign in on its own. Only its public key is stored.
type Passkey struct {
	ID              []byte // the credential id
	TenantID        string
	UserID          string
	Name            string
	PublicKey       []byte // COSE
	AttestationType string
	AAGUID          []byte
	SignCount       uint32
	Transports      []string
	BackupEligible  bool
	BackupState     bool
	CreatedAt       time.Time
	LastUsedAt      *time.Time
}

// PasskeyRepo stores passkeys.
type PasskeyRepo interface {
	// AddPasskey stores k: store.ErrConflict when its id is known.
	AddPasskey(ctx context.Context, k *Passkey) error
	ListPasskeys(ctx context.Context, tenantID, userID string) ([]Passkey, error)
	// UsePasskey records a use: the new signature counter and the time.
	UsePasskey(ctx context.Context, tenantID, userID string, id []byte, signCount uint32, at time.Time) error
}

// MaxPasskeys bounds a user's passkeys.
const MaxPasskeys = 10

// Passkeys lists the user's passkeys.
func (p *People) Passkeys(ctx context.Context, u *User) ([]Passkey, error) {
	var out []Passkey
	err := p.db.Autocommit(ctx, func(tx PeopleTx) error {
		var err error
		out, err = tx.ListPasskeys(ctx, u.TenantID, u.ID)
		return err
	})
	return out, err
}

// ErrTooManyPasskeys refuses an eleventh passkey.
var ErrTooManyPasskeys = errors.New("accounts: too many passkeys")

// AddPasskey stores a passkey the user just registered (audited).
func (p *People) AddPasskey(ctx context.Context, u *User, k *Passkey) error {
	k.TenantID, k.UserID, k.CreatedAt = u.TenantID, u.ID, p.clock()
	return p.db.InTx(ctx, func(tx PeopleTx) error {
		have, err := tx.ListPasskeys(ctx, u.TenantID, u.ID)
		if err != nil {
			return err
		}
		if len(have) >= MaxPasskeys {
			return ErrTooManyPasskeys
		}
		if err := tx.AddPasskey(ctx, k); err != nil {
			return err
		}
		return audit.Record(userActor(ctx, u, ""), tx, "user.passkey_added", u.ID, map[string]any{"name": k.Name, "passkeys": len(have) + 1})
	})
}

// PasskeyUsed records a verified assertion of passkey id (its counter)
// as the user's factor, audited like a TOTP code.
func (p *People) PasskeyUsed(ctx context.Context, u *User, id []byte, signCount uint32) error {
	now := p.clock()
	return p.db.InTx(ctx, func(tx PeopleTx) error {
		if err := tx.UsePasskey(ctx, u.TenantID, u.ID, id, signCount, now); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return ErrBadCode
			}
			return err
		}
		return audit.Record(userActor(ctx, u, ""), tx, "user.mfa_verified", u.ID, map[string]any{"factor": FactorPasskey})
	})
}

// FactorPasskey is a WebAuthn assertion.
const FactorPasskey = "passkey"

// PasskeyFailed counts a refused passkey assertion towards the lockout.
func (p *People) PasskeyFailed(ctx context.Context, u *User) error {
	return p.fail(ctx, u, FactorPasskey)
}

// UserByID finds a user of a tenant for a passkey sign-in (the
// authenticator names the user by the handle it was registered with).
func (p *People) UserByID(ctx context.Context, tenantID, id string) (*User, error) {
	return p.GetUser(ctx, tenantID, id)
}
