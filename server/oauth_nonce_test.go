package server_test

import (
	"fmt"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/app/apptest"
)

// With issuer.dpop_nonce set, a resource endpoint refuses a DPoP proof
// without the server's nonce as RFC 9449 §9 says: 401 use_dpop_nonce, the
// DPoP-Nonce header and a WWW-Authenticate challenge; the retry with the
// nonce goes through.
func TestResourceEndpointDPoPNonce(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver, func(c *app.Config) { c.Issuer.DPoPNonce = true })
		s := newShop(t, n)
		m := s.mandate(t, nil)
		dk := newDPoPKey(t)
		tokenURL := n.URL + "/oauth2/token"
		form := url.Values{"grant_type": {"client_credentials"}, "scope": {"charges:write"},
			"authorization_details": {fmt.Sprintf(`[{"type":"payment_mandate","mandate_id":%q}]`, m)}}

		// The token endpoint asks for its nonce first.
		st, body, hdr := postForm(t, n, formReq{path: "/oauth2/token", basic: [2]string{s.agent, s.secret}, form: form,
			header: map[string]string{"DPoP": dk.proof(t, "POST", tokenURL, "")}})
		require.Equal(t, 400, st, body)
		require.Equal(t, "use_dpop_nonce", body["error"])
		nonce := hdr.Get("DPoP-Nonce")
		require.NotEmpty(t, nonce)
		withNonce := func(c map[string]any) { c["nonce"] = nonce }
		st, body, _ = postForm(t, n, formReq{path: "/oauth2/token", basic: [2]string{s.agent, s.secret}, form: form,
			header: map[string]string{"DPoP": dk.proofWith(t, "POST", tokenURL, "", withNonce)}})
		require.Equal(t, 200, st, body)
		tok := body["access_token"].(string)

		charge := func(proof string) *apptest.Response {
			return n.Do(t, apptest.Req{Method: "POST", Path: "/v1/charges", Body: map[string]any{
				"amount": 1000, "currency": "USD", "payment_method": s.card, "merchant": s.merchant, "description": "a book"},
				Header: map[string]string{"Authorization": "DPoP " + tok, "DPoP": proof, "Idempotency-Key": "nonce-" + randID()}})
		}
		chargesURL := n.URL + "/v1/charges"
		r := charge(dk.proof(t, "POST", chargesURL, tok))
		require.Equal(t, 401, r.Status, string(r.Body))
		assert.Equal(t, "use_dpop_nonce", r.ErrorCode())
		assert.Equal(t, "authentication_error", r.ErrorType())
		assert.NotEmpty(t, r.Header.Get("DPoP-Nonce"))
		assert.Contains(t, r.Header.Get("WWW-Authenticate"), `error="use_dpop_nonce"`)
		assert.Contains(t, r.Header.Get("WWW-Authenticate"), "DPoP ")

		r = charge(dk.proofWith(t, "POST", chargesURL, tok, func(c map[string]any) { c["nonce"] = "forged" }))
		assert.Equal(t, 401, r.Status, string(r.Body))
		assert.Equal(t, "use_dpop_nonce", r.ErrorCode())

		nonce = r.Header.Get("DPoP-Nonce")
		r = charge(dk.proofWith(t, "POST", chargesURL, tok, withNonce))
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, "succeeded", r.JSON["status"])
	})
}
