package app

import (
	"crypto/hkdf"
	"crypto/sha256"
	"time"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/compliance"
	"github.com/perfectpay/perfectpay/server"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/repos"
	"github.com/perfectpay/perfectpay/web"
)

// PeopleConfig tunes sign-in: passwords (argon2id), lockout, sessions,
// invitations and the per-IP throttle of the pages.
type PeopleConfig struct {
	// Argon2id parameters of new password hashes.
	PasswordTime      int `mapstructure:"password_time"`
	PasswordMemoryKiB int `mapstructure:"password_memory_kib"`
	PasswordThreads   int `mapstructure:"password_threads"`
	// MaxFailedLogins failed passwords or codes in a row lock an account
	// for Lockout.
	MaxFailedLogins int           `mapstructure:"max_failed_logins"`
	Lockout         time.Duration `mapstructure:"lockout"`
	// SessionIdle and SessionAbsolute end a session unused that long, or
	// that long after sign-in.
	SessionIdle     time.Duration `mapstructure:"session_idle"`
	SessionAbsolute time.Duration `mapstructure:"session_absolute"`
	InvitationTTL   time.Duration `mapstructure:"invitation_ttl"`
	// IPFailuresPerHour failed passwords or codes from one source IP
	// are refused after that many in an hour (counted per node).
	IPFailuresPerHour int `mapstructure:"ip_failures_per_hour"`
}

func defaultPeople() PeopleConfig {
	d := accounts.DefaultPeopleConfig()
	return PeopleConfig{PasswordTime: int(d.Password.Time), PasswordMemoryKiB: int(d.Password.MemoryKiB),
		PasswordThreads: int(d.Password.Threads), MaxFailedLogins: d.MaxFailedLogins, Lockout: d.Lockout,
		SessionIdle: d.SessionIdle, SessionAbsolute: d.SessionAbsolute, InvitationTTL: d.InvitationTTL, IPFailuresPerHour: 100}
}

func (c PeopleConfig) params() accounts.PasswordParams {
	clamp := func(v, hi int) int { return max(0, min(v, hi)) }
	return accounts.PasswordParams{Time: uint32(clamp(c.PasswordTime, 1<<20)), MemoryKiB: uint32(clamp(c.PasswordMemoryKiB, 1<<30)),
		Threads: uint8(clamp(c.PasswordThreads, 255))}
}

func (c *Config) validatePeople(bad func(string, ...any)) {
	p := c.People
	if err := p.params().Check(); err != nil {
		bad("people.password_*: %v", err)
	}
	if p.MaxFailedLogins < 1 || p.MaxFailedLogins > 100 {
		bad("people.max_failed_logins must be between 1 and 100")
	}
	if p.Lockout < time.Minute || p.Lockout > 24*time.Hour {
		bad("people.lockout must be between 1m and 24h")
	}
	if p.SessionIdle < time.Minute || p.SessionIdle > p.SessionAbsolute {
		bad("people.session_idle must be at least 1m and at most people.session_absolute")
	}
	if p.SessionAbsolute > 7*24*time.Hour {
		bad("people.session_absolute must be at most 168h")
	}
	if p.InvitationTTL < time.Minute || p.InvitationTTL > 30*24*time.Hour {
		bad("people.invitation_ttl must be between 1m and 720h")
	}
	if p.IPFailuresPerHour < 1 {
		bad("people.ip_failures_per_hour must be at least 1")
	}
}

// derive makes a purpose-bound key from the server's HMAC key (HKDF-SHA256).
func derive(hk []byte, purpose string) []byte {
	k, err := hkdf.Key(sha256.New, hk, nil, "perfectpay "+purpose, 32)
	if err != nil {
		panic(err) // only for lengths HKDF cannot give
	}
	return k
}

// wirePeople builds the people service (users, factors, sessions), the
// pages and the customer API. TOTP secrets are sealed under a key derived
// from the HMAC key, and CSRF tokens keyed by another, so every node agrees
// without a new secret to configure.
func wirePeople[X repos.Tx](a *App, b store.Backend[X], hk []byte) ([]server.Mounter, error) {
	c := a.Config.People
	pc := accounts.PeopleConfig{Password: c.params(), MaxFailedLogins: c.MaxFailedLogins, Lockout: c.Lockout,
		InvitationTTL: c.InvitationTTL, SessionIdle: c.SessionIdle, SessionAbsolute: c.SessionAbsolute, Issuer: "PerfectPay"}
	ppl, err := accounts.NewPeople(store.Bind(b, func(x X) accounts.PeopleTx { return x }), pc, hk, derive(hk, "totp secrets"))
	if err != nil {
		return nil, err
	}
	a.People = ppl
	pages, err := web.New(web.Config{DevMode: a.Config.DevMode, PublicURL: a.Config.IssuerURL(), CSRFKey: derive(hk, "csrf tokens"),
		IPFailures: c.IPFailuresPerHour, IPWindow: time.Hour},
		web.Deps{People: ppl, Mandates: a.Mandates, Pipeline: a.Pipeline, Merchants: a.Merchants, Issuer: a.Issuer,
			Timelines: &compliance.Timelines{Mandates: a.Mandates, Audit: a.Audit}, Log: a.Log})
	if err != nil {
		return nil, err
	}
	a.Pages = pages
	return []server.Mounter{&server.CustomerHandlers{People: ppl, BaseURL: a.Config.IssuerURL()}, pages}, nil
}
