package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// ErrNoKey means the service has no audit signing key (UseKeys was not
// called), so it cannot sign checkpoints or retention records.
var ErrNoKey = errors.New("audit: no audit signing key")

// CheckpointClaims is what a checkpoint signs: the chain head and every
// stripe's counter (so an entry committed before the checkpoint must
// still exist, sealed or not).
type CheckpointClaims struct {
	ChainPos int64            `json:"chain_pos"`
	Hash     []byte           `json:"hash"`
	Time     time.Time        `json:"time"`
	Counters map[string]int64 `json:"counters"`
}

// RetentionClaims is what a retention record signs: the removed chain
// range, the hash of the last removed link (the new anchor), and each
// stripe's floor after the removal.
type RetentionClaims struct {
	FromPos  int64            `json:"from_pos"`
	ToPos    int64            `json:"to_pos"`
	LastHash []byte           `json:"last_hash"`
	Removed  int              `json:"removed"`
	Floors   map[string]int64 `json:"floors"`
	Time     time.Time        `json:"time"`
}

// Export is the file an operator keeps outside the database: a signed
// checkpoint and the audit public keys to verify it (and the stored
// checkpoints and retention records) with.
type Export struct {
	Checkpoint string          `json:"checkpoint"`
	Keys       json.RawMessage `json:"keys"`
}

func (s *Service) interval() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.checkpointEvery
}

func (s *Service) currentSigner() *signer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.signer
}

// Checkpoint signs the current chain head and stores the checkpoint. When
// force is false it returns the latest checkpoint instead of signing again
// if the head has not moved since, or if another node signed it less than
// half a checkpoint interval ago (so many nodes do not multiply the
// checkpoints).
func (s *Service) Checkpoint(ctx context.Context, force bool) (Checkpoint, error) {
	sg := s.currentSigner()
	if sg == nil {
		return Checkpoint{}, ErrNoKey
	}
	var out Checkpoint
	err := s.db.InTx(ctx, func(tx Repo) error {
		if err := tx.LockAuditState(ctx); err != nil {
			return err
		}
		head, err := tx.AuditHead(ctx)
		if err != nil {
			return err
		}
		if !force {
			last, err := tx.LatestAuditCheckpoint(ctx)
			switch {
			case err == nil && last.ChainPos == head.ChainPos && bytes.Equal(last.Hash, head.Hash):
				out = last
				return nil
			case err == nil && s.now().Sub(last.CreatedAt) < s.interval()/2:
				out = last
				return nil
			case err != nil && !isNotFound(err):
				return err
			}
		}
		stripes, err := tx.AuditStripes(ctx)
		if err != nil {
			return err
		}
		claims := CheckpointClaims{ChainPos: head.ChainPos, Hash: head.Hash, Time: s.now().UTC().Truncate(time.Microsecond),
			Counters: map[string]int64{}}
		for _, st := range stripes {
			claims.Counters[strconv.Itoa(st.ID)] = st.Next
		}
		compact, err := sign(sg.checkpoint, claims)
		if err != nil {
			return err
		}
		out = Checkpoint{ChainPos: head.ChainPos, Hash: head.Hash, KID: sg.kid, JWS: compact, CreatedAt: claims.Time}
		return tx.AddAuditCheckpoint(ctx, &out)
	})
	return out, err
}

// ExportCheckpoint seals what is pending, signs a fresh checkpoint and
// returns it with the audit public keys, ready to be kept outside the
// database.
func (s *Service) ExportCheckpoint(ctx context.Context) (*Export, error) {
	if _, err := s.SealAll(ctx); err != nil {
		return nil, err
	}
	cp, err := s.Checkpoint(ctx, true)
	if err != nil {
		return nil, err
	}
	ks, err := s.Keys(ctx)
	if err != nil {
		return nil, err
	}
	return &Export{Checkpoint: cp.JWS, Keys: ks.JSON()}, nil
}

// ParseExport reads an export file; the checkpoint is verified later,
// against the keys in the file.
func ParseExport(b []byte) (*Export, *KeySet, error) {
	var ex Export
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ex); err != nil {
		return nil, nil, fmt.Errorf("audit: checkpoint file: %w", err)
	}
	if ex.Checkpoint == "" || len(ex.Keys) == 0 {
		return nil, nil, errors.New("audit: checkpoint file: needs \"checkpoint\" and \"keys\"")
	}
	ks, err := ParseKeySet(ex.Keys)
	if err != nil {
		return nil, nil, err
	}
	return &ex, ks, nil
}

// verifyClaims verifies compact as a JWS of type typ under ks and decodes
// its claims strictly into a T; what names them in the error.
func verifyClaims[T any](ks *KeySet, compact, typ, what string) (T, error) {
	var c T
	payload, _, err := ks.verify(compact, typ)
	if err != nil {
		return c, err
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("bad %s claims: %w", what, err)
	}
	return c, nil
}

func verifyCheckpoint(ks *KeySet, compact string) (CheckpointClaims, error) {
	c, err := verifyClaims[CheckpointClaims](ks, compact, typCheckpoint, "checkpoint")
	if err != nil {
		return c, err
	}
	if c.ChainPos < 0 {
		return c, errors.New("bad checkpoint claims: negative position")
	}
	return c, nil
}

func verifyRetention(ks *KeySet, compact string) (RetentionClaims, error) {
	r, err := verifyClaims[RetentionClaims](ks, compact, typRetention, "retention")
	if err != nil {
		return r, err
	}
	if r.FromPos < 1 || r.ToPos < r.FromPos {
		return r, errors.New("bad retention claims: empty range")
	}
	return r, nil
}

func (s *Service) signRetention(r RetentionClaims) (string, string, error) {
	sg := s.currentSigner()
	if sg == nil {
		return "", "", ErrNoKey
	}
	compact, err := sign(sg.retention, r)
	return compact, sg.kid, err
}

// sign signs the JSON of claims as a compact JWS.
func sign(sg jose.Signer, claims any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := sg.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}
