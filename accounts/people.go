package accounts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/mail"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/events"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/internal/logging"
	"github.com/perfectpay/perfectpay/internal/page"
	"github.com/perfectpay/perfectpay/store"
)

// PeopleTx is what a people transaction touches: users and their
// sessions, the tenant, the audit trail and the outbox.
type PeopleTx interface {
	UserRepo
	PasskeyRepo
	GetTenant(ctx context.Context, id string) (*Tenant, error)
	audit.Writer
	events.Outbox
}

// PeopleConfig tunes sign-in.
type PeopleConfig struct {
	Password PasswordParams
	// MaxFailedLogins failed passwords or codes in a row lock the user
	// for Lockout.
	MaxFailedLogins int
	Lockout         time.Duration
	// InvitationTTL is how long an invitation link works.
	InvitationTTL time.Duration
	// SessionIdle and SessionAbsolute end a session after that long
	// unused, and that long after sign-in whatever happens.
	SessionIdle     time.Duration
	SessionAbsolute time.Duration
	// Issuer names the service in authenticator apps.
	Issuer string
}

// DefaultPeopleConfig is the configuration the issue asks for.
func DefaultPeopleConfig() PeopleConfig {
	return PeopleConfig{Password: DefaultPasswordParams, MaxFailedLogins: 10, Lockout: 30 * time.Minute,
		InvitationTTL: 72 * time.Hour, SessionIdle: 15 * time.Minute, SessionAbsolute: 12 * time.Hour, Issuer: "PerfectPay"}
}

// People manages users, their factors, invitations and sessions.
type People struct {
	db     store.Runner[PeopleTx]
	cfg    PeopleConfig
	pepper []byte
	mfaKey []byte
	now    func() time.Time
	// dummy is a hash verified for unknown emails, so that an unknown
	// email costs as much as a wrong password.
	dummy string
}

// NewPeople returns the service. pepper keys recovery code and invitation
// hashes (the API key pepper); mfaKey seals TOTP secrets (32 bytes).
func NewPeople(db store.Runner[PeopleTx], cfg PeopleConfig, pepper, mfaKey []byte) (*People, error) {
	dummy, err := HashPassword(ids.Random(24), cfg.Password)
	if err != nil {
		return nil, err
	}
	return &People{db: db, cfg: cfg, pepper: pepper, mfaKey: mfaKey, now: time.Now, dummy: dummy}, nil
}

// SetClock replaces the clock (tests).
func (p *People) SetClock(now func() time.Time) { p.now = now }

// Config returns the configuration.
func (p *People) Config() PeopleConfig { return p.cfg }

func (p *People) clock() time.Time { return p.now().UTC().Truncate(time.Microsecond) }

// Errors of sign-in; the pages say no more than these.
var (
	// ErrBadLogin: unknown email, wrong password, or a user who may not
	// sign in. One error, so a page never tells which.
	ErrBadLogin = errors.New("accounts: email or password is wrong")
	// ErrLocked: too many failed attempts; try again later.
	ErrLocked = errors.New("accounts: too many failed attempts")
	// ErrBadCode: a wrong or reused TOTP or recovery code.
	ErrBadCode = errors.New("accounts: wrong code")
	// ErrNoSession: no such session, or it timed out or was ended.
	ErrNoSession = errors.New("accounts: no session")
)

// Codes of refusals.
const (
	CodeInvitationInvalid = apierr.Code("invitation_invalid")
	CodeEmailTaken        = apierr.Code("email_taken")
)

// NewInvitation is an invitation with its token, which is shown once.
type NewInvitation struct {
	Invitation *Invitation
	Token      string
}

func hashOf(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

// randomToken is 256 random bits, base64url.
func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("accounts: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// checkPerson validates an email and a name from outside.
func checkPerson(email, name string) (string, string, error) {
	email = strings.TrimSpace(email)
	if email == "" {
		return "", "", apierr.MissingParam("email", "email is required.")
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || len(email) > 254 || !ids.Storable(email) {
		return "", "", apierr.BadParam("email", "email must be a plain email address (name@example.com).")
	}
	if logging.RedactPAN(email) != email {
		return "", "", apierr.BadParam("email", "email must not hold a card number.")
	}
	name = strings.TrimSpace(name)
	if utf8.RuneCountInString(name) > 200 || !ids.Storable(name) {
		return "", "", apierr.BadParam("name", "name must be at most 200 characters.")
	}
	if logging.RedactPAN(name) != name {
		return "", "", apierr.BadParam("name", "name must not hold a card number.")
	}
	return strings.ToLower(email), name, nil
}

// invite makes an invitation for u in tx.
func (p *People) invite(ctx context.Context, tx PeopleTx, u *User, purpose string) (*NewInvitation, error) {
	tok := randomToken()
	now := p.clock()
	inv := &Invitation{ID: ids.New("inv"), TenantID: u.TenantID, UserID: u.ID, Purpose: purpose,
		TokenHash: hashOf(tok), CreatedAt: now, ExpiresAt: now.Add(p.cfg.InvitationTTL)}
	if err := tx.CreateInvitation(ctx, inv); err != nil {
		return nil, err
	}
	if err := audit.RecordFor(ctx, tx, u.TenantID, "user.invited", u.ID, map[string]any{
		"invitation": inv.ID, "purpose": purpose, "expires_at": inv.ExpiresAt}); err != nil {
		return nil, err
	}
	return &NewInvitation{Invitation: inv, Token: tok}, nil
}

// CreateCustomer creates a payer of the tenant and an invitation to set
// their password. The customer's id is what a mandate's payer names.
func (p *People) CreateCustomer(ctx context.Context, tenantID, email, name string) (*User, *NewInvitation, error) {
	return p.createUser(ctx, tenantID, email, name, UserPayer, "")
}

// InviteMember adds a team member with a role and invites them; inviting
// an invited member again gives a new invitation.
func (p *People) InviteMember(ctx context.Context, tenantID, email, name, role string) (*User, *NewInvitation, error) {
	if !slices.Contains(Roles, role) {
		return nil, nil, apierr.BadParam("role", "role must be one of %s.", strings.Join(Roles, ", "))
	}
	return p.createUser(ctx, tenantID, email, name, UserTeam, role)
}

func (p *People) createUser(ctx context.Context, tenantID, email, name, kind, role string) (*User, *NewInvitation, error) {
	email, name, err := checkPerson(email, name)
	if err != nil {
		return nil, nil, err
	}
	now := p.clock()
	prefix, purpose, event := "usr", InviteTeam, "user.created"
	if kind == UserPayer {
		prefix, purpose, event = "cus", InvitePayer, "customer.created"
	}
	u := &User{ID: ids.New(prefix), TenantID: tenantID, Kind: kind, Role: role, Email: email, Name: name,
		Status: UserInvited, CreatedAt: now, UpdatedAt: now}
	var inv *NewInvitation
	err = p.db.InTx(ctx, func(tx PeopleTx) error {
		old, err := tx.GetUserByEmail(ctx, tenantID, email)
		switch {
		case err == nil && old.Kind == kind && old.Status == UserInvited && old.Role == role:
			u = old // invite again
		case err == nil:
			return apierr.Invalidf("email", CodeEmailTaken, "The account already has a user with this email.")
		case !errors.Is(err, store.ErrNotFound):
			return err
		default:
			if err := tx.CreateUser(ctx, u); err != nil {
				if errors.Is(err, store.ErrConflict) {
					return apierr.Invalidf("email", CodeEmailTaken, "The account already has a user with this email.")
				}
				return err
			}
			if err := audit.RecordFor(ctx, tx, tenantID, event, u.ID, map[string]any{"kind": kind, "role": role}); err != nil {
				return err
			}
			if kind == UserPayer {
				if err := events.Emit(ctx, tx, tenantID, "customer.created", CustomerView(u)); err != nil {
					return err
				}
			}
		}
		inv, err = p.invite(ctx, tx, u, purpose)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return u, inv, nil
}

// Customer is a payer as the API shows it.
type Customer struct {
	ID      string    `json:"id"`
	Object  string    `json:"object"`
	Email   string    `json:"email"`
	Name    string    `json:"name,omitempty"`
	Status  string    `json:"status"`
	MFA     bool      `json:"mfa_enrolled"`
	Created time.Time `json:"created"`
}

// CustomerView is u as a customer object.
func CustomerView(u *User) *Customer {
	return &Customer{ID: u.ID, Object: "customer", Email: u.Email, Name: u.Name, Status: u.Status, MFA: u.MFAEnrolled(), Created: u.CreatedAt}
}

// InviteCustomer gives a payer who has not set a password yet a new invitation.
func (p *People) InviteCustomer(ctx context.Context, tenantID, id string) (*User, *NewInvitation, error) {
	var u *User
	var inv *NewInvitation
	err := p.db.InTx(ctx, func(tx PeopleTx) error {
		var err error
		if u, err = p.customer(ctx, tx, tenantID, id); err != nil {
			return err
		}
		if u.Status != UserInvited {
			return &apierr.Conflict{Param: "id", Code: "customer_active", Message: "The customer has set their password already."}
		}
		inv, err = p.invite(ctx, tx, u, InvitePayer)
		return err
	})
	return u, inv, err
}

func (p *People) customer(ctx context.Context, tx PeopleTx, tenantID, id string) (*User, error) {
	u, err := tx.GetUser(ctx, tenantID, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && u.Kind != UserPayer) {
		return nil, &apierr.NotFound{Kind: "customer", ID: id}
	}
	return u, err
}

// GetCustomer returns a payer of the tenant.
func (p *People) GetCustomer(ctx context.Context, tenantID, id string) (*User, error) {
	var u *User
	err := p.db.Autocommit(ctx, func(tx PeopleTx) error {
		var err error
		u, err = p.customer(ctx, tx, tenantID, id)
		return err
	})
	return u, err
}

// GetUser returns a user of the tenant.
func (p *People) GetUser(ctx context.Context, tenantID, id string) (*User, error) {
	var u *User
	err := p.db.Autocommit(ctx, func(tx PeopleTx) error {
		var err error
		u, err = tx.GetUser(ctx, tenantID, id)
		return err
	})
	return u, err
}

// ListUsers lists users of a tenant of one kind, oldest first.
func (p *People) ListUsers(ctx context.Context, tenantID, kind string, pg page.Page) ([]User, bool, error) {
	if err := page.Check(pg.Limit); err != nil {
		return nil, false, err
	}
	var out []User
	var more bool
	err := p.db.Autocommit(ctx, func(tx PeopleTx) error {
		var err error
		out, more, err = tx.ListUsers(ctx, UserFilter{TenantID: tenantID, Kind: kind, StartingAfter: pg.StartingAfter, Limit: pg.Limit})
		return err
	})
	return out, more, err
}

// Invitation returns the open invitation of token and its user:
// an *apierr.Invalid when it is unknown, used or expired.
func (p *People) Invitation(ctx context.Context, token string) (*Invitation, *User, error) {
	var inv *Invitation
	var u *User
	err := p.db.Autocommit(ctx, func(tx PeopleTx) error {
		var err error
		inv, u, err = p.openInvitation(ctx, tx, token)
		return err
	})
	return inv, u, err
}

func (p *People) openInvitation(ctx context.Context, tx PeopleTx, token string) (*Invitation, *User, error) {
	bad := apierr.Invalidf("token", CodeInvitationInvalid, "This invitation link is not valid: it was used, it expired, or it was mistyped. Ask for a new one.")
	if len(token) != 43 {
		return nil, nil, bad
	}
	inv, err := tx.GetInvitationByHash(ctx, hashOf(token))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, bad
	}
	if err != nil {
		return nil, nil, err
	}
	if inv.UsedAt != nil || !p.clock().Before(inv.ExpiresAt) {
		return nil, nil, bad
	}
	u, err := tx.GetUser(ctx, inv.TenantID, inv.UserID)
	if err != nil {
		return nil, nil, err
	}
	if u.Status == UserDisabled {
		return nil, nil, bad
	}
	t, err := tx.GetTenant(ctx, u.TenantID)
	if err != nil {
		return nil, nil, err
	}
	if t.Status != TenantActive {
		return nil, nil, bad
	}
	return inv, u, nil
}

// AcceptInvitation sets the password of the invitation's user, once, and
// makes the user active. The user then signs in and enrols a second factor.
func (p *People) AcceptInvitation(ctx context.Context, token, password string) (*User, error) {
	inv, u, err := p.Invitation(ctx, token)
	if err != nil {
		return nil, err
	}
	if err := CheckPassword(password, u.Email); err != nil {
		return nil, err
	}
	h, err := HashPassword(password, p.cfg.Password)
	if err != nil {
		return nil, err
	}
	err = p.db.InTx(ctx, func(tx PeopleTx) error {
		var err error
		if inv, u, err = p.openInvitation(ctx, tx, token); err != nil {
			return err
		}
		now := p.clock()
		if err := tx.UseInvitation(ctx, inv.TenantID, inv.ID, now); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return apierr.Invalidf("token", CodeInvitationInvalid, "This invitation link was used already.")
			}
			return err
		}
		u.PasswordHash, u.Status, u.UpdatedAt = h, UserActive, now
		u.FailedLogins, u.LockedUntil = 0, nil
		if err := tx.UpdateUser(ctx, u); err != nil {
			return err
		}
		// A password set anew ends every session made with the old one.
		if _, err := tx.DeleteUserSessions(ctx, u.TenantID, u.ID); err != nil {
			return err
		}
		return audit.RecordFor(ctx, tx, u.TenantID, "user.password_set", u.ID, map[string]any{"invitation": inv.ID})
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// LoginInfo is where a sign-in comes from.
type LoginInfo struct {
	IP        string
	UserAgent string
}

// Login checks a user's password. Every failure is ErrBadLogin (or
// ErrLocked once the user is locked); after MaxFailedLogins failures in a
// row the user is locked for Lockout, audited. A success from an IP or a
// user agent the user never signed in from is audited and emitted as
// user.suspicious_login.
func (p *People) Login(ctx context.Context, tenantID, email, password string, from LoginInfo) (*User, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if tenantID == "" || email == "" || !ids.Storable(tenantID) || !ids.Storable(email) || len(email) > 254 ||
		len(tenantID) > 64 || len(password) > 4*MaxPasswordLen {
		return nil, ErrBadLogin
	}
	var u *User
	err := p.db.Autocommit(ctx, func(tx PeopleTx) error {
		var err error
		u, err = tx.GetUserByEmail(ctx, tenantID, email)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		_, _, _ = VerifyPassword(password, p.dummy, p.cfg.Password)
		return nil, ErrBadLogin
	}
	if err != nil {
		return nil, err
	}
	now := p.clock()
	if u.LockedUntil != nil && now.Before(*u.LockedUntil) {
		return nil, ErrLocked
	}
	ok := false
	stale := false
	if u.Status == UserActive && u.PasswordHash != "" {
		ok, stale, err = VerifyPassword(password, u.PasswordHash, p.cfg.Password)
		if err != nil && !errors.Is(err, ErrPasswordHash) {
			return nil, err
		}
	} else {
		_, _, _ = VerifyPassword(password, p.dummy, p.cfg.Password)
	}
	if !ok {
		return nil, p.fail(ctx, u, "password")
	}
	var rehash string
	if stale {
		rehash, _ = HashPassword(password, p.cfg.Password)
	}
	err = p.db.InTx(ctx, func(tx PeopleTx) error {
		cur, err := tx.GetUser(ctx, u.TenantID, u.ID)
		if err != nil {
			return err
		}
		t, err := tx.GetTenant(ctx, u.TenantID)
		if err != nil {
			return err
		}
		if t.Status != TenantActive || cur.Status != UserActive {
			return ErrBadLogin
		}
		if cur.LockedUntil != nil && now.Before(*cur.LockedUntil) {
			return ErrLocked
		}
		known := cur.LastLoginAt != nil
		cur.FailedLogins, cur.LockedUntil, cur.LastLoginAt, cur.UpdatedAt = 0, nil, &now, now
		if rehash != "" {
			cur.PasswordHash = rehash
		}
		if err := tx.UpdateUser(ctx, cur); err != nil {
			return err
		}
		u = cur
		newIP, err := tx.MarkLogin(ctx, u.TenantID, u.ID, mark("ip", from.IP), now)
		if err != nil {
			return err
		}
		newUA, err := tx.MarkLogin(ctx, u.TenantID, u.ID, mark("ua", from.UserAgent), now)
		if err != nil {
			return err
		}
		actx := userActor(ctx, u, from.IP)
		if err := audit.Record(actx, tx, "user.login", u.ID, map[string]any{"factor": "password"}); err != nil {
			return err
		}
		if known && (newIP || newUA) {
			// The address is the entry's own IP, held outside its hashed
			// content so erasure can forget it: never in data.
			data := map[string]any{"user": u.ID, "kind": u.Kind, "new_ip": newIP, "new_user_agent": newUA}
			if err := audit.Record(actx, tx, "user.suspicious_login", u.ID, data); err != nil {
				return err
			}
			return events.Emit(ctx, tx, u.TenantID, "user.suspicious_login", map[string]any{
				"object": "login", "user": u.ID, "kind": u.Kind, "new_ip": newIP, "new_user_agent": newUA, "ip": from.IP, "created": now})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// mark is the digest a login mark is stored as (no raw user agents).
func mark(kind, v string) string {
	sum := sha256.Sum256([]byte(kind + "|" + v))
	return kind + ":" + hex.EncodeToString(sum[:16])
}

// userActor is the audit actor of a user's own act.
func userActor(ctx context.Context, u *User, ip string) context.Context {
	a := audit.ActorFrom(ctx)
	a.TenantID, a.Type, a.ID = u.TenantID, audit.ActorUser, u.ID
	if ip != "" {
		a.IP = ip
	}
	return audit.WithActor(ctx, a)
}

// fail counts a failed password or code of u, locking at the limit.
func (p *People) fail(ctx context.Context, u *User, what string) error {
	locked := false
	err := p.db.InTx(ctx, func(tx PeopleTx) error {
		now := p.clock()
		nu, err := tx.FailLogin(ctx, u.TenantID, u.ID, p.cfg.MaxFailedLogins, now.Add(p.cfg.Lockout))
		if err != nil {
			return err
		}
		locked = nu.LockedUntil != nil && now.Before(*nu.LockedUntil)
		actx := userActor(ctx, u, "")
		if err := audit.Record(actx, tx, "user.login_failed", u.ID, map[string]any{"factor": what}); err != nil {
			return err
		}
		if locked && nu.FailedLogins == 0 {
			return audit.Record(actx, tx, "user.locked", u.ID, map[string]any{"until": nu.LockedUntil})
		}
		return nil
	})
	if err != nil {
		return err
	}
	if locked {
		return ErrLocked
	}
	if what == "password" {
		return ErrBadLogin
	}
	return ErrBadCode
}

// BeginTOTP starts (or restarts) enrolment of an authenticator app: the
// new secret is kept sealed as pending until ConfirmTOTP.
func (p *People) BeginTOTP(ctx context.Context, u *User) (*TOTPEnrolment, error) {
	e, sealed, err := p.newTOTP(u)
	if err != nil {
		return nil, err
	}
	err = p.db.InTx(ctx, func(tx PeopleTx) error {
		cur, err := tx.GetUser(ctx, u.TenantID, u.ID)
		if err != nil {
			return err
		}
		cur.TOTPPending, cur.UpdatedAt = sealed, p.clock()
		return tx.UpdateUser(ctx, cur)
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

// ConfirmTOTP checks a first code of the pending secret; on success the
// secret becomes the user's factor and ten new recovery codes, shown once,
// replace any earlier ones.
func (p *People) ConfirmTOTP(ctx context.Context, u *User, code string) ([]string, error) {
	var codes []string
	var bad bool
	err := p.db.InTx(ctx, func(tx PeopleTx) error {
		cur, err := tx.GetUser(ctx, u.TenantID, u.ID)
		if err != nil {
			return err
		}
		if len(cur.TOTPPending) == 0 {
			bad = true
			return nil
		}
		step, err := p.totpStep(cur, cur.TOTPPending, code, p.now())
		if err != nil {
			return err
		}
		if step == 0 {
			bad = true
			return nil
		}
		var hashes [][]byte
		codes, hashes = p.newRecoveryCodes(cur)
		cur.TOTPSealed, cur.TOTPPending, cur.TOTPLastStep, cur.UpdatedAt = cur.TOTPPending, nil, step, p.clock()
		if err := tx.UpdateUser(ctx, cur); err != nil {
			return err
		}
		if err := tx.SetRecoveryCodes(ctx, cur.TenantID, cur.ID, hashes); err != nil {
			return err
		}
		return audit.Record(userActor(ctx, cur, ""), tx, "user.mfa_enrolled", cur.ID, map[string]any{"factor": "totp", "recovery_codes": len(codes)})
	})
	if err != nil {
		return nil, err
	}
	if bad {
		return nil, p.fail(ctx, u, "totp")
	}
	return codes, nil
}

// Factors a second factor can be given with.
const (
	FactorTOTP     = "totp"
	FactorRecovery = "recovery_code"
)

// CheckMFA checks a second factor of an enrolled user: a TOTP code (each
// accepted once) or a recovery code (each usable once). Wrong codes count
// towards the lockout like wrong passwords. It returns the factor used.
func (p *People) CheckMFA(ctx context.Context, u *User, code string) (string, error) {
	code = strings.TrimSpace(code)
	if code == "" || len(code) > 32 {
		return "", ErrBadCode
	}
	now := p.clock()
	if u.LockedUntil != nil && now.Before(*u.LockedUntil) {
		return "", ErrLocked
	}
	factor := ""
	err := p.db.InTx(ctx, func(tx PeopleTx) error {
		cur, err := tx.GetUser(ctx, u.TenantID, u.ID)
		if err != nil {
			return err
		}
		if cur.LockedUntil != nil && now.Before(*cur.LockedUntil) {
			return ErrLocked
		}
		if !cur.MFAEnrolled() || cur.Status != UserActive {
			return nil
		}
		if len(code) == 6 && strings.Trim(code, "0123456789") == "" {
			step, err := p.totpStep(cur, cur.TOTPSealed, code, p.now())
			if err != nil {
				return err
			}
			if step == 0 || step <= cur.TOTPLastStep {
				return nil
			}
			cur.TOTPLastStep, cur.FailedLogins, cur.UpdatedAt = step, 0, now
			if err := tx.UpdateUser(ctx, cur); err != nil {
				return err
			}
			factor = FactorTOTP
		} else {
			err := tx.UseRecoveryCode(ctx, cur.TenantID, cur.ID, p.recoveryHash(cur, code), now)
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			factor = FactorRecovery
		}
		left := -1
		if factor == FactorRecovery {
			if left, err = tx.CountRecoveryCodes(ctx, cur.TenantID, cur.ID); err != nil {
				return err
			}
		}
		data := map[string]any{"factor": factor}
		if left >= 0 {
			data["recovery_codes_left"] = left
		}
		return audit.Record(userActor(ctx, cur, ""), tx, "user.mfa_verified", cur.ID, data)
	})
	if err != nil {
		return "", err
	}
	if factor == "" {
		return "", p.fail(ctx, u, "mfa")
	}
	return factor, nil
}

// NewSession is a session with its id, which only the cookie holds.
type NewSession struct {
	Session *Session
	ID      string
}

// StartSession opens a session for u (after the password), with mfa set
// when the second factor was given too.
func (p *People) StartSession(ctx context.Context, u *User, mfa bool, from LoginInfo) (*NewSession, error) {
	now := p.clock()
	s := &Session{Ref: ids.New("ses"), TenantID: u.TenantID, UserID: u.ID, IP: from.IP,
		UserAgent: truncate(logging.RedactPAN(from.UserAgent), 256), CreatedAt: now, LastSeenAt: now}
	if mfa {
		s.MFAAt = &now
	}
	return p.putSession(ctx, s, nil, "session.created")
}

// RotateSession replaces the session of id by a new one (a new id) that
// keeps its start, after the second factor was given (mfa) or to renew
// the id; the old id stops working at once.
func (p *People) RotateSession(ctx context.Context, id string, mfa bool) (*NewSession, error) {
	old := hashOf(id)
	var s *Session
	err := p.db.Autocommit(ctx, func(tx PeopleTx) error {
		var err error
		s, err = tx.GetSession(ctx, old)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, err
	}
	now := p.clock()
	n := *s
	n.Ref, n.LastSeenAt = ids.New("ses"), now
	if mfa {
		n.MFAAt = &now
	}
	return p.putSession(ctx, &n, old, "session.rotated")
}

func (p *People) putSession(ctx context.Context, s *Session, replaces []byte, action string) (*NewSession, error) {
	id := randomToken()
	s.IDHash = hashOf(id)
	err := p.db.InTx(ctx, func(tx PeopleTx) error {
		if replaces != nil {
			if err := tx.DeleteSession(ctx, replaces); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return ErrNoSession
				}
				return err
			}
		}
		if err := tx.CreateSession(ctx, s); err != nil {
			return err
		}
		actx := audit.WithActor(ctx, audit.Actor{TenantID: s.TenantID, Type: audit.ActorUser, ID: s.UserID, IP: s.IP,
			RequestID: audit.ActorFrom(ctx).RequestID})
		return audit.Record(actx, tx, action, s.Ref, map[string]any{"user": s.UserID, "mfa": s.MFAAt != nil})
	})
	if err != nil {
		return nil, err
	}
	return &NewSession{Session: s, ID: id}, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// touchEvery is how stale last_seen_at may get before a request writes
// it again (a write per page view is not needed for a 15-minute timeout).
const touchEvery = 30 * time.Second

// Resume returns the live session of id and its user: ErrNoSession when it
// is unknown, idle longer than SessionIdle, older than SessionAbsolute (it
// is then ended), or its user or tenant may no longer sign in.
func (p *People) Resume(ctx context.Context, id string) (*Session, *User, error) {
	if len(id) != 43 {
		return nil, nil, ErrNoSession
	}
	h := hashOf(id)
	var s *Session
	var u *User
	var t *Tenant
	err := p.db.Autocommit(ctx, func(tx PeopleTx) error {
		var err error
		if s, err = tx.GetSession(ctx, h); err != nil {
			return err
		}
		if u, err = tx.GetUser(ctx, s.TenantID, s.UserID); err != nil {
			return err
		}
		t, err = tx.GetTenant(ctx, s.TenantID)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, ErrNoSession
	}
	if err != nil {
		return nil, nil, err
	}
	now := p.clock()
	if now.Sub(s.LastSeenAt) >= p.cfg.SessionIdle || now.Sub(s.CreatedAt) >= p.cfg.SessionAbsolute ||
		u.Status != UserActive || t.Status != TenantActive {
		_ = p.db.Autocommit(ctx, func(tx PeopleTx) error { return tx.DeleteSession(ctx, h) })
		return nil, nil, ErrNoSession
	}
	if now.Sub(s.LastSeenAt) >= touchEvery {
		s.LastSeenAt = now
		if err := p.db.Autocommit(ctx, func(tx PeopleTx) error { return tx.TouchSession(ctx, h, now, nil) }); err != nil {
			return nil, nil, err
		}
	}
	return s, u, nil
}

// EndSession signs out one session (unknown ids are ignored).
func (p *People) EndSession(ctx context.Context, id string) error {
	h := hashOf(id)
	return p.db.InTx(ctx, func(tx PeopleTx) error {
		s, err := tx.GetSession(ctx, h)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := tx.DeleteSession(ctx, h); err != nil {
			return err
		}
		return audit.RecordFor(ctx, tx, s.TenantID, "session.ended", s.Ref, map[string]any{"user": s.UserID})
	})
}

// EndAllSessions signs the user out everywhere and says how many sessions ended.
func (p *People) EndAllSessions(ctx context.Context, u *User) (int, error) {
	n := 0
	err := p.db.InTx(ctx, func(tx PeopleTx) error {
		var err error
		if n, err = tx.DeleteUserSessions(ctx, u.TenantID, u.ID); err != nil {
			return err
		}
		return audit.Record(userActor(ctx, u, ""), tx, "user.signed_out_everywhere", u.ID, map[string]any{"sessions": n})
	})
	return n, err
}

// FreshMFA reports whether the session's second factor was given within
// maxAge (approvals ask for one given just now).
func (p *People) FreshMFA(s *Session, maxAge time.Duration) bool {
	return s != nil && s.MFAAt != nil && p.clock().Sub(*s.MFAAt) < maxAge
}
