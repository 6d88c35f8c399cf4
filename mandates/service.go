package mandates

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/events"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/internal/page"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/vault"
)

// Tx is what a mandates transaction can touch: the mandate, its history,
// the audit trail and the outbox commit together.
type Tx interface {
	Repo
	Parties
	audit.Writer
	events.Outbox
}

// Parties finds what a mandate names, so that a mandate is only made for
// an agent and cards of its own tenant.
type Parties interface {
	GetAgent(ctx context.Context, id string) (*authz.Agent, error)
	// GetToken returns a card token of the tenant, deleted ones included.
	GetToken(ctx context.Context, tenantID, id string) (*vault.Token, error)
}

// checkParties refuses a mandate whose agent or cards are not the tenant's
// (missing, another tenant's, revoked or deleted).
func checkParties(ctx context.Context, tx Tx, tenantID string, m *Mandate) error {
	a, err := tx.GetAgent(ctx, m.Agent)
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && a.TenantID != tenantID):
		return invalid("agent", "No such agent: '%s'.", m.Agent)
	case err != nil:
		return err
	case a.Status == authz.AgentRevoked:
		return invalid("agent", "The agent %s was revoked.", m.Agent)
	}
	for _, id := range m.Limits.PaymentMethods {
		t, err := tx.GetToken(ctx, tenantID, id)
		if errors.Is(err, store.ErrNotFound) || (err == nil && t.DeletedAt != nil) {
			return invalid("payment_methods", "No such token: '%s'.", id)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Config tunes the service.
type Config struct {
	// MaxDepth bounds sub-delegation: a root mandate has depth 0.
	MaxDepth int
}

// Service manages mandates' lifecycle.
type Service struct {
	db  store.Runner[Tx]
	cfg Config
	now func() time.Time
}

// NewService returns the mandates service.
func NewService(db store.Runner[Tx], cfg Config) *Service {
	return &Service{db: db, cfg: cfg, now: time.Now}
}

// Event types of a mandate's history (and of its webhooks for state changes).
const (
	EventCreated   = "mandate.created"
	EventApproved  = "mandate.approved"
	EventSuspended = "mandate.suspended"
	EventResumed   = "mandate.resumed"
	EventRevoked   = "mandate.revoked"
	EventExpired   = "mandate.expired"
	EventExhausted = "mandate.exhausted"
)

// stateConflict means a lifecycle action does not apply to the mandate's
// current status (e.g. resuming an active mandate): an *apierr.Conflict
// whose code is "mandate_<status>".
func stateConflict(id, status, action string) error {
	return &apierr.Conflict{Param: "id", Code: apierr.Code("mandate_" + status),
		Message: fmt.Sprintf("Cannot %s mandate %s: it is %s.", action, id, status)}
}

// Record writes one state change of m into its history, the audit trail
// and (when webhook) the outbox, in the caller's transaction. The charge
// pipeline uses it for the events it adds (decisions, charges, exhaustion).
func Record(ctx context.Context, tx Tx, m *Mandate, typ string, data map[string]any, webhook bool) error {
	a := audit.ActorFrom(ctx)
	data = audit.AddFactor(ctx, data) // a payer's approval names its factor
	e := &Event{ID: ids.New("mev"), TenantID: m.TenantID, MandateID: m.ID, Type: typ, ActorType: a.Type, ActorID: a.ID,
		CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			return err
		}
		e.Data = b
	}
	if err := tx.AppendMandateEvent(ctx, e); err != nil {
		return err
	}
	if err := audit.RecordFor(ctx, tx, m.TenantID, typ, m.ID, data); err != nil {
		return err
	}
	if !webhook {
		return nil
	}
	return events.Emit(ctx, tx, m.TenantID, typ, m)
}

// Create validates and stores a new mandate of tenantID. m carries the
// terms (limits, description, payer, agent, and parent_id for a child).
// A payer of "self" (or the tenant's own id) is the tenant itself: such a
// mandate is active at once; one for another payer waits for the payer's
// approval (pending_approval). A child of an active parent must be
// Narrower than it and is active at once: its parent's payer approved more.
// Validation errors are *apierr.Invalid.
func (s *Service) Create(ctx context.Context, tenantID string, m *Mandate) (*Mandate, error) {
	now := s.now().UTC().Truncate(time.Microsecond)
	m.Limits.Normalize()
	if m.Payer == PayerSelf {
		m.Payer = tenantID
	}
	if err := m.ValidateTerms(); err != nil {
		return nil, err
	}
	if m.ValidUntil != nil && !m.ValidUntil.After(now) {
		return nil, invalid("valid_until", "valid_until is in the past.")
	}
	m.ID, m.TenantID, m.CreatedAt, m.UpdatedAt = ids.New("mdt"), tenantID, now, now
	m.Spent, m.PeriodSpent, m.PeriodStart, m.ChargeCount, m.ApprovedAt, m.RevokedAt = 0, 0, nil, 0, nil, nil
	err := s.db.InTx(ctx, func(tx Tx) error {
		if err := checkParties(ctx, tx, tenantID, m); err != nil {
			return err
		}
		if m.ParentID != "" {
			parent, err := tx.GetMandate(ctx, tenantID, m.ParentID)
			if errors.Is(err, store.ErrNotFound) {
				return invalid("parent_id", "No such mandate: '%s'.", m.ParentID)
			}
			if err != nil {
				return err
			}
			m.Depth = parent.Depth + 1
			if err := CheckChild(m, parent, s.cfg.MaxDepth); err != nil {
				return err
			}
			m.Status, m.ApprovedAt = StatusActive, &now
		} else {
			m.Depth = 0
			m.Status = StatusPendingApproval
			if m.Payer == tenantID {
				m.Status, m.ApprovedAt = StatusActive, &now
			}
		}
		if err := tx.CreateMandate(ctx, m); err != nil {
			return err
		}
		return Record(ctx, tx, m, EventCreated, map[string]any{"status": m.Status, "parent_id": m.ParentID, "agent": m.Agent}, true)
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Get returns a mandate of the tenant.
func (s *Service) Get(ctx context.Context, tenantID, id string) (*Mandate, error) {
	var m *Mandate
	err := s.db.InTx(ctx, func(tx Tx) error {
		var err error
		m, err = tx.GetMandate(ctx, tenantID, id)
		return err
	})
	return m, err
}

// Chain returns the mandate and its ancestors, root first.
func (s *Service) Chain(ctx context.Context, tenantID, id string) ([]Mandate, error) {
	var out []Mandate
	err := s.db.InTx(ctx, func(tx Tx) error {
		var err error
		out, err = tx.MandateChain(ctx, tenantID, id)
		return err
	})
	return out, err
}

// List returns a page of the tenant's mandates, newest first.
func (s *Service) List(ctx context.Context, f Filter) ([]Mandate, bool, error) {
	if err := page.Check(f.Limit); err != nil {
		return nil, false, err
	}
	var out []Mandate
	var more bool
	err := s.db.InTx(ctx, func(tx Tx) error {
		var err error
		out, more, err = tx.ListMandates(ctx, f)
		return err
	})
	return out, more, err
}

// Events returns a page of a mandate's history, oldest first.
func (s *Service) Events(ctx context.Context, f EventFilter) ([]Event, bool, error) {
	if err := page.Check(f.Limit); err != nil {
		return nil, false, err
	}
	var out []Event
	var more bool
	err := s.db.InTx(ctx, func(tx Tx) error {
		if _, err := tx.GetMandate(ctx, f.TenantID, f.MandateID); err != nil {
			return err
		}
		var err error
		out, more, err = tx.ListMandateEvents(ctx, f)
		return err
	})
	return out, more, err
}

// transition moves a mandate from one of from to status to, recording typ.
func (s *Service) transition(ctx context.Context, tenantID, id, action string, from []string, to, typ string) (*Mandate, error) {
	var m *Mandate
	err := s.db.InTx(ctx, func(tx Tx) error {
		var err error
		m, err = tx.SetMandateStatus(ctx, tenantID, id, from, to, s.now().UTC().Truncate(time.Microsecond))
		if errors.Is(err, store.ErrConflict) && m != nil {
			return stateConflict(id, m.Status, action)
		}
		if err != nil {
			return err
		}
		return Record(ctx, tx, m, typ, map[string]any{"status": to}, true)
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Approve activates a mandate awaiting its payer's approval. The payer's
// approval page (with MFA) calls it; a tenant key must not, or a merchant
// could approve spending on its customer's behalf.
func (s *Service) Approve(ctx context.Context, tenantID, id string) (*Mandate, error) {
	return s.transition(ctx, tenantID, id, "approve", []string{StatusPendingApproval}, StatusActive, EventApproved)
}

// Suspend pauses an active (or exhausted) mandate: its charges, and those
// of every descendant, are refused until it is resumed.
func (s *Service) Suspend(ctx context.Context, tenantID, id string) (*Mandate, error) {
	return s.transition(ctx, tenantID, id, "suspend", []string{StatusActive, StatusExhausted}, StatusSuspended, EventSuspended)
}

// Resume re-activates a suspended mandate.
func (s *Service) Resume(ctx context.Context, tenantID, id string) (*Mandate, error) {
	var m *Mandate
	err := s.db.InTx(ctx, func(tx Tx) error {
		cur, err := tx.GetMandate(ctx, tenantID, id)
		if err != nil {
			return err
		}
		to := StatusActive
		if cur.Spent >= cur.Budget || (cur.MaxCharges != nil && cur.ChargeCount >= *cur.MaxCharges) {
			to = StatusExhausted
		}
		m, err = tx.SetMandateStatus(ctx, tenantID, id, []string{StatusSuspended}, to, s.now().UTC().Truncate(time.Microsecond))
		if errors.Is(err, store.ErrConflict) && m != nil {
			return stateConflict(id, m.Status, "resume")
		}
		if err != nil {
			return err
		}
		return Record(ctx, tx, m, EventResumed, map[string]any{"status": to}, true)
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Revoke revokes the mandate and, in the same transaction, every
// descendant. It returns the mandate and the ids revoked (the mandate
// first when it was not revoked already). Revoking a revoked mandate
// changes nothing and is not an error.
func (s *Service) Revoke(ctx context.Context, tenantID, id string) (*Mandate, []string, error) {
	var m *Mandate
	var revoked []string
	err := s.db.InTx(ctx, func(tx Tx) error {
		var err error
		revoked, err = tx.RevokeMandateTree(ctx, tenantID, id, s.now().UTC().Truncate(time.Microsecond))
		if err != nil {
			return err
		}
		for _, rid := range revoked {
			r, err := tx.GetMandate(ctx, tenantID, rid)
			if err != nil {
				return err
			}
			data := map[string]any{"status": StatusRevoked}
			if rid != id {
				data["cascade_from"] = id
			}
			if err := Record(ctx, tx, r, EventRevoked, data, true); err != nil {
				return err
			}
			if rid == id {
				m = r
			}
		}
		if m == nil {
			m, err = tx.GetMandate(ctx, tenantID, id)
		}
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return m, revoked, nil
}

// ExpireDue marks mandates whose valid_until passed as expired, recording
// each, and returns how many it expired.
func (s *Service) ExpireDue(ctx context.Context) (int, error) {
	n := 0
	err := s.db.InTx(ctx, func(tx Tx) error {
		due, err := tx.ExpireMandates(ctx, s.now().UTC().Truncate(time.Microsecond), 500)
		if err != nil {
			return err
		}
		for i := range due {
			if err := Record(ctx, tx, &due[i], EventExpired, map[string]any{"status": StatusExpired}, true); err != nil {
				return err
			}
		}
		n = len(due)
		return nil
	})
	return n, err
}

// RunExpiry expires due mandates every interval until ctx ends.
func (s *Service) RunExpiry(ctx context.Context, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := s.ExpireDue(ctx); err != nil && ctx.Err() == nil {
			log.Error("mandate expiry failed", "err", err)
		} else if n > 0 {
			log.Info("mandates expired", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ErrNoSigner means no issuer signing key is wired to sign mandates.
var ErrNoSigner = errors.New("mandates: no signer configured")

// Signed returns the mandate as a compact JWS over its canonical JSON.
func (s *Service) Signed(ctx context.Context, signer Signer, tenantID, id string) (string, *Mandate, error) {
	if signer == nil {
		return "", nil, ErrNoSigner
	}
	m, err := s.Get(ctx, tenantID, id)
	if err != nil {
		return "", nil, err
	}
	payload, err := m.Canonical()
	if err != nil {
		return "", nil, err
	}
	jws, err := signer.SignMandate(ctx, payload)
	return jws, m, err
}
