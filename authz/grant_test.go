package authz_test

import (
	"context"
	"encoding/json"
	"net/url"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/authz"
)

// grantDetail is a detail type with live state: grants by name, each
// active or not, delegated through some agents.
type grantDetail struct {
	mu     sync.Mutex
	grants map[string]*authz.GrantState
}

func (g *grantDetail) set(name string, st authz.GrantState) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.grants[name] = &st
}

func (g *grantDetail) register(r *authz.DetailTypeRegistry) {
	type elem struct {
		Type  string `json:"type"`
		Grant string `json:"grant"`
	}
	r.Register("test_grant", authz.DetailType{
		Validate: func(_ context.Context, _ authz.DetailContext, raw json.RawMessage) (json.RawMessage, error) {
			var e elem
			if err := authz.StrictDecode(raw, &e); err != nil {
				return nil, err
			}
			return json.Marshal(e)
		},
		State: func(_ context.Context, _ string, raw json.RawMessage) (*authz.GrantState, error) {
			var e elem
			if err := json.Unmarshal(raw, &e); err != nil {
				return nil, err
			}
			g.mu.Lock()
			defer g.mu.Unlock()
			st, ok := g.grants[e.Grant]
			if !ok {
				return &authz.GrantState{}, nil
			}
			c := *st
			return &c, nil
		},
	})
}

// Introspection tells the truth about the grant behind a token, and a
// client_credentials token for a delegated grant carries the delegation's
// act chain, so the delegators' revocation reaches it.
func TestGrantStateAtIntrospectionAndClientCredentials(t *testing.T) {
	g := &grantDetail{grants: map[string]*authz.GrantState{}}
	e := newEnv(t, func(o *authz.Options) { g.register(o.Details) })
	ctx := context.Background()
	aID, _ := e.secretAgent(authz.AgentInput{})
	bID, _ := e.secretAgent(authz.AgentInput{})
	cID, cSecret := e.secretAgent(authz.AgentInput{})
	caller := authz.Caller{TenantID: e.tenant}
	details := func(grant string) url.Values {
		return url.Values{"authorization_details": {`[{"type":"test_grant","grant":"` + grant + `"}]`}}
	}

	g.set("root", authz.GrantState{Active: true, Extra: map[string]any{"remaining_budget": int64(700), "active": "no"}})
	tok := e.accessToken(e.iss, cID, cSecret, details("root"))
	_, c, _ := parts(tok)
	assert.Equal(t, cID, c["sub"])
	assert.Nil(t, c["act"], "a grant made directly has no chain")
	in, err := e.iss.Introspect(ctx, caller, tok, "")
	require.NoError(t, err)
	assert.Equal(t, true, in["active"], "an extension member never overrides a standard one")
	assert.Equal(t, int64(700), in["remaining_budget"])

	g.set("root", authz.GrantState{Active: false})
	in, err = e.iss.Introspect(ctx, caller, tok, "")
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"active": false}, in, "the grant was revoked")

	// A grant C holds by delegation from B, who holds it from A.
	g.set("child", authz.GrantState{Active: true, Delegators: []string{bID, aID}})
	tok = e.accessToken(e.iss, cID, cSecret, details("child"))
	_, c, _ = parts(tok)
	assert.Equal(t, aID, c["sub"], "the subject is the root grant's agent")
	assert.Equal(t, map[string]any{"sub": cID, "act": map[string]any{"sub": bID}}, c["act"])
	_, err = e.iss.Verify(ctx, tok)
	require.NoError(t, err)
	_, err = e.iss.SuspendAgent(ctx, e.tenant, aID)
	require.NoError(t, err)
	_, err = e.iss.Verify(ctx, tok)
	var te *authz.TokenError
	require.ErrorAs(t, err, &te, "the delegator's suspension reaches the token")
	assert.Equal(t, authz.RevokedAgent, te.Revoked)
	form := details("child")
	form.Set("grant_type", "client_credentials")
	st, body, _ := token(t, e.iss, cID, cSecret, form, nil)
	assert.Equal(t, 400, st, "no new token while a delegator is suspended: %v", body)
	assert.Equal(t, "invalid_grant", body["error"])
	var at authz.AccessToken
	raw, _ := json.Marshal(c)
	require.NoError(t, json.Unmarshal(raw, &at))
	var what string
	require.NoError(t, e.db.InTx(ctx, func(tx authz.Tx) error {
		what, err = authz.CheckRevoked(ctx, tx, &at)
		return err
	}))
	assert.Equal(t, authz.RevokedAgent, what)
}

// A refresh token is inactive at introspection once its grant is.
func TestRefreshIntrospectionFollowsGrant(t *testing.T) {
	g := &grantDetail{grants: map[string]*authz.GrantState{}}
	e := newEnv(t, func(o *authz.Options) { g.register(o.Details) })
	ctx := context.Background()
	id, secret := e.secretAgent(authz.AgentInput{GrantTypes: []string{authz.GrantClientCredentials, authz.GrantRefreshToken},
		Scopes: []string{"charges:write", authz.ScopeOfflineAccess}})
	g.set("root", authz.GrantState{Active: true})
	st, body, _ := token(t, e.iss, id, secret, url.Values{"grant_type": {"client_credentials"}, "scope": {"charges:write offline_access"},
		"authorization_details": {`[{"type":"test_grant","grant":"root"}]`}}, nil)
	require.Equal(t, 200, st, body)
	rt := body["refresh_token"].(string)
	caller := authz.Caller{TenantID: e.tenant}
	in, err := e.iss.Introspect(ctx, caller, rt, "")
	require.NoError(t, err)
	assert.Equal(t, true, in["active"])
	g.set("root", authz.GrantState{Active: false})
	in, err = e.iss.Introspect(ctx, caller, rt, "")
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"active": false}, in)
}

// A refresh token whose grant ended, or whose delegator was suspended,
// gets no new access token.
func TestRefreshFollowsGrantAndDelegators(t *testing.T) {
	g := &grantDetail{grants: map[string]*authz.GrantState{}}
	e := newEnv(t, func(o *authz.Options) { g.register(o.Details) })
	ctx := context.Background()
	aID, _ := e.secretAgent(authz.AgentInput{})
	id, secret := e.secretAgent(authz.AgentInput{GrantTypes: []string{authz.GrantClientCredentials, authz.GrantRefreshToken},
		Scopes: []string{"charges:write", authz.ScopeOfflineAccess}})
	refresh := func(rt string) (int, map[string]any) {
		st, body, _ := token(t, e.iss, id, secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, nil)
		return st, body
	}
	grant := func(name string) string {
		st, body, _ := token(t, e.iss, id, secret, url.Values{"grant_type": {"client_credentials"}, "scope": {"charges:write offline_access"},
			"authorization_details": {`[{"type":"test_grant","grant":"` + name + `"}]`}}, nil)
		require.Equal(t, 200, st, body)
		return body["refresh_token"].(string)
	}

	g.set("root", authz.GrantState{Active: true})
	rt := grant("root")
	st, body := refresh(rt)
	require.Equal(t, 200, st, body)
	g.set("root", authz.GrantState{Active: false})
	st, body = refresh(body["refresh_token"].(string))
	assert.Equal(t, 400, st, body)
	assert.Equal(t, "invalid_grant", body["error"])

	g.set("child", authz.GrantState{Active: true, Delegators: []string{aID}})
	rt = grant("child")
	_, err := e.iss.SuspendAgent(ctx, e.tenant, aID)
	require.NoError(t, err)
	st, body = refresh(rt)
	assert.Equal(t, 400, st, body)
	assert.Equal(t, "invalid_grant", body["error"])
}
