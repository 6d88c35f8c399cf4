package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/perfectpay/perfectpay/merchants"
	"github.com/perfectpay/perfectpay/store"
)

func (t *Tx) putDomains(ctx context.Context, m *merchants.Merchant) error {
	if _, err := t.tx.Exec(ctx, `DELETE FROM merchant_domains WHERE merchant_id = $1`, m.ID); err != nil {
		return mapErr(err)
	}
	for _, d := range m.Domains {
		if _, err := t.tx.Exec(ctx, `INSERT INTO merchant_domains (merchant_id, domain, verified_at,
			challenge_token, challenge_expires_at, method, checked_at, next_check_at, failed_checks)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			m.ID, d.Name, d.VerifiedAt, nullStr(d.Token), d.TokenExpiresAt, nullStr(d.Method), d.CheckedAt, d.NextCheckAt, d.FailedChecks); err != nil {
			return mapErr(err)
		}
	}
	return nil
}

func (t *Tx) CreateMerchant(ctx context.Context, m *merchants.Merchant) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO merchants (id, tenant_id, display_name, mcc, country, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, m.ID, m.TenantID, m.DisplayName, m.MCC, m.Country, m.CreatedAt, m.UpdatedAt)
	if err != nil {
		return mapErr(err)
	}
	return t.putDomains(ctx, m)
}

func (t *Tx) UpdateMerchant(ctx context.Context, m *merchants.Merchant) error {
	tag, err := t.tx.Exec(ctx, `UPDATE merchants SET display_name = $3, mcc = $4, country = $5, updated_at = $6
		WHERE id = $1 AND tenant_id = $2`, m.ID, m.TenantID, m.DisplayName, m.MCC, m.Country, m.UpdatedAt)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return t.putDomains(ctx, m)
}

const merchantCols = `m.id, m.tenant_id, m.display_name, m.mcc, m.country, m.created_at, m.updated_at,
	coalesce((SELECT json_agg(json_build_object('domain', d.domain, 'verified_at', d.verified_at,
	          'token', d.challenge_token, 'token_expires_at', d.challenge_expires_at, 'method', d.method,
	          'checked_at', d.checked_at, 'next_check_at', d.next_check_at, 'failed_checks', d.failed_checks) ORDER BY d.domain)
	          FROM merchant_domains d WHERE d.merchant_id = m.id), '[]')`

func scanMerchant(row pgx.Row) (*merchants.Merchant, error) {
	var m merchants.Merchant
	var domains []struct {
		Domain         string     `json:"domain"`
		VerifiedAt     *time.Time `json:"verified_at"`
		Token          *string    `json:"token"`
		TokenExpiresAt *time.Time `json:"token_expires_at"`
		Method         *string    `json:"method"`
		CheckedAt      *time.Time `json:"checked_at"`
		NextCheckAt    *time.Time `json:"next_check_at"`
		FailedChecks   int        `json:"failed_checks"`
	}
	if err := row.Scan(&m.ID, &m.TenantID, &m.DisplayName, &m.MCC, &m.Country, &m.CreatedAt, &m.UpdatedAt, &domains); err != nil {
		return nil, mapErr(err)
	}
	m.CreatedAt, m.UpdatedAt = m.CreatedAt.UTC(), m.UpdatedAt.UTC()
	m.Domains = make([]merchants.Domain, 0, len(domains))
	for _, d := range domains {
		m.Domains = append(m.Domains, merchants.Domain{Name: d.Domain, VerifiedAt: utcPtr(d.VerifiedAt),
			Token: deref(d.Token), TokenExpiresAt: utcPtr(d.TokenExpiresAt), Method: deref(d.Method),
			CheckedAt: utcPtr(d.CheckedAt), NextCheckAt: utcPtr(d.NextCheckAt), FailedChecks: d.FailedChecks})
	}
	return &m, nil
}

func (t *Tx) GetMerchant(ctx context.Context, id string) (*merchants.Merchant, error) {
	return scanMerchant(t.tx.QueryRow(ctx, `SELECT `+merchantCols+` FROM merchants m WHERE m.id = $1`, id))
}

func (t *Tx) GetMerchantByTenant(ctx context.Context, tenantID string) (*merchants.Merchant, error) {
	return scanMerchant(t.tx.QueryRow(ctx, `SELECT `+merchantCols+` FROM merchants m WHERE m.tenant_id = $1`, tenantID))
}

func (t *Tx) FindMerchantsByDomain(ctx context.Context, domain string) ([]merchants.Merchant, error) {
	rows, err := t.tx.Query(ctx, `SELECT `+merchantCols+` FROM merchants m
		WHERE m.id IN (SELECT merchant_id FROM merchant_domains WHERE domain = $1 AND verified_at IS NOT NULL) ORDER BY m.id`, domain)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	var out []merchants.Merchant
	for rows.Next() {
		m, err := scanMerchant(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *m)
	}
	return out, mapErr(rows.Err())
}

func (t *Tx) DueDomainChecks(ctx context.Context, now time.Time, limit int) ([]merchants.DomainRef, error) {
	rows, err := t.tx.Query(ctx, `SELECT d.merchant_id, m.tenant_id, d.domain FROM merchant_domains d
		JOIN merchants m ON m.id = d.merchant_id
		WHERE d.verified_at IS NOT NULL AND d.next_check_at <= $1
		ORDER BY d.next_check_at, d.merchant_id, d.domain LIMIT $2`, now, limit)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	out := []merchants.DomainRef{}
	for rows.Next() {
		var r merchants.DomainRef
		if err := rows.Scan(&r.MerchantID, &r.TenantID, &r.Domain); err != nil {
			return nil, mapErr(err)
		}
		out = append(out, r)
	}
	return out, mapErr(rows.Err())
}

func (t *Tx) ClaimDomainCheck(ctx context.Context, merchantID, domain string, now, until time.Time) (bool, error) {
	// The row lock and the re-evaluated WHERE make one of racing claims win.
	tag, err := t.tx.Exec(ctx, `UPDATE merchant_domains SET next_check_at = $4
		WHERE merchant_id = $1 AND domain = $2 AND verified_at IS NOT NULL AND next_check_at <= $3`, merchantID, domain, now, until)
	if err != nil {
		return false, mapErr(err)
	}
	return tag.RowsAffected() == 1, nil
}

func (t *Tx) LockMerchant(ctx context.Context, id string) error {
	var one int
	return mapErr(t.tx.QueryRow(ctx, `SELECT 1 FROM merchants WHERE id = $1 FOR UPDATE`, id).Scan(&one))
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
