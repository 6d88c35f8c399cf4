// Package canary makes a node refuse to start when a configured secret is
// not the one the database was set up with. At first start a small value is
// sealed under each server-wide secret and stored; every later start opens
// it again. A secret that cannot open its canary is named, with what it
// protects, instead of the node starting and then failing every request
// (every API key answering invalid_api_key, every card failing to decrypt).
package canary

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/internal/seal"
	"github.com/perfectpay/perfectpay/store"
)

// Repo stores sealed canaries by secret name.
type Repo interface {
	// GetCanary returns the sealed canary of name and when it was written
	// (store.ErrNotFound).
	GetCanary(ctx context.Context, name string) (sealed []byte, written time.Time, err error)
	// PutCanary stores a new canary (store.ErrConflict when name has one).
	PutCanary(ctx context.Context, name string, sealed []byte, at time.Time) error
}

// Tx is what writing canaries touches: the canary and its audit entry.
type Tx interface {
	Repo
	audit.Writer
}

// Kind says how a secret is used, and so how its canary is made.
type Kind int

const (
	// MAC keys (secrets.hmac_key) key HMAC-SHA256: the canary is the MAC
	// of a fixed label, compared in constant time.
	MAC Kind = iota
	// AEAD keys (KEKs, the webhook secret key) are AES-256 keys: the
	// canary is a fixed label sealed with internal/seal, the name as
	// additional data.
	AEAD
)

// Secret is one configured secret.
type Secret struct {
	// Name is the configuration key (and the canary's name), e.g.
	// "secrets.hmac_key" or "vault KEK version 1".
	Name string
	Key  []byte
	Kind Kind
	// Guards says what depends on the secret, for the refusal message.
	Guards string
}

const label = "perfectpay secret canary v1"

func (s Secret) seal() ([]byte, error) {
	if s.Kind == MAC {
		m := hmac.New(sha256.New, s.Key)
		m.Write([]byte(label + "\x00" + s.Name))
		return m.Sum(nil), nil
	}
	return seal.Seal(s.Key, []byte(label), []byte(s.Name))
}

func (s Secret) opens(sealed []byte) bool {
	if s.Kind == MAC {
		want, _ := s.seal()
		return hmac.Equal(want, sealed)
	}
	// Canaries written before internal/seal have no format byte and must
	// still open, or every database set up then would refuse to start.
	pt, err := seal.OpenLegacy(s.Key, sealed, []byte(s.Name))
	return err == nil && hmac.Equal(pt, []byte(label))
}

// MismatchError names every secret that does not open its canary.
type MismatchError struct {
	Secrets []Secret
	Written map[string]time.Time
}

func (e *MismatchError) Error() string {
	msg := "refusing to start: the configured secrets cannot open what this database holds"
	for _, s := range e.Secrets {
		msg += fmt.Sprintf("\n  - %s is not the one this database was set up with (its canary, written %s, does not open); %s. Restore the original value.",
			s.Name, e.Written[s.Name].Format(time.RFC3339), s.Guards)
	}
	return msg
}

// Check opens the canary of every secret and fails with a *MismatchError
// naming each one that does not open; secrets without a canary get one
// (their first start on this database), audited in the same transaction.
func Check(ctx context.Context, db store.Runner[Tx], secrets []Secret, now time.Time) error {
	for attempt := 0; ; attempt++ {
		err := check(ctx, db, secrets, now)
		if errors.Is(err, store.ErrConflict) && attempt == 0 {
			continue // another node wrote a canary first: check against it
		}
		return err
	}
}

func check(ctx context.Context, db store.Runner[Tx], secrets []Secret, now time.Time) error {
	return db.InTx(ctx, func(tx Tx) error {
		bad := &MismatchError{Written: map[string]time.Time{}}
		var missing []Secret
		for _, s := range secrets {
			sealed, written, err := tx.GetCanary(ctx, s.Name)
			switch {
			case errors.Is(err, store.ErrNotFound):
				missing = append(missing, s)
			case err != nil:
				return err
			case !s.opens(sealed):
				bad.Secrets = append(bad.Secrets, s)
				bad.Written[s.Name] = written
			}
		}
		if len(bad.Secrets) > 0 {
			return bad
		}
		at := now.UTC().Truncate(time.Microsecond)
		for _, s := range missing {
			sealed, err := s.seal()
			if err != nil {
				return fmt.Errorf("canary for %s: %w", s.Name, err)
			}
			if err := tx.PutCanary(ctx, s.Name, sealed, at); err != nil {
				return err
			}
			if err := audit.Record(ctx, tx, "secret.canary_written", s.Name, nil); err != nil {
				return err
			}
		}
		return nil
	})
}
