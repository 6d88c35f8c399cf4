package charging

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/events"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/store"
)

// ErrApprovalClosed is an approve or deny of an approval that is no longer
// pending (resolved, used or expired).
var ErrApprovalClosed = errors.New("pipeline: the approval is no longer pending")

// GetApproval returns an approval of the tenant.
func (s *Service) GetApproval(ctx context.Context, tenantID, id string) (*Approval, error) {
	var a *Approval
	err := s.db.Autocommit(ctx, func(tx Tx) error {
		var err error
		a, err = tx.GetApproval(ctx, tenantID, id)
		return err
	})
	if err == nil {
		a.URL = s.approvalURL(a.ID)
	}
	return a, err
}

// ResolveApproval approves (yes) or denies a pending approval on behalf of
// the human identified by `by`.
func (s *Service) ResolveApproval(ctx context.Context, tenantID, id string, yes bool, by string) (*Approval, error) {
	var a *Approval
	err := s.db.InTx(ctx, func(tx Tx) error {
		var err error
		if a, err = tx.GetApproval(ctx, tenantID, id); err != nil {
			return err
		}
		now := s.clock()
		if a.Status != ApprovalPending || !now.Before(a.ExpiresAt) {
			return ErrApprovalClosed
		}
		a.Status = ApprovalDenied
		if yes {
			a.Status = ApprovalApproved
		}
		a.ResolvedAt, a.ResolvedBy = &now, by
		if err := tx.UpdateApproval(ctx, a, ApprovalPending); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return ErrApprovalClosed
			}
			return err
		}
		// The payer's answer names who gave it and with which factor
		// (audit.WithFactor), in the mandate's history and the audit entry.
		data, err := json.Marshal(audit.AddFactor(ctx, map[string]any{"approval": a.ID, "amount": a.Amount, "currency": a.Currency, "by": by}))
		if err != nil {
			return err
		}
		if err := tx.AppendMandateEvent(ctx, &mandates.Event{ID: ids.New("mev"), TenantID: tenantID, MandateID: a.MandateID,
			Type: "approval." + a.Status, ActorType: audit.ActorFrom(ctx).Type, ActorID: by,
			Data: data, CreatedAt: now}); err != nil {
			return err
		}
		if err := audit.Record(ctx, tx, "approval."+a.Status, a.ID, map[string]any{"mandate": a.MandateID, "amount": a.Amount, "by": by}); err != nil {
			return err
		}
		return events.Emit(ctx, tx, tenantID, "approval.resolved", a)
	})
	if err != nil {
		return nil, err
	}
	a.URL = s.approvalURL(a.ID)
	return a, nil
}
