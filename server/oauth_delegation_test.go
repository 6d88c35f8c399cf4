package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/store/memory"
	"github.com/perfectpay/perfectpay/store/postgres"
)

// dpopJWTToken gets a DPoP-bound client_credentials token for a
// private_key_jwt agent.
func dpopJWTToken(t testing.TB, n *apptest.Node, id string, k *agentKey, dk *dpopKey) string {
	t.Helper()
	f := url.Values{"grant_type": {"client_credentials"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {k.assertion(t, id, issuer(n)+"/oauth2/token", nil)}}
	st, body, _ := postForm(t, n, formReq{path: "/oauth2/token", form: f,
		header: map[string]string{"DPoP": dk.proof(t, "POST", n.URL+"/oauth2/token", "")}})
	require.Equal(t, 200, st, body)
	require.Equal(t, "DPoP", body["token_type"])
	return body["access_token"].(string)
}

// consent is the holder's consent to one exchange: a DPoP-style JWT signed
// with the key the subject token is bound to, naming the actor (sub) and
// the subject token (ath), for the token endpoint.
func (d *dpopKey) consent(t testing.TB, n *apptest.Node, subject, actor string, edit func(map[string]any)) string {
	return d.proofWith(t, "POST", n.URL+"/oauth2/token", subject, func(c map[string]any) {
		c["sub"] = actor
		if edit != nil {
			edit(c)
		}
	})
}

// A DPoP-bound token keeps its binding through token exchange: with no
// proof from the holder's key (nor the holder's consent) the exchange is
// refused, whoever asks; the issued token is bound to the proof's key.
func TestExchangeKeepsDPoPBinding(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		_, key := n.Tenant(t)
		aID, aKey := jwtAgent(t, n, key, nil)
		bID, bKey := jwtAgent(t, n, key, nil)
		cID, _ := jwtAgent(t, n, key, nil)
		dkA, dkB := newDPoPKey(t), newDPoPKey(t)
		tokenURL := n.URL + "/oauth2/token"
		subject := dpopJWTToken(t, n, aID, aKey, dkA)
		proofB := func() map[string]string { return map[string]string{"DPoP": dkB.proof(t, "POST", tokenURL, "")} }
		jwtActor := func(consent string) url.Values {
			return url.Values{"actor_token": {consent}, "actor_token_type": {authz.TokenTypeJWT}}
		}

		// Refused: no proof at all (another agent, or the holder itself).
		st, body := exchange(t, n, bID, bKey, subject, nil, nil)
		assert.Equal(t, 400, st, body)
		assert.Equal(t, "invalid_request", body["error"])
		assert.Contains(t, body["error_description"], "DPoP-bound")
		st, body = exchange(t, n, aID, aKey, subject, nil, nil)
		assert.Equal(t, 400, st, body)
		// Refused: B's own proof without the holder's consent.
		st, body = exchange(t, n, bID, bKey, subject, nil, proofB())
		assert.Equal(t, 400, st, body)
		assert.Equal(t, "invalid_request", body["error"])

		// The holder's key proves possession: the new token is bound to it.
		st, body = exchange(t, n, aID, aKey, subject, nil, map[string]string{"DPoP": dkA.proof(t, "POST", tokenURL, "")})
		require.Equal(t, 200, st, body)
		assert.Equal(t, "DPoP", body["token_type"])
		assert.Equal(t, map[string]any{"jkt": dkA.jkt(t)}, claims(t, body["access_token"].(string))["cnf"])

		// Consent refusal paths: signed by another key, naming another
		// actor, for another subject token, for another endpoint, without
		// B's own proof (the binding must survive), replayed.
		other := newDPoPKey(t)
		refused := map[string]struct {
			consent string
			header  map[string]string
		}{
			"other key":       {other.consent(t, n, subject, bID, nil), proofB()},
			"other actor":     {dkA.consent(t, n, subject, cID, nil), proofB()},
			"no actor":        {dkA.proofWith(t, "POST", tokenURL, subject, nil), proofB()},
			"other subject":   {dkA.consent(t, n, "another token", bID, nil), proofB()},
			"other endpoint":  {dkA.consent(t, n, subject, bID, func(c map[string]any) { c["htu"] = n.URL + "/v1/charges" }), proofB()},
			"no proof from B": {dkA.consent(t, n, subject, bID, nil), nil},
		}
		for name, r := range refused {
			st, body := exchange(t, n, bID, bKey, subject, jwtActor(r.consent), r.header)
			assert.Equal(t, 400, st, "%s: %v", name, body)
			assert.Equal(t, "invalid_request", body["error"], name)
		}

		// The holder's consent and B's proof: bound to B's key.
		consent := dkA.consent(t, n, subject, bID, nil)
		st, body = exchange(t, n, bID, bKey, subject, jwtActor(consent), proofB())
		require.Equal(t, 200, st, body)
		assert.Equal(t, "DPoP", body["token_type"])
		bc := claims(t, body["access_token"].(string))
		assert.Equal(t, map[string]any{"jkt": dkB.jkt(t)}, bc["cnf"])
		assert.Equal(t, map[string]any{"sub": bID}, bc["act"])
		st, body = exchange(t, n, bID, bKey, subject, jwtActor(consent), proofB())
		assert.Equal(t, 400, st, "a consent is single-use: %v", body)

		// An unbound subject token needs neither; a proof binds the result.
		plain, err := jwtToken(t, n, aID, aKey, nil)
		require.NoError(t, err)
		st, body = exchange(t, n, bID, bKey, plain.AccessToken, nil, nil)
		require.Equal(t, 200, st, body)
		assert.Equal(t, "Bearer", body["token_type"])
		st, body = exchange(t, n, bID, bKey, plain.AccessToken, nil, proofB())
		require.Equal(t, 200, st, body)
		assert.Equal(t, map[string]any{"jkt": dkB.jkt(t)}, claims(t, body["access_token"].(string))["cnf"])
	})
}

// Tokens derived by exchange form a family: revoking a token (RFC 7009)
// stops every token exchanged from it, directly or further down, and
// nothing above it; suspending a delegator stops the tokens delegated
// through it.
func TestExchangeFamilyRevocation(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		_, key := n.Tenant(t)
		aID, aKey := jwtAgent(t, n, key, nil)
		bID, bKey := jwtAgent(t, n, key, nil)
		cID, cKey := jwtAgent(t, n, key, nil)
		family := func() (string, string, string) {
			a, err := jwtToken(t, n, aID, aKey, nil)
			require.NoError(t, err)
			st, body := exchange(t, n, bID, bKey, a.AccessToken, nil, nil)
			require.Equal(t, 200, st, body)
			b := body["access_token"].(string)
			st, body = exchange(t, n, cID, cKey, b, nil, nil)
			require.Equal(t, 200, st, body)
			return a.AccessToken, b, body["access_token"].(string)
		}
		active := func(tok string) bool { return introspect(t, n, key, tok)["active"] == true }
		revoke := func(tok string) {
			st, _, _ := postForm(t, n, formReq{path: "/oauth2/revoke", bearer: key, form: url.Values{"token": {tok}}})
			require.Equal(t, 200, st)
		}

		a, b, c := family()
		assert.Equal(t, []any{claims(t, a)["jti"], claims(t, b)["jti"]}, claims(t, c)["delegated_from"])
		revoke(a)
		for name, tok := range map[string]string{"a": a, "b": b, "c": c} {
			assert.False(t, active(tok), name)
			_, err := n.App.Issuer.Verify(context.Background(), tok)
			var te *authz.TokenError
			require.ErrorAs(t, err, &te, name)
			assert.Equal(t, authz.RevokedToken, te.Revoked, name)
			assert.Equal(t, authz.RevokedToken, checkRevoked(t, n, tok), name)
		}
		st, body := exchange(t, n, cID, cKey, b, nil, nil)
		assert.Equal(t, 400, st, "a revoked family is not exchanged again: %v", body)

		// Revoking the middle token stops its descendants only.
		a, b, c = family()
		revoke(b)
		assert.True(t, active(a))
		assert.False(t, active(b))
		assert.False(t, active(c))

		// Suspending the delegator stops the tokens delegated through it.
		a, b, c = family()
		r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents/" + aID + "/suspend", Key: key})
		require.Equal(t, 200, r.Status, string(r.Body))
		for name, tok := range map[string]string{"a": a, "b": b, "c": c} {
			assert.False(t, active(tok), name)
			assert.Equal(t, authz.RevokedAgent, checkRevoked(t, n, tok), name)
		}
	})
}

// checkRevoked runs the charge transaction's revocation check on tok's
// claims, on the node's own store.
func checkRevoked(t testing.TB, n *apptest.Node, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	require.Len(t, parts, 3)
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	var at authz.AccessToken
	require.NoError(t, json.Unmarshal(payload, &at))
	ctx := context.Background()
	var what string
	check := func(r authz.Revocations) error {
		var err error
		what, err = authz.CheckRevoked(ctx, r, &at)
		return err
	}
	if n.App.Postgres != nil {
		require.NoError(t, n.App.Postgres.InTx(ctx, func(tx *postgres.Tx) error { return check(tx) }))
	} else {
		require.NoError(t, n.App.Memory.InTx(ctx, func(tx *memory.Tx) error { return check(tx) }))
	}
	return what
}

// A family revoked on one node is refused on the other at once.
func TestExchangeFamilyRevocationAcrossNodes(t *testing.T) {
	url1 := ""
	n1 := apptest.New(t, "postgres", func(c *app.Config) { url1 = c.Store.Postgres.URL })
	n2 := apptest.NewWithURL(t, "postgres", url1)
	_, key := n1.Tenant(t)
	aID, aKey := jwtAgent(t, n1, key, nil)
	bID, bKey := jwtAgent(t, n1, key, nil)
	a, err := jwtToken(t, n1, aID, aKey, nil)
	require.NoError(t, err)
	st, body := exchange(t, n2, bID, bKey, a.AccessToken, nil, nil)
	require.Equal(t, 200, st, body)
	b := body["access_token"].(string)
	_, err = n2.App.Issuer.Verify(context.Background(), b) // cached as live on n2
	require.NoError(t, err)

	st, _, _ = postForm(t, n1, formReq{path: "/oauth2/revoke", bearer: key, form: url.Values{"token": {a.AccessToken}}})
	require.Equal(t, 200, st)
	assert.Equal(t, authz.RevokedToken, checkRevoked(t, n2, b), "the charge transaction reads the committed row")
	require.Eventually(t, func() bool {
		_, err := n2.App.Issuer.Verify(context.Background(), b)
		return err != nil
	}, 10*time.Second, 10*time.Millisecond, "n2 drops its cache on the notification")
	assert.Equal(t, false, introspect(t, n2, key, b)["active"])
}
