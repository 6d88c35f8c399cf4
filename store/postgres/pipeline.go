package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/policies"
	"github.com/perfectpay/perfectpay/store"
)

var _ charging.Repo = (*Tx)(nil)

func (t *Tx) CreateApproval(ctx context.Context, a *charging.Approval) error {
	reasons, _ := json.Marshal(a.Reasons)
	var purchase any
	if len(a.Purchase) > 0 {
		purchase = string(a.Purchase)
	}
	_, err := t.tx.Exec(ctx, `INSERT INTO approvals (id, tenant_id, status, mandate_id, agent_id, amount, currency,
		payment_method, merchant_id, purchase, reasons, binding, created_at, expires_at, resolved_at, resolved_by, charge_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
		a.ID, a.TenantID, a.Status, a.MandateID, a.AgentID, a.Amount, a.Currency, a.PaymentMethod, a.MerchantID,
		purchase, string(reasons), a.Binding, a.CreatedAt, a.ExpiresAt, nullTime(a.ResolvedAt), a.ResolvedBy, a.ChargeID)
	return mapErr(err)
}

func (t *Tx) GetApproval(ctx context.Context, tenantID, id string) (*charging.Approval, error) {
	a := &charging.Approval{Object: "approval"}
	var purchase, reasons []byte
	err := t.tx.QueryRow(ctx, `SELECT id, tenant_id, status, mandate_id, agent_id, amount, currency, payment_method,
		merchant_id, purchase, reasons, binding, created_at, expires_at, resolved_at, resolved_by, charge_id
		FROM approvals WHERE id = $1 AND tenant_id = $2`, id, tenantID).Scan(&a.ID, &a.TenantID, &a.Status, &a.MandateID,
		&a.AgentID, &a.Amount, &a.Currency, &a.PaymentMethod, &a.MerchantID, &purchase, &reasons, &a.Binding,
		&a.CreatedAt, &a.ExpiresAt, &a.ResolvedAt, &a.ResolvedBy, &a.ChargeID)
	if err != nil {
		return nil, mapErr(err)
	}
	a.Purchase = purchase
	if err := json.Unmarshal(reasons, &a.Reasons); err != nil {
		return nil, err
	}
	return a, nil
}

func (t *Tx) UpdateApproval(ctx context.Context, a *charging.Approval, from string) error {
	tag, err := t.tx.Exec(ctx, `UPDATE approvals SET status = $3, resolved_at = $4, resolved_by = $5, charge_id = $6
		WHERE id = $1 AND tenant_id = $2 AND status = $7`,
		a.ID, a.TenantID, a.Status, nullTime(a.ResolvedAt), a.ResolvedBy, a.ChargeID, from)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrConflict
	}
	return nil
}

// declined says whether a decision counts as a decline in the velocity
// counts: a refusal, or a charge the processor failed.
func declined(result, outcome string) bool {
	return result == policies.Deny || outcome == payments.StatusFailed
}

func (t *Tx) CreateDecision(ctx context.Context, d *charging.Decision) error {
	reasons, _ := json.Marshal(d.Reasons)
	if err := t.later(ctx, `INSERT INTO decisions (id, tenant_id, mandate_id, agent_id, charge_id, approval_id, result,
		reasons, policy_version, input_digest, latency_us, outcome, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		[]any{d.ID, d.TenantID, d.MandateID, d.AgentID, nullStr(d.ChargeID), nullStr(d.ApprovalID), d.Result, string(reasons),
			d.PolicyVersion, d.InputDigest, d.LatencyMicros, d.Outcome, d.CreatedAt}, nil); err != nil {
		return err
	}
	if !declined(d.Result, d.Outcome) {
		return nil
	}
	return t.later(ctx, `INSERT INTO decision_declines (decision_id, tenant_id, agent_id, mandate_id, created_at)
		VALUES ($1, $2, $3, $4, $5)`, []any{d.ID, d.TenantID, d.AgentID, d.MandateID, d.CreatedAt}, nil)
}

// SetDecisionOutcome records the outcome, and keeps the decision's decline
// row in step with it, in one statement: the rule of declined, written
// with the same constants.
func (t *Tx) SetDecisionOutcome(ctx context.Context, tenantID, chargeID, outcome string) error {
	return t.later(ctx, `WITH u AS (UPDATE decisions SET outcome = $3 WHERE tenant_id = $1 AND charge_id = $2
			RETURNING id, tenant_id, agent_id, mandate_id, created_at, result),
		gone AS (DELETE FROM decision_declines x USING u
			WHERE x.decision_id = u.id AND u.result <> '`+policies.Deny+`' AND $3 <> '`+payments.StatusFailed+`')
		INSERT INTO decision_declines (decision_id, tenant_id, agent_id, mandate_id, created_at)
		SELECT id, tenant_id, agent_id, mandate_id, created_at FROM u WHERE $3 = '`+payments.StatusFailed+`'
		ON CONFLICT (decision_id) DO NOTHING`, []any{tenantID, chargeID, outcome}, nil)
}

// Velocity counts allowed decisions (charges) and refusals or processor
// declines (declines), each in a subquery that stops at its cap and is
// skipped when the cap is 0; declines are counted from decision_declines.
func (t *Tx) Velocity(ctx context.Context, tenantID, agentID, mandateID string, q charging.VelocityQuery) (agent, mandate charging.Counts, err error) {
	if !q.Needed() {
		return agent, mandate, nil
	}
	const charges, declines = `decisions WHERE result = 'allow' AND`, `decision_declines WHERE`
	count := func(who, what string, n int) string {
		return `(SELECT count(*) FROM (SELECT 1 FROM ` + what + ` tenant_id = $1 AND ` + who + ` AND created_at >= $4 LIMIT ` +
			strconv.Itoa(n) + `) x)`
	}
	err = t.tx.QueryRow(ctx, `SELECT `+
		count("agent_id = $2", charges, q.AgentCharges)+`, `+count("agent_id = $2", declines, q.AgentDeclines)+`, `+
		count("mandate_id = $3", charges, q.MandateCharges)+`, `+count("mandate_id = $3", declines, q.MandateDeclines),
		tenantID, agentID, mandateID, q.Since).Scan(&agent.Charges, &agent.Declines, &mandate.Charges, &mandate.Declines)
	return agent, mandate, mapErr(err)
}

func (t *Tx) CreateHold(ctx context.Context, h *charging.Hold) error {
	res, _ := json.Marshal(h.Reservation)
	return t.later(ctx, `INSERT INTO charge_holds (charge_id, tenant_id, reservation, held, counted) VALUES ($1, $2, $3, $4, $5)`,
		[]any{h.ChargeID, h.TenantID, string(res), h.Held, h.Counted}, nil)
}

func (t *Tx) LockHold(ctx context.Context, tenantID, chargeID string) (*charging.Hold, error) {
	h := &charging.Hold{}
	var res []byte
	err := t.tx.QueryRow(ctx, `SELECT charge_id, tenant_id, reservation, held, counted FROM charge_holds
		WHERE charge_id = $1 AND tenant_id = $2 FOR UPDATE`, chargeID, tenantID).Scan(&h.ChargeID, &h.TenantID, &res, &h.Held, &h.Counted)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, mapErr(err)
	}
	if err := json.Unmarshal(res, &h.Reservation); err != nil {
		return nil, err
	}
	return h, nil
}

func (t *Tx) UpdateHold(ctx context.Context, h *charging.Hold) error {
	return t.later(ctx, `UPDATE charge_holds SET held = $3, counted = $4 WHERE charge_id = $1 AND tenant_id = $2`,
		[]any{h.ChargeID, h.TenantID, h.Held, h.Counted}, nil)
}

func (t *Tx) DecisionOfCharge(ctx context.Context, tenantID, chargeID string) (*charging.Decision, error) {
	d := &charging.Decision{}
	var reasons []byte
	var charge, approval *string
	err := t.tx.QueryRow(ctx, `SELECT id, tenant_id, mandate_id, agent_id, charge_id, approval_id, result, reasons,
		policy_version, input_digest, latency_us, outcome, created_at FROM decisions WHERE tenant_id = $1 AND charge_id = $2`,
		tenantID, chargeID).Scan(&d.ID, &d.TenantID, &d.MandateID, &d.AgentID, &charge, &approval, &d.Result, &reasons,
		&d.PolicyVersion, &d.InputDigest, &d.LatencyMicros, &d.Outcome, &d.CreatedAt)
	if err != nil {
		return nil, mapErr(err)
	}
	if charge != nil {
		d.ChargeID = *charge
	}
	if approval != nil {
		d.ApprovalID = *approval
	}
	if err := json.Unmarshal(reasons, &d.Reasons); err != nil {
		return nil, err
	}
	return d, nil
}

// LedgerSnapshot reads mandates, then charges, then refunds: it is taken
// when no charge is in flight (after a run), so the three agree.
func (t *Tx) LedgerSnapshot(ctx context.Context, tenantID string) (*charging.LedgerSnapshot, error) {
	s := &charging.LedgerSnapshot{}
	rows, err := t.tx.Query(ctx, `SELECT id, tenant_id, coalesce(parent_id, ''), spent FROM mandates WHERE $1 = '' OR tenant_id = $1`, tenantID)
	if err != nil {
		return nil, mapErr(err)
	}
	for rows.Next() {
		var m charging.LedgerMandate
		if err := rows.Scan(&m.ID, &m.TenantID, &m.ParentID, &m.Spent); err != nil {
			rows.Close()
			return nil, mapErr(err)
		}
		s.Mandates = append(s.Mandates, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, mapErr(err)
	}
	rows, err = t.tx.Query(ctx, `SELECT id, tenant_id, mandate_id, status, amount, amount_captured FROM charges
		WHERE coalesce(mandate_id, '') <> '' AND ($1 = '' OR tenant_id = $1)`, tenantID)
	if err != nil {
		return nil, mapErr(err)
	}
	for rows.Next() {
		var c charging.LedgerCharge
		if err := rows.Scan(&c.ID, &c.TenantID, &c.MandateID, &c.Status, &c.Amount, &c.Captured); err != nil {
			rows.Close()
			return nil, mapErr(err)
		}
		s.Charges = append(s.Charges, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, mapErr(err)
	}
	rows, err = t.tx.Query(ctx, `SELECT r.charge_id, r.status, r.amount FROM refunds r JOIN charges c ON c.id = r.charge_id
		WHERE coalesce(c.mandate_id, '') <> '' AND ($1 = '' OR c.tenant_id = $1)`, tenantID)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	for rows.Next() {
		var r charging.LedgerRefund
		if err := rows.Scan(&r.ChargeID, &r.Status, &r.Amount); err != nil {
			return nil, mapErr(err)
		}
		s.Refunds = append(s.Refunds, r)
	}
	return s, mapErr(rows.Err())
}
