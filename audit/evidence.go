package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	jose "github.com/go-jose/go-jose/v4"
)

// Link is one position of the chain in an inclusion proof: what its link
// hash covers besides the link before it.
type Link struct {
	Pos         int64  `json:"pos"`
	ContentHash []byte `json:"content_hash"`
	Stripe      int    `json:"stripe,omitempty"`
	StripeSeq   int64  `json:"stripe_seq,omitempty"`
}

// Inclusion proves that Entries are in the chain a signed checkpoint
// commits to: starting from PrevHash (the link before position From),
// relinking Links (every position from From to the checkpoint's) yields
// the checkpoint's hash, and each entry's recomputed content hash is the
// one at its position. Links of other tenants' entries carry only hashes.
type Inclusion struct {
	Entries    []Entry `json:"entries"`
	From       int64   `json:"from"`
	PrevHash   []byte  `json:"prev_hash"`
	Links      []Link  `json:"links"`
	Checkpoint string  `json:"checkpoint"`
}

// MaxProofLinks bounds an inclusion proof (the distance from the first
// entry to the checkpoint that covers the last).
const MaxProofLinks = 200_000

// ErrNothingToProve means no sealed entry of the tenant names the targets.
var ErrNothingToProve = errors.New("audit: no entry to prove")

// Prove seals what is pending, then returns the tenant's entries whose
// target is one of targets with a proof of their inclusion against the
// earliest signed checkpoint that covers them (signing one if none does).
func (s *Service) Prove(ctx context.Context, tenantID string, targets []string) (*Inclusion, error) {
	if _, err := s.SealAll(ctx); err != nil {
		return nil, err
	}
	var entries []Entry
	seen := map[string]bool{}
	for _, target := range targets {
		var after int64
		for {
			list, err := s.Query(ctx, Query{Filter: Filter{TenantID: tenantID, Target: target, AfterSeq: after, Limit: 1000}})
			if err != nil {
				return nil, err
			}
			for _, e := range list {
				if !seen[e.ID] && e.ChainPos > 0 {
					seen[e.ID] = true
					entries = append(entries, e)
				}
			}
			if len(list) < 1000 {
				break
			}
			after = list[len(list)-1].Seq
		}
	}
	if len(entries) == 0 {
		return nil, ErrNothingToProve
	}
	slices.SortFunc(entries, func(a, b Entry) int { return int(a.ChainPos - b.ChainPos) })
	from, to := entries[0].ChainPos, entries[len(entries)-1].ChainPos
	cp, err := s.coveringCheckpoint(ctx, to)
	if err != nil {
		return nil, err
	}
	if cp.ChainPos-from+1 > MaxProofLinks {
		return nil, fmt.Errorf("audit: the proof would hold %d links, more than %d", cp.ChainPos-from+1, MaxProofLinks)
	}
	inc := &Inclusion{Entries: entries, From: from, PrevHash: entries[0].PrevHash, Checkpoint: cp.JWS,
		Links: make([]Link, 0, cp.ChainPos-from+1)}
	err = s.db.InTx(ctx, func(tx Repo) error {
		pos := from - 1
		for pos < cp.ChainPos {
			page, err := tx.AuditChain(ctx, pos, int(min(2000, cp.ChainPos-pos)))
			if err != nil {
				return err
			}
			if len(page) == 0 {
				return fmt.Errorf("audit: chain ends at %d before the checkpoint at %d", pos, cp.ChainPos)
			}
			for _, e := range page {
				if e.ChainPos != pos+1 {
					return fmt.Errorf("audit: chain position %d is missing", pos+1)
				}
				pos = e.ChainPos
				inc.Links = append(inc.Links, Link{Pos: e.ChainPos, ContentHash: e.ContentHash, Stripe: e.Stripe, StripeSeq: e.StripeSeq})
				if pos == cp.ChainPos {
					break
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return inc, nil
}

// coveringCheckpoint returns the earliest stored checkpoint at or after
// chain position pos, signing one now when none is.
func (s *Service) coveringCheckpoint(ctx context.Context, pos int64) (Checkpoint, error) {
	var out Checkpoint
	found := false
	err := s.db.InTx(ctx, func(tx Repo) error {
		latest, err := tx.LatestAuditCheckpoint(ctx)
		if isNotFound(err) || (err == nil && latest.ChainPos < pos) {
			return nil
		}
		if err != nil {
			return err
		}
		// Checkpoint ids grow with their positions: find the first id whose
		// checkpoint covers pos.
		lo, hi := int64(0), latest.ID // the answer is in (lo, hi]
		out, found = latest, true
		for hi-lo > 1 {
			mid := lo + (hi-lo)/2
			list, err := tx.AuditCheckpoints(ctx, mid-1, 1)
			if err != nil {
				return err
			}
			if len(list) == 1 && list[0].ID <= hi && list[0].ChainPos >= pos {
				out, hi = list[0], list[0].ID
			} else {
				lo = mid
			}
		}
		return nil
	})
	if err != nil || found {
		return out, err
	}
	return s.Checkpoint(ctx, true)
}

// VerifyInclusion checks inc against the audit keys ks: the checkpoint's
// signature, that the links run without a gap from inc.From to the
// checkpoint's position and relink to its hash, and that every entry is
// the one whose content hash sits at its position. It returns the
// checkpoint's claims.
func VerifyInclusion(inc *Inclusion, ks *KeySet) (CheckpointClaims, error) {
	claims, err := verifyCheckpoint(ks, inc.Checkpoint)
	if err != nil {
		return claims, fmt.Errorf("checkpoint: %w", err)
	}
	if inc.From < 1 || int64(len(inc.Links)) != claims.ChainPos-inc.From+1 {
		return claims, fmt.Errorf("the proof's links do not run from %d to the checkpoint's position %d", inc.From, claims.ChainPos)
	}
	byPos := map[int64]*Entry{}
	for i := range inc.Entries {
		e := &inc.Entries[i]
		if e.ChainPos < inc.From || e.ChainPos > claims.ChainPos || byPos[e.ChainPos] != nil {
			return claims, fmt.Errorf("entry %s is outside the proof or twice at position %d", e.ID, e.ChainPos)
		}
		byPos[e.ChainPos] = e
	}
	prev := inc.PrevHash
	for i, l := range inc.Links {
		if l.Pos != inc.From+int64(i) {
			return claims, fmt.Errorf("link %d is at position %d, want %d", i, l.Pos, inc.From+int64(i))
		}
		if e := byPos[l.Pos]; e != nil {
			if !bytes.Equal(ContentHash(e), l.ContentHash) || e.Stripe != l.Stripe || e.StripeSeq != l.StripeSeq {
				return claims, fmt.Errorf("entry %s is not the one at position %d: its content hash differs", e.ID, l.Pos)
			}
		}
		prev = EntryLinkHash(prev, &Entry{ContentHash: l.ContentHash, Stripe: l.Stripe, StripeSeq: l.StripeSeq}, l.Pos)
		if e := byPos[l.Pos]; e != nil && len(e.Hash) > 0 && !bytes.Equal(e.Hash, prev) {
			return claims, fmt.Errorf("entry %s: its link hash is not the relinked one", e.ID)
		}
	}
	if !bytes.Equal(prev, claims.Hash) {
		return claims, errors.New("the relinked chain does not end at the checkpoint's hash")
	}
	return claims, nil
}

// SignEvidence signs payload as an evidence bundle (a compact JWS of type
// evidence+jws) with the audit signing key.
func (s *Service) SignEvidence(payload []byte) (string, error) {
	sg := s.currentSigner()
	if sg == nil {
		return "", ErrNoKey
	}
	jws, err := sg.evidence.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// SignManifest signs an export manifest (a compact JWS of type
// export-manifest+jws) with the audit signing key.
func (s *Service) SignManifest(payload []byte) (string, error) {
	sg := s.currentSigner()
	if sg == nil {
		return "", ErrNoKey
	}
	jws, err := sg.manifest.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// VerifyManifest checks a signed export manifest against ks and returns
// its payload.
func VerifyManifest(ks *KeySet, compact string) ([]byte, error) {
	payload, _, err := ks.verify(compact, TypExportManifest)
	return payload, err
}

// VerifyEvidence checks a signed evidence bundle against ks and returns
// its payload. The compact form must be exactly the one its parts encode
// (no alternative base64 spelling of the same bytes), so a changed byte
// anywhere is refused.
func VerifyEvidence(ks *KeySet, compact string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(compact, algs)
	if err != nil {
		return nil, fmt.Errorf("not a valid EdDSA JWS: %w", err)
	}
	again, err := jws.CompactSerialize()
	if err != nil || again != compact {
		return nil, errors.New("the JWS is not in its canonical compact form")
	}
	payload, _, err := ks.verify(compact, TypEvidence)
	return payload, err
}

// VerifyCheckpointJWS checks a signed checkpoint against ks and returns
// its claims.
func VerifyCheckpointJWS(ks *KeySet, compact string) (CheckpointClaims, error) {
	return verifyCheckpoint(ks, compact)
}
