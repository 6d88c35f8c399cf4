package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/compliance"
)

// pinnedKeys fetches the published audit and issuer keys, as a verifier
// keeps them.
func pinnedKeys(t *testing.T, n *apptest.Node) (compliance.VerifyKeys, jose.JSONWebKeySet) {
	t.Helper()
	r := n.Do(t, apptest.Req{Method: "GET", Path: "/.well-known/audit-jwks.json"})
	require.Equal(t, 200, r.Status, string(r.Body))
	aks, err := audit.ParseKeySet(r.Body)
	require.NoError(t, err)
	var auditSet jose.JSONWebKeySet
	require.NoError(t, json.Unmarshal(r.Body, &auditSet))
	r = n.Do(t, apptest.Req{Method: "GET", Path: authz.PathJWKS})
	require.Equal(t, 200, r.Status, string(r.Body))
	var iks jose.JSONWebKeySet
	require.NoError(t, json.Unmarshal(r.Body, &iks))
	return compliance.VerifyKeys{Audit: aks, Issuer: &iks}, auditSet
}

// TestEvidenceBundle: a delegated agent charge's bundle verifies offline
// against the published keys, its signatures verify with plain go-jose,
// and changing any one byte makes verification fail.
func TestEvidenceBundle(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		ctx := context.Background()
		s := newShop(t, n)
		m := s.mandate(t, map[string]any{"approval_threshold": 5000})
		tokA := s.token(t, m)
		bID, bSecret := secretAgent(t, n, s.key, map[string]any{
			"grant_types": []string{authz.GrantClientCredentials, authz.GrantTokenExchange}, "scopes": []string{"charges:write"}})
		narrow := fmt.Sprintf(`[{"type":"payment_mandate","currency":"USD","budget":2000,"max_amount_per_charge":1500,"approval_threshold":1500,"payment_methods":[%q],"allowed_merchants":[%q]}]`, s.card, s.merchant)
		code, body, _ := postForm(t, n, formReq{path: "/oauth2/token", basic: [2]string{bID, bSecret}, form: url.Values{
			"grant_type": {authz.GrantTokenExchange}, "subject_token": {tokA}, "subject_token_type": {authz.TokenTypeAccessToken},
			"scope": {"charges:write"}, "authorization_details": {narrow}}})
		require.Equal(t, 200, code, body)
		r := s.charge(t, body["access_token"].(string), 1200, nil, "")
		require.Equal(t, 200, r.Status, string(r.Body))
		ch := r.JSON["id"].(string)
		aud := auditorKey(t, n, s.key)

		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/charges/" + ch + "/evidence", Key: aud})
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, "application/jose", r.Header.Get("Content-Type"))
		bundle := string(r.Body)
		assert.NotContains(t, bundle, "4242424242424242")

		keys, auditSet := pinnedKeys(t, n)
		v, b, err := compliance.VerifyBundle(ctx, bundle, keys)
		require.NoError(t, err)
		assert.Equal(t, ch, v.Charge)
		assert.Equal(t, "allow", v.Result)
		assert.Equal(t, 2, v.Mandates, "the root and the delegated mandate")
		assert.True(t, v.KeysPinned)
		assert.GreaterOrEqual(t, v.AuditEntries, 2)
		assert.Contains(t, string(b.TokenClaims), bID)
		assert.NotContains(t, string(b.TokenClaims), bSecret)
		_, _, err = compliance.VerifyBundle(ctx, bundle, compliance.VerifyKeys{})
		require.NoError(t, err, "with the keys the bundle carries")

		// Stock go-jose, our published keys: the bundle, its checkpoint
		// and its signed mandates.
		jws, err := jose.ParseSignedCompact(bundle, []jose.SignatureAlgorithm{jose.EdDSA})
		require.NoError(t, err)
		kid := jws.Signatures[0].Header.KeyID
		require.NotEmpty(t, auditSet.Key(kid))
		payload, err := jws.Verify(auditSet.Key(kid)[0])
		require.NoError(t, err)
		var doc map[string]any
		require.NoError(t, json.Unmarshal(payload, &doc))
		assert.Equal(t, "evidence_bundle", doc["object"])
		cp, err := jose.ParseSignedCompact(b.Audit.Checkpoint, []jose.SignatureAlgorithm{jose.EdDSA})
		require.NoError(t, err)
		_, err = cp.Verify(auditSet.Key(cp.Signatures[0].Header.KeyID)[0])
		require.NoError(t, err)
		for _, mj := range b.MandateChain {
			mjws, err := jose.ParseSignedCompact(mj, []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA})
			require.NoError(t, err)
			_, err = mjws.Verify(keys.Issuer.Key(mjws.Signatures[0].Header.KeyID)[0])
			require.NoError(t, err)
		}

		// Any one byte changed fails: every byte of the header and the
		// signature, a spread of the payload's.
		step := max(1, len(bundle)/1500)
		for i := 0; i < len(bundle); i++ {
			inPayload := i > len(bundle)/20 && i < len(bundle)-120
			if inPayload && i%step != 0 {
				continue
			}
			for _, c := range []byte{'A', '.', 'x'} {
				if bundle[i] == c {
					continue
				}
				bad := []byte(bundle)
				bad[i] = c
				_, _, err := compliance.VerifyBundle(ctx, string(bad), keys)
				require.Error(t, err, "byte %d changed to %q still verifies", i, c)
				break
			}
		}

		// Another tenant's auditor sees nothing; a charge without a
		// mandate has no decision to prove.
		other := newShop(t, n)
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/charges/" + ch + "/evidence", Key: auditorKey(t, n, other.key)})
		assert.Equal(t, 404, r.Status, string(r.Body))
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/charges", Key: s.key,
			Body: map[string]any{"amount": 500, "currency": "usd", "payment_method": s.card}})
		require.Equal(t, 200, r.Status, string(r.Body))
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/charges/" + r.JSON["id"].(string) + "/evidence", Key: aud})
		assert.Equal(t, 400, r.Status, string(r.Body))
		assert.Equal(t, "charge_without_mandate", r.ErrorCode())

		// The decisions replay as recorded.
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/decisions/replay?since=2020-01-01T00:00:00Z&until=2020-01-31T00:00:00Z", Key: aud})
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Zero(t, r.JSON["checked"])
		since := b.Decision.Created.Add(-1e9).UTC().Format("2006-01-02T15:04:05Z")
		until := b.Decision.Created.Add(3600e9).UTC().Format("2006-01-02T15:04:05Z")
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/decisions/replay?since=" + since + "&until=" + until, Key: aud})
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, 1.0, r.JSON["checked"])
		assert.Empty(t, r.JSON["differences"])
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/decisions/replay?since=2020-01-01T00:00:00Z&until=2021-01-01T00:00:00Z", Key: aud})
		assert.Equal(t, 400, r.Status, string(r.Body))
	})
}
