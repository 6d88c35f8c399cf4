package mcpserver_test

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dpopProof signs an RFC 9449 proof for method and u with key, bound to
// the access token when given.
func dpopProof(t *testing.T, key ed25519.PrivateKey, method, u, accessToken string) string {
	t.Helper()
	claims := map[string]any{"jti": fmt.Sprint(time.Now().UnixNano()), "htm": method, "htu": u, "iat": time.Now().Unix()}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		claims["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: key}, (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	require.NoError(t, err)
	payload, _ := json.Marshal(claims)
	jws, err := s.Sign(payload)
	require.NoError(t, err)
	out, err := jws.CompactSerialize()
	require.NoError(t, err)
	return out
}

// TestDPoPAtMCP: a DPoP-bound token for the MCP resource works at /mcp
// with a proof for POST /mcp, and is refused without one or as a Bearer
// token.
func TestDPoPAtMCP(t *testing.T) {
	w := newWorld(t, "memory")
	mid := w.mandate(t)
	_, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	jwk := jose.JSONWebKey{Key: key.Public()}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	require.NoError(t, err)

	tokenURL := w.n.URL + "/oauth2/token"
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"mandates:read"},
		"resource":              {w.n.App.Issuer.Options().Issuer + "/mcp"},
		"authorization_details": {fmt.Sprintf(`[{"type":"payment_mandate","mandate_id":%q}]`, mid)}}
	req, _ := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("DPoP", dpopProof(t, key, http.MethodPost, tokenURL, ""))
	req.SetBasicAuth(w.a, w.aSec)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode, body)
	require.Equal(t, "DPoP", body["token_type"])
	tok := body["access_token"].(string)
	cnf := claimsOf(t, tok)["cnf"].(map[string]any)
	require.Equal(t, base64.RawURLEncoding.EncodeToString(tp), cnf["jkt"])

	mcpURL := w.n.URL + "/mcp"
	call := func(scheme string, proof bool) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, mcpURL, strings.NewReader(
			`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_mandate","arguments":{}}}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
		req.Header.Set("Authorization", scheme+" "+tok)
		if proof {
			req.Header.Set("DPoP", dpopProof(t, key, http.MethodPost, mcpURL, tok))
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		return resp
	}
	resp = call("DPoP", true)
	var rpc struct {
		Result struct {
			IsError           bool           `json:"isError"`
			StructuredContent map[string]any `json:"structuredContent"`
		} `json:"result"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&rpc))
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	assert.False(t, rpc.Result.IsError)
	assert.Equal(t, mid, rpc.Result.StructuredContent["id"])

	resp = call("DPoP", false)
	resp.Body.Close()
	assert.Equal(t, 401, resp.StatusCode, "no proof")
	assert.Contains(t, resp.Header.Get("WWW-Authenticate"), "resource_metadata=")
	resp = call("Bearer", false)
	resp.Body.Close()
	assert.Equal(t, 401, resp.StatusCode, "a DPoP-bound token sent as Bearer")
}

func claimsOf(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	require.Len(t, parts, 3)
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	out := map[string]any{}
	require.NoError(t, json.Unmarshal(b, &out))
	return out
}
