package postgres

import (
	"context"

	"github.com/perfectpay/perfectpay/accounts"
)

var _ accounts.VerificationRepo = (*Tx)(nil)

func (t *Tx) GetVerification(ctx context.Context, tenantID string) (*accounts.Verification, error) {
	v := &accounts.Verification{TenantID: tenantID}
	err := t.tx.QueryRow(ctx, `SELECT status, legal_name, registration_number, country, evidence_reference, notes,
		reviewed_by, updated_at FROM tenant_verifications WHERE tenant_id = $1`, tenantID).Scan(&v.Status, &v.LegalName,
		&v.RegistrationNumber, &v.Country, &v.EvidenceReference, &v.Notes, &v.ReviewedBy, &v.Updated)
	if err != nil {
		return nil, mapErr(err)
	}
	return v, nil
}

func (t *Tx) PutVerification(ctx context.Context, v *accounts.Verification) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO tenant_verifications (tenant_id, status, legal_name, registration_number, country,
		evidence_reference, notes, reviewed_by, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (tenant_id) DO UPDATE SET status = $2, legal_name = $3, registration_number = $4, country = $5,
		evidence_reference = $6, notes = $7, reviewed_by = $8, updated_at = $9`,
		v.TenantID, v.Status, v.LegalName, v.RegistrationNumber, v.Country, v.EvidenceReference, v.Notes, v.ReviewedBy, v.Updated)
	return mapErr(err)
}
