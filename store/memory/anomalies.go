package memory

import (
	"context"

	"github.com/perfectpay/perfectpay/fraud"
	"github.com/perfectpay/perfectpay/store"
)

var _ fraud.Repo = (*Tx)(nil)

type anomalyKey struct{ tenant, agent string }

func (tx *Tx) RaiseAnomaly(_ context.Context, f *fraud.Flag) error {
	if _, ok := tx.d.tenants[f.TenantID]; !ok {
		return store.ErrNotFound // the foreign key
	}
	k := anomalyKey{f.TenantID, f.AgentID}
	if _, ok := tx.d.anomalies[k]; ok {
		return store.ErrConflict
	}
	if tx.d.anomalies == nil { // made on first use
		tx.d.anomalies = table[anomalyKey, fraud.Flag]{}
	}
	put(tx, tx.d.anomalies, k, *f)
	return nil
}

func (tx *Tx) GetAnomaly(_ context.Context, tenantID, agentID string) (*fraud.Flag, error) {
	f, ok := tx.d.anomalies[anomalyKey{tenantID, agentID}]
	if !ok {
		return nil, store.ErrNotFound
	}
	return &f, nil
}

func (tx *Tx) ClearAnomaly(_ context.Context, tenantID, agentID string) (*fraud.Flag, error) {
	k := anomalyKey{tenantID, agentID}
	f, ok := tx.d.anomalies[k]
	if !ok {
		return nil, store.ErrNotFound
	}
	del(tx, tx.d.anomalies, k)
	return &f, nil
}
