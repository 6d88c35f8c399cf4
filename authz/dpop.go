package authz

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/perfectpay/perfectpay/store"
)

// dpopAlgs is the allow-list for DPoP proofs: asymmetric algorithms only.
var dpopAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.ES512, jose.EdDSA, jose.PS256, jose.PS384, jose.PS512, jose.RS256}

// DPoPAlgs lists the accepted proof algorithms (for the metadata).
func DPoPAlgs() []string { return algNames(dpopAlgs) }

// DPoPProof is a verified proof.
type DPoPProof struct {
	// JKT is the SHA-256 JWK thumbprint of the proof's key, base64url.
	JKT string
	JTI string
	IAT time.Time
}

type dpopClaims struct {
	JTI   string `json:"jti"`
	HTM   string `json:"htm"`
	HTU   string `json:"htu"`
	IAT   int64  `json:"iat"`
	ATH   string `json:"ath"`
	Nonce string `json:"nonce"`
	// Sub names the actor in a holder's consent to a token exchange.
	Sub string `json:"sub"`
}

func dpopError(format string, args ...any) *TokenError {
	e := invalidToken(format, args...)
	e.Code = "invalid_dpop_proof"
	return e
}

// errUseNonce refuses a proof without a current server nonce when nonces
// are required; the caller sends DPoPNonce() in the DPoP-Nonce header.
var errUseNonce = &TokenError{Code: "use_dpop_nonce", Description: "The server requires a nonce in the DPoP proof: use the one in the DPoP-Nonce header."}

// VerifyDPoP checks a DPoP proof (RFC 9449 §4.3) for the request
// method and URL: typ dpop+jwt, an asymmetric algorithm from the
// allow-list, a public jwk in the header that verifies the signature,
// htm, htu (query and fragment ignored), iat within the window, the
// server nonce when required, ath when accessToken is given, and jti
// unused on every node (recorded in the store until the window passes).
// urls are the acceptable htu values (the request's own URL and the one
// under the configured public URL).
func (i *Issuer) VerifyDPoP(ctx context.Context, proof, method string, urls []string, accessToken string) (*DPoPProof, error) {
	p, _, err := i.verifyDPoP(ctx, proof, method, urls, accessToken)
	return p, err
}

// verifyDPoP is VerifyDPoP returning the proof's claims as well.
func (i *Issuer) verifyDPoP(ctx context.Context, proof, method string, urls []string, accessToken string) (*DPoPProof, *dpopClaims, error) {
	if proof == "" || len(proof) > 8<<10 || strings.Contains(proof, ",") {
		return nil, nil, dpopError("Exactly one DPoP proof is required.")
	}
	jws, err := jose.ParseSignedCompact(proof, dpopAlgs)
	if err != nil {
		return nil, nil, dpopError("The DPoP proof is not a JWS signed with an accepted asymmetric algorithm.")
	}
	if len(jws.Signatures) != 1 {
		return nil, nil, dpopError("The DPoP proof must carry one signature.")
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "dpop+jwt" {
		return nil, nil, dpopError("The DPoP proof's typ header must be dpop+jwt.")
	}
	jwk := h.JSONWebKey
	if jwk == nil || !jwk.Valid() || !jwk.IsPublic() {
		return nil, nil, dpopError("The DPoP proof must carry a public jwk header.")
	}
	if checkLowS(jws) != nil {
		return nil, nil, dpopError("The DPoP proof's ECDSA signature is not in low-S form (s > n/2).")
	}
	payload, err := jws.Verify(jwk)
	if err != nil {
		return nil, nil, dpopError("The DPoP proof's signature does not verify.")
	}
	var c dpopClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, nil, dpopError("The DPoP proof's claims are malformed.")
	}
	if c.JTI == "" || len(c.JTI) > 256 {
		return nil, nil, dpopError("The DPoP proof needs a jti.")
	}
	if c.HTM != method {
		return nil, nil, dpopError("The DPoP proof's htm does not match the request method.")
	}
	if !htuMatches(c.HTU, urls) {
		return nil, nil, dpopError("The DPoP proof's htu does not match the request URL.")
	}
	now := i.now()
	iat := time.Unix(c.IAT, 0)
	win := i.opt.DPoPWindow
	if c.IAT == 0 || iat.Before(now.Add(-win)) || iat.After(now.Add(clockSkew)) {
		return nil, nil, dpopError("The DPoP proof's iat is outside the accepted window.")
	}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		if subtle.ConstantTimeCompare([]byte(c.ATH), []byte(base64.RawURLEncoding.EncodeToString(sum[:]))) != 1 {
			return nil, nil, dpopError("The DPoP proof's ath does not match the access token.")
		}
	}
	if i.opt.DPoPNonce && !i.validNonce(c.Nonce, now) {
		return nil, nil, errUseNonce
	}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, nil, dpopError("The DPoP proof's key has no thumbprint.")
	}
	jkt := base64.RawURLEncoding.EncodeToString(tp)
	err = i.db.Autocommit(ctx, func(tx Tx) error {
		return tx.UseJTI(ctx, "dpop", jkt+":"+c.JTI, now.Add(win+clockSkew))
	})
	if errors.Is(err, store.ErrConflict) {
		return nil, nil, dpopError("The DPoP proof was already used (jti replay).")
	}
	if err != nil {
		return nil, nil, err
	}
	return &DPoPProof{JKT: jkt, JTI: c.JTI, IAT: iat}, &c, nil
}

func htuMatches(htu string, urls []string) bool {
	u, err := url.Parse(htu)
	if err != nil || u.Host == "" {
		return false
	}
	u.RawQuery, u.Fragment = "", ""
	got := strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host) + u.EscapedPath()
	for _, want := range urls {
		if got == want {
			return true
		}
	}
	return false
}

// RequestURLs are the htu values a proof for r may name: the URL the
// request reached (scheme from TLS, host from Host) and the same path under
// the configured public base URL.
func (i *Issuer) RequestURLs(r *http.Request) []string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	path := r.URL.EscapedPath()
	out := []string{scheme + "://" + strings.ToLower(r.Host) + path}
	if i.publicBase != "" {
		out = append(out, i.publicBase+path)
	}
	return out
}

// nonceWindow is how long a server nonce stays current; the previous
// window's nonce is accepted too.
const nonceWindow = 5 * time.Minute

// DPoPNonce returns the current server nonce. Nonces are stateless (an
// HMAC of the time window), so every node accepts every node's nonce.
func (i *Issuer) DPoPNonce() string {
	return i.nonceAt(i.now().Unix() / int64(nonceWindow/time.Second))
}

func (i *Issuer) nonceAt(win int64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(win))
	m := hmac.New(sha256.New, i.opt.Pepper)
	m.Write([]byte("dpop-nonce\x00"))
	m.Write(b[:])
	return base64.RawURLEncoding.EncodeToString(append(b[:], m.Sum(nil)[:16]...))
}

func (i *Issuer) validNonce(n string, now time.Time) bool {
	win := now.Unix() / int64(nonceWindow/time.Second)
	for _, w := range []int64{win, win - 1} {
		if hmac.Equal([]byte(n), []byte(i.nonceAt(w))) {
			return true
		}
	}
	return false
}

// VerifyRequest authenticates a resource request: the access token
// (Verify), and for DPoP-bound tokens or the DPoP scheme the proof in the
// DPoP header, bound to the token's cnf.jkt and its ath. scheme is the
// lower-case Authorization scheme ("bearer" or "dpop").
func (i *Issuer) VerifyRequest(ctx context.Context, r *http.Request, scheme, token string) (*AccessToken, error) {
	return i.verifyRequest(ctx, r, scheme, token, i.opt.Audience)
}

func (i *Issuer) verifyRequest(ctx context.Context, r *http.Request, scheme, token, resource string) (*AccessToken, error) {
	at, err := i.verifyFor(ctx, token, resource)
	if err != nil {
		return nil, err
	}
	proofs := r.Header.Values("DPoP")
	switch {
	case at.DPoPBound() && scheme != "dpop":
		return nil, invalidToken("This token is DPoP-bound: send it with the DPoP scheme and a proof.")
	case !at.DPoPBound() && scheme == "dpop":
		return nil, invalidToken("This token is not DPoP-bound; send it as a Bearer token.")
	case !at.DPoPBound():
		return at, nil
	}
	if len(proofs) != 1 {
		return nil, dpopError("Exactly one DPoP proof is required with a DPoP-bound token.")
	}
	p, err := i.VerifyDPoP(ctx, proofs[0], r.Method, i.RequestURLs(r), token)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(p.JKT), []byte(at.Cnf.JKT)) != 1 {
		return nil, dpopError("The DPoP proof was signed with a key the token is not bound to.")
	}
	return at, nil
}
