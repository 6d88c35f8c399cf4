package audit_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/memory"
)

// TestCheckpointFileRefusesWhatTheKeyDidNotSign: only an EdDSA JWS of the
// checkpoint type, signed by a key in the file, is a checkpoint.
func TestCheckpointFileRefusesWhatTheKeyDidNotSign(t *testing.T) {
	ctx := context.Background()
	m := memory.New()
	db := store.Bind(m, func(x *memory.Tx) audit.Repo { return x })
	svc := audit.NewService(db, 0, nil)
	require.NoError(t, svc.UseKeys(ctx, newSealer(t)))
	ex, err := svc.ExportCheckpoint(ctx)
	require.NoError(t, err)
	_, ks, err := audit.ParseExport(mustJSON(t, ex))
	require.NoError(t, err)
	var set jose.JSONWebKeySet
	require.NoError(t, json.Unmarshal(ex.Keys, &set))
	require.Len(t, set.Keys, 1)
	kid := set.Keys[0].KeyID

	claims := []byte(`{"chain_pos":1,"hash":"AAAA","time":"2026-01-01T00:00:00Z","counters":{"1":1}}`)
	signWith := func(alg jose.SignatureAlgorithm, key any, typ string) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
			(&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
		require.NoError(t, err)
		jws, err := s.Sign(claims)
		require.NoError(t, err)
		c, err := jws.CompactSerialize()
		require.NoError(t, err)
		return c
	}
	_, other, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	pub := set.Keys[0].Key.(ed25519.PublicKey)
	cases := []struct {
		name, jws, problem string
	}{
		{"HS256 keyed with the public key", signWith(jose.HS256, []byte(pub), "audit-checkpoint+jws"), "not a valid EdDSA JWS"},
		{"another Ed25519 key under the same kid", signWith(jose.EdDSA, other, "audit-checkpoint+jws"), "does not verify"},
		{"a retention record offered as a checkpoint", signWith(jose.EdDSA, other, "audit-retention+jws"), `typ is "audit-retention+jws"`},
		{"an access token type", signWith(jose.EdDSA, other, "at+jwt"), `typ is "at+jwt"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := svc.VerifyWith(ctx, audit.VerifyOptions{Checkpoint: tc.jws, Keys: ks})
			require.NoError(t, err)
			assert.False(t, res.OK)
			assert.Contains(t, res.Problem, "checkpoint file: ")
			assert.Contains(t, res.Problem, tc.problem)
		})
	}
	res, err := svc.VerifyWith(ctx, audit.VerifyOptions{Checkpoint: ex.Checkpoint, Keys: ks})
	require.NoError(t, err)
	assert.True(t, res.OK, res.Problem)

	// A key file holding a private key, or no Ed25519 key, is refused.
	_, err = audit.ParseKeySet([]byte(`{"keys":[]}`))
	require.Error(t, err)
	priv := jose.JSONWebKey{Key: other, KeyID: "x", Algorithm: "EdDSA"}
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{priv}})
	require.NoError(t, err)
	_, err = audit.ParseKeySet(b)
	require.Error(t, err)
}
