package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/compliance"
)

var _ compliance.Repo = (*Tx)(nil)

func (t *Tx) RecordDecisionInput(ctx context.Context, d *charging.Decision) error {
	return t.later(ctx, `INSERT INTO decision_inputs (decision_id, tenant_id, input) VALUES ($1, $2, $3)`,
		[]any{d.ID, d.TenantID, string(d.Input)}, nil)
}

func (t *Tx) PutPolicyVersion(ctx context.Context, v *compliance.PolicyVersion) error {
	mods, err := json.Marshal(v.Modules)
	if err != nil {
		return err
	}
	_, err = t.tx.Exec(ctx, `INSERT INTO policy_versions (version, modules, created_at) VALUES ($1, $2, $3)
		ON CONFLICT (version) DO NOTHING`, v.Version, string(mods), v.CreatedAt)
	return mapErr(err)
}

func (t *Tx) GetPolicyVersion(ctx context.Context, version string) (*compliance.PolicyVersion, error) {
	v := &compliance.PolicyVersion{Version: version}
	var mods string
	err := t.tx.QueryRow(ctx, `SELECT modules, created_at FROM policy_versions WHERE version = $1`, version).Scan(&mods, &v.CreatedAt)
	if err != nil {
		return nil, mapErr(err)
	}
	if err := json.Unmarshal([]byte(mods), &v.Modules); err != nil {
		return nil, err
	}
	return v, nil
}

const decisionRecordCols = `d.id, d.tenant_id, d.mandate_id, d.agent_id, d.charge_id, d.approval_id, d.result, d.reasons,
	d.policy_version, d.input_digest, d.latency_us, d.outcome, d.created_at, i.input`

func scanDecisionRecords(rows pgx.Rows) ([]charging.Decision, error) {
	defer rows.Close()
	var out []charging.Decision
	for rows.Next() {
		var d charging.Decision
		var reasons []byte
		var charge, approval, input *string
		if err := rows.Scan(&d.ID, &d.TenantID, &d.MandateID, &d.AgentID, &charge, &approval, &d.Result, &reasons,
			&d.PolicyVersion, &d.InputDigest, &d.LatencyMicros, &d.Outcome, &d.CreatedAt, &input); err != nil {
			return nil, mapErr(err)
		}
		if charge != nil {
			d.ChargeID = *charge
		}
		if approval != nil {
			d.ApprovalID = *approval
		}
		if input != nil {
			d.Input = json.RawMessage(*input)
		}
		if err := json.Unmarshal(reasons, &d.Reasons); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, mapErr(rows.Err())
}

func (t *Tx) DecisionRecords(ctx context.Context, f compliance.DecisionFilter) ([]charging.Decision, error) {
	where := []string{"true"}
	var args []any
	add := func(cond string, vs ...any) {
		n := make([]any, len(vs))
		for i, v := range vs {
			args = append(args, v)
			n[i] = len(args)
		}
		where = append(where, fmt.Sprintf(cond, n...))
	}
	if f.TenantID != "" {
		add("d.tenant_id = $%d", f.TenantID)
	}
	if !f.Since.IsZero() {
		add("d.created_at >= $%d", f.Since)
	}
	if !f.Until.IsZero() {
		add("d.created_at < $%d", f.Until)
	}
	if !f.AfterTime.IsZero() {
		add("(d.created_at, d.id) > ($%d, $%d)", f.AfterTime, f.AfterID)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	rows, err := t.tx.Query(ctx, `SELECT `+decisionRecordCols+` FROM decisions d
		LEFT JOIN decision_inputs i ON i.decision_id = d.id
		WHERE `+strings.Join(where, " AND ")+fmt.Sprintf(` ORDER BY d.created_at, d.id LIMIT %d`, limit), args...)
	if err != nil {
		return nil, mapErr(err)
	}
	return scanDecisionRecords(rows)
}

func (t *Tx) DecisionRecord(ctx context.Context, tenantID, id string) (*charging.Decision, error) {
	rows, err := t.tx.Query(ctx, `SELECT `+decisionRecordCols+` FROM decisions d
		LEFT JOIN decision_inputs i ON i.decision_id = d.id WHERE d.tenant_id = $1 AND d.id = $2`, tenantID, id)
	if err != nil {
		return nil, mapErr(err)
	}
	list, err := scanDecisionRecords(rows)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, mapErr(pgx.ErrNoRows)
	}
	return &list[0], nil
}
