package accounts_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/store"
)

func newAccounts(t *testing.T) (*accounts.Service, *fakeDB, *accounts.Bootstrap) {
	t.Helper()
	db := newFakeDB()
	s := accounts.NewService(db, []byte("pepper-for-unit-tests"), nil)
	b, err := s.CreateTenant(context.Background(), "Shop")
	require.NoError(t, err)
	return s, db, b
}

func TestCreateTenantMakesFourKeysStoredOnlyAsHashes(t *testing.T) {
	s, db, b := newAccounts(t)
	assert.Equal(t, accounts.TenantActive, b.Tenant.Status)
	require.Len(t, b.Keys, 4)
	prefixes := []string{"sk_test_", "pk_test_", "sk_live_", "pk_live_"}
	for i, k := range b.Keys {
		assert.True(t, strings.HasPrefix(k.Secret, prefixes[i]), k.Secret[:8])
		assert.Equal(t, prefixes[i], k.Key.Prefix)
		assert.Len(t, strings.TrimPrefix(k.Secret, k.Key.Prefix), 43, "256 bits in base62")
		assert.Equal(t, k.Secret[len(k.Secret)-4:], k.Key.Last4)

		stored := db.keys[k.Key.ID]
		assert.Equal(t, s.HashSecret(k.Secret), stored.Hash, "the keyed hash is stored")
		assert.NotContains(t, string(stored.Hash), k.Secret[len(k.Key.Prefix):], "never the secret")
	}
	assert.NotEqual(t, b.Keys[0].Secret, b.Keys[2].Secret)
	require.Len(t, db.audits, 1)
	assert.Equal(t, "tenant.created", db.audits[0].Action)
	assert.NotContains(t, string(db.audits[0].Data), b.Keys[0].Secret, "the audit entry holds no secret")

	other := accounts.NewService(db, []byte("another pepper"), nil)
	assert.NotEqual(t, s.HashSecret("sk_test_x"), other.HashSecret("sk_test_x"), "the hash is keyed by the pepper")
}

func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	s, db, b := newAccounts(t)
	sk := b.Keys[0]

	p, err := s.Authenticate(ctx, sk.Secret)
	require.NoError(t, err)
	assert.Equal(t, b.Tenant.ID, p.Tenant.ID)
	assert.Equal(t, sk.Key.ID, p.Key.ID)
	assert.True(t, p.HasScope("charges:write"), "a secret key may do everything")
	pkp, err := s.Authenticate(ctx, b.Keys[1].Secret)
	require.NoError(t, err)
	assert.True(t, pkp.HasScope("tokens:write"), "a publishable key tokenizes")
	assert.False(t, pkp.HasScope("charges:write"), "and nothing else")

	for name, secret := range map[string]string{
		"one character changed": sk.Secret[:len(sk.Secret)-1] + string(rune(sk.Secret[len(sk.Secret)-1])^1),
		"not a key":             "Bearer something",
		"empty":                 "",
		"too long":              sk.Secret + strings.Repeat("a", 200),
		"another prefix":        "rk_test_" + strings.TrimPrefix(sk.Secret, "sk_test_"),
	} {
		_, err := s.Authenticate(ctx, secret)
		require.ErrorIs(t, err, accounts.ErrInvalidKey, name)
	}
	_, err = accounts.NewService(db, []byte("another pepper"), nil).Authenticate(ctx, sk.Secret)
	require.ErrorIs(t, err, accounts.ErrInvalidKey, "a node with another pepper knows no key")

	revokedAt := time.Now().Add(-time.Second)
	k := db.keys[sk.Key.ID]
	k.RevokedAt = &revokedAt
	db.keys[sk.Key.ID] = k
	_, err = s.Authenticate(ctx, sk.Secret)
	require.ErrorIs(t, err, accounts.ErrRevokedKey)
	assert.NotErrorIs(t, err, accounts.ErrTenantRevoked)
}

type tokenRevoker struct {
	calls []string
	fail  error
}

func (r *tokenRevoker) RevokeTenant(_ context.Context, id string) error {
	r.calls = append(r.calls, id)
	return r.fail
}

func TestRevokeTenant(t *testing.T) {
	ctx := context.Background()
	_, db, b := newAccounts(t)
	tokens := &tokenRevoker{fail: errors.New("issuer unreachable")}
	s := accounts.NewService(db, []byte("pepper-for-unit-tests"), tokens)

	_, err := s.RevokeTenant(ctx, b.Tenant.ID)
	require.Error(t, err, "the token step failed: the caller is told to retry")
	assert.Contains(t, err.Error(), "retry")
	assert.Equal(t, accounts.TenantRevoked, db.tenants[b.Tenant.ID].Status, "the tenant is revoked even so")

	_, err = s.Authenticate(ctx, b.Keys[0].Secret)
	require.ErrorIs(t, err, accounts.ErrTenantRevoked, "every key is refused at once")
	require.ErrorIs(t, err, accounts.ErrRevokedKey, "a revoked tenant's key is a revoked key")

	tokens.fail = nil
	tn, err := s.RevokeTenant(ctx, b.Tenant.ID)
	require.NoError(t, err)
	assert.Equal(t, accounts.TenantRevoked, tn.Status)
	assert.Equal(t, []string{b.Tenant.ID, b.Tenant.ID}, tokens.calls, "a retry re-runs the token revocation")
	revocations := 0
	for _, e := range db.audits {
		if e.Action == "tenant.revoked" {
			revocations++
		}
	}
	assert.Equal(t, 1, revocations, "audited once")

	_, err = s.RevokeTenant(ctx, "ten_missing")
	require.ErrorIs(t, err, store.ErrNotFound)

	_, err = s.CreateKey(ctx, b.Keys[0].Key, accounts.KeyRequest{Kind: accounts.KindSecret, Mode: accounts.ModeTest, Name: "x"})
	require.ErrorIs(t, err, accounts.ErrTenantRevoked, "a revoked tenant's key makes no key")
}

func TestKeysOfTheOtherModeAreNotFound(t *testing.T) {
	ctx := context.Background()
	s, _, b := newAccounts(t)
	testSK, liveSK := b.Keys[0].Key, b.Keys[2].Key

	list, err := s.ListKeys(ctx, testSK)
	require.NoError(t, err)
	require.Len(t, list, 2)
	for _, k := range list {
		assert.Equal(t, accounts.ModeTest, k.Mode)
	}
	_, err = s.GetKey(ctx, testSK, liveSK.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	got, err := s.GetKey(ctx, liveSK, liveSK.ID)
	require.NoError(t, err)
	assert.Equal(t, liveSK.ID, got.ID)

	for name, call := range map[string]func() error{
		"list":   func() error { _, err := s.ListKeys(ctx, nil); return err },
		"get":    func() error { _, err := s.GetKey(ctx, nil, liveSK.ID); return err },
		"create": func() error { _, err := s.CreateKey(ctx, nil, accounts.KeyRequest{}); return err },
		"roll":   func() error { _, err := s.RollKey(ctx, nil, liveSK.ID, 0); return err },
		"revoke": func() error { _, err := s.RevokeKey(ctx, nil, liveSK.ID); return err },
	} {
		require.ErrorIs(t, call(), accounts.ErrInvalidKey, "%s without a caller", name)
	}
}

func TestRollKeyOverlap(t *testing.T) {
	ctx := context.Background()
	s, db, b := newAccounts(t)
	sk := b.Keys[0]

	nk, err := s.RollKey(ctx, sk.Key, sk.Key.ID, time.Hour)
	require.NoError(t, err)
	assert.NotEqual(t, sk.Secret, nk.Secret)
	assert.Equal(t, sk.Key.Kind, nk.Key.Kind)
	assert.Equal(t, sk.Key.Mode, nk.Key.Mode)
	old := db.keys[sk.Key.ID]
	assert.Equal(t, nk.Key.ID, old.RolledTo)
	require.NotNil(t, old.ExpiresAt)
	_, err = s.Authenticate(ctx, sk.Secret)
	require.NoError(t, err, "the old key works during the overlap")
	_, err = s.Authenticate(ctx, nk.Secret)
	require.NoError(t, err)

	_, err = s.RollKey(ctx, nk.Key, sk.Key.ID, time.Hour)
	require.ErrorIs(t, err, accounts.ErrKeyNotActive, "a key is rolled once")

	now, err := s.RollKey(ctx, nk.Key, nk.Key.ID, 0)
	require.NoError(t, err)
	_, err = s.Authenticate(ctx, nk.Secret)
	require.ErrorIs(t, err, accounts.ErrRevokedKey, "no overlap: the old key stops at once")
	_, err = s.Authenticate(ctx, now.Secret)
	require.NoError(t, err)
	_, err = s.RollKey(ctx, nk.Key, now.Key.ID, 0)
	require.ErrorIs(t, err, accounts.ErrRevokedKey, "a key rolled away acts no more")
}

func TestAPIKeyActive(t *testing.T) {
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	before, after := at.Add(-time.Nanosecond), at.Add(time.Nanosecond)
	assert.True(t, (&accounts.APIKey{}).Active(at))
	assert.True(t, (&accounts.APIKey{RevokedAt: &after}).Active(at))
	assert.False(t, (&accounts.APIKey{RevokedAt: &at}).Active(at), "revoked from the instant it is revoked")
	assert.False(t, (&accounts.APIKey{RevokedAt: &before}).Active(at))
	assert.True(t, (&accounts.APIKey{ExpiresAt: &after}).Active(at))
	assert.False(t, (&accounts.APIKey{ExpiresAt: &at}).Active(at), "expired at its expiry")
}

func TestKeyShapes(t *testing.T) {
	assert.Equal(t, "sk_test_", accounts.KeyPrefix(accounts.KindSecret, accounts.ModeTest))
	assert.Equal(t, "pk_live_", accounts.KeyPrefix(accounts.KindPublishable, accounts.ModeLive))
	assert.Equal(t, "rk_live_", accounts.KeyPrefix(accounts.KindRestricted, accounts.ModeLive))
	for _, s := range []string{"sk_test_x", "sk_live_x", "pk_test_x", "pk_live_x", "rk_test_x", "rk_live_x"} {
		assert.True(t, accounts.LooksLikeKey(s), s)
	}
	for _, s := range []string{"", "sk_x", "SK_TEST_x", "tok_x", "eyJhbGciOi", "xsk_test_"} {
		assert.False(t, accounts.LooksLikeKey(s), s)
	}
}

func TestTokenHash(t *testing.T) {
	token, hash := accounts.NewConfigToken("op_")
	assert.True(t, strings.HasPrefix(token, "op_"))
	assert.Equal(t, accounts.HashToken(token), hash)
	assert.NotContains(t, hash, strings.TrimPrefix(token, "op_"))

	h, err := accounts.ParseTokenHash(hash)
	require.NoError(t, err)
	assert.True(t, h.Set())
	assert.True(t, h.Matches(token))
	assert.False(t, h.Matches(token+"x"))
	assert.False(t, h.Matches(""))

	zero, err := accounts.ParseTokenHash("")
	require.NoError(t, err)
	assert.False(t, zero.Set())
	assert.False(t, zero.Matches(""), "an unset hash matches nothing, not even the empty token")

	for _, bad := range []string{
		"sha256:" + strings.Repeat("0", 63),
		"sha256:" + strings.Repeat("0", 65),
		"sha256:" + strings.Repeat("g", 64),
		"sha1:" + strings.Repeat("0", 64),
		strings.TrimPrefix(hash, "sha256:"),
	} {
		_, err := accounts.ParseTokenHash(bad)
		require.ErrorIs(t, err, accounts.ErrTokenHash, bad)
	}
	a, _ := accounts.NewConfigToken("op_")
	assert.NotEqual(t, token, a, "random")
}
