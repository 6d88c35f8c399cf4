package postgres

import (
	"context"

	"github.com/perfectpay/perfectpay/fraud"
	"github.com/perfectpay/perfectpay/store"
)

var _ fraud.Repo = (*Tx)(nil)

func (t *Tx) RaiseAnomaly(ctx context.Context, f *fraud.Flag) error {
	tag, err := t.tx.Exec(ctx, `INSERT INTO agent_anomalies (tenant_id, agent_id, metric, score, message, raised_at)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, agent_id) DO NOTHING`,
		f.TenantID, f.AgentID, f.Metric, f.Score, f.Message, f.RaisedAt)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrConflict
	}
	return nil
}

func (t *Tx) GetAnomaly(ctx context.Context, tenantID, agentID string) (*fraud.Flag, error) {
	f := fraud.Flag{TenantID: tenantID, AgentID: agentID}
	err := t.tx.QueryRow(ctx, `SELECT metric, score, message, raised_at FROM agent_anomalies
		WHERE tenant_id = $1 AND agent_id = $2`, tenantID, agentID).Scan(&f.Metric, &f.Score, &f.Message, &f.RaisedAt)
	if err != nil {
		return nil, mapErr(err)
	}
	f.RaisedAt = f.RaisedAt.UTC()
	return &f, nil
}

func (t *Tx) ClearAnomaly(ctx context.Context, tenantID, agentID string) (*fraud.Flag, error) {
	f := fraud.Flag{TenantID: tenantID, AgentID: agentID}
	err := t.tx.QueryRow(ctx, `DELETE FROM agent_anomalies WHERE tenant_id = $1 AND agent_id = $2
		RETURNING metric, score, message, raised_at`, tenantID, agentID).Scan(&f.Metric, &f.Score, &f.Message, &f.RaisedAt)
	if err != nil {
		return nil, mapErr(err)
	}
	f.RaisedAt = f.RaisedAt.UTC()
	return &f, nil
}
