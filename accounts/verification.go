package accounts

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/internal/country"
	"github.com/perfectpay/perfectpay/store"
)

// Verification statuses of a tenant (know your business). Live-mode
// charges are refused until the status is verified.
const (
	VerificationUnverified = "unverified"
	VerificationPending    = "pending"
	VerificationVerified   = "verified"
	VerificationRejected   = "rejected"
)

// VerificationStatuses are the statuses an operator may set.
var VerificationStatuses = []string{VerificationUnverified, VerificationPending, VerificationVerified, VerificationRejected}

// Verification is a tenant's business verification: its status and the
// evidence the operator reviewed (references to documents kept
// elsewhere, never the documents).
type Verification struct {
	TenantID           string    `json:"tenant"`
	Status             string    `json:"status"`
	LegalName          string    `json:"legal_name,omitempty"`
	RegistrationNumber string    `json:"registration_number,omitempty"`
	Country            string    `json:"country,omitempty"`
	EvidenceReference  string    `json:"evidence_reference,omitempty"`
	Notes              string    `json:"notes,omitempty"`
	ReviewedBy         string    `json:"reviewed_by,omitempty"`
	Updated            time.Time `json:"updated"`
}

// VerificationRepo stores verifications.
type VerificationRepo interface {
	// GetVerification returns a tenant's verification (store.ErrNotFound
	// when none was ever set: unverified).
	GetVerification(ctx context.Context, tenantID string) (*Verification, error)
	PutVerification(ctx context.Context, v *Verification) error
}

// VerificationTx is what setting a verification touches.
type VerificationTx interface {
	VerificationRepo
	GetTenant(ctx context.Context, id string) (*Tenant, error)
	audit.Writer
}

// Verifications keeps tenants' verification status.
type Verifications struct {
	db  store.Runner[VerificationTx]
	now func() time.Time
}

// NewVerifications returns the verification service.
func NewVerifications(db store.Runner[VerificationTx]) *Verifications {
	return &Verifications{db: db, now: time.Now}
}

// maxVerificationText bounds each evidence field.
const maxVerificationText = 500

// Set records v (the operator's review) for v.TenantID, audited as
// tenant.verification_set with the status it had before.
func (s *Verifications) Set(ctx context.Context, v Verification) (*Verification, error) {
	if !slices.Contains(VerificationStatuses, v.Status) {
		return nil, apierr.BadParam("status", "status must be one of %v.", VerificationStatuses)
	}
	if v.Country != "" && !country.Valid(v.Country) {
		return nil, apierr.BadParam("country", "country must be an ISO 3166-1 alpha-2 code such as US.")
	}
	for _, f := range []struct{ name, v string }{
		{"legal_name", v.LegalName}, {"registration_number", v.RegistrationNumber},
		{"evidence_reference", v.EvidenceReference}, {"notes", v.Notes}, {"reviewed_by", v.ReviewedBy},
	} {
		if len(f.v) > maxVerificationText || !utf8.ValidString(f.v) {
			return nil, apierr.BadParam(f.name, "%s must be valid UTF-8 of at most %d bytes.", f.name, maxVerificationText)
		}
	}
	if v.Status == VerificationVerified && (v.LegalName == "" || v.EvidenceReference == "") {
		return nil, apierr.MissingParam("evidence_reference", "A verified tenant needs legal_name and evidence_reference (what was reviewed).")
	}
	v.Updated = s.now().UTC().Truncate(time.Microsecond)
	err := s.db.InTx(ctx, func(tx VerificationTx) error {
		if _, err := tx.GetTenant(ctx, v.TenantID); err != nil {
			return err
		}
		from := VerificationUnverified
		cur, err := tx.GetVerification(ctx, v.TenantID)
		switch {
		case err == nil:
			from = cur.Status
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		if err := tx.PutVerification(ctx, &v); err != nil {
			return err
		}
		return audit.RecordFor(ctx, tx, v.TenantID, "tenant.verification_set", v.TenantID, map[string]any{
			"from": from, "status": v.Status, "country": v.Country, "evidence_reference": v.EvidenceReference,
			"reviewed_by": v.ReviewedBy,
		})
	})
	if err != nil {
		return nil, err
	}
	return &v, nil
}

// Get returns a tenant's verification (unverified when none was set).
func (s *Verifications) Get(ctx context.Context, tenantID string) (*Verification, error) {
	var v *Verification
	err := s.db.InTx(ctx, func(tx VerificationTx) error {
		var err error
		v, err = tx.GetVerification(ctx, tenantID)
		if errors.Is(err, store.ErrNotFound) {
			v, err = &Verification{TenantID: tenantID, Status: VerificationUnverified}, nil
		}
		return err
	})
	return v, err
}

// ErrTenantUnverified refuses a live-mode charge of a tenant not verified.
var ErrTenantUnverified = errors.New("accounts: tenant not verified for live mode")

// RequireVerified refuses (403 tenant_unverified) unless the tenant is
// verified.
func (s *Verifications) RequireVerified(ctx context.Context, tenantID string) error {
	v, err := s.Get(ctx, tenantID)
	if err != nil {
		return err
	}
	if v.Status != VerificationVerified {
		return &apierr.Forbidden{Code: "tenant_unverified", Err: ErrTenantUnverified, Message: fmt.Sprintf(
			"Live-mode charges are refused until the account is verified; its verification is %s. Test mode works meanwhile.", v.Status)}
	}
	return nil
}
