package accounts_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/store"
)

// fakeDB is the accounts repository in a map: the key rules are the point
// here, not the store (the conformance suite covers both backends). A
// transaction works on a copy, committed only when fn returns nil.
type fakeDB struct {
	tenants map[string]accounts.Tenant
	keys    map[string]accounts.APIKey
	audits  []audit.Entry
}

type fakeTx struct{ d *fakeDB }

func newFakeDB() *fakeDB {
	return &fakeDB{tenants: map[string]accounts.Tenant{}, keys: map[string]accounts.APIKey{}}
}

func (f *fakeDB) InTx(ctx context.Context, fn func(tx accounts.Tx) error) error {
	c := &fakeDB{tenants: maps.Clone(f.tenants), keys: maps.Clone(f.keys), audits: append([]audit.Entry(nil), f.audits...)}
	if err := fn(fakeTx{c}); err != nil {
		return err
	}
	*f = *c
	return nil
}

func (f *fakeDB) Autocommit(ctx context.Context, fn func(tx accounts.Tx) error) error {
	return f.InTx(ctx, fn)
}

func (t fakeTx) CreateTenant(_ context.Context, tn *accounts.Tenant) error {
	t.d.tenants[tn.ID] = *tn
	return nil
}

func (t fakeTx) GetTenant(_ context.Context, id string) (*accounts.Tenant, error) {
	tn, ok := t.d.tenants[id]
	if !ok {
		return nil, store.ErrNotFound
	}
	return &tn, nil
}

func (t fakeTx) UpdateTenant(_ context.Context, tn *accounts.Tenant) error {
	t.d.tenants[tn.ID] = *tn
	return nil
}

func (t fakeTx) CreateAPIKey(_ context.Context, k *accounts.APIKey) error {
	if _, ok := t.d.keys[k.ID]; ok {
		return store.ErrConflict
	}
	t.d.keys[k.ID] = *k
	return nil
}

func (t fakeTx) GetAPIKeyByHash(_ context.Context, h []byte) (*accounts.APIKey, error) {
	for _, k := range t.d.keys {
		if string(k.Hash) == string(h) {
			return &k, nil
		}
	}
	return nil, store.ErrNotFound
}

func (t fakeTx) GetAPIKeyAndTenant(ctx context.Context, h []byte) (*accounts.APIKey, *accounts.Tenant, error) {
	k, err := t.GetAPIKeyByHash(ctx, h)
	if err != nil {
		return nil, nil, err
	}
	tn, err := t.GetTenant(ctx, k.TenantID)
	if err != nil {
		return nil, nil, err
	}
	return k, tn, nil
}

func (t fakeTx) GetAPIKey(_ context.Context, tenantID, id string) (*accounts.APIKey, error) {
	k, ok := t.d.keys[id]
	if !ok || k.TenantID != tenantID {
		return nil, store.ErrNotFound
	}
	return &k, nil
}

func (t fakeTx) ListAPIKeys(_ context.Context, tenantID string) ([]accounts.APIKey, error) {
	var out []accounts.APIKey
	for _, k := range t.d.keys {
		if k.TenantID == tenantID {
			out = append(out, k)
		}
	}
	return out, nil
}

func (t fakeTx) UpdateAPIKey(_ context.Context, k *accounts.APIKey) error {
	t.d.keys[k.ID] = *k
	return nil
}

func (t fakeTx) AppendAudit(_ context.Context, e *audit.Entry) error {
	t.d.audits = append(t.d.audits, *e)
	return nil
}

// keyShape is a kind with its scopes, written as the key's prefix:
// "sk", "pk", "rk[keys:write charges:write]".
type keyShape struct {
	kind   string
	scopes []string
}

func (k keyShape) String() string {
	switch k.kind {
	case accounts.KindSecret:
		return "sk"
	case accounts.KindPublishable:
		return "pk"
	}
	if len(k.scopes) == len(accounts.Scopes) {
		return "rk[all]"
	}
	return "rk[" + strings.Join(k.scopes, " ") + "]"
}

func rk(scopes ...string) keyShape { return keyShape{accounts.KindRestricted, scopes} }

var (
	sk = keyShape{kind: accounts.KindSecret}
	pk = keyShape{kind: accounts.KindPublishable}
)

// The callers, and what each may reach in its own mode (by the shapes'
// names). Nothing reaches a key of the other mode.
var callers = []struct {
	shape   keyShape
	reaches []string
}{
	{sk, []string{"sk", "pk", "rk[charges:write]", "rk[keys:write]", "rk[keys:write charges:write]", "rk[tokens:write]", "rk[audit:read]"}},
	{pk, nil},
	{rk("keys:write"), []string{"rk[keys:write]"}},
	{rk("keys:write", "charges:write"), []string{"rk[charges:write]", "rk[keys:write]", "rk[keys:write charges:write]"}},
	{rk("keys:write", "tokens:write"), []string{"pk", "rk[keys:write]", "rk[tokens:write]"}},
	{rk("charges:write"), nil},
	// Every scope there is still is not a secret key.
	{rk(accounts.Scopes...), []string{"pk", "rk[charges:write]", "rk[keys:write]", "rk[keys:write charges:write]", "rk[tokens:write]", "rk[audit:read]"}},
}

// The shapes requested (created, or found as the key to roll or revoke).
var requested = []keyShape{
	sk, pk, rk("charges:write"), rk("keys:write"), rk("keys:write", "charges:write"), rk("tokens:write"), rk("audit:read"),
}

var modes = []string{accounts.ModeTest, accounts.ModeLive}

// world is a tenant holding the caller's key.
func world(t *testing.T, shape keyShape, mode string) (*accounts.Service, *fakeDB, *accounts.APIKey) {
	t.Helper()
	db := newFakeDB()
	db.tenants["ten_1"] = accounts.Tenant{ID: "ten_1", Status: accounts.TenantActive}
	caller := &accounts.APIKey{ID: "key_caller", TenantID: "ten_1", Kind: shape.kind, Mode: mode,
		Prefix: accounts.KeyPrefix(shape.kind, mode), Scopes: shape.scopes, CreatedAt: time.Now()}
	db.keys[caller.ID] = *caller
	return accounts.NewService(db, []byte("pepper"), nil), db, caller
}

func expectAllowed(reaches []string, callerMode string, shape keyShape, mode string) bool {
	if callerMode != mode {
		return false
	}
	for _, s := range reaches {
		if s == shape.String() {
			return true
		}
	}
	return false
}

// expectRefusal checks a refused request: the rule that refused it, and
// nothing written.
// A caller without keys:write (it reaches nothing) is refused as less
// powerful whatever it asks; one with it, for the other mode first.
func expectRefusal(t *testing.T, err error, db *fakeDB, keysBefore map[string]accounts.APIKey, callerWrites, sameMode bool) {
	t.Helper()
	require.Error(t, err)
	var re *apierr.Forbidden
	require.ErrorAs(t, err, &re)
	if callerWrites && !sameMode {
		assert.ErrorIs(t, err, accounts.ErrModeMismatch)
	} else {
		assert.ErrorIs(t, err, accounts.ErrMorePowerful)
	}
	assert.Equal(t, keysBefore, db.keys, "a refused request writes nothing")
	assert.Empty(t, db.audits)
}

// TestKeyRules runs every (caller kind × mode × scopes) against every
// (requested kind × mode × scopes), for create, roll and revoke.
func TestKeyRules(t *testing.T) {
	ctx := context.Background()
	for _, c := range callers {
		for _, cmode := range modes {
			for _, req := range requested {
				for _, rmode := range modes {
					allowed := expectAllowed(c.reaches, cmode, req, rmode)
					name := fmt.Sprintf("%s_%s→%s_%s", c.shape, cmode, req, rmode)

					t.Run("create/"+name, func(t *testing.T) {
						svc, db, caller := world(t, c.shape, cmode)
						before := maps.Clone(db.keys)
						nk, err := svc.CreateKey(ctx, caller, accounts.KeyRequest{Kind: req.kind, Mode: rmode, Scopes: req.scopes})
						if !allowed {
							expectRefusal(t, err, db, before, len(c.reaches) > 0, cmode == rmode)
							assert.Nil(t, nk)
							return
						}
						require.NoError(t, err)
						assert.Equal(t, rmode, nk.Key.Mode)
						assert.Equal(t, req.kind, nk.Key.Kind)
						assert.True(t, strings.HasPrefix(nk.Secret, accounts.KeyPrefix(req.kind, rmode)))
						assert.Len(t, db.keys, 2)
						require.Len(t, db.audits, 1)
						assert.Equal(t, "api_key.created", db.audits[0].Action)
					})

					target := func(db *fakeDB) string {
						k := accounts.APIKey{ID: "key_target", TenantID: "ten_1", Kind: req.kind, Mode: rmode,
							Prefix: accounts.KeyPrefix(req.kind, rmode), Scopes: req.scopes, CreatedAt: time.Now()}
						db.keys[k.ID] = k
						return k.ID
					}
					t.Run("roll/"+name, func(t *testing.T) {
						svc, db, caller := world(t, c.shape, cmode)
						id := target(db)
						before := maps.Clone(db.keys)
						nk, err := svc.RollKey(ctx, caller, id, time.Hour)
						if !allowed {
							expectRefusal(t, err, db, before, len(c.reaches) > 0, cmode == rmode)
							assert.Nil(t, nk)
							return
						}
						require.NoError(t, err)
						assert.Equal(t, rmode, nk.Key.Mode)
						assert.Equal(t, req.kind, nk.Key.Kind)
						assert.Equal(t, req.scopes, nk.Key.Scopes)
						assert.Equal(t, nk.Key.ID, db.keys[id].RolledTo)
						assert.Len(t, db.keys, 3)
					})
					t.Run("revoke/"+name, func(t *testing.T) {
						svc, db, caller := world(t, c.shape, cmode)
						id := target(db)
						before := maps.Clone(db.keys)
						k, err := svc.RevokeKey(ctx, caller, id)
						if !allowed {
							expectRefusal(t, err, db, before, len(c.reaches) > 0, cmode == rmode)
							assert.Nil(t, k)
							return
						}
						require.NoError(t, err)
						assert.NotNil(t, db.keys[id].RevokedAt)
						require.Len(t, db.audits, 1)
						assert.Equal(t, "api_key.revoked", db.audits[0].Action)
					})
				}
			}
		}
	}
}

// Any key of the tenant may revoke or roll itself when it holds keys:write
// (a key is never more powerful than itself).
func TestKeyRulesSelf(t *testing.T) {
	ctx := context.Background()
	for _, c := range callers {
		mayWrite := len(c.reaches) > 0
		t.Run(c.shape.String(), func(t *testing.T) {
			svc, db, caller := world(t, c.shape, accounts.ModeLive)
			_, err := svc.RollKey(ctx, caller, caller.ID, 0)
			if !mayWrite {
				assert.ErrorIs(t, err, accounts.ErrMorePowerful)
				assert.Nil(t, db.keys[caller.ID].ExpiresAt)
				return
			}
			require.NoError(t, err)
			// Rolled with no overlap, the caller acts no more.
			_, err = svc.RevokeKey(ctx, caller, caller.ID)
			assert.ErrorIs(t, err, accounts.ErrRevokedKey)
		})
	}
}

// The request itself is validated by the domain, whoever calls.
func TestKeyRequestValidation(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		req   accounts.KeyRequest
		err   error
		param string
	}{
		{"unknown kind", accounts.KeyRequest{Kind: "admin"}, accounts.ErrInvalidKind, "type"},
		{"empty kind", accounts.KeyRequest{}, accounts.ErrInvalidKind, "type"},
		{"unknown mode", accounts.KeyRequest{Kind: accounts.KindSecret, Mode: "prod"}, accounts.ErrInvalidMode, "mode"},
		{"restricted without scopes", accounts.KeyRequest{Kind: accounts.KindRestricted}, accounts.ErrScopesRequired, "scopes"},
		{"secret with scopes", accounts.KeyRequest{Kind: accounts.KindSecret, Scopes: []string{"charges:read"}}, accounts.ErrScopesNotAllowed, "scopes"},
		{"publishable with scopes", accounts.KeyRequest{Kind: accounts.KindPublishable, Scopes: []string{"tokens:write"}}, accounts.ErrScopesNotAllowed, "scopes"},
		{"unknown scope", accounts.KeyRequest{Kind: accounts.KindRestricted, Scopes: []string{"charges:read", "root"}}, accounts.ErrInvalidScope, "scopes"},
		{"long name", accounts.KeyRequest{Kind: accounts.KindSecret, Name: strings.Repeat("n", 101)}, accounts.ErrInvalidName, "name"},
		{"name not UTF-8", accounts.KeyRequest{Kind: accounts.KindSecret, Name: "\xff"}, accounts.ErrInvalidName, "name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc, db, caller := world(t, sk, accounts.ModeTest)
			_, err := svc.CreateKey(ctx, caller, tc.req)
			require.ErrorIs(t, err, tc.err)
			var re *apierr.Invalid
			require.ErrorAs(t, err, &re)
			assert.Equal(t, tc.param, re.Param)
			assert.Len(t, db.keys, 1)
		})
	}

	t.Run("mode defaults to the caller's, scopes deduplicated", func(t *testing.T) {
		svc, _, caller := world(t, sk, accounts.ModeLive)
		nk, err := svc.CreateKey(ctx, caller, accounts.KeyRequest{Kind: accounts.KindRestricted, Scopes: []string{"charges:read", "charges:read"}})
		require.NoError(t, err)
		assert.Equal(t, accounts.ModeLive, nk.Key.Mode)
		assert.Equal(t, []string{"charges:read"}, nk.Key.Scopes)
	})

	t.Run("revoked caller", func(t *testing.T) {
		svc, db, caller := world(t, sk, accounts.ModeTest)
		k := db.keys[caller.ID]
		now := time.Now().Add(-time.Second)
		k.RevokedAt = &now
		db.keys[caller.ID] = k
		_, err := svc.CreateKey(ctx, caller, accounts.KeyRequest{Kind: accounts.KindSecret})
		assert.ErrorIs(t, err, accounts.ErrRevokedKey)
		assert.Len(t, db.keys, 1)
	})

	t.Run("revoked tenant", func(t *testing.T) {
		svc, db, caller := world(t, sk, accounts.ModeTest)
		db.tenants["ten_1"] = accounts.Tenant{ID: "ten_1", Status: accounts.TenantRevoked}
		_, err := svc.CreateKey(ctx, caller, accounts.KeyRequest{Kind: accounts.KindSecret})
		assert.ErrorIs(t, err, accounts.ErrTenantRevoked)
		assert.Len(t, db.keys, 1)
	})

	t.Run("no caller", func(t *testing.T) {
		svc, _, _ := world(t, sk, accounts.ModeTest)
		_, err := svc.CreateKey(ctx, nil, accounts.KeyRequest{Kind: accounts.KindSecret})
		assert.True(t, errors.Is(err, accounts.ErrInvalidKey))
	})
}
