package server_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/authz"
)

// agentKey is an agent's private key for private_key_jwt.
type agentKey struct {
	priv *ecdsa.PrivateKey
	kid  string
}

func newAgentKey(t testing.TB) *agentKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return &agentKey{priv: k, kid: "k-" + randID()}
}

func randID() string {
	b := make([]byte, 9)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (k *agentKey) jwks() json.RawMessage {
	b, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.priv.PublicKey, KeyID: k.kid, Algorithm: "ES256", Use: "sig"}}})
	return b
}

// assertion signs a client assertion for clientID with audience aud.
func (k *agentKey) assertion(t testing.TB, clientID, aud string, edit func(map[string]any)) string {
	now := time.Now()
	claims := map[string]any{"iss": clientID, "sub": clientID, "aud": aud, "jti": randID(),
		"iat": now.Unix(), "exp": now.Add(60 * time.Second).Unix()}
	if edit != nil {
		edit(claims)
	}
	return signJWS(t, k.priv, k.kid, "", claims)
}

func signJWS(t testing.TB, priv crypto.Signer, kid, typ string, claims any) string {
	opts := &jose.SignerOptions{}
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	key := jose.JSONWebKey{Key: priv, KeyID: kid}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, opts)
	require.NoError(t, err)
	payload, _ := json.Marshal(claims)
	jws, err := s.Sign(payload)
	require.NoError(t, err)
	out, err := jws.CompactSerialize()
	require.NoError(t, err)
	return lowS(t, out)
}

// lowS puts a P-256 JWS signature in low-S form (s ≤ n/2), as the server
// requires: go-jose, like WebCrypto, leaves s as the signing made it.
func lowS(t testing.TB, compact string) string {
	p := strings.Split(compact, ".")
	sig, err := base64.RawURLEncoding.DecodeString(p[2])
	require.NoError(t, err)
	require.Len(t, sig, 64)
	n := elliptic.P256().Params().N
	s := new(big.Int).SetBytes(sig[32:])
	if s.Cmp(new(big.Int).Rsh(n, 1)) > 0 {
		s.Sub(n, s).FillBytes(sig[32:])
	}
	p[2] = base64.RawURLEncoding.EncodeToString(sig)
	return strings.Join(p, ".")
}

// dpopKey signs DPoP proofs.
type dpopKey struct{ priv *ecdsa.PrivateKey }

func newDPoPKey(t testing.TB) *dpopKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return &dpopKey{k}
}

func (d *dpopKey) jkt(t testing.TB) string {
	jwk := jose.JSONWebKey{Key: &d.priv.PublicKey}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	require.NoError(t, err)
	return base64.RawURLEncoding.EncodeToString(tp)
}

// proof makes a DPoP proof for method and u, bound to accessToken when set.
func (d *dpopKey) proof(t testing.TB, method, u, accessToken string) string {
	return d.proofWith(t, method, u, accessToken, nil)
}

// proofWith is proof with its claims edited before signing.
func (d *dpopKey) proofWith(t testing.TB, method, u, accessToken string, edit func(map[string]any)) string {
	claims := map[string]any{"jti": randID(), "htm": method, "htu": u, "iat": time.Now().Unix()}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		claims["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	if edit != nil {
		edit(claims)
	}
	opts := (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt")
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: d.priv}, opts)
	require.NoError(t, err)
	payload, _ := json.Marshal(claims)
	jws, err := s.Sign(payload)
	require.NoError(t, err)
	out, err := jws.CompactSerialize()
	require.NoError(t, err)
	return lowS(t, out)
}

// createAgent registers an agent and returns its client id and secret.
func createAgent(t testing.TB, n *apptest.Node, key string, body map[string]any) (string, string) {
	t.Helper()
	r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents", Key: key, Body: body})
	require.Equal(t, 201, r.Status, string(r.Body))
	secret, _ := r.JSON["client_secret"].(string)
	return r.JSON["id"].(string), secret
}

func secretAgent(t testing.TB, n *apptest.Node, key string, extra map[string]any) (string, string) {
	body := map[string]any{"name": "secret agent", "token_endpoint_auth_method": "client_secret_basic"}
	for k, v := range extra {
		body[k] = v
	}
	return createAgent(t, n, key, body)
}

func jwtAgent(t testing.TB, n *apptest.Node, key string, extra map[string]any) (string, *agentKey) {
	k := newAgentKey(t)
	body := map[string]any{"name": "jwt agent", "token_endpoint_auth_method": "private_key_jwt", "jwks": k.jwks(),
		"grant_types": []string{authz.GrantClientCredentials, authz.GrantTokenExchange}}
	for kk, v := range extra {
		body[kk] = v
	}
	id, _ := createAgent(t, n, key, body)
	return id, k
}

// issuer returns the node's issuer URL.
func issuer(n *apptest.Node) string { return n.App.Issuer.Options().Issuer }

// secretToken gets a token with the stock clientcredentials client.
func secretToken(t testing.TB, n *apptest.Node, id, secret string, scopes ...string) *oauth2.Token {
	t.Helper()
	cfg := clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: n.URL + "/oauth2/token",
		Scopes: scopes, AuthStyle: oauth2.AuthStyleInHeader}
	tok, err := cfg.Token(context.Background())
	require.NoError(t, err)
	return tok
}

// jwtToken gets a token with the stock client and a private_key_jwt assertion.
func jwtToken(t testing.TB, n *apptest.Node, id string, k *agentKey, params url.Values) (*oauth2.Token, error) {
	ep := url.Values{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion": {k.assertion(t, id, issuer(n)+"/oauth2/token", nil)}}
	for kk, v := range params {
		ep[kk] = v
	}
	cfg := clientcredentials.Config{ClientID: id, TokenURL: n.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams,
		EndpointParams: ep}
	return cfg.Token(context.Background())
}

// form posts a form and decodes the JSON answer.
type formReq struct {
	path   string
	form   url.Values
	basic  [2]string
	bearer string
	header map[string]string
}

func postForm(t testing.TB, n *apptest.Node, fr formReq) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest("POST", n.URL+fr.path, strings.NewReader(fr.form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if fr.basic[0] != "" {
		req.SetBasicAuth(url.QueryEscape(fr.basic[0]), url.QueryEscape(fr.basic[1]))
	}
	if fr.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+fr.bearer)
	}
	for k, v := range fr.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out, resp.Header
}

// exchange trades subject for a token of the agent (id, k).
func exchange(t testing.TB, n *apptest.Node, id string, k *agentKey, subject string, extra url.Values, header map[string]string) (int, map[string]any) {
	f := url.Values{
		"grant_type":            {authz.GrantTokenExchange},
		"subject_token":         {subject},
		"subject_token_type":    {authz.TokenTypeAccessToken},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {k.assertion(t, id, issuer(n)+"/oauth2/token", nil)},
	}
	for kk, v := range extra {
		f[kk] = v
	}
	st, body, _ := postForm(t, n, formReq{path: "/oauth2/token", form: f, header: header})
	return st, body
}

// claims decodes a JWT's payload without verifying it (tests only).
func claims(t testing.TB, tok string) map[string]any {
	parts := strings.Split(tok, ".")
	require.Len(t, parts, 3)
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}

func header(t testing.TB, tok string) map[string]any {
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}
