package charging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"time"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/events"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/store"
)

// DetailType is the payment_mandate authorization details type for the
// issuer's registry:
//
//   - at client_credentials an agent names a mandate it is the agent of
//     ({"type":"payment_mandate","mandate_id":"mdt_…"}); the token carries
//     the mandate's id and limits;
//   - at token exchange the new actor asks for limits within the subject
//     token's mandate; a child mandate is created for it (status active,
//     depth + 1) only when every limit is a subset of the parent's.
func (s *Service) DetailType() authz.DetailType {
	return authz.DetailType{Single: true, Validate: s.validateDetail, Narrow: s.narrowDetail, State: s.detailState}
}

// left is what a mandate chain (root first) still allows: the least
// budget left on any of its mandates, and the least period budget left on
// those that have one (nil when none has).
func left(chain []mandates.Mandate, now time.Time) (int64, *int64) {
	budget := int64(math.MaxInt64)
	var period *int64
	for i := range chain {
		m := &chain[i]
		budget = min(budget, m.Remaining())
		if m.PeriodBudget != nil {
			p := *m.PeriodBudget - m.PeriodSpentAt(now)
			if period == nil || p < *period {
				period = &p
			}
		}
	}
	return max(budget, 0), period
}

// detailState is the live state of a payment_mandate grant for the
// issuer: active while the mandate and every ancestor are active (or
// exhausted, which a refund may undo) and within their validity window;
// the agents of the ancestors, nearest first, as its delegators; the
// budget and period budget left as introspection members.
func (s *Service) detailState(ctx context.Context, tenantID string, raw json.RawMessage) (*authz.GrantState, error) {
	ds, err := claimDetails(append(append([]byte("["), raw...), ']'))
	if err != nil || len(ds) != 1 || ds[0].MandateID == "" {
		return &authz.GrantState{}, nil //nolint:nilerr // details that name no mandate grant nothing: an empty, inactive state
	}
	var chain []mandates.Mandate
	err = s.db.Autocommit(ctx, func(tx Tx) error {
		var err error
		chain, err = tx.MandateChain(ctx, tenantID, ds[0].MandateID)
		return err
	})
	if errors.Is(err, store.ErrNotFound) || (err == nil && len(chain) == 0) {
		return &authz.GrantState{}, nil
	}
	if err != nil {
		return nil, err
	}
	now := s.clock()
	st := &authz.GrantState{Key: chain[len(chain)-1].ID, Active: true}
	for i := range chain {
		m := &chain[i]
		if (m.Status != mandates.StatusActive && m.Status != mandates.StatusExhausted) || !m.ActiveAt(now) {
			st.Active = false
		}
	}
	for i := len(chain) - 2; i >= 0; i-- {
		st.Delegators = append(st.Delegators, chain[i].Agent)
	}
	budget, period := left(chain, now)
	m := &chain[len(chain)-1]
	st.Extra = map[string]any{"mandate": m.ID, "currency": strings.ToLower(m.Currency), "remaining_budget": budget}
	if period != nil {
		st.Extra["remaining_period_budget"] = max(*period, 0)
	}
	return st, nil
}

func detailErr(format string, args ...any) error {
	return authz.RefuseDetails(format, args...)
}

func parseOne(raw json.RawMessage) (*mandates.AuthorizationDetail, error) {
	ds, err := mandates.ParseAuthorizationDetails(append(append([]byte("["), raw...), ']'))
	if err != nil {
		var fe *apierr.Invalid
		if errors.As(err, &fe) {
			return nil, detailErr("%s", fe.Error())
		}
		return nil, detailErr("malformed payment_mandate")
	}
	return &ds[0], nil
}

func (s *Service) validateDetail(ctx context.Context, dc authz.DetailContext, raw json.RawMessage) (json.RawMessage, error) {
	d, err := parseOne(raw)
	if err != nil {
		return nil, err
	}
	if !d.IsReference() {
		return nil, detailErr("at this grant a payment_mandate names an existing mandate: {\"type\":\"payment_mandate\",\"mandate_id\":\"mdt_…\"}")
	}
	var m *mandates.Mandate
	err = s.db.Autocommit(ctx, func(tx Tx) error {
		var err error
		m, err = tx.GetMandate(ctx, dc.TenantID, d.MandateID)
		return err
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, detailErr("no such mandate: %s", d.MandateID)
	case err != nil:
		return nil, err
	case m.Agent != dc.Agent.ID:
		return nil, detailErr("mandate %s is not granted to this agent", m.ID)
	case m.Status != mandates.StatusActive:
		return nil, detailErr("mandate %s is %s", m.ID, m.Status)
	}
	return json.Marshal(m.Detail())
}

// narrowDetail creates the child mandate of a delegation. parent is the
// element granted to the subject token; child what the new actor asks for
// (equal to parent when the exchange named no authorization_details).
func (s *Service) narrowDetail(ctx context.Context, dc authz.DetailContext, parentRaw, childRaw json.RawMessage) (json.RawMessage, error) {
	parents, err := claimDetails(append(append([]byte("["), parentRaw...), ']'))
	if err != nil || len(parents) != 1 || parents[0].MandateID == "" {
		return nil, detailErr("the subject token's payment_mandate names no mandate")
	}
	pd := &parents[0]
	cd := &mandates.AuthorizationDetail{Type: mandates.AuthorizationDetailsType, MandateID: pd.MandateID}
	if !bytes.Equal(parentRaw, childRaw) {
		// The new actor asked for something: a request to validate.
		if cd, err = parseOne(childRaw); err != nil {
			return nil, err
		}
	}
	var out json.RawMessage
	err = s.db.InTx(ctx, func(tx Tx) error {
		parent, err := tx.GetMandate(ctx, dc.TenantID, pd.MandateID)
		if errors.Is(err, store.ErrNotFound) {
			return detailErr("no such mandate: %s", pd.MandateID)
		}
		if err != nil {
			return err
		}
		if cd.MandateID != "" && cd.MandateID != parent.ID {
			return detailErr("a delegated payment_mandate narrows the subject token's mandate %s", parent.ID)
		}
		chain, err := tx.MandateChain(ctx, dc.TenantID, parent.ID)
		if err != nil {
			return err
		}
		budgetLeft, periodLeft := left(chain, s.clock())
		if cd.Limits == nil && parent.Agent == dc.Agent.ID {
			// Same agent, nothing narrowed: the same mandate.
			out, err = json.Marshal(parent.Detail())
			return err
		}
		limits := parent.Limits.Clone()
		if cd.Limits != nil {
			limits = cd.Limits.Clone()
		} else {
			// Inherited terms: no more than the parent has left.
			limits.Budget = min(limits.Budget, budgetLeft)
			if limits.PeriodBudget != nil && periodLeft != nil {
				p := min(*limits.PeriodBudget, max(*periodLeft, 0))
				limits.PeriodBudget = &p
			}
		}
		now := s.clock()
		child := &mandates.Mandate{
			ID: ids.New("mdt"), TenantID: parent.TenantID, Limits: limits, Description: cd.Description,
			Payer: parent.Payer, Agent: dc.Agent.ID, ParentID: parent.ID, Depth: parent.Depth + 1,
			Status: mandates.StatusActive, CreatedAt: now, UpdatedAt: now, ApprovedAt: &now,
		}
		if child.Description == "" {
			child.Description = parent.Description
		}
		child.Limits.Normalize()
		if err := child.Limits.Validate("authorization_details[0]."); err != nil {
			return detailErr("%s", err.Error())
		}
		if err := mandates.CheckChild(child, parent, s.cfg.MaxDepth); err != nil {
			return detailErr("%s", err.Error())
		}
		if child.Budget > budgetLeft {
			return detailErr("authorization_details[0].budget %d is more than the %d the subject token's mandate has left", child.Budget, budgetLeft)
		}
		if periodLeft != nil && child.PeriodBudget != nil && *child.PeriodBudget > *periodLeft {
			return detailErr("authorization_details[0].period_budget %d is more than the %d the subject token's mandate has left this period",
				*child.PeriodBudget, max(*periodLeft, 0))
		}
		if err := tx.CreateMandate(ctx, child); err != nil {
			return err
		}
		data, _ := json.Marshal(map[string]any{"parent": parent.ID, "agent": child.Agent, "delegated_by": parent.Agent})
		if err := tx.AppendMandateEvent(ctx, &mandates.Event{ID: ids.New("mev"), TenantID: child.TenantID, MandateID: child.ID,
			Type: "mandate.delegated", ActorType: audit.ActorAgent, ActorID: dc.Agent.ID, Data: data, CreatedAt: now}); err != nil {
			return err
		}
		if err := audit.RecordFor(ctx, tx, child.TenantID, "mandate.created", child.ID, map[string]any{
			"parent": parent.ID, "agent": child.Agent, "budget": child.Budget, "currency": child.Currency, "via": "token_exchange"}); err != nil {
			return err
		}
		if err := events.Emit(ctx, tx, child.TenantID, "mandate.created", child); err != nil {
			return err
		}
		out, err = json.Marshal(child.Detail())
		return err
	})
	return out, err
}
