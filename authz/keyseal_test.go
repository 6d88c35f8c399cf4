package authz_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/internal/seal"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/memory"
	"github.com/perfectpay/perfectpay/store/pgtest"
	"github.com/perfectpay/perfectpay/store/postgres"
)

// sealedKeyRow is a signing key or audit key row as the store holds it.
type sealedKeyRow struct {
	KID        string
	Alg        string
	KEKID      string
	PublicJWK  json.RawMessage
	PrivateEnc string
	CreatedAt  time.Time
}

// legacyKeys are rows written by the code that sealed private keys before
// the format byte existed (nonce | ciphertext | tag): two token signing
// keys and an audit signing key, all under one KEK.
type legacyKeys struct {
	KEK         string
	SigningKeys []sealedKeyRow `json:"signing_keys"`
	AuditKey    sealedKeyRow   `json:"audit_key"`
}

func readLegacyKeys(t *testing.T) (legacyKeys, []byte) {
	b, err := os.ReadFile("testdata/sealed_before_format_byte.json")
	require.NoError(t, err)
	var f legacyKeys
	require.NoError(t, json.Unmarshal(b, &f))
	kek, err := hex.DecodeString(f.KEK)
	require.NoError(t, err)
	require.Len(t, f.SigningKeys, 2)
	return f, kek
}

func unhex(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

// keyStore is one backend seen as the issuer's and the audit log's store.
type keyStore struct {
	authz store.Runner[authz.Tx]
	audit store.Runner[audit.Repo]
}

func eachKeyStore(t *testing.T, fn func(t *testing.T, s keyStore)) {
	t.Run("memory", func(t *testing.T) {
		m := memory.New()
		fn(t, keyStore{
			authz: store.Bind(m, func(x *memory.Tx) authz.Tx { return x }),
			audit: store.Bind(m, func(x *memory.Tx) audit.Repo { return x }),
		})
	})
	t.Run("postgres", func(t *testing.T) {
		pg := pgtest.NewStore(t)
		fn(t, keyStore{
			authz: store.Bind(pg, func(x *postgres.Tx) authz.Tx { return x }),
			audit: store.Bind(pg, func(x *postgres.Tx) audit.Repo { return x }),
		})
	})
}

// A signing key row sealed by the earlier code opens: the issuer signs
// with it instead of minting a new key, and what it signs verifies
// against the key's published half. A rotation writes the new key in the
// versioned format.
func TestSigningKeySealedBeforeFormatByte(t *testing.T) {
	f, kek := readLegacyKeys(t)
	ctx := context.Background()
	for _, row := range f.SigningKeys {
		t.Run(row.Alg, func(t *testing.T) {
			eachKeyStore(t, func(t *testing.T, s keyStore) {
				require.NoError(t, s.authz.InTx(ctx, func(tx authz.Tx) error {
					return tx.CreateSigningKey(ctx, &authz.SigningKey{KID: row.KID, Alg: row.Alg, PublicJWK: row.PublicJWK,
						PrivateEnc: unhex(t, row.PrivateEnc), KEKID: row.KEKID, CreatedAt: row.CreatedAt})
				}))
				opt := baseOptions()
				opt.SigningKEK, opt.SigningAlg = kek, row.Alg
				opt.Now = func() time.Time { return row.CreatedAt.Add(time.Hour) }
				iss, err := authz.New(ctx, s.authz, opt)
				require.NoError(t, err)
				require.Equal(t, row.KID, iss.CurrentKeyID(), "the old key opened; no new key was minted")

				jws, err := iss.SignMandate(ctx, []byte(`{"id":"mdt_1"}`))
				require.NoError(t, err)
				var pub jose.JSONWebKey
				require.NoError(t, pub.UnmarshalJSON(row.PublicJWK))
				parsed, err := jose.ParseSigned(jws, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(row.Alg)})
				require.NoError(t, err)
				payload, err := parsed.Verify(pub)
				require.NoError(t, err)
				assert.JSONEq(t, `{"id":"mdt_1"}`, string(payload))

				kid, err := iss.RotateSigningKey(ctx)
				require.NoError(t, err)
				var keys []authz.SigningKey
				require.NoError(t, s.authz.InTx(ctx, func(tx authz.Tx) error {
					keys, err = tx.ListSigningKeys(ctx)
					return err
				}))
				require.Len(t, keys, 2)
				for _, k := range keys {
					if k.KID != kid {
						continue
					}
					require.Equal(t, seal.V1, k.PrivateEnc[0], "new keys are sealed in the versioned format")
					_, err := seal.Open(kek, k.PrivateEnc, []byte("perfectpay signing key v1:"+kid))
					require.NoError(t, err)
				}
			})
		})
	}
}

// The audit signing key sealed by the earlier code opens: UseKeys keeps it
// (a key it could not open would stop it) and checkpoints are signed by it.
func TestAuditKeySealedBeforeFormatByte(t *testing.T) {
	f, kek := readLegacyKeys(t)
	ctx := context.Background()
	row := f.AuditKey
	eachKeyStore(t, func(t *testing.T, s keyStore) {
		require.NoError(t, s.audit.InTx(ctx, func(tx audit.Repo) error {
			return tx.CreateAuditKey(ctx, &audit.Key{KID: row.KID, PublicJWK: row.PublicJWK,
				PrivateEnc: unhex(t, row.PrivateEnc), KEKID: row.KEKID, CreatedAt: row.CreatedAt})
		}))
		sealer, err := authz.NewKeySealer(kek)
		require.NoError(t, err)
		svc := audit.NewService(s.audit, 0, quiet())
		require.NoError(t, svc.UseKeys(ctx, sealer))
		var keys []audit.Key
		require.NoError(t, s.audit.InTx(ctx, func(tx audit.Repo) error {
			keys, err = tx.AuditKeys(ctx)
			return err
		}))
		require.Len(t, keys, 1, "the old key is kept, not replaced")
		cp, err := svc.Checkpoint(ctx, true)
		require.NoError(t, err)
		assert.Equal(t, row.KID, cp.KID)
	})
}

// KeySealer makes keys in the versioned format and opens them only for
// their purpose, their algorithm and their KEK.
func TestKeySealer(t *testing.T) {
	_, kek := readLegacyKeys(t)
	sealer, err := authz.NewKeySealer(kek)
	require.NoError(t, err)
	kid, pub, sealed, err := sealer.NewKeyPair(authz.AlgEdDSA, "audit/")
	require.NoError(t, err)
	var jwk jose.JSONWebKey
	require.NoError(t, jwk.UnmarshalJSON(pub))
	assert.Equal(t, kid, jwk.KeyID)
	assert.True(t, jwk.IsPublic())
	require.Equal(t, seal.V1, sealed[0], "new keys are sealed in the versioned format")
	_, err = seal.Open(kek, sealed, []byte("perfectpay signing key v1:audit/"+kid))
	require.NoError(t, err)

	s, err := sealer.OpenSigners(authz.AlgEdDSA, "audit/", kid, sealed, "a+jws", "b+jws")
	require.NoError(t, err)
	require.Len(t, s, 2)
	signed, err := s[1].Sign([]byte("x"))
	require.NoError(t, err)
	compact, err := signed.CompactSerialize()
	require.NoError(t, err)
	jws, err := jose.ParseSigned(compact, []jose.SignatureAlgorithm{jose.EdDSA})
	require.NoError(t, err)
	assert.Equal(t, "b+jws", jws.Signatures[0].Header.ExtraHeaders[jose.HeaderType])
	_, err = jws.Verify(jwk)
	require.NoError(t, err)

	_, err = sealer.OpenSigners(authz.AlgEdDSA, "", kid, sealed, "at+jwt")
	require.ErrorIs(t, err, seal.ErrAuth, "an audit key never opens as a token signing key")
	_, err = sealer.OpenSigners(authz.AlgES256, "audit/", kid, sealed, "a+jws")
	require.ErrorContains(t, err, "not an ES256 key")
	other, err := authz.NewKeySealer(make([]byte, 32))
	require.NoError(t, err)
	_, err = other.OpenSigners(authz.AlgEdDSA, "audit/", kid, sealed, "a+jws")
	require.ErrorIs(t, err, seal.ErrAuth, "another KEK")
	_, _, _, err = sealer.NewKeyPair("RS256", "")
	require.Error(t, err, "only ES256 and EdDSA")

	_, err = authz.NewKeySealer(make([]byte, 16))
	require.ErrorIs(t, err, seal.ErrKeySize)
}
