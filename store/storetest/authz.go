package storetest

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/store"
)

func newAgent(tenantID string) *authz.Agent {
	t := now()
	return &authz.Agent{
		ID: ids.New("agt"), TenantID: tenantID, Name: "bot", Status: authz.AgentActive, AuthMethod: authz.AuthPrivateKeyJWT,
		JWKS:       json.RawMessage(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`),
		GrantTypes: []string{authz.GrantClientCredentials}, Scopes: []string{"charges:write"}, Audiences: []string{},
		RedirectURIs: []string{}, CreatedAt: t, UpdatedAt: t,
	}
}

func testAuthzAgents[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	tn := MakeTenant(t, b)
	other := MakeTenant(t, b)
	a := newAgent(tn.ID)
	in(t, b, func(tx X) error { return tx.CreateAgent(ctx, a) })
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.CreateAgent(ctx, a) }), store.ErrConflict)
	orphan := newAgent("ten_missing")
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.CreateAgent(ctx, orphan) }), store.ErrNotFound)
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { _, err := tx.GetAgent(ctx, "agt_missing"); return err }), store.ErrNotFound)

	in(t, b, func(tx X) error {
		got, err := tx.GetAgent(ctx, a.ID)
		require.NoError(t, err)
		assert.Equal(t, a.Name, got.Name)
		assert.Equal(t, tn.ID, got.TenantID)
		assert.JSONEq(t, string(a.JWKS), string(got.JWKS))
		assert.Equal(t, a.GrantTypes, got.GrantTypes)
		assert.True(t, a.CreatedAt.Equal(got.CreatedAt))
		got.Status, got.SecretHash = authz.AgentSuspended, []byte("h")
		s := now()
		got.SuspendedAt = &s
		return tx.UpdateAgent(ctx, got)
	})
	in(t, b, func(tx X) error {
		got, err := tx.GetAgent(ctx, a.ID)
		require.NoError(t, err)
		assert.Equal(t, authz.AgentSuspended, got.Status)
		assert.Equal(t, []byte("h"), got.SecretHash)
		require.NotNil(t, got.SuspendedAt)
		return nil
	})
	wrong := *a
	wrong.TenantID = other.ID
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.UpdateAgent(ctx, &wrong) }), store.ErrNotFound,
		"an agent is updated only within its tenant")

	// Listing pages in creation order, per tenant.
	var made []string
	for range 3 {
		x := newAgent(tn.ID)
		x.CreatedAt = x.CreatedAt.Add(time.Duration(len(made)+1) * time.Millisecond)
		in(t, b, func(tx X) error { return tx.CreateAgent(ctx, x) })
		made = append(made, x.ID)
	}
	in(t, b, func(tx X) error {
		all, err := tx.ListAgents(ctx, tn.ID, "", 0)
		require.NoError(t, err)
		require.Len(t, all, 4)
		assert.Equal(t, a.ID, all[0].ID)
		page, err := tx.ListAgents(ctx, tn.ID, made[0], 1)
		require.NoError(t, err)
		require.Len(t, page, 1)
		assert.Equal(t, made[1], page[0].ID)
		none, err := tx.ListAgents(ctx, other.ID, "", 10)
		require.NoError(t, err)
		assert.Empty(t, none)
		return nil
	})
}

func testAuthzJTI[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	use := func(ns, jti string, exp time.Time) error {
		return b.InTx(ctx, func(tx X) error { return tx.UseJTI(ctx, ns, jti, exp) })
	}
	require.NoError(t, use("client_assertion", "j1", time.Now().Add(time.Minute)))
	require.ErrorIs(t, use("client_assertion", "j1", time.Now().Add(time.Minute)), store.ErrConflict)
	require.NoError(t, use("dpop", "j1", time.Now().Add(time.Minute)), "namespaces are separate")
	require.NoError(t, use("dpop", "old", time.Now().Add(-time.Second)))
	require.NoError(t, use("dpop", "old", time.Now().Add(time.Minute)), "an expired record is taken over")

	// Racing uses of one jti: exactly one wins.
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if use("dpop", "race", time.Now().Add(time.Minute)) == nil {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, int32(1), wins.Load())
}

func testAuthzTokens[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	tn := MakeTenant(t, b)
	mk := func(kind, sig, req string, exp time.Time) *authz.TokenSession {
		return &authz.TokenSession{Kind: kind, Signature: sig, RequestID: req, ClientID: "agt_1", TenantID: tn.ID, Active: true,
			Data: json.RawMessage(`{"id":"` + req + `"}`), CreatedAt: now(), ExpiresAt: exp.UTC().Truncate(time.Microsecond)}
	}
	live := time.Now().Add(time.Hour)
	for _, s := range []*authz.TokenSession{
		mk(authz.KindAccess, "at1", "fam", live), mk(authz.KindAccess, "at2", "fam", live),
		mk(authz.KindAccess, "at-old", "fam", time.Now().Add(-time.Hour)), mk(authz.KindRefresh, "rt1", "fam", live),
		mk(authz.KindAccess, "lone", "other", live),
	} {
		in(t, b, func(tx X) error { return tx.CreateTokenSession(ctx, s) })
	}
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.CreateTokenSession(ctx, mk(authz.KindAccess, "at1", "x", live)) }), store.ErrConflict)
	in(t, b, func(tx X) error {
		got, err := tx.GetTokenSession(ctx, authz.KindRefresh, "rt1")
		require.NoError(t, err)
		assert.True(t, got.Active)
		assert.JSONEq(t, `{"id":"fam"}`, string(got.Data))
		_, err = tx.GetTokenSession(ctx, authz.KindAccess, "rt1")
		require.ErrorIs(t, err, store.ErrNotFound, "kinds are separate")
		return nil
	})

	// Rotation: the first deactivation wins, the second conflicts.
	in(t, b, func(tx X) error { return tx.DeactivateTokenSession(ctx, authz.KindRefresh, "rt1") })
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.DeactivateTokenSession(ctx, authz.KindRefresh, "rt1") }), store.ErrConflict)
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.DeactivateTokenSession(ctx, authz.KindRefresh, "nope") }), store.ErrNotFound)

	// The family: everything goes inactive, live access tokens are returned.
	in(t, b, func(tx X) error {
		got, err := tx.DeactivateTokenFamily(ctx, "fam", time.Now())
		require.NoError(t, err)
		var sigs []string
		for _, s := range got {
			sigs = append(sigs, s.Signature)
		}
		assert.Equal(t, []string{"at1", "at2"}, sigs)
		s, err := tx.GetTokenSession(ctx, authz.KindAccess, "at1")
		require.NoError(t, err)
		assert.False(t, s.Active)
		s, err = tx.GetTokenSession(ctx, authz.KindAccess, "lone")
		require.NoError(t, err)
		assert.True(t, s.Active, "other families untouched")
		return tx.DeleteTokenSession(ctx, authz.KindRefresh, "rt1")
	})
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { _, err := tx.GetTokenSession(ctx, authz.KindRefresh, "rt1"); return err }), store.ErrNotFound)

	// Pruning removes expired rows only.
	in(t, b, func(tx X) error {
		n, err := tx.PruneAuthz(ctx, time.Now())
		require.NoError(t, err)
		assert.GreaterOrEqual(t, n, 1)
		_, err = tx.GetTokenSession(ctx, authz.KindAccess, "at-old")
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = tx.GetTokenSession(ctx, authz.KindAccess, "at1")
		return err
	})
}

func testAuthzRevocations[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	tn := MakeTenant(t, b)
	is := func(jti, client, tenant string) string {
		var what string
		in(t, b, func(tx X) error {
			var err error
			what, err = tx.IsRevoked(ctx, jti, client, tenant)
			return err
		})
		return what
	}
	rev := func(r *authz.Revocation) { in(t, b, func(tx X) error { return tx.Revoke(ctx, r) }) }
	assert.Equal(t, "", is("jti1", "agt_1", tn.ID))
	past := time.Now().Add(-time.Minute).UTC()
	rev(&authz.Revocation{Kind: authz.RevokedToken, ID: "jti1", TenantID: tn.ID, Reason: "revoked", RevokedAt: now(), ExpiresAt: &past})
	assert.Equal(t, authz.RevokedToken, is("jti1", "agt_1", tn.ID))
	assert.Equal(t, "", is("jti2", "agt_1", tn.ID))
	assert.Equal(t, "", is("", "agt_1", tn.ID), "empty arguments are not checked")

	rev(&authz.Revocation{Kind: authz.RevokedAgent, ID: "agt_1", TenantID: tn.ID, Reason: "suspended", RevokedAt: now()})
	assert.Equal(t, authz.RevokedAgent, is("jti2", "agt_1", tn.ID))
	in(t, b, func(tx X) error { return tx.Unrevoke(ctx, authz.RevokedAgent, "agt_1") })
	assert.Equal(t, "", is("jti2", "agt_1", tn.ID))

	// A suspension is upgraded to a revocation, never the other way.
	rev(&authz.Revocation{Kind: authz.RevokedAgent, ID: "agt_2", TenantID: tn.ID, Reason: "suspended", RevokedAt: now()})
	rev(&authz.Revocation{Kind: authz.RevokedAgent, ID: "agt_2", TenantID: tn.ID, Reason: "revoked", RevokedAt: now()})
	rev(&authz.Revocation{Kind: authz.RevokedAgent, ID: "agt_2", TenantID: tn.ID, Reason: "suspended", RevokedAt: now()})
	assert.Equal(t, authz.RevokedAgent, is("", "agt_2", ""))

	// The tenant: by record, or by its status in accounts.
	other := MakeTenant(t, b)
	rev(&authz.Revocation{Kind: authz.RevokedTenant, ID: other.ID, TenantID: other.ID, Reason: "revoked", RevokedAt: now()})
	assert.Equal(t, authz.RevokedTenant, is("jti9", "agt_9", other.ID))
	in(t, b, func(tx X) error {
		tn.Status = accounts.TenantRevoked
		return tx.UpdateTenant(ctx, tn)
	})
	assert.Equal(t, authz.RevokedTenant, is("", "", tn.ID))

	// Expired token revocations are pruned; agent revocations stay.
	in(t, b, func(tx X) error { _, err := tx.PruneAuthz(ctx, time.Now()); return err })
	assert.Equal(t, "", is("jti1", "", ""))
	assert.Equal(t, authz.RevokedAgent, is("", "agt_2", ""))
}

func testAuthzSigningKeys[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	k1 := &authz.SigningKey{KID: "k1", Alg: "ES256", PublicJWK: json.RawMessage(`{"kty":"EC","kid":"k1"}`), PrivateEnc: []byte{1, 2},
		KEKID: "kek", CreatedAt: now().Add(-time.Hour)}
	k2 := &authz.SigningKey{KID: "k2", Alg: "EdDSA", PublicJWK: json.RawMessage(`{"kty":"OKP","kid":"k2"}`), PrivateEnc: []byte{3},
		KEKID: "kek", CreatedAt: now()}
	in(t, b, func(tx X) error {
		require.NoError(t, tx.LockSigningKeys(ctx))
		require.NoError(t, tx.CreateSigningKey(ctx, k1))
		return tx.CreateSigningKey(ctx, k2)
	})
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.CreateSigningKey(ctx, k1) }), store.ErrConflict)
	ret, exp := now(), now().Add(time.Hour)
	k1.RetiredAt, k1.ExpiresAt = &ret, &exp
	in(t, b, func(tx X) error { return tx.UpdateSigningKey(ctx, k1) })
	in(t, b, func(tx X) error {
		keys, err := tx.ListSigningKeys(ctx)
		require.NoError(t, err)
		require.Len(t, keys, 2)
		assert.Equal(t, "k2", keys[0].KID, "newest first")
		assert.Nil(t, keys[0].RetiredAt)
		require.NotNil(t, keys[1].RetiredAt)
		assert.True(t, keys[1].ExpiresAt.Equal(exp))
		assert.Equal(t, []byte{1, 2}, keys[1].PrivateEnc)
		assert.JSONEq(t, `{"kty":"EC","kid":"k1"}`, string(keys[1].PublicJWK))
		return nil
	})
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.UpdateSigningKey(ctx, &authz.SigningKey{KID: "nope"}) }), store.ErrNotFound)
	in(t, b, func(tx X) error { return tx.NotifyAuthz(ctx, "keys") })

	// Pruning deletes a key; an unknown one is no error.
	in(t, b, func(tx X) error {
		require.NoError(t, tx.DeleteSigningKey(ctx, "k1"))
		require.NoError(t, tx.DeleteSigningKey(ctx, "nope"))
		keys, err := tx.ListSigningKeys(ctx)
		require.NoError(t, err)
		require.Len(t, keys, 1)
		assert.Equal(t, "k2", keys[0].KID)
		return nil
	})
}

func testAuthzDelegations[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	tn := MakeTenant(t, b)
	other := MakeTenant(t, b)
	jti1, jti2 := ids.New("jti"), ids.New("jti")
	d := &authz.Delegation{TenantID: tn.ID, GrantKey: "mdt_child", DelegatedFrom: []string{jti1, jti2}, CreatedAt: now()}
	in(t, b, func(tx X) error {
		require.NoError(t, tx.LockTokenFamily(ctx, jti2))
		return tx.RecordDelegation(ctx, d)
	})
	// The first record is the lineage: a second one for the grant is ignored.
	in(t, b, func(tx X) error {
		return tx.RecordDelegation(ctx, &authz.Delegation{TenantID: tn.ID, GrantKey: "mdt_child", DelegatedFrom: []string{"other"}, CreatedAt: now()})
	})
	in(t, b, func(tx X) error {
		got, err := tx.GetDelegation(ctx, tn.ID, "mdt_child")
		require.NoError(t, err)
		assert.Equal(t, []string{jti1, jti2}, got.DelegatedFrom)
		assert.True(t, d.CreatedAt.Equal(got.CreatedAt))
		_, err = tx.GetDelegation(ctx, other.ID, "mdt_child")
		require.ErrorIs(t, err, store.ErrNotFound, "per tenant")
		for jti, want := range map[string]bool{jti1: true, jti2: true, "other": false, ids.New("jti"): false} {
			got, err := tx.DelegatedFrom(ctx, jti)
			require.NoError(t, err)
			assert.Equal(t, want, got, jti)
		}
		return nil
	})
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error {
		return tx.RecordDelegation(ctx, &authz.Delegation{TenantID: "ten_missing", GrantKey: "g", DelegatedFrom: []string{}, CreatedAt: now()})
	}), store.ErrNotFound)
	// Delegations outlive pruning.
	in(t, b, func(tx X) error { _, err := tx.PruneAuthz(ctx, time.Now().Add(time.Hour)); return err })
	in(t, b, func(tx X) error { _, err := tx.GetDelegation(ctx, tn.ID, "mdt_child"); return err })
}

func testAuthzRollback[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	tn := MakeTenant(t, b)
	a := newAgent(tn.ID)
	err := b.InTx(ctx, func(tx X) error {
		require.NoError(t, tx.CreateAgent(ctx, a))
		require.NoError(t, tx.UseJTI(ctx, "dpop", "rb", time.Now().Add(time.Minute)))
		require.NoError(t, tx.Revoke(ctx, &authz.Revocation{Kind: authz.RevokedAgent, ID: a.ID, TenantID: tn.ID, Reason: "revoked", RevokedAt: now()}))
		return errBoom
	})
	require.ErrorIs(t, err, errBoom)
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { _, err := tx.GetAgent(ctx, a.ID); return err }), store.ErrNotFound)
	in(t, b, func(tx X) error { return tx.UseJTI(ctx, "dpop", "rb", time.Now().Add(time.Minute)) })
	in(t, b, func(tx X) error {
		what, err := tx.IsRevoked(ctx, "", a.ID, "")
		assert.Equal(t, "", what)
		return err
	})
}
