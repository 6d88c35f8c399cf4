package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/server"
)

func TestDiscovery(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		r := n.Do(t, apptest.Req{Method: "GET", Path: "/.well-known/oauth-authorization-server"})
		require.Equal(t, 200, r.Status)
		iss := issuer(n)
		assert.Equal(t, iss, r.JSON["issuer"])
		assert.Equal(t, iss+"/oauth2/token", r.JSON["token_endpoint"])
		assert.Equal(t, iss+"/.well-known/jwks.json", r.JSON["jwks_uri"])
		assert.Equal(t, []any{"S256"}, r.JSON["code_challenge_methods_supported"])
		assert.Contains(t, r.JSON["grant_types_supported"], authz.GrantTokenExchange)
		assert.Contains(t, r.JSON["dpop_signing_alg_values_supported"], "ES256")
		assert.Contains(t, r.JSON["token_endpoint_auth_methods_supported"], "private_key_jwt")
		assert.NotNil(t, r.JSON["authorization_details_types_supported"])
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/.well-known/jwks.json"})
		require.Equal(t, 200, r.Status)
		var set struct{ Keys []map[string]any }
		require.NoError(t, json.Unmarshal(r.Body, &set))
		require.Len(t, set.Keys, 1)
		assert.Equal(t, "ES256", set.Keys[0]["alg"])
		assert.Nil(t, set.Keys[0]["d"], "no private part")
	})
}

func TestClientCredentials(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		b, key := n.Tenant(t)

		// client_secret_basic with the stock client.
		id, secret := secretAgent(t, n, key, nil)
		tok := secretToken(t, n, id, secret, "charges:write")
		assert.Equal(t, "Bearer", tok.TokenType)
		h := header(t, tok.AccessToken)
		assert.Equal(t, "at+jwt", h["typ"])
		assert.Equal(t, "ES256", h["alg"])
		assert.Equal(t, n.App.Issuer.CurrentKeyID(), h["kid"])
		c := claims(t, tok.AccessToken)
		assert.Equal(t, issuer(n), c["iss"])
		assert.Equal(t, id, c["sub"])
		assert.Equal(t, id, c["client_id"])
		assert.Equal(t, b.Tenant.ID, c["tenant_id"])
		assert.Equal(t, []any{issuer(n)}, c["aud"])
		assert.Equal(t, "charges:write", c["scope"])
		assert.Equal(t, float64(300), c["exp"].(float64)-c["iat"].(float64))
		assert.NotEmpty(t, c["jti"])
		at, err := n.App.Issuer.Verify(context.Background(), tok.AccessToken)
		require.NoError(t, err)
		assert.Equal(t, id, at.ClientID)

		// Without scope the agent's scopes are granted.
		tok = secretToken(t, n, id, secret)
		assert.Equal(t, "charges:read charges:write mandates:read", claims(t, tok.AccessToken)["scope"])

		// Wrong secret, unknown scope, secret in the body.
		st, body, _ := postForm(t, n, formReq{path: "/oauth2/token", basic: [2]string{id, "nope"}, form: url.Values{"grant_type": {"client_credentials"}}})
		assert.Equal(t, 401, st)
		assert.Equal(t, "invalid_client", body["error"])
		st, body, _ = postForm(t, n, formReq{path: "/oauth2/token", basic: [2]string{id, secret}, form: url.Values{"grant_type": {"client_credentials"}, "scope": {"audit:read"}}})
		assert.Equal(t, 400, st)
		assert.Equal(t, "invalid_scope", body["error"])
		st, body, _ = postForm(t, n, formReq{path: "/oauth2/token", form: url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}})
		assert.Equal(t, 401, st)
		assert.Equal(t, "invalid_client", body["error"])
		st, body, _ = postForm(t, n, formReq{path: "/oauth2/token", basic: [2]string{id, secret}, form: url.Values{"grant_type": {"password"}}})
		assert.Equal(t, 400, st, body)

		// private_key_jwt with the stock client.
		jid, k := jwtAgent(t, n, key, nil)
		jt, err := jwtToken(t, n, jid, k, nil)
		require.NoError(t, err)
		assert.Equal(t, jid, claims(t, jt.AccessToken)["client_id"])

		// Assertions: replayed jti, wrong aud, too long, expired, wrong iss.
		assertion := k.assertion(t, jid, issuer(n)+"/oauth2/token", nil)
		post := func(a string) (int, map[string]any) {
			st, body, _ := postForm(t, n, formReq{path: "/oauth2/token", form: url.Values{"grant_type": {"client_credentials"},
				"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}})
			return st, body
		}
		st, _ = post(assertion)
		require.Equal(t, 200, st)
		st, body = post(assertion)
		assert.Equal(t, 401, st, "replayed client assertion")
		assert.Equal(t, "invalid_client", body["error"], body)
		assert.Contains(t, body["error_description"], "replay")
		for name, edit := range map[string]func(map[string]any){
			"audience": func(c map[string]any) { c["aud"] = "https://elsewhere.example/token" },
			"lifetime": func(c map[string]any) { c["exp"] = time.Now().Add(time.Hour).Unix() },
			"expired": func(c map[string]any) {
				c["iat"], c["exp"] = time.Now().Add(-5*time.Minute).Unix(), time.Now().Add(-2*time.Minute).Unix()
			},
			"iss":       func(c map[string]any) { c["iss"] = "someone" },
			"no jti":    func(c map[string]any) { delete(c, "jti") },
			"other key": nil,
		} {
			a := k.assertion(t, jid, issuer(n), edit)
			if edit == nil {
				a = newAgentKey(t).assertion(t, jid, issuer(n), nil)
			}
			st, body := post(a)
			assert.Equal(t, 401, st, name)
			assert.Equal(t, "invalid_client", body["error"], name)
		}
		// The issuer itself is an accepted audience.
		st, _ = post(k.assertion(t, jid, issuer(n), nil))
		assert.Equal(t, 200, st)
	})
}

func TestRefreshRotationAndReuse(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		_, key := n.Tenant(t)
		id, secret := secretAgent(t, n, key, map[string]any{
			"grant_types": []string{"client_credentials", "refresh_token"},
			"scopes":      []string{"charges:read", "offline_access"},
		})
		tok := secretToken(t, n, id, secret, "charges:read", "offline_access")
		rt1 := tok.RefreshToken
		require.True(t, strings.HasPrefix(rt1, "ppr_"))

		refresh := func(rt string) (int, map[string]any) {
			st, body, _ := postForm(t, n, formReq{path: "/oauth2/token", basic: [2]string{id, secret},
				form: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}})
			return st, body
		}
		st, body := refresh(rt1)
		require.Equal(t, 200, st, body)
		rt2 := body["refresh_token"].(string)
		at2 := body["access_token"].(string)
		assert.NotEqual(t, rt1, rt2)
		assert.Equal(t, "charges:read offline_access", claims(t, at2)["scope"])
		assert.Equal(t, true, introspect(t, n, key, at2)["active"])
		assert.Equal(t, true, introspect(t, n, key, rt2)["active"])
		assert.Equal(t, false, introspect(t, n, key, rt1)["active"], "rotated")

		// Reusing the spent token revokes the family: rt2 and at2 die.
		st, body = refresh(rt1)
		assert.Equal(t, 400, st)
		assert.Equal(t, "invalid_grant", body["error"])
		st, _ = refresh(rt2)
		assert.Equal(t, 400, st)
		assert.Equal(t, false, introspect(t, n, key, at2)["active"])
		_, err := n.App.Issuer.Verify(context.Background(), at2)
		require.Error(t, err)

		// Another agent cannot use the family's tokens.
		tok = secretToken(t, n, id, secret, "charges:read", "offline_access")
		id2, secret2 := secretAgent(t, n, key, map[string]any{"grant_types": []string{"client_credentials", "refresh_token"}})
		st, _, _ = postForm(t, n, formReq{path: "/oauth2/token", basic: [2]string{id2, secret2},
			form: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}})
		assert.Equal(t, 400, st)

		// Racing uses of one refresh token: TestRefreshRaceOverHTTP and
		// authz's TestRefreshRaceRevokesFamily.

		// offline_access without the refresh grant is refused.
		id3, secret3 := secretAgent(t, n, key, map[string]any{"scopes": []string{"charges:read", "offline_access"}})
		st, body, _ = postForm(t, n, formReq{path: "/oauth2/token", basic: [2]string{id3, secret3},
			form: url.Values{"grant_type": {"client_credentials"}, "scope": {"offline_access"}}})
		assert.Equal(t, 400, st)
		assert.Equal(t, "invalid_scope", body["error"])
	})
}

func TestTokenExchangeChain(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		_, key := n.Tenant(t)
		_, otherKey := n.Tenant(t)
		aID, aKey := jwtAgent(t, n, key, map[string]any{"audiences": []string{"https://shop.example"}})
		bID, bKey := jwtAgent(t, n, key, nil)
		cID, cKey := jwtAgent(t, n, key, nil)
		dID, dKey := jwtAgent(t, n, key, nil)
		eID, eKey := jwtAgent(t, n, key, nil)
		strangerID, strangerKey := jwtAgent(t, n, otherKey, nil)

		a, err := jwtToken(t, n, aID, aKey, url.Values{"scope": {"charges:read charges:write"}, "audience": {issuer(n) + " https://shop.example"}})
		require.NoError(t, err)

		// A → B.
		st, body := exchange(t, n, bID, bKey, a.AccessToken, url.Values{"scope": {"charges:write"}}, nil)
		require.Equal(t, 200, st, body)
		assert.Equal(t, authz.TokenTypeAccessToken, body["issued_token_type"])
		b := body["access_token"].(string)
		bc := claims(t, b)
		assert.Equal(t, aID, bc["sub"], "the subject stays A")
		assert.Equal(t, bID, bc["client_id"])
		assert.Equal(t, map[string]any{"sub": bID}, bc["act"])
		assert.Equal(t, "charges:write", bc["scope"])
		assert.LessOrEqual(t, bc["exp"].(float64), claims(t, a.AccessToken)["exp"].(float64))

		// B → C: newest actor outermost.
		st, body = exchange(t, n, cID, cKey, b, url.Values{"audience": {issuer(n)}}, nil)
		require.Equal(t, 200, st, body)
		c := body["access_token"].(string)
		assert.Equal(t, map[string]any{"sub": cID, "act": map[string]any{"sub": bID}}, claims(t, c)["act"])
		assert.Equal(t, []any{issuer(n)}, claims(t, c)["aud"])
		at, err := n.App.Issuer.Verify(context.Background(), c)
		require.NoError(t, err)
		assert.Equal(t, []string{cID, bID}, at.Act.Chain())

		// C → D is depth 3, the limit; D → E is refused.
		st, body = exchange(t, n, dID, dKey, c, nil, nil)
		require.Equal(t, 200, st, body)
		d := body["access_token"].(string)
		st, body = exchange(t, n, eID, eKey, d, nil, nil)
		assert.Equal(t, 400, st)
		assert.Equal(t, "invalid_request", body["error"])
		assert.Contains(t, body["error_description"], "delegation chain")

		// Widening is refused: scope, audience.
		st, body = exchange(t, n, cID, cKey, b, url.Values{"scope": {"charges:read"}}, nil)
		assert.Equal(t, 400, st)
		assert.Equal(t, "invalid_scope", body["error"])
		st, body = exchange(t, n, cID, cKey, c, url.Values{"audience": {"https://shop.example"}}, nil)
		assert.Equal(t, 400, st)
		assert.Equal(t, "invalid_target", body["error"])
		st, body = exchange(t, n, cID, cKey, b, url.Values{"resource": {"https://evil.example"}}, nil)
		assert.Equal(t, 400, st)
		assert.Equal(t, "invalid_target", body["error"])

		// Bad inputs.
		st, body = exchange(t, n, bID, bKey, "not-a-token", nil, nil)
		assert.Equal(t, 400, st)
		assert.Equal(t, "invalid_request", body["error"])
		st, body = exchange(t, n, bID, bKey, a.AccessToken, url.Values{"subject_token_type": {"urn:ietf:params:oauth:token-type:saml2"}}, nil)
		assert.Equal(t, 400, st)
		assert.Equal(t, "invalid_request", body["error"])
		st, _ = exchange(t, n, strangerID, strangerKey, a.AccessToken, nil, nil)
		assert.Equal(t, 400, st, "another tenant's agent")
		// actor_token must be the caller's own.
		st, _ = exchange(t, n, bID, bKey, a.AccessToken, url.Values{"actor_token": {c}, "actor_token_type": {authz.TokenTypeAccessToken}}, nil)
		assert.Equal(t, 400, st)
		bOwn, err := jwtToken(t, n, bID, bKey, nil)
		require.NoError(t, err)
		st, body = exchange(t, n, bID, bKey, a.AccessToken, url.Values{"actor_token": {bOwn.AccessToken}, "actor_token_type": {authz.TokenTypeAccessToken}}, nil)
		assert.Equal(t, 200, st, body)

		// may_act names who may exchange.
		m, err := jwtToken(t, n, aID, aKey, url.Values{"may_act": {`{"sub":"` + bID + `"}`}})
		require.NoError(t, err)
		st, _ = exchange(t, n, cID, cKey, m.AccessToken, nil, nil)
		assert.Equal(t, 400, st)
		st, body = exchange(t, n, bID, bKey, m.AccessToken, nil, nil)
		assert.Equal(t, 200, st, body)

		// Revoking an agent in the chain kills the delegated tokens.
		r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents/" + bID + "/revoke", Key: key})
		require.Equal(t, 200, r.Status)
		_, err = n.App.Issuer.Verify(context.Background(), c)
		require.Error(t, err)
		assert.Equal(t, false, introspect(t, n, key, c)["active"])
		st, _ = exchange(t, n, dID, dKey, c, nil, nil)
		assert.Equal(t, 400, st)
	})
}

func TestDPoPBinding(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		_, key := n.Tenant(t)
		id, secret := secretAgent(t, n, key, nil)
		dk := newDPoPKey(t)
		tokenURL := n.URL + "/oauth2/token"
		form := url.Values{"grant_type": {"client_credentials"}}

		st, body, _ := postForm(t, n, formReq{path: "/oauth2/token", basic: [2]string{id, secret}, form: form,
			header: map[string]string{"DPoP": dk.proof(t, "POST", tokenURL, "")}})
		require.Equal(t, 200, st, body)
		assert.Equal(t, "DPoP", body["token_type"])
		tok := body["access_token"].(string)
		assert.Equal(t, map[string]any{"jkt": dk.jkt(t)}, claims(t, tok)["cnf"])

		// A replayed proof, a proof for another URL or method are refused.
		p := dk.proof(t, "POST", tokenURL, "")
		st, _, _ = postForm(t, n, formReq{path: "/oauth2/token", basic: [2]string{id, secret}, form: form, header: map[string]string{"DPoP": p}})
		require.Equal(t, 200, st)
		st, body, _ = postForm(t, n, formReq{path: "/oauth2/token", basic: [2]string{id, secret}, form: form, header: map[string]string{"DPoP": p}})
		assert.Equal(t, 400, st)
		assert.Equal(t, "invalid_dpop_proof", body["error"])
		st, _, _ = postForm(t, n, formReq{path: "/oauth2/token", basic: [2]string{id, secret}, form: form,
			header: map[string]string{"DPoP": dk.proof(t, "POST", n.URL+"/elsewhere", "")}})
		assert.Equal(t, 400, st)
		st, _, _ = postForm(t, n, formReq{path: "/oauth2/token", basic: [2]string{id, secret}, form: form,
			header: map[string]string{"DPoP": dk.proof(t, "GET", tokenURL, "")}})
		assert.Equal(t, 400, st)

		// At a resource endpoint: the one verification function.
		auth := server.NewAgentAuthenticator(n.App.Issuer)
		resURL := "https://api.perfectpay.test/v1/charges"
		req := func(proof string) *http.Request {
			r := httptest.NewRequest("POST", resURL, nil)
			if proof != "" {
				r.Header.Set("DPoP", proof)
			}
			return r
		}
		proof := dk.proof(t, "POST", resURL, tok)
		pr, err := auth.AuthenticateAgent(req(proof), "dpop", tok)
		require.NoError(t, err)
		assert.Equal(t, id, pr.CredentialID)
		require.NotNil(t, pr.Agent)
		assert.Equal(t, id, pr.Agent.ClientID)
		_, err = auth.AuthenticateAgent(req(proof), "dpop", tok)
		assert.ErrorContains(t, err, "already used", "replayed proof")
		_, err = auth.AuthenticateAgent(req(""), "dpop", tok)
		assert.Error(t, err, "no proof")
		_, err = auth.AuthenticateAgent(req(dk.proof(t, "POST", resURL, tok)), "bearer", tok)
		assert.Error(t, err, "bound token as bearer")
		other := newDPoPKey(t)
		_, err = auth.AuthenticateAgent(req(other.proof(t, "POST", resURL, tok)), "dpop", tok)
		assert.ErrorContains(t, err, "not bound")
		_, err = auth.AuthenticateAgent(req(dk.proof(t, "POST", resURL, "another token")), "dpop", tok)
		assert.ErrorContains(t, err, "ath")
		_, err = auth.AuthenticateAgent(req(dk.proof(t, "GET", resURL, tok)), "dpop", tok)
		assert.ErrorContains(t, err, "htm")

		// A plain bearer token works as Bearer, not as DPoP.
		plain := secretToken(t, n, id, secret)
		_, err = auth.AuthenticateAgent(req(""), "bearer", plain.AccessToken)
		require.NoError(t, err)
		_, err = auth.AuthenticateAgent(req(dk.proof(t, "POST", resURL, plain.AccessToken)), "dpop", plain.AccessToken)
		assert.Error(t, err)

		// Introspection shows the binding.
		in := introspect(t, n, key, tok)
		assert.Equal(t, "DPoP", in["token_type"])
		assert.Equal(t, map[string]any{"jkt": dk.jkt(t)}, in["cnf"])
	})
}

func TestIntrospectionAndRevocation(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		_, key := n.Tenant(t)
		_, otherKey := n.Tenant(t)
		id, secret := secretAgent(t, n, key, nil)
		id2, secret2 := secretAgent(t, n, key, nil)
		tok := secretToken(t, n, id, secret, "charges:write")

		in := introspect(t, n, key, tok.AccessToken)
		assert.Equal(t, true, in["active"])
		assert.Equal(t, id, in["client_id"])
		assert.Equal(t, "charges:write", in["scope"])
		assert.Equal(t, "Bearer", in["token_type"])
		assert.Equal(t, false, introspect(t, n, otherKey, tok.AccessToken)["active"], "another tenant sees nothing")
		assert.Equal(t, false, introspect(t, n, key, "garbage")["active"])

		// Agents authenticate as at the token endpoint and see their own tokens.
		st, body, _ := postForm(t, n, formReq{path: "/oauth2/introspect", basic: [2]string{id, secret}, form: url.Values{"token": {tok.AccessToken}}})
		require.Equal(t, 200, st)
		assert.Equal(t, true, body["active"])
		st, body, _ = postForm(t, n, formReq{path: "/oauth2/introspect", basic: [2]string{id2, secret2}, form: url.Values{"token": {tok.AccessToken}}})
		require.Equal(t, 200, st)
		assert.Equal(t, false, body["active"], "another agent's token")
		st, body, _ = postForm(t, n, formReq{path: "/oauth2/introspect", form: url.Values{"token": {tok.AccessToken}}})
		assert.Equal(t, 401, st)
		assert.Equal(t, "invalid_client", body["error"])
		st, _, _ = postForm(t, n, formReq{path: "/oauth2/introspect", bearer: key})
		assert.Equal(t, 400, st)

		// Another agent cannot revoke it; the owner can.
		st, _, _ = postForm(t, n, formReq{path: "/oauth2/revoke", basic: [2]string{id2, secret2}, form: url.Values{"token": {tok.AccessToken}}})
		assert.Equal(t, 200, st)
		assert.Equal(t, true, introspect(t, n, key, tok.AccessToken)["active"])
		st, _, _ = postForm(t, n, formReq{path: "/oauth2/revoke", basic: [2]string{id, secret}, form: url.Values{"token": {tok.AccessToken}}})
		assert.Equal(t, 200, st)
		assert.Equal(t, false, introspect(t, n, key, tok.AccessToken)["active"])
		at := claims(t, tok.AccessToken)
		what, err := n.App.Issuer.IsRevoked(context.Background(), at["jti"].(string), id, at["tenant_id"].(string))
		require.NoError(t, err)
		assert.Equal(t, authz.RevokedToken, what)

		// The tenant revokes with its key; unknown tokens are fine (RFC 7009).
		tok2 := secretToken(t, n, id2, secret2)
		st, _, _ = postForm(t, n, formReq{path: "/oauth2/revoke", bearer: key, form: url.Values{"token": {tok2.AccessToken}}})
		assert.Equal(t, 200, st)
		assert.Equal(t, false, introspect(t, n, key, tok2.AccessToken)["active"])
		st, _, _ = postForm(t, n, formReq{path: "/oauth2/revoke", bearer: key, form: url.Values{"token": {"nothing"}}})
		assert.Equal(t, 200, st)

		// A whole tenant.
		tok3 := secretToken(t, n, id2, secret2)
		require.NoError(t, n.App.Issuer.RevokeTenant(context.Background(), at["tenant_id"].(string)))
		assert.Equal(t, false, introspect(t, n, key, tok3.AccessToken)["active"])
	})
}

func TestKeyRotationWhileTokensLive(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		_, key := n.Tenant(t)
		id, secret := secretAgent(t, n, key, nil)
		old := secretToken(t, n, id, secret)
		oldKid := header(t, old.AccessToken)["kid"]

		kid, err := n.App.Issuer.RotateSigningKey(context.Background())
		require.NoError(t, err)
		require.NotEqual(t, oldKid, kid)
		fresh := secretToken(t, n, id, secret)
		assert.Equal(t, kid, header(t, fresh.AccessToken)["kid"])

		for _, tok := range []string{old.AccessToken, fresh.AccessToken} {
			_, err := n.App.Issuer.Verify(context.Background(), tok)
			require.NoError(t, err)
			assert.Equal(t, true, introspect(t, n, key, tok)["active"])
		}
		r := n.Do(t, apptest.Req{Method: "GET", Path: "/.well-known/jwks.json"})
		var set struct{ Keys []map[string]any }
		require.NoError(t, json.Unmarshal(r.Body, &set))
		kids := []any{}
		for _, k := range set.Keys {
			kids = append(kids, k["kid"])
		}
		assert.ElementsMatch(t, []any{oldKid, kid}, kids)
	})
}

// A second node on the same database verifies the first node's tokens,
// signs with keys the first rotated in, and sees its token revocations
// (LISTEN/NOTIFY drops its caches).
func TestTwoNodesShareKeysAndRevocations(t *testing.T) {
	url1 := ""
	n1 := apptest.New(t, "postgres", func(c *app.Config) { url1 = c.Store.Postgres.URL })
	n2 := apptest.NewWithURL(t, "postgres", url1)
	_, key := n1.Tenant(t)
	id, secret := secretAgent(t, n1, key, nil)
	tok := secretToken(t, n1, id, secret)
	assert.Equal(t, true, introspect(t, n2, key, tok.AccessToken)["active"])

	kid, err := n1.App.Issuer.RotateSigningKey(context.Background())
	require.NoError(t, err)
	require.Eventually(t, func() bool { return n2.App.Issuer.CurrentKeyID() == kid || secretTokenKid(t, n2, id, secret) == kid },
		5*time.Second, 20*time.Millisecond)

	st, _, _ := postForm(t, n1, formReq{path: "/oauth2/revoke", bearer: key, form: url.Values{"token": {tok.AccessToken}}})
	require.Equal(t, 200, st)
	assert.Equal(t, false, introspect(t, n2, key, tok.AccessToken)["active"])

	// A DPoP proof used on one node is a replay on the other.
	dk := newDPoPKey(t)
	dform := url.Values{"grant_type": {"client_credentials"}}
	proof := dk.proof(t, "POST", issuer(n1)+"/oauth2/token", "")
	st, body, _ := postForm(t, n1, formReq{path: "/oauth2/token", basic: [2]string{id, secret}, form: dform, header: map[string]string{"DPoP": proof}})
	require.Equal(t, 200, st, body)
	st, body, _ = postForm(t, n2, formReq{path: "/oauth2/token", basic: [2]string{id, secret}, form: dform, header: map[string]string{"DPoP": proof}})
	assert.Equal(t, 400, st)
	assert.Equal(t, "invalid_dpop_proof", body["error"])
	// An agent revoked on one node: TestAgentRevokedAcrossNodes.
}

func secretTokenKid(t testing.TB, n *apptest.Node, id, secret string) any {
	return header(t, secretToken(t, n, id, secret).AccessToken)["kid"]
}
