package accounts

import (
	"context"
	"time"
)

// People who sign in: a tenant's team members and its payers (customers).
// Both are Users of one tenant; a payer's id (cus_…) is what a mandate's
// payer names. Nobody signs in to two tenants with one user: the same email
// at two tenants is two users.

// User kinds.
const (
	UserTeam  = "team"  // a member of the tenant's team (usr_…)
	UserPayer = "payer" // a customer of the tenant (cus_…)
)

// Team roles. Owners and admins manage the team; developers manage agents
// and mandates; auditors only read.
const (
	RoleOwner     = "owner"
	RoleAdmin     = "admin"
	RoleDeveloper = "developer"
	RoleAuditor   = "auditor"
)

// Roles lists the team roles.
var Roles = []string{RoleOwner, RoleAdmin, RoleDeveloper, RoleAuditor}

// User statuses.
const (
	UserInvited  = "invited"  // no password yet: waits for its invitation
	UserActive   = "active"   // may sign in
	UserDisabled = "disabled" // may not sign in
)

// User is a person of a tenant. Secrets are never held in clear: the
// password as an argon2id hash, the TOTP secret sealed.
type User struct {
	ID       string `json:"id"`
	TenantID string `json:"-"`
	Kind     string `json:"kind"`
	Role     string `json:"role,omitempty"`
	Email    string `json:"email"`
	Name     string `json:"name,omitempty"`
	Status   string `json:"status"`

	PasswordHash string `json:"-"` // argon2id in the PHC string format; "" until set
	// TOTPSealed is the confirmed TOTP secret, sealed; TOTPPending one being
	// enrolled (confirmed by a first code, then moved to TOTPSealed).
	TOTPSealed  []byte `json:"-"`
	TOTPPending []byte `json:"-"`
	// TOTPLastStep is the last 30-second step a code was accepted for: a
	// code is accepted once.
	TOTPLastStep int64 `json:"-"`

	// FailedLogins counts failed attempts since the last success;
	// LockedUntil is set when they reached the limit.
	FailedLogins int        `json:"-"`
	LockedUntil  *time.Time `json:"-"`
	// LastLoginAt is the last time the password was accepted.
	LastLoginAt *time.Time `json:"-"`

	CreatedAt time.Time `json:"created"`
	UpdatedAt time.Time `json:"updated"`
}

// MFAEnrolled reports whether the user has a second factor.
func (u *User) MFAEnrolled() bool { return len(u.TOTPSealed) > 0 }

// IsTeam reports whether u is a team member.
func (u *User) IsTeam() bool { return u.Kind == UserTeam }

// CanWrite reports whether a team member may change agents and mandates
// (every role but auditor).
func (u *User) CanWrite() bool {
	return u.Kind == UserTeam && u.Role != RoleAuditor
}

// Clone returns a deep copy.
func (u *User) Clone() *User {
	c := *u
	c.TOTPSealed = cloneBytes(u.TOTPSealed)
	c.TOTPPending = cloneBytes(u.TOTPPending)
	c.LockedUntil = clonePtr(u.LockedUntil)
	c.LastLoginAt = clonePtr(u.LastLoginAt)
	return &c
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

// Invitation purposes.
const (
	InviteTeam  = "team"  // join the team: set a password, enrol TOTP
	InvitePayer = "payer" // a payer sets a password and enrols TOTP
)

// Invitation lets one user set their password, once, before it expires.
// Only the hash of its token is stored.
type Invitation struct {
	ID        string
	TenantID  string
	UserID    string
	Purpose   string
	TokenHash []byte
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    *time.Time
}

// Session is a signed-in browser. The store keys it by the hash of its
// random id; the id itself lives only in the browser's cookie.
type Session struct {
	IDHash   []byte
	Ref      string // ses_…: a name for audit entries and the session list, not a secret
	TenantID string
	UserID   string
	// MFAAt is when the second factor was last given in this session
	// (nil: password only).
	MFAAt      *time.Time
	IP         string
	UserAgent  string
	CreatedAt  time.Time
	LastSeenAt time.Time
}

// UserFilter selects users of a tenant for listing, oldest first.
type UserFilter struct {
	TenantID      string
	Kind          string
	StartingAfter string
	Limit         int
}

// UserRepo is the storage of people: users, invitations, recovery codes,
// sessions and the logins seen.
type UserRepo interface {
	// CreateUser inserts u: store.ErrConflict when the tenant has a user
	// with that email already.
	CreateUser(ctx context.Context, u *User) error
	GetUser(ctx context.Context, tenantID, id string) (*User, error)
	GetUserByEmail(ctx context.Context, tenantID, email string) (*User, error)
	// ListUsers returns up to f.Limit users and whether more follow.
	ListUsers(ctx context.Context, f UserFilter) ([]User, bool, error)
	// UpdateUser writes every mutable field of u.
	UpdateUser(ctx context.Context, u *User) error
	// FailLogin counts one failed attempt in one statement: at the max-th
	// the count restarts and the user is locked until `until`. It returns
	// the user as updated.
	FailLogin(ctx context.Context, tenantID, userID string, max int, until time.Time) (*User, error)

	CreateInvitation(ctx context.Context, inv *Invitation) error
	GetInvitationByHash(ctx context.Context, hash []byte) (*Invitation, error)
	// UseInvitation stamps it used at `at`, only if it was not used yet:
	// store.ErrConflict otherwise.
	UseInvitation(ctx context.Context, tenantID, id string, at time.Time) error

	// SetRecoveryCodes replaces the user's recovery codes by hashes.
	SetRecoveryCodes(ctx context.Context, tenantID, userID string, hashes [][]byte) error
	// UseRecoveryCode marks the unused code of the user with hash used:
	// store.ErrNotFound when there is none.
	UseRecoveryCode(ctx context.Context, tenantID, userID string, hash []byte, at time.Time) error
	// CountRecoveryCodes counts the user's unused codes.
	CountRecoveryCodes(ctx context.Context, tenantID, userID string) (int, error)

	CreateSession(ctx context.Context, s *Session) error
	GetSession(ctx context.Context, idHash []byte) (*Session, error)
	// TouchSession sets last_seen_at (and mfa_at when non-nil).
	TouchSession(ctx context.Context, idHash []byte, seen time.Time, mfa *time.Time) error
	DeleteSession(ctx context.Context, idHash []byte) error
	// DeleteUserSessions ends every session of a user and says how many.
	DeleteUserSessions(ctx context.Context, tenantID, userID string) (int, error)

	// MarkLogin records that the user signed in with a mark (a digest of
	// an IP or a user agent) and reports whether it was new to them.
	MarkLogin(ctx context.Context, tenantID, userID, mark string, at time.Time) (bool, error)
}
