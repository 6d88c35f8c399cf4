package authz

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/internal/seal"
	"github.com/perfectpay/perfectpay/store"
)

// Signing algorithms the issuer can sign access tokens with.
const (
	AlgES256 = "ES256"
	AlgEdDSA = "EdDSA"
)

// signingAlgs is the verification allow-list for our own tokens.
var signingAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA}

// kekID names a KEK without revealing it.
func kekID(kek []byte) string {
	sum := sha256.Sum256(append([]byte("perfectpay signing kek id\x00"), kek...))
	return base64.RawURLEncoding.EncodeToString(sum[:8])
}

// keyAAD binds a sealed private key to its kid and purpose.
func keyAAD(kid string) []byte { return []byte("perfectpay signing key v1:" + kid) }

// sealKey seals a private key under the KEK, bound to kid.
func sealKey(kek []byte, kid string, plain []byte) ([]byte, error) {
	return seal.Seal(kek, plain, keyAAD(kid))
}

// openKey opens a sealed private key. Keys sealed before the format byte
// existed still open (seal.OpenLegacy): they leave the table by rotation
// and pruning, and every new key is written in the versioned format.
func openKey(kek []byte, kid string, sealed []byte) ([]byte, error) {
	return seal.OpenLegacy(kek, sealed, keyAAD(kid))
}

// newSigningKey generates a key pair for alg and seals its private half.
func newSigningKey(alg string, kek []byte, now time.Time) (*SigningKey, error) {
	kid, pub, sealed, err := newKeyPair(kek, alg, "")
	if err != nil {
		return nil, err
	}
	return &SigningKey{KID: kid, Alg: alg, PublicJWK: pub, PrivateEnc: sealed, KEKID: kekID(kek), CreatedAt: now}, nil
}

// newKeyPair generates a key pair for alg, names it by its JWK thumbprint
// (RFC 7638) and seals its PKCS #8 private half under kek, bound to
// purpose+kid. It returns the kid, the public JWK and the sealed key.
func newKeyPair(kek []byte, alg, purpose string) (kid string, publicJWK, sealed []byte, err error) {
	var priv crypto.Signer
	switch alg {
	case AlgES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case AlgEdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		err = fmt.Errorf("authz: unsupported signing algorithm %q", alg)
	}
	if err != nil {
		return "", nil, nil, err
	}
	pub := jose.JSONWebKey{Key: priv.Public(), Algorithm: alg, Use: "sig"}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", nil, nil, err
	}
	pub.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	if publicJWK, err = pub.MarshalJSON(); err != nil {
		return "", nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", nil, nil, err
	}
	if sealed, err = sealKey(kek, purpose+pub.KeyID, der); err != nil {
		return "", nil, nil, err
	}
	return pub.KeyID, publicJWK, sealed, nil
}

// openSigners opens a private key sealed by newKeyPair and returns one
// signer per JWS type, each naming kid. The key must be of alg's type.
func openSigners(kek []byte, alg, purpose, kid string, sealed []byte, typs ...string) ([]jose.Signer, error) {
	priv, err := openPrivateKey(kek, alg, purpose, kid, sealed)
	if err != nil {
		return nil, err
	}
	return joseSigners(priv, alg, kid, typs...)
}

// openPrivateKey opens a private key sealed by newKeyPair; it must be of
// alg's type.
func openPrivateKey(kek []byte, alg, purpose, kid string, sealed []byte) (crypto.Signer, error) {
	der, err := openKey(kek, purpose+kid, sealed)
	if err != nil {
		return nil, err
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, err
	}
	switch k := priv.(type) {
	case *ecdsa.PrivateKey:
		if alg != AlgES256 || k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("authz: sealed key %s is not an %s key", kid, alg)
		}
		return k, nil
	case ed25519.PrivateKey:
		if alg != AlgEdDSA {
			return nil, fmt.Errorf("authz: sealed key %s is not an %s key", kid, alg)
		}
		return k, nil
	default:
		return nil, fmt.Errorf("authz: sealed key %s is of an unsupported type", kid)
	}
}

// joseSigners returns one go-jose signer of priv per JWS type, each
// naming kid.
func joseSigners(priv crypto.Signer, alg, kid string, typs ...string) ([]jose.Signer, error) {
	var err error
	key := jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: jose.JSONWebKey{Key: priv, KeyID: kid}}
	out := make([]jose.Signer, len(typs))
	for i, typ := range typs {
		if out[i], err = jose.NewSigner(key, (&jose.SignerOptions{}).WithType(jose.ContentType(typ))); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// activeSigner is the key the node signs with.
type activeSigner struct {
	kid   string
	alg   string
	token *tokenSigner // typ at+jwt
	// mandate signs signed mandates (typ mandate+jws), which can never
	// pass as access tokens.
	mandate jose.Signer
}

// tokenSigner signs access tokens (compact JWS, typ at+jwt) with one key
// of ours, ES256 or EdDSA. Every token of a key has the same protected
// header, so it is encoded once, when the key is opened; what is left per
// token is the payload's base64 and the signature, put in low-S form as
// it is made. What it writes is an ordinary compact JWS, verified by
// parseToken with go-jose and its algorithm allow-list.
type tokenSigner struct {
	header []byte // base64url of the protected header, then "."
	ec     *ecdsa.PrivateKey
	ed     ed25519.PrivateKey
}

// p256Order and p256HalfOrder are n and n/2 of P-256, 32 bytes big-endian.
var p256Order, p256HalfOrder = func() (n, half [32]byte) {
	N := elliptic.P256().Params().N
	N.FillBytes(n[:])
	new(big.Int).Rsh(N, 1).FillBytes(half[:])
	return n, half
}()

// p256RawSignature puts an ASN.1 ECDSA P-256 signature (a SEQUENCE of two
// INTEGERs, short-form lengths at this size) into rs as JWS wants it
// (r || s, 32 bytes each), in low-S form: an s above n/2 becomes n - s.
func p256RawSignature(der []byte, rs *[64]byte) bool {
	if len(der) < 2 || der[0] != 0x30 || int(der[1]) != len(der)-2 {
		return false
	}
	rest := der[2:]
	for i := range 2 {
		if len(rest) < 2 || rest[0] != 0x02 {
			return false
		}
		n := int(rest[1])
		if n == 0 || n > len(rest)-2 {
			return false
		}
		v := bytes.TrimLeft(rest[2:2+n], "\x00")
		if len(v) > 32 {
			return false
		}
		copy(rs[32*i+32-len(v):32*(i+1)], v)
		rest = rest[2+n:]
	}
	if len(rest) != 0 {
		return false
	}
	if bytes.Compare(rs[32:], p256HalfOrder[:]) > 0 {
		// n - s, byte by byte with borrow.
		borrow := 0
		for i := 31; i >= 0; i-- {
			d := int(p256Order[i]) - int(rs[32+i]) - borrow
			borrow = 0
			if d < 0 {
				d += 256
				borrow = 1
			}
			rs[32+i] = byte(d)
		}
	}
	return true
}

func newTokenSigner(priv crypto.Signer, alg, kid string) (*tokenSigner, error) {
	h, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{alg, kid, "at+jwt"})
	if err != nil {
		return nil, err
	}
	t := &tokenSigner{header: append(base64.RawURLEncoding.AppendEncode(nil, h), '.')}
	switch k := priv.(type) {
	case *ecdsa.PrivateKey:
		if alg != AlgES256 {
			return nil, fmt.Errorf("authz: key %s is not an %s key", kid, alg)
		}
		t.ec = k
	case ed25519.PrivateKey:
		if alg != AlgEdDSA {
			return nil, fmt.Errorf("authz: key %s is not an %s key", kid, alg)
		}
		t.ed = k
	default:
		return nil, fmt.Errorf("authz: key %s is of an unsupported type", kid)
	}
	return t, nil
}

// sign returns the compact JWS of payload.
func (t *tokenSigner) sign(payload []byte) (string, error) {
	b64 := base64.RawURLEncoding
	input := make([]byte, 0, len(t.header)+b64.EncodedLen(len(payload))+1+b64.EncodedLen(64))
	input = append(input, t.header...)
	input = b64.AppendEncode(input, payload)
	var sig []byte
	if t.ec != nil {
		digest := sha256.Sum256(input)
		der, err := ecdsa.SignASN1(rand.Reader, t.ec, digest[:])
		if err != nil {
			return "", err
		}
		var rs [64]byte
		if !p256RawSignature(der, &rs) {
			return "", errors.New("authz: ECDSA signature of unexpected form")
		}
		sig = rs[:]
	} else {
		sig = ed25519.Sign(t.ed, input)
	}
	out := append(input, '.')
	out = b64.AppendEncode(out, sig)
	return string(out), nil
}

// keyRing is the node's view of the signing keys: the one it signs with
// and every public key still in the JWKS. It reloads from the store when
// told (NOTIFY "keys"), periodically, and when a token names a kid it does
// not know (at most once a second).
type keyRing struct {
	db       store.Runner[Tx]
	kek      []byte
	alg      string
	rotation time.Duration
	// grace is how long a retired key stays published: the longest access
	// token lifetime plus clock skew.
	grace time.Duration
	log   *slog.Logger
	now   func() time.Time

	mu       sync.RWMutex
	current  *activeSigner
	public   map[string]*jose.JSONWebKey
	jwks     []byte
	loaded   time.Time
	lastMiss time.Time
	stale    bool

	// verified remembers tokens whose signature verified with a key of
	// this ring (cache.go).
	verified verifiedCache
}

// signer returns the key to sign with, reloading first when a rotation
// was announced.
func (k *keyRing) signer(ctx context.Context) *activeSigner {
	k.mu.RLock()
	cur, stale := k.current, k.stale
	k.mu.RUnlock()
	if !stale {
		return cur
	}
	if err := k.load(ctx); err != nil {
		k.log.WarnContext(ctx, "signing keys: reload failed", "err", err)
		return cur
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.current
}

// publicKey returns the verification key for kid, reloading once when
// the kid is unknown.
func (k *keyRing) publicKey(ctx context.Context, kid string) (*jose.JSONWebKey, bool) {
	k.mu.RLock()
	key, ok := k.public[kid]
	stale := k.stale
	miss := time.Since(k.lastMiss) > time.Second
	k.mu.RUnlock()
	if ok && !stale {
		return key, true
	}
	if !ok && !miss && !stale {
		return nil, false
	}
	if !ok {
		k.mu.Lock()
		k.lastMiss = time.Now()
		k.mu.Unlock()
	}
	if err := k.load(ctx); err != nil {
		k.log.WarnContext(ctx, "signing keys: reload failed", "err", err)
		return key, ok
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	key, ok = k.public[kid]
	return key, ok
}

// jwksJSON returns the published key set.
func (k *keyRing) jwksJSON(ctx context.Context) []byte {
	k.mu.RLock()
	stale := k.stale
	b := k.jwks
	k.mu.RUnlock()
	if stale {
		if err := k.load(ctx); err == nil {
			k.mu.RLock()
			b = k.jwks
			k.mu.RUnlock()
		}
	}
	return b
}

// invalidate marks the ring for a reload on next use.
func (k *keyRing) invalidate() {
	k.mu.Lock()
	k.stale = true
	k.mu.Unlock()
}

// load reads every key from the store and rebuilds the ring.
func (k *keyRing) load(ctx context.Context) error {
	var keys []SigningKey
	if err := k.db.Autocommit(ctx, func(tx Tx) error {
		var err error
		keys, err = tx.ListSigningKeys(ctx)
		return err
	}); err != nil {
		return err
	}
	now := k.now()
	public := map[string]*jose.JSONWebKey{}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	var current *activeSigner
	for i := range keys {
		sk := &keys[i]
		if sk.ExpiresAt != nil && !sk.ExpiresAt.After(now) {
			continue // every token it signed has expired
		}
		var pub jose.JSONWebKey
		if err := pub.UnmarshalJSON(sk.PublicJWK); err != nil {
			k.log.ErrorContext(ctx, "signing keys: bad public key", "kid", sk.KID, "err", err)
			continue
		}
		public[sk.KID] = &pub
		set.Keys = append(set.Keys, pub)
		if current == nil && sk.RetiredAt == nil && sk.KEKID == kekID(k.kek) {
			s, err := k.unseal(sk)
			if err != nil {
				k.log.ErrorContext(ctx, "signing keys: cannot open private key", "kid", sk.KID, "err", err)
				continue
			}
			current = s
		}
	}
	jwks, err := json.Marshal(set)
	if err != nil {
		return err
	}
	k.mu.Lock()
	k.current, k.public, k.jwks, k.loaded, k.stale = current, public, jwks, now, false
	k.mu.Unlock()
	return nil
}

func (k *keyRing) unseal(sk *SigningKey) (*activeSigner, error) {
	priv, err := openPrivateKey(k.kek, sk.Alg, "", sk.KID, sk.PrivateEnc)
	if err != nil {
		return nil, err
	}
	tok, err := newTokenSigner(priv, sk.Alg, sk.KID)
	if err != nil {
		return nil, err
	}
	s, err := joseSigners(priv, sk.Alg, sk.KID, "mandate+jws")
	if err != nil {
		return nil, err
	}
	return &activeSigner{kid: sk.KID, alg: sk.Alg, token: tok, mandate: s[0]}, nil
}

// prune deletes the retired keys whose every token has expired (their
// ExpiresAt passed): from the table, and so from every node's JWKS. Each
// deletion is audited. It returns how many went.
func (k *keyRing) prune(ctx context.Context) (int, error) {
	n := 0
	err := k.db.InTx(ctx, func(tx Tx) error {
		n = 0
		if err := tx.LockSigningKeys(ctx); err != nil {
			return err
		}
		keys, err := tx.ListSigningKeys(ctx)
		if err != nil {
			return err
		}
		now := k.now()
		for i := range keys {
			sk := &keys[i]
			if sk.RetiredAt == nil || sk.ExpiresAt == nil || sk.ExpiresAt.After(now) {
				continue
			}
			if err := tx.DeleteSigningKey(ctx, sk.KID); err != nil {
				return err
			}
			if err := audit.Record(ctx, tx, "signing_key.pruned", sk.KID, map[string]any{"alg": sk.Alg,
				"retired_at": sk.RetiredAt, "expired_at": sk.ExpiresAt}); err != nil {
				return err
			}
			n++
		}
		if n == 0 {
			return nil
		}
		return tx.NotifyAuthz(ctx, "keys")
	})
	if err != nil || n == 0 {
		return 0, err
	}
	return n, k.load(ctx)
}

// ensure makes sure a usable current key exists, creating one when there
// is none this node can open or when the current one is older than the
// rotation interval (force rotates regardless). It returns the new key's
// kid, or "" when nothing changed.
func (k *keyRing) ensure(ctx context.Context, force bool) (string, error) {
	var created string
	err := k.db.InTx(ctx, func(tx Tx) error {
		created = ""
		if err := tx.LockSigningKeys(ctx); err != nil {
			return err
		}
		keys, err := tx.ListSigningKeys(ctx)
		if err != nil {
			return err
		}
		now := k.now().UTC().Truncate(time.Microsecond)
		if !force {
			for i := range keys {
				sk := &keys[i]
				if sk.RetiredAt != nil || sk.KEKID != kekID(k.kek) || sk.Alg != k.alg {
					continue
				}
				if k.rotation > 0 && now.Sub(sk.CreatedAt) >= k.rotation {
					break // due for rotation
				}
				if _, err := k.unseal(sk); err == nil {
					return nil
				}
			}
		}
		nk, err := newSigningKey(k.alg, k.kek, now)
		if err != nil {
			return err
		}
		if err := tx.CreateSigningKey(ctx, nk); err != nil {
			return err
		}
		exp := now.Add(k.grace)
		for i := range keys {
			sk := &keys[i]
			if sk.RetiredAt == nil {
				sk.RetiredAt, sk.ExpiresAt = &now, &exp
				if err := tx.UpdateSigningKey(ctx, sk); err != nil {
					return err
				}
			}
		}
		created = nk.KID
		if err := audit.Record(ctx, tx, "signing_key.rotated", nk.KID, map[string]any{"alg": nk.Alg, "retired": len(keys)}); err != nil {
			return err
		}
		return tx.NotifyAuthz(ctx, "keys")
	})
	if err != nil {
		return "", err
	}
	return created, k.load(ctx)
}
