package authz_test

import (
	"context"
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

// legacyKeys are rows written by the code that sealed private keys before
// the format byte existed (nonce | ciphertext | tag): two token signing
// keys and an audit signing key, all under one KEK.
type legacyKeys struct {
	KEK         []byte             `json:"kek"`
	SigningKeys []authz.SigningKey `json:"signing_keys"`
	AuditKey    audit.Key          `json:"audit_key"`
}

func readLegacyKeys(t *testing.T) legacyKeys {
	b, err := os.ReadFile("testdata/sealed_before_format_byte.json")
	require.NoError(t, err)
	var f legacyKeys
	require.NoError(t, json.Unmarshal(b, &f))
	require.Len(t, f.SigningKeys, 2)
	return f
}

// keyStore is one backend seen by the issuer and by the audit log.
type keyStore struct {
	authz store.Runner[authz.Tx]
	audit store.Runner[audit.Repo]
}

func bindKeys[X interface {
	authz.Tx
	audit.Repo
}](b store.Backend[X]) keyStore {
	return keyStore{store.Bind(b, func(x X) authz.Tx { return x }), store.Bind(b, func(x X) audit.Repo { return x })}
}

func eachKeyStore(t *testing.T, fn func(t *testing.T, s keyStore)) {
	t.Run("memory", func(t *testing.T) { fn(t, bindKeys[*memory.Tx](memory.New())) })
	t.Run("postgres", func(t *testing.T) { fn(t, bindKeys[*postgres.Tx](pgtest.NewStore(t))) })
}

// A signing key row sealed by the earlier code opens: the issuer signs
// with it instead of minting a new key, and what it signs verifies
// against the key's published half. A rotation writes the new key in the
// versioned format.
func TestSigningKeySealedBeforeFormatByte(t *testing.T) {
	f := readLegacyKeys(t)
	kek := f.KEK
	ctx := context.Background()
	for _, row := range f.SigningKeys {
		t.Run(row.Alg, func(t *testing.T) {
			eachKeyStore(t, func(t *testing.T, s keyStore) {
				require.NoError(t, s.authz.InTx(ctx, func(tx authz.Tx) error { return tx.CreateSigningKey(ctx, &row) }))
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
				parsed, err := jose.ParseSignedCompact(jws, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(row.Alg)})
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
	f := readLegacyKeys(t)
	ctx := context.Background()
	row := f.AuditKey
	eachKeyStore(t, func(t *testing.T, s keyStore) {
		require.NoError(t, s.audit.InTx(ctx, func(tx audit.Repo) error { return tx.CreateAuditKey(ctx, &row) }))
		sealer, err := authz.NewKeySealer(f.KEK)
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
	kek := readLegacyKeys(t).KEK
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
	jws, err := jose.ParseSignedCompact(compact, []jose.SignatureAlgorithm{jose.EdDSA})
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
