package authz

import (
	"crypto/elliptic"
	"encoding/base64"
	"errors"
	"math/big"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// ECDSA signatures are malleable: when (r, s) verifies, so does
// (r, n − s). A token or proof whose signature can be rewritten without
// the key is a different string with the same meaning, which defeats any
// bookkeeping keyed on the string. Every JWS we verify (access tokens,
// DPoP proofs and consents, client assertions, signed mandates) must
// therefore carry the low-S form, s ≤ n/2, and every signature we make
// is put in that form (lowS). Clients whose library does not normalize
// (WebCrypto, go-jose) replace a high s by n − s before sending.

// ecdsaCurves are the curves of the ECDSA algorithms we accept.
var ecdsaCurves = map[jose.SignatureAlgorithm]elliptic.Curve{
	jose.ES256: elliptic.P256(), jose.ES384: elliptic.P384(), jose.ES512: elliptic.P521(),
}

// errHighS refuses a signature that is not in low-S form.
var errHighS = errors.New("the ECDSA signature is not in low-S form (s > n/2)")

// splitS returns the curve order and s of an ECDSA JWS signature (r || s,
// each half the signature's length), or nil when alg is not ECDSA or the
// signature has the wrong length.
func splitS(alg jose.SignatureAlgorithm, sig []byte) (n, s *big.Int) {
	c, ok := ecdsaCurves[alg]
	if !ok {
		return nil, nil
	}
	size := (c.Params().BitSize + 7) / 8
	if len(sig) != 2*size {
		return nil, nil
	}
	return c.Params().N, new(big.Int).SetBytes(sig[size:])
}

// checkLowS refuses an ECDSA signature whose s is above half the curve
// order. Other algorithms pass.
func checkLowS(jws *jose.JSONWebSignature) error {
	for _, sig := range jws.Signatures {
		n, s := splitS(jose.SignatureAlgorithm(sig.Protected.Algorithm), sig.Signature)
		if n != nil && s.Cmp(new(big.Int).Rsh(n, 1)) > 0 {
			return errHighS
		}
	}
	return nil
}

// lowS puts the signature of a compact JWS signed with alg in low-S form.
func lowS(alg jose.SignatureAlgorithm, compact string) (string, error) {
	parts := strings.Split(compact, ".")
	if len(parts) != 3 {
		return "", errors.New("authz: not a compact JWS")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return "", err
	}
	n, s := splitS(alg, sig)
	if n == nil || s.Cmp(new(big.Int).Rsh(n, 1)) <= 0 {
		return compact, nil
	}
	size := len(sig) / 2
	s.Sub(n, s).FillBytes(sig[size:])
	parts[2] = base64.RawURLEncoding.EncodeToString(sig)
	return strings.Join(parts, "."), nil
}
