package vault

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/store"
)

// refused is a card that fails validation: param names the field
// (card[number], card[exp_month], …), code is the Stripe-style error code.
// A missing or malformed parameter is an *apierr.Invalid, any other refusal
// an *apierr.Card. The message holds no card data.
func refused(param string, code apierr.Code) error {
	msg := cardMessage(code)
	if code == apierr.ParameterMissing || code == apierr.ParameterInvalid {
		return &apierr.Invalid{Param: param, Code: code, Message: msg}
	}
	return &apierr.Card{Param: param, Code: code, Message: msg}
}

// cardMessage is what a client is told about a refused card.
func cardMessage(code apierr.Code) string {
	switch code {
	case "invalid_number":
		return "The card number is not a valid credit card number."
	case "invalid_expiry_month":
		return "The card's expiration month is invalid."
	case "invalid_expiry_year":
		return "The card's expiration year is invalid."
	case "expired_card":
		return "The card has expired."
	case "invalid_cvc":
		return "The card's security code is invalid (3 digits; 4 for American Express)."
	case apierr.ParameterMissing:
		return "Missing required card parameter."
	}
	return "The card details are invalid."
}

// Service is the vault.
type Service struct {
	db       store.Runner[Tx]
	keys     *Keyring
	verifier Verifier
	log      *slog.Logger
	now      func() time.Time
}

// NewService returns the vault on db with the KEKs in keys. verifier runs
// the CVC verification at tokenization (nil: every check is unavailable).
func NewService(db store.Runner[Tx], keys *Keyring, verifier Verifier, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{db: db, keys: keys, verifier: verifier, log: log, now: time.Now}
}

// CardInput is a card as submitted for tokenization.
type CardInput struct {
	Number   string
	ExpMonth int
	ExpYear  int
	CVC      string
	Name     string
}

// Validate checks a card and returns it normalised, or the refusal
// (an *apierr.Invalid or *apierr.Card).
func Validate(in CardInput, now time.Time) (*Card, error) {
	if in.Number == "" {
		return nil, refused("card[number]", apierr.ParameterMissing)
	}
	number, brand, err := ParseCardNumber(in.Number)
	if err != nil {
		return nil, refused("card[number]", "invalid_number")
	}
	year, err := CheckExpiry(in.ExpMonth, in.ExpYear, now)
	switch {
	case errors.Is(err, ErrExpiredCard):
		return nil, refused("card[exp_year]", "expired_card")
	case err != nil && (in.ExpMonth < 1 || in.ExpMonth > 12):
		return nil, refused("card[exp_month]", "invalid_expiry_month")
	case err != nil:
		return nil, refused("card[exp_year]", "invalid_expiry_year")
	}
	if in.CVC == "" {
		return nil, refused("card[cvc]", apierr.ParameterMissing)
	}
	if err := CheckCVC(in.CVC, brand); err != nil {
		return nil, refused("card[cvc]", "invalid_cvc")
	}
	name := strings.TrimSpace(in.Name)
	if len(name) > 200 {
		return nil, refused("card[name]", apierr.ParameterInvalid)
	}
	return &Card{Number: number, ExpMonth: in.ExpMonth, ExpYear: year, Name: name, Brand: brand, CVC: in.CVC}, nil
}

// Tokenize validates the card, verifies it once with the processor (the
// only use of the CVC, which is then dropped), and stores it encrypted.
func (s *Service) Tokenize(ctx context.Context, tenantID string, livemode bool, in CardInput) (*Token, error) {
	now := s.now().UTC().Truncate(time.Microsecond)
	card, err := Validate(in, now)
	if err != nil {
		return nil, err
	}
	cvcCheck := CVCUnavailable
	if s.verifier != nil {
		cvcCheck = s.verifier.VerifyCard(ctx, card)
	}
	card.CVC = "" // used once; never stored, logged or returned

	tok := &Token{
		ID: ids.New("tok"), TenantID: tenantID, Livemode: livemode, Brand: card.Brand, Last4: card.Last4(),
		ExpMonth: card.ExpMonth, ExpYear: card.ExpYear, CVCCheck: cvcCheck, CreatedAt: now,
	}
	plain, err := json.Marshal(sealedCard{Number: card.Number, Name: card.Name})
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	err = s.db.InTx(ctx, func(tx Tx) error {
		tk, tkKey, err := s.tenantKey(ctx, tx, tenantID, now)
		if err != nil {
			return err
		}
		defer clear(tkKey)
		tok.TenantKeyID = tk.ID
		tok.Fingerprint = fingerprint(tkKey, card.Number)
		dek := GenerateKey()
		defer clear(dek)
		if tok.WrappedDEK, err = seal(tkKey, dek, dekAAD(tok)); err != nil {
			return err
		}
		if tok.Ciphertext, err = seal(dek, plain, cardAAD(tok)); err != nil {
			return err
		}
		if err := tx.CreateToken(ctx, tok); err != nil {
			return err
		}
		return audit.Record(ctx, tx, "token.created", tok.ID, map[string]any{
			"brand": tok.Brand, "last4": tok.Last4, "cvc_check": tok.CVCCheck, "livemode": livemode,
		})
	})
	if err != nil {
		return nil, err
	}
	return tok, nil
}

// sealedCard is the plaintext under a token's data key.
type sealedCard struct {
	Number string `json:"number"`
	Name   string `json:"name,omitempty"`
}

// tenantKey returns the tenant's live key, creating it on first use, and
// its unwrapped material (the caller clears it).
func (s *Service) tenantKey(ctx context.Context, tx Tx, tenantID string, now time.Time) (*TenantKey, []byte, error) {
	if live, err := tx.LiveTenantKey(ctx, tenantID); err == nil {
		material, err := s.unwrapTenantKey(live)
		return live, material, err
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, nil, err
	}
	k := &TenantKey{ID: ids.New("tk"), TenantID: tenantID, CreatedAt: now}
	material := GenerateKey()
	var err error
	if k.KEKVersion, k.Wrapped, err = s.keys.wrap(material, tenantKeyAAD(k)); err != nil {
		return nil, nil, err
	}
	got, err := tx.EnsureTenantKey(ctx, k)
	if err != nil {
		return nil, nil, err
	}
	if got.ID == k.ID {
		if err := audit.RecordFor(ctx, tx, tenantID, "vault.tenant_key.created", k.ID, map[string]any{"kek_version": k.KEKVersion}); err != nil {
			return nil, nil, err
		}
		return got, material, nil
	}
	clear(material)
	material, err = s.unwrapTenantKey(got)
	if err != nil {
		return nil, nil, err
	}
	return got, material, nil
}

func (s *Service) unwrapTenantKey(k *TenantKey) ([]byte, error) {
	if k.DestroyedAt != nil || k.Wrapped == nil {
		return nil, ErrKeyDestroyed
	}
	return s.keys.unwrap(k.KEKVersion, k.Wrapped, tenantKeyAAD(k))
}

const aadPrefix = "perfectpay/vault/v1\x00"

func tenantKeyAAD(k *TenantKey) []byte {
	return []byte(aadPrefix + "tenant-key\x00" + k.TenantID + "\x00" + k.ID)
}

func dekAAD(t *Token) []byte {
	return []byte(aadPrefix + "data-key\x00" + t.TenantID + "\x00" + t.ID + "\x00" + t.TenantKeyID)
}

func cardAAD(t *Token) []byte {
	return []byte(aadPrefix + "card\x00" + t.TenantID + "\x00" + t.ID)
}

func fingerprint(tenantKey []byte, number string) string {
	fk, err := hkdf.Key(sha256.New, tenantKey, nil, "perfectpay/vault/v1 fingerprint", KeySize)
	if err != nil {
		panic(err) // only for impossible lengths
	}
	defer clear(fk)
	m := hmac.New(sha256.New, fk)
	m.Write([]byte(number))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:12])
}

// Get returns a live token of the tenant (masked fields only are used).
func (s *Service) Get(ctx context.Context, tenantID, id string) (*Token, error) {
	var tok *Token
	err := s.db.InTx(ctx, func(tx Tx) error {
		var err error
		tok, err = tx.GetToken(ctx, tenantID, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	if tok.DeletedAt != nil {
		return nil, store.ErrNotFound
	}
	return tok, nil
}

// Delete destroys a token: its data key and ciphertext are erased.
func (s *Service) Delete(ctx context.Context, tenantID, id string) (*Token, error) {
	var tok *Token
	err := s.db.InTx(ctx, func(tx Tx) error {
		var err error
		if tok, err = tx.GetToken(ctx, tenantID, id); err != nil {
			return err
		}
		if tok.DeletedAt != nil {
			return store.ErrNotFound
		}
		now := s.now().UTC().Truncate(time.Microsecond)
		if err := tx.DeleteToken(ctx, tenantID, id, now); err != nil {
			return err
		}
		tok.DeletedAt, tok.WrappedDEK, tok.Ciphertext = &now, nil, nil
		return audit.Record(ctx, tx, "token.deleted", id, map[string]any{"brand": tok.Brand, "last4": tok.Last4})
	})
	if err != nil {
		return nil, err
	}
	return tok, nil
}

// Reveal decrypts a token inside the caller's transaction. It is the only
// detokenization path and is reachable from Go only (the payment core),
// never over HTTP. The caller must drop the card as soon as it is used.
func (s *Service) Reveal(ctx context.Context, tx Repo, tenantID, id string) (*Token, *Card, error) {
	tok, tk, err := tx.GetTokenAndKey(ctx, tenantID, id)
	if err != nil {
		return nil, nil, err
	}
	if tok.DeletedAt != nil || tok.Ciphertext == nil {
		return tok, nil, ErrTokenDeleted
	}
	if tk == nil {
		return nil, nil, store.ErrNotFound
	}
	if tk.TenantID != tenantID {
		return nil, nil, ErrDecrypt
	}
	tkKey, err := s.unwrapTenantKey(tk)
	if err != nil {
		return tok, nil, err
	}
	defer clear(tkKey)
	dek, err := open(tkKey, tok.WrappedDEK, dekAAD(tok))
	if err != nil {
		return tok, nil, err
	}
	defer clear(dek)
	plain, err := open(dek, tok.Ciphertext, cardAAD(tok))
	if err != nil {
		return tok, nil, err
	}
	defer clear(plain)
	var sc sealedCard
	if err := json.Unmarshal(plain, &sc); err != nil {
		return tok, nil, ErrDecrypt
	}
	return tok, &Card{Number: sc.Number, Name: sc.Name, ExpMonth: tok.ExpMonth, ExpYear: tok.ExpYear, Brand: tok.Brand}, nil
}

// ShredTenant destroys the tenant's key: every card the tenant stored so far
// becomes unrecoverable, in the database and in its backups. A later
// tokenization starts a new tenant key.
func (s *Service) ShredTenant(ctx context.Context, tenantID string) error {
	return s.db.InTx(ctx, func(tx Tx) error {
		k, err := tx.DestroyTenantKey(ctx, tenantID, s.now().UTC().Truncate(time.Microsecond))
		if err != nil {
			return err
		}
		return audit.RecordFor(ctx, tx, tenantID, "vault.tenant_key.destroyed", k.ID, map[string]any{"kek_version": k.KEKVersion})
	})
}

// RewrapReport counts what Rewrap did.
type RewrapReport struct {
	TargetVersion int `json:"target_version"`
	Scanned       int `json:"scanned"`
	Rewrapped     int `json:"rewrapped"`
	// Skipped keys were rewrapped or destroyed concurrently.
	Skipped int `json:"skipped"`
	// Failed keys could not be unwrapped (unknown or retired KEK version);
	// FailedIDs names them (ids are not secret).
	Failed    int      `json:"failed"`
	FailedIDs []string `json:"failed_ids,omitempty"`
	// Remaining counts live tenant keys per KEK version afterwards.
	Remaining map[int]int `json:"remaining_by_version"`
}

// Rewrap re-wraps every live tenant key under the active KEK version, in
// batches of batch keys, each batch its own transaction. It unwraps tenant
// keys only; no data key or card number is ever decrypted. Interrupted, it
// is simply run again: keys already under the active version are not
// selected. progress, when set, is called after each batch.
func (s *Service) Rewrap(ctx context.Context, batch int, progress func(RewrapReport)) (*RewrapReport, error) {
	if batch <= 0 {
		batch = 100
	}
	target := s.keys.Active()
	rep := &RewrapReport{TargetVersion: target}
	after := ""
	for {
		var n, done, skipped, failed int
		var failedIDs []string
		last := after
		err := s.db.InTx(ctx, func(tx Tx) error {
			n, done, skipped, failed, failedIDs, last = 0, 0, 0, 0, nil, after
			keys, err := tx.TenantKeysToRewrap(ctx, target, after, batch)
			if err != nil {
				return err
			}
			n = len(keys)
			now := s.now().UTC().Truncate(time.Microsecond)
			for i := range keys {
				k := &keys[i]
				last = k.ID
				material, err := s.unwrapTenantKey(k)
				if err != nil {
					failed++
					failedIDs = append(failedIDs, k.ID)
					s.log.WarnContext(ctx, "vault rewrap: cannot unwrap tenant key", "tenant_key", k.ID, "kek_version", k.KEKVersion, "err", err)
					continue
				}
				_, wrapped, err := s.keys.wrap(material, tenantKeyAAD(k))
				clear(material)
				if err != nil {
					return err
				}
				switch err := tx.RewrapTenantKey(ctx, k.ID, k.KEKVersion, target, wrapped, now); {
				case errors.Is(err, store.ErrConflict):
					skipped++
				case err != nil:
					return err
				default:
					done++
				}
			}
			if done == 0 {
				return nil
			}
			return audit.Record(ctx, tx, "vault.rewrap.batch", fmt.Sprintf("kek_v%d", target), map[string]any{
				"rewrapped": done, "skipped": skipped, "failed": failed, "target_version": target,
			})
		})
		if err != nil {
			return rep, err
		}
		after = last
		rep.Scanned += n
		rep.Rewrapped += done
		rep.Skipped += skipped
		rep.Failed += failed
		rep.FailedIDs = append(rep.FailedIDs, failedIDs...)
		if progress != nil {
			progress(*rep)
		}
		if n < batch {
			break
		}
	}
	counts, err := s.KeyCounts(ctx)
	rep.Remaining = counts
	return rep, err
}

// KeyCounts counts live tenant keys per KEK version: when only the active
// version remains, min_decryption_version may be raised to it.
func (s *Service) KeyCounts(ctx context.Context) (map[int]int, error) {
	var out map[int]int
	err := s.db.InTx(ctx, func(tx Tx) error {
		var err error
		out, err = tx.CountTenantKeys(ctx)
		return err
	})
	return out, err
}
