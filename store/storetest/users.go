package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/store"
)

func newUser(tenantID, email string) *accounts.User {
	n := now()
	return &accounts.User{ID: ids.New("cus"), TenantID: tenantID, Kind: accounts.UserPayer, Email: email,
		Name: "Pat", Status: accounts.UserInvited, CreatedAt: n, UpdatedAt: n}
}

func testUsers[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	ta, tb := MakeTenant(t, b), MakeTenant(t, b)
	u := newUser(ta.ID, "pat@example.com")
	in(t, b, func(tx X) error { return tx.CreateUser(ctx, u) })

	t.Run("email unique per tenant", func(t *testing.T) {
		dup := newUser(ta.ID, "pat@example.com")
		require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.CreateUser(ctx, dup) }), store.ErrConflict)
		other := newUser(tb.ID, "pat@example.com") // the same person at another tenant is another user
		in(t, b, func(tx X) error { return tx.CreateUser(ctx, other) })
	})

	t.Run("tenant isolation", func(t *testing.T) {
		require.ErrorIs(t, b.InTx(ctx, func(tx X) error { _, err := tx.GetUser(ctx, tb.ID, u.ID); return err }), store.ErrNotFound)
		require.ErrorIs(t, b.InTx(ctx, func(tx X) error {
			_, err := tx.GetUserByEmail(ctx, tb.ID+"x", u.Email)
			return err
		}), store.ErrNotFound)
		in(t, b, func(tx X) error {
			list, more, err := tx.ListUsers(ctx, accounts.UserFilter{TenantID: tb.ID, Limit: 10})
			require.NoError(t, err)
			assert.False(t, more)
			require.Len(t, list, 1)
			assert.NotEqual(t, u.ID, list[0].ID)
			return nil
		})
	})

	t.Run("update and fail login", func(t *testing.T) {
		in(t, b, func(tx X) error {
			got, err := tx.GetUserByEmail(ctx, ta.ID, "pat@example.com")
			require.NoError(t, err)
			got.Status, got.PasswordHash, got.TOTPSealed, got.TOTPLastStep = accounts.UserActive, "$argon2id$x", []byte{1, 2}, 7
			return tx.UpdateUser(ctx, got)
		})
		until := now().Add(time.Hour)
		for i := 1; i <= 3; i++ {
			in(t, b, func(tx X) error {
				got, err := tx.FailLogin(ctx, ta.ID, u.ID, 3, until)
				require.NoError(t, err)
				if i < 3 {
					assert.Equal(t, i, got.FailedLogins)
					assert.Nil(t, got.LockedUntil)
				} else {
					assert.Equal(t, 0, got.FailedLogins)
					require.NotNil(t, got.LockedUntil)
					assert.True(t, until.Equal(*got.LockedUntil))
				}
				return nil
			})
		}
		in(t, b, func(tx X) error {
			got, err := tx.GetUser(ctx, ta.ID, u.ID)
			require.NoError(t, err)
			assert.Equal(t, accounts.UserActive, got.Status)
			assert.Equal(t, []byte{1, 2}, got.TOTPSealed)
			assert.Equal(t, int64(7), got.TOTPLastStep)
			assert.NotNil(t, got.LockedUntil)
			return nil
		})
	})

	t.Run("invitation single use", func(t *testing.T) {
		inv := &accounts.Invitation{ID: ids.New("inv"), TenantID: ta.ID, UserID: u.ID, Purpose: accounts.InvitePayer,
			TokenHash: []byte("hash-of-token-1"), CreatedAt: now(), ExpiresAt: now().Add(time.Hour)}
		in(t, b, func(tx X) error { return tx.CreateInvitation(ctx, inv) })
		in(t, b, func(tx X) error {
			got, err := tx.GetInvitationByHash(ctx, []byte("hash-of-token-1"))
			require.NoError(t, err)
			assert.Equal(t, u.ID, got.UserID)
			assert.Nil(t, got.UsedAt)
			return tx.UseInvitation(ctx, ta.ID, inv.ID, now())
		})
		require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.UseInvitation(ctx, ta.ID, inv.ID, now()) }), store.ErrConflict)
		require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.UseInvitation(ctx, tb.ID, inv.ID, now()) }), store.ErrNotFound)
	})

	t.Run("recovery codes single use", func(t *testing.T) {
		in(t, b, func(tx X) error {
			return tx.SetRecoveryCodes(ctx, ta.ID, u.ID, [][]byte{[]byte("c1"), []byte("c2")})
		})
		in(t, b, func(tx X) error { return tx.UseRecoveryCode(ctx, ta.ID, u.ID, []byte("c1"), now()) })
		require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.UseRecoveryCode(ctx, ta.ID, u.ID, []byte("c1"), now()) }), store.ErrNotFound)
		require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.UseRecoveryCode(ctx, tb.ID, u.ID, []byte("c2"), now()) }), store.ErrNotFound)
		in(t, b, func(tx X) error {
			n, err := tx.CountRecoveryCodes(ctx, ta.ID, u.ID)
			require.NoError(t, err)
			assert.Equal(t, 1, n)
			return nil
		})
		// New codes replace the old ones.
		in(t, b, func(tx X) error { return tx.SetRecoveryCodes(ctx, ta.ID, u.ID, [][]byte{[]byte("c3")}) })
		require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.UseRecoveryCode(ctx, ta.ID, u.ID, []byte("c2"), now()) }), store.ErrNotFound)
	})

	t.Run("sessions", func(t *testing.T) {
		s1 := &accounts.Session{IDHash: []byte("session-hash-1"), Ref: ids.New("ses"), TenantID: ta.ID, UserID: u.ID,
			IP: "192.0.2.1", UserAgent: "ua", CreatedAt: now(), LastSeenAt: now()}
		s2 := &accounts.Session{IDHash: []byte("session-hash-2"), Ref: ids.New("ses"), TenantID: ta.ID, UserID: u.ID,
			CreatedAt: now(), LastSeenAt: now()}
		in(t, b, func(tx X) error {
			require.NoError(t, tx.CreateSession(ctx, s1))
			return tx.CreateSession(ctx, s2)
		})
		mfa := now().Add(time.Minute)
		in(t, b, func(tx X) error { return tx.TouchSession(ctx, s1.IDHash, mfa, &mfa) })
		in(t, b, func(tx X) error {
			got, err := tx.GetSession(ctx, s1.IDHash)
			require.NoError(t, err)
			assert.Equal(t, s1.Ref, got.Ref)
			require.NotNil(t, got.MFAAt)
			assert.True(t, mfa.Equal(*got.MFAAt))
			assert.True(t, mfa.Equal(got.LastSeenAt))
			return nil
		})
		in(t, b, func(tx X) error { return tx.DeleteSession(ctx, s2.IDHash) })
		require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.DeleteSession(ctx, s2.IDHash) }), store.ErrNotFound)
		in(t, b, func(tx X) error {
			n, err := tx.DeleteUserSessions(ctx, ta.ID, u.ID)
			require.NoError(t, err)
			assert.Equal(t, 1, n)
			return nil
		})
		require.ErrorIs(t, b.InTx(ctx, func(tx X) error { _, err := tx.GetSession(ctx, s1.IDHash); return err }), store.ErrNotFound)
	})

	t.Run("login marks", func(t *testing.T) {
		in(t, b, func(tx X) error {
			fresh, err := tx.MarkLogin(ctx, ta.ID, u.ID, "ip:1", now())
			require.NoError(t, err)
			assert.True(t, fresh)
			fresh, err = tx.MarkLogin(ctx, ta.ID, u.ID, "ip:1", now())
			require.NoError(t, err)
			assert.False(t, fresh)
			return nil
		})
	})

	t.Run("passkeys", func(t *testing.T) {
		k := &accounts.Passkey{ID: []byte("cred-1"), TenantID: ta.ID, UserID: u.ID, Name: "laptop", PublicKey: []byte{1, 2, 3},
			AttestationType: "none", AAGUID: make([]byte, 16), SignCount: 1, Transports: []string{"internal"}, BackupEligible: true, CreatedAt: now()}
		in(t, b, func(tx X) error { return tx.AddPasskey(ctx, k) })
		require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.AddPasskey(ctx, k) }), store.ErrConflict)
		in(t, b, func(tx X) error { return tx.UsePasskey(ctx, ta.ID, u.ID, []byte("cred-1"), 7, now()) })
		require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.UsePasskey(ctx, tb.ID, u.ID, []byte("cred-1"), 8, now()) }), store.ErrNotFound)
		in(t, b, func(tx X) error {
			ks, err := tx.ListPasskeys(ctx, ta.ID, u.ID)
			require.NoError(t, err)
			require.Len(t, ks, 1)
			assert.Equal(t, uint32(7), ks[0].SignCount)
			assert.Equal(t, []byte{1, 2, 3}, ks[0].PublicKey)
			assert.Equal(t, []string{"internal"}, ks[0].Transports)
			assert.True(t, ks[0].BackupEligible)
			assert.NotNil(t, ks[0].LastUsedAt)
			other, err := tx.ListPasskeys(ctx, tb.ID, u.ID)
			require.NoError(t, err)
			assert.Empty(t, other)
			return nil
		})
	})

	t.Run("rollback", func(t *testing.T) {
		r := newUser(ta.ID, "rollback@example.com")
		require.ErrorIs(t, b.InTx(ctx, func(tx X) error {
			require.NoError(t, tx.CreateUser(ctx, r))
			return errBoom
		}), errBoom)
		require.ErrorIs(t, b.InTx(ctx, func(tx X) error { _, err := tx.GetUser(ctx, ta.ID, r.ID); return err }), store.ErrNotFound)
	})
}
