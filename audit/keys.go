package audit

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// KeySealer makes and opens the audit signing key under the signing KEK,
// in the same format as the token signing keys (authz.KeySealer).
type KeySealer interface {
	// NewKeyPair generates a key pair for alg and seals its private half
	// bound to purpose+kid.
	NewKeyPair(alg, purpose string) (kid string, publicJWK, sealed []byte, err error)
	// OpenSigners opens a sealed key of alg and returns a signer per type.
	OpenSigners(alg, purpose, kid string, sealed []byte, typs ...string) ([]jose.Signer, error)
	// KEKID names the KEK without revealing it.
	KEKID() string
}

// JWS types of what the audit key signs. A checkpoint can never pass as a
// retention record, nor either as an access token (typ at+jwt).
const (
	typCheckpoint = "audit-checkpoint+jws"
	typRetention  = "audit-retention+jws"
	// TypEvidence is the type of a signed evidence bundle.
	TypEvidence = "evidence+jws"
	// TypExportManifest is the type of a signed export manifest.
	TypExportManifest = "export-manifest+jws"
)

// algs is the verification allow-list: the audit key is Ed25519 only.
var algs = []jose.SignatureAlgorithm{jose.EdDSA}

// sealingPurpose binds a sealed audit key to its purpose, so it cannot be
// opened as a token signing key of the same kid.
const sealingPurpose = "audit/"

// newKey generates an Ed25519 audit key and seals its private half.
func newKey(sealer KeySealer, now time.Time) (*Key, error) {
	kid, pub, sealed, err := sealer.NewKeyPair(string(jose.EdDSA), sealingPurpose)
	if err != nil {
		return nil, err
	}
	return &Key{KID: kid, PublicJWK: pub, PrivateEnc: sealed, KEKID: sealer.KEKID(), CreatedAt: now}, nil
}

// signer holds the opened audit key.
type signer struct {
	kid        string
	checkpoint jose.Signer
	retention  jose.Signer
	evidence   jose.Signer
	manifest   jose.Signer
}

func openKey(sealer KeySealer, k *Key) (*signer, error) {
	s, err := sealer.OpenSigners(string(jose.EdDSA), sealingPurpose, k.KID, k.PrivateEnc, typCheckpoint, typRetention, TypEvidence, TypExportManifest)
	if err != nil {
		return nil, err
	}
	return &signer{kid: k.KID, checkpoint: s[0], retention: s[1], evidence: s[2], manifest: s[3]}, nil
}

// KeySet is a set of audit public keys trusted to verify checkpoints and
// retention records.
type KeySet struct {
	keys map[string]*jose.JSONWebKey
}

// ParseKeySet reads a JWKS, keeping only Ed25519 public keys; anything else
// (a private key, another key type) is refused.
func ParseKeySet(b []byte) (*KeySet, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("audit: key set: %w", err)
	}
	ks := &KeySet{keys: map[string]*jose.JSONWebKey{}}
	for i := range set.Keys {
		k := set.Keys[i]
		if _, ok := k.Key.(ed25519.PublicKey); !ok || k.KeyID == "" {
			return nil, fmt.Errorf("audit: key set: key %q is not an Ed25519 public key with a kid", k.KeyID)
		}
		ks.keys[k.KeyID] = &k
	}
	if len(ks.keys) == 0 {
		return nil, errors.New("audit: key set is empty")
	}
	return ks, nil
}

func keySetOf(keys []Key) (*KeySet, error) {
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for i := range keys {
		var pub jose.JSONWebKey
		if err := pub.UnmarshalJSON(keys[i].PublicJWK); err != nil {
			return nil, fmt.Errorf("audit: key %s: %w", keys[i].KID, err)
		}
		set.Keys = append(set.Keys, pub)
	}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, err
	}
	if len(set.Keys) == 0 {
		return &KeySet{keys: map[string]*jose.JSONWebKey{}}, nil
	}
	return ParseKeySet(b)
}

// JSON returns the set as a JWKS document.
func (ks *KeySet) JSON() []byte {
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for _, k := range ks.keys {
		set.Keys = append(set.Keys, *k)
	}
	b, _ := json.Marshal(set)
	return b
}

// verify checks a compact JWS of type typ against the set and returns its
// payload and kid.
func (ks *KeySet) verify(compact, typ string) ([]byte, string, error) {
	jws, err := jose.ParseSignedCompact(compact, algs)
	if err != nil {
		return nil, "", fmt.Errorf("not a valid EdDSA JWS: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, "", errors.New("not exactly one signature")
	}
	h := jws.Signatures[0].Header
	if got, _ := h.ExtraHeaders[jose.HeaderType].(string); got != typ {
		return nil, "", fmt.Errorf("typ is %q, want %q", got, typ)
	}
	key, ok := ks.keys[h.KeyID]
	if !ok {
		return nil, h.KeyID, fmt.Errorf("signed by key %q, which is not among the trusted audit keys", h.KeyID)
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return nil, h.KeyID, fmt.Errorf("signature by key %q does not verify", h.KeyID)
	}
	return payload, h.KeyID, nil
}

// UseKeys opens this node's audit signing key, creating one (and retiring
// the others) when none is sealed under the current KEK. From then on the
// service signs checkpoints and retention records.
//
// The very first key adopts history that retention removed before the log
// was signed: when the chain already starts after an anchor and no key
// ever existed, it signs a retention record for positions up to the
// anchor. That is trust on first use, once per database.
func (s *Service) UseKeys(ctx context.Context, sealer KeySealer) error {
	var sg *signer
	err := s.db.InTx(ctx, func(tx Repo) error {
		if err := tx.LockAuditState(ctx); err != nil {
			return err
		}
		keys, err := tx.AuditKeys(ctx)
		if err != nil {
			return err
		}
		for i := range keys {
			if keys[i].RetiredAt == nil && keys[i].KEKID == sealer.KEKID() {
				sg, err = openKey(sealer, &keys[i])
				if err != nil {
					return fmt.Errorf("audit: cannot open the audit signing key %s: %w", keys[i].KID, err)
				}
				return nil
			}
		}
		now := s.now().UTC().Truncate(time.Microsecond)
		nk, err := newKey(sealer, now)
		if err != nil {
			return err
		}
		for i := range keys {
			if keys[i].RetiredAt == nil {
				if err := tx.RetireAuditKey(ctx, keys[i].KID, now); err != nil {
					return err
				}
			}
		}
		if err := tx.CreateAuditKey(ctx, nk); err != nil {
			return err
		}
		if sg, err = openKey(sealer, nk); err != nil {
			return err
		}
		if len(keys) == 0 {
			if err := s.adoptAnchor(ctx, tx, sg, now); err != nil {
				return err
			}
		}
		return Record(ctx, tx, "audit_key.created", nk.KID, map[string]any{"alg": "EdDSA", "retired": len(keys)})
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.signer = sg
	s.mu.Unlock()
	return nil
}

// adoptAnchor signs a retention record for history removed before the
// log had a key.
func (s *Service) adoptAnchor(ctx context.Context, tx Repo, sg *signer, now time.Time) error {
	anchor, err := tx.AuditAnchor(ctx)
	if err != nil || anchor.ChainPos == 0 {
		return err
	}
	if rs, err := tx.AuditRetentions(ctx); err != nil || len(rs) > 0 {
		return err
	}
	stripes, err := tx.AuditStripes(ctx)
	if err != nil {
		return err
	}
	floors := map[int]int64{}
	claims := RetentionClaims{FromPos: 1, ToPos: anchor.ChainPos, LastHash: anchor.Hash, Floors: map[string]int64{}, Time: now}
	for _, st := range stripes {
		floors[st.ID] = st.Floor
		if st.Floor > 0 {
			claims.Floors[strconv.Itoa(st.ID)] = st.Floor
		}
	}
	jws, err := sign(sg.retention, claims)
	if err != nil {
		return err
	}
	r := &Retention{FromPos: 1, ToPos: anchor.ChainPos, LastHash: anchor.Hash, KID: sg.kid, JWS: jws, CreatedAt: now}
	// Nothing is left at or below the anchor: this only records it.
	_, err = tx.PruneAudit(ctx, anchor, floors, r)
	return err
}

// Keys returns every audit public key in the store (current and retired),
// as a key set. Export it with a checkpoint: verification with a
// checkpoint trusts only the keys exported beside it.
func (s *Service) Keys(ctx context.Context) (*KeySet, error) {
	var keys []Key
	if err := s.db.InTx(ctx, func(tx Repo) error {
		var err error
		keys, err = tx.AuditKeys(ctx)
		return err
	}); err != nil {
		return nil, err
	}
	return keySetOf(keys)
}
