package accounts_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/memory"
	"github.com/perfectpay/perfectpay/store/pgtest"
	"github.com/perfectpay/perfectpay/store/postgres"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testParams are the cheapest argon2id parameters the code accepts.
var testParams = accounts.PasswordParams{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}

type peopleEnv struct {
	p      *accounts.People
	clock  *fakeClock
	tenant *accounts.Tenant
	other  *accounts.Tenant
}

// eachStore runs fn on the memory store and on PostgreSQL.
func eachStore(t *testing.T, fn func(t *testing.T, e *peopleEnv)) {
	for _, driver := range []string{"memory", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			var ppl *accounts.People
			var acc *accounts.Service
			var err error
			cfg := accounts.DefaultPeopleConfig()
			cfg.Password = testParams
			key := []byte("0123456789abcdef0123456789abcdef")
			if driver == "memory" {
				m := memory.New()
				ppl, err = accounts.NewPeople(store.Bind(m, func(x *memory.Tx) accounts.PeopleTx { return x }), cfg, []byte("pepper"), key)
				require.NoError(t, err)
				acc = accounts.NewService(store.Bind(m, func(x *memory.Tx) accounts.Tx { return x }), []byte("pepper"), nil)
			} else {
				pg := pgtest.NewStore(t)
				ppl, err = accounts.NewPeople(store.Bind(pg, func(x *postgres.Tx) accounts.PeopleTx { return x }), cfg, []byte("pepper"), key)
				require.NoError(t, err)
				acc = accounts.NewService(store.Bind(pg, func(x *postgres.Tx) accounts.Tx { return x }), []byte("pepper"), nil)
			}
			clock := &fakeClock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
			ppl.SetClock(clock.Now)
			ctx := context.Background()
			a, err := acc.CreateTenant(ctx, "A")
			require.NoError(t, err)
			b, err := acc.CreateTenant(ctx, "B")
			require.NoError(t, err)
			fn(t, &peopleEnv{p: ppl, clock: clock, tenant: a.Tenant, other: b.Tenant})
		})
	}
}

const goodPassword = "violet-harbour-tangent-42"

// activePayer creates a payer, accepts the invitation and enrols TOTP; it
// returns the user, the TOTP secret and the recovery codes.
func activePayer(t *testing.T, e *peopleEnv, email string) (*accounts.User, string, []string) {
	t.Helper()
	ctx := context.Background()
	u, inv, err := e.p.CreateCustomer(ctx, e.tenant.ID, email, "Pat Payer")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(u.ID, "cus_"))
	_, err = e.p.AcceptInvitation(ctx, inv.Token, goodPassword)
	require.NoError(t, err)
	u, err = e.p.Login(ctx, e.tenant.ID, email, goodPassword, accounts.LoginInfo{IP: "192.0.2.1", UserAgent: "test"})
	require.NoError(t, err)
	enr, err := e.p.BeginTOTP(ctx, u)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(enr.QR, "data:image/png;base64,"))
	codes, err := e.p.ConfirmTOTP(ctx, u, code(t, enr.Secret, e.clock.Now()))
	require.NoError(t, err)
	require.Len(t, codes, accounts.RecoveryCodeCount)
	e.clock.Add(30 * time.Second) // the enrolment code's step is used
	return u, enr.Secret, codes
}

func code(t *testing.T, secret string, at time.Time) string {
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	require.NoError(t, err)
	return c
}

func TestPasswordRules(t *testing.T) {
	for _, tc := range []struct {
		pw   string
		code apierr.Code
	}{
		{"short-pw", accounts.CodePasswordTooShort},
		{"password1234", accounts.CodePasswordCommon},
		{"PASSWORD1234", accounts.CodePasswordCommon},
		{"aaaaaaaaaaaaaa", accounts.CodePasswordCommon},
		{"abcabcabcabc", accounts.CodePasswordCommon},
		{"123456789012", accounts.CodePasswordCommon},
		{"patricia.payer", accounts.CodePasswordCommon}, // the email's local part
		{strings.Repeat("x7", 70), accounts.CodePasswordTooLong},
		{goodPassword, ""},
	} {
		err := accounts.CheckPassword(tc.pw, "patricia.payer@example.com")
		if tc.code == "" {
			assert.NoError(t, err, tc.pw)
			continue
		}
		var inv *apierr.Invalid
		require.ErrorAs(t, err, &inv, tc.pw)
		assert.Equal(t, tc.code, inv.Code, tc.pw)
		assert.Equal(t, "password", inv.Param)
	}
}

func TestPasswordHashArgon2id(t *testing.T) {
	h, err := accounts.HashPassword(goodPassword, testParams)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(h, "$argon2id$v=19$m=8192,t=1,p=1$"))
	assert.NotContains(t, h, goodPassword)
	ok, stale, err := accounts.VerifyPassword(goodPassword, h, testParams)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.False(t, stale)
	ok, stale, err = accounts.VerifyPassword("wrong-password-here", h, accounts.DefaultPasswordParams)
	require.NoError(t, err)
	assert.False(t, ok)
	assert.True(t, stale)
	_, _, err = accounts.VerifyPassword(goodPassword, "$argon2id$v=19$m=1,t=1,p=1$AAAA$AAAA", testParams)
	require.ErrorIs(t, err, accounts.ErrPasswordHash)
}

func TestInvitationSingleUseAndExpiring(t *testing.T) {
	eachStore(t, func(t *testing.T, e *peopleEnv) {
		ctx := context.Background()
		_, inv, err := e.p.CreateCustomer(ctx, e.tenant.ID, "pat@example.com", "Pat")
		require.NoError(t, err)
		_, err = e.p.AcceptInvitation(ctx, inv.Token, "password1234")
		var bad *apierr.Invalid
		require.ErrorAs(t, err, &bad)
		assert.Equal(t, accounts.CodePasswordCommon, bad.Code)

		_, err = e.p.AcceptInvitation(ctx, inv.Token, goodPassword)
		require.NoError(t, err)
		_, err = e.p.AcceptInvitation(ctx, inv.Token, goodPassword+"x")
		require.ErrorAs(t, err, &bad)
		assert.Equal(t, accounts.CodeInvitationInvalid, bad.Code)

		_, inv2, err := e.p.InviteMember(ctx, e.tenant.ID, "dev@example.com", "Dev", accounts.RoleDeveloper)
		require.NoError(t, err)
		e.clock.Add(e.p.Config().InvitationTTL)
		_, err = e.p.AcceptInvitation(ctx, inv2.Token, goodPassword)
		require.ErrorAs(t, err, &bad)
		assert.Equal(t, accounts.CodeInvitationInvalid, bad.Code)

		_, _, err = e.p.CreateCustomer(ctx, e.tenant.ID, "PAT@example.com", "Pat again")
		require.ErrorAs(t, err, &bad)
		assert.Equal(t, accounts.CodeEmailTaken, bad.Code)
		_, _, err = e.p.CreateCustomer(ctx, e.tenant.ID, "pat@example.com", "4242 4242 4242 4242")
		require.ErrorAs(t, err, &bad)
		assert.Equal(t, "name", bad.Param)
		_, _, err = e.p.CreateCustomer(ctx, e.tenant.ID, "4242424242424242@example.com", "Pat")
		require.ErrorAs(t, err, &bad)
		assert.Equal(t, "email", bad.Param)
	})
}

func TestLockoutAfterTenFailures(t *testing.T) {
	eachStore(t, func(t *testing.T, e *peopleEnv) {
		ctx := context.Background()
		u, _, _ := activePayer(t, e, "pat@example.com")
		from := accounts.LoginInfo{IP: "192.0.2.1", UserAgent: "test"}
		for i := range 9 {
			_, err := e.p.Login(ctx, e.tenant.ID, u.Email, "wrong-password-"+string(rune('a'+i)), from)
			require.ErrorIs(t, err, accounts.ErrBadLogin)
		}
		_, err := e.p.Login(ctx, e.tenant.ID, u.Email, "wrong-password-j", from)
		require.ErrorIs(t, err, accounts.ErrLocked)
		// Locked: even the right password is refused, for 30 minutes.
		_, err = e.p.Login(ctx, e.tenant.ID, u.Email, goodPassword, from)
		require.ErrorIs(t, err, accounts.ErrLocked)
		e.clock.Add(29 * time.Minute)
		_, err = e.p.Login(ctx, e.tenant.ID, u.Email, goodPassword, from)
		require.ErrorIs(t, err, accounts.ErrLocked)
		e.clock.Add(time.Minute)
		_, err = e.p.Login(ctx, e.tenant.ID, u.Email, goodPassword, from)
		require.NoError(t, err)
		// The same email at another tenant is not this user.
		_, err = e.p.Login(ctx, e.other.ID, u.Email, goodPassword, from)
		require.ErrorIs(t, err, accounts.ErrBadLogin)
	})
}

func TestMFACodesSingleUse(t *testing.T) {
	eachStore(t, func(t *testing.T, e *peopleEnv) {
		ctx := context.Background()
		u, secret, recovery := activePayer(t, e, "pat@example.com")
		c := code(t, secret, e.clock.Now())
		f, err := e.p.CheckMFA(ctx, u, c)
		require.NoError(t, err)
		assert.Equal(t, accounts.FactorTOTP, f)
		_, err = e.p.CheckMFA(ctx, u, c) // replayed
		require.ErrorIs(t, err, accounts.ErrBadCode)

		f, err = e.p.CheckMFA(ctx, u, strings.ToUpper(recovery[0]))
		require.NoError(t, err)
		assert.Equal(t, accounts.FactorRecovery, f)
		_, err = e.p.CheckMFA(ctx, u, recovery[0])
		require.ErrorIs(t, err, accounts.ErrBadCode)
		f, err = e.p.CheckMFA(ctx, u, strings.ReplaceAll(recovery[1], "-", ""))
		require.NoError(t, err)
		assert.Equal(t, accounts.FactorRecovery, f)
	})
}

func TestSessionTimeoutsAndRotation(t *testing.T) {
	eachStore(t, func(t *testing.T, e *peopleEnv) {
		ctx := context.Background()
		u, _, _ := activePayer(t, e, "pat@example.com")
		from := accounts.LoginInfo{IP: "192.0.2.1", UserAgent: "test"}
		ns, err := e.p.StartSession(ctx, u, false, from)
		require.NoError(t, err)
		assert.Len(t, ns.ID, 43) // 256 bits
		s, got, err := e.p.Resume(ctx, ns.ID)
		require.NoError(t, err)
		assert.Equal(t, u.ID, got.ID)
		assert.False(t, e.p.FreshMFA(s, time.Minute))

		rot, err := e.p.RotateSession(ctx, ns.ID, true)
		require.NoError(t, err)
		assert.NotEqual(t, ns.ID, rot.ID)
		_, _, err = e.p.Resume(ctx, ns.ID)
		require.ErrorIs(t, err, accounts.ErrNoSession)
		s, _, err = e.p.Resume(ctx, rot.ID)
		require.NoError(t, err)
		assert.True(t, e.p.FreshMFA(s, time.Minute))

		// Idle: used every 14 minutes it lives on, up to 12 hours.
		for e.clock.Now().Sub(rot.Session.CreatedAt) < 12*time.Hour-14*time.Minute {
			e.clock.Add(14 * time.Minute)
			_, _, err = e.p.Resume(ctx, rot.ID)
			require.NoError(t, err)
		}
		e.clock.Add(14 * time.Minute) // absolute timeout
		_, _, err = e.p.Resume(ctx, rot.ID)
		require.ErrorIs(t, err, accounts.ErrNoSession)

		idle, err := e.p.StartSession(ctx, u, true, from)
		require.NoError(t, err)
		e.clock.Add(15 * time.Minute)
		_, _, err = e.p.Resume(ctx, idle.ID)
		require.ErrorIs(t, err, accounts.ErrNoSession)

		// Sign out everywhere.
		s1, err := e.p.StartSession(ctx, u, true, from)
		require.NoError(t, err)
		s2, err := e.p.StartSession(ctx, u, true, from)
		require.NoError(t, err)
		n, err := e.p.EndAllSessions(ctx, u)
		require.NoError(t, err)
		assert.Equal(t, 2, n)
		for _, id := range []string{s1.ID, s2.ID} {
			_, _, err = e.p.Resume(ctx, id)
			require.ErrorIs(t, err, accounts.ErrNoSession)
		}
	})
}

func TestSessionUserAgentHoldsNoCardNumber(t *testing.T) {
	eachStore(t, func(t *testing.T, e *peopleEnv) {
		u, _, _ := activePayer(t, e, "pat@example.com")
		ns, err := e.p.StartSession(context.Background(), u, true, accounts.LoginInfo{IP: "192.0.2.1", UserAgent: "Agent/1.0 4242424242424242"})
		require.NoError(t, err)
		s, _, err := e.p.Resume(context.Background(), ns.ID)
		require.NoError(t, err)
		assert.NotContains(t, s.UserAgent, "4242424242424242")
		assert.Contains(t, s.UserAgent, "Agent/1.")
	})
}
