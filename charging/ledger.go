package charging

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/idempotency"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/store"
)

// settle moves a charge's hold to what the ledger rule says it holds now,
// in tx (the transaction that recorded the change): to(h) returns the new
// held amount and whether the charge still counts under max_charges. A
// charge without a hold (a merchant charge) has nothing to settle.
func (s *Service) settle(ctx context.Context, tx Tx, c *payments.Charge, to func(h *Hold) (int64, bool)) error {
	h, err := tx.LockHold(ctx, c.TenantID, c.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.settleHold(ctx, tx, c, h, to)
}

// settleHold is settle on the hold h, already known: the charge's row
// lock (taken by the step that changed it) guards its hold, which only
// such steps change.
func (s *Service) settleHold(ctx context.Context, tx Tx, c *payments.Charge, h *Hold, to func(h *Hold) (int64, bool)) error {
	target, counted := to(h)
	target = max(target, 0)
	if target < h.Held || (h.Counted && !counted) {
		r := h.Reservation
		r.Amount = h.Held - min(target, h.Held)
		// Only the release that stops the charge counting gives back its
		// place under max_charges.
		if err := tx.Release(ctx, &r, !(h.Counted && !counted)); err != nil {
			return err
		}
		nh := *h
		nh.Held, nh.Counted = min(target, h.Held), counted
		if err := tx.UpdateHold(ctx, &nh); err != nil {
			return err
		}
		h = &nh
	}
	if err := tx.SetDecisionOutcome(ctx, c.TenantID, c.ID, c.Status); err != nil {
		return err
	}
	data, _ := json.Marshal(map[string]any{"charge": c.ID, "status": c.Status, "amount": c.Amount,
		"captured": c.AmountCaptured, "refunded": c.AmountRefunded, "held": h.Held})
	return tx.AppendMandateEvent(ctx, &mandates.Event{ID: ids.New("mev"), TenantID: c.TenantID, MandateID: c.MandateID,
		Type: "charge." + c.Status, ActorType: audit.ActorSystem, Data: data, CreatedAt: s.clock()})
}

// authorized is the hold after the processor's answer to an authorization:
// all of it while authorized or captured, nothing once failed.
func authorized(c *payments.Charge) func(h *Hold) (int64, bool) {
	return func(h *Hold) (int64, bool) {
		if c.Status == payments.StatusFailed || c.Status == payments.StatusCanceled {
			return 0, false
		}
		return h.Held, h.Counted
	}
}

// flow is the core's flow on the ledger's transactions: each change of
// a charge settles its hold in the transaction that records it.
func (s *Service) flow() payments.Flow[Tx] {
	return payments.Flow[Tx]{Core: s.pay, DB: s.db,
		Authorized: func(ctx context.Context, tx Tx, c *payments.Charge) error {
			if err := s.settle(ctx, tx, c, authorized(c)); err != nil {
				return err
			}
			return forgetClaim(ctx, tx, c)
		},
		// A capture shrinks the hold to the captured amount.
		Captured: func(ctx context.Context, tx Tx, c *payments.Charge) error {
			return s.settle(ctx, tx, c, func(h *Hold) (int64, bool) { return c.AmountCaptured, h.Counted })
		},
		// A void releases it.
		Voided: func(ctx context.Context, tx Tx, c *payments.Charge) error {
			return s.settle(ctx, tx, c, func(*Hold) (int64, bool) { return 0, false })
		},
		// The budget comes back only when the processor confirms the refund.
		Refunded: func(ctx context.Context, tx Tx, r *payments.Refund, c *payments.Charge) error {
			return s.settle(ctx, tx, c, func(h *Hold) (int64, bool) { return h.Held - r.Amount, h.Counted })
		},
	}
}

// completeAnswered records the processor's answer on a pending charge
// and settles its hold in the same transaction (a charge failed without
// an answer is then reversed), for the request that made the charge: the
// transaction that records the processor's answer also stores the
// request's answer on its Idempotency-Key claim, so a claim whose charge
// is settled always holds its answer.
//
// The hold is the one the charge transaction created: the charge was
// pending until this transaction changed it under its row lock, and no
// step changes the hold of a pending charge, so it is not read again.
func (s *Service) completeAnswered(ctx context.Context, c *payments.Charge, a payments.Answer, claim *idempotency.Claim, d Decision, hold Hold) (*payments.Charge, error) {
	f := s.flow()
	f.Authorized = func(ctx context.Context, tx Tx, c *payments.Charge) error {
		h := hold
		if err := s.settleHold(ctx, tx, c, &h, authorized(c)); err != nil {
			return err
		}
		out := d
		out.Outcome = c.Status
		cc := *c
		ch, err := payments.Outcome(&cc)
		return claim.Answer(ctx, tx, &Outcome{Charge: ch, Decision: &out}, err)
	}
	ch, err := f.Complete(ctx, c, a)
	// The transaction committed when the charge came back (a decline
	// comes back with its *CardError).
	if ch != nil {
		claim.Committed(nil)
	} else {
		claim.Committed(err)
	}
	return ch, err
}

// forgetClaim deletes the Idempotency-Key claim of an agent charge that
// the resolver completed: the request that made it never stored its
// answer (its node stopped, or lost the store, mid-call), and its claim
// must not keep the key's retries waiting. A retry then rebuilds the
// answer from the charge (replay). The claim's scope is the agent and the
// mandate, as chargeKey's.
func forgetClaim(ctx context.Context, tx Tx, c *payments.Charge) error {
	if c.IdempotencyKey == "" || c.AgentID == "" || c.MandateID == "" {
		return nil
	}
	scope := c.AgentID + ":" + c.MandateID
	key, ok := strings.CutPrefix(c.IdempotencyKey, scope+":")
	if !ok {
		return nil
	}
	return tx.ReleaseIdempotency(ctx, c.TenantID, scope, key)
}

// Get returns a charge of the owner.
func (s *Service) Get(ctx context.Context, o payments.Owner, id string) (*payments.Charge, error) {
	return s.pay.Get(ctx, o, id)
}

// Capture captures an authorized charge, fully or partly (amount nil: the
// whole authorized amount); an agent charge's hold shrinks to the captured
// amount in the same transaction.
func (s *Service) Capture(ctx context.Context, o payments.Owner, id string, amount *int64) (*payments.Charge, error) {
	return s.flow().Capture(ctx, o, id, amount)
}

// Void cancels an uncaptured charge; an agent charge's hold is released in
// the same transaction.
func (s *Service) Void(ctx context.Context, o payments.Owner, id string) (*payments.Charge, error) {
	return s.flow().Void(ctx, o, id)
}

// Refund returns money of a captured charge. The budget of an agent
// charge's mandates comes back only when the processor confirms the
// refund, in the transaction that records it; a refund that fails, or
// stays pending because its answer was lost, gives nothing back.
func (s *Service) Refund(ctx context.Context, p payments.RefundParams) (*payments.Refund, error) {
	return s.flow().Refund(ctx, p)
}

// GetRefund returns a refund of the owner.
func (s *Service) GetRefund(ctx context.Context, o payments.Owner, id string) (*payments.Refund, error) {
	return s.pay.GetRefund(ctx, o, id)
}

// Resolve completes charges and refunds left unresolved (see
// payments.Service.ResolveWith), settling holds in the same transactions.
// It returns how many objects it looked at.
func (s *Service) Resolve(ctx context.Context, limit int) (int, error) {
	return s.pay.ResolveWith(ctx, limit, s.flow())
}

// RunResolver calls Resolve every interval until ctx ends, sooner while
// the store is unreachable or answers kept during an outage wait (see
// payments.Service.RunResolverWith).
func (s *Service) RunResolver(ctx context.Context, every time.Duration) {
	s.pay.RunResolverWith(ctx, every, s.flow())
}

// LedgerSnapshot is what the ledger rule is checked against: every
// mandate's spent, every agent charge and every refund of one.
type LedgerSnapshot struct {
	Mandates []LedgerMandate
	Charges  []LedgerCharge
	Refunds  []LedgerRefund
}

// LedgerMandate is a mandate's place in the ledger.
type LedgerMandate struct {
	ID, TenantID, ParentID string
	Spent                  int64
}

// LedgerCharge is an agent charge's place in the ledger.
type LedgerCharge struct {
	ID, TenantID, MandateID, Status string
	Amount, Captured                int64
}

// LedgerRefund is a refund of an agent charge.
type LedgerRefund struct {
	ChargeID, Status string
	Amount           int64
}

// Holds is what a charge holds under the ledger rule: its amount while
// pending or authorized, its captured amount less its succeeded refunds
// once captured, nothing once failed or voided.
func Holds(c LedgerCharge, succeededRefunds int64) int64 {
	switch c.Status {
	case payments.StatusPending, payments.StatusRequiresCapture:
		return c.Amount
	case payments.StatusSucceeded:
		return c.Captured - succeededRefunds
	}
	return 0
}

// CheckLedger recomputes every mandate's spent from the charges and
// refunds of s by the ledger rule and returns one line per mandate whose
// stored spent differs (none: the ledger holds).
func CheckLedger(s *LedgerSnapshot) []string {
	refunded := map[string]int64{}
	for _, r := range s.Refunds {
		if r.Status == payments.RefundSucceeded {
			refunded[r.ChargeID] += r.Amount
		}
	}
	parent := map[string]string{}
	for _, m := range s.Mandates {
		parent[m.ID] = m.ParentID
	}
	want := map[string]int64{}
	for _, c := range s.Charges {
		h := Holds(c, refunded[c.ID])
		for id, n := c.MandateID, 0; id != "" && n <= len(s.Mandates); id, n = parent[id], n+1 {
			want[id] += h
		}
	}
	var out []string
	for _, m := range s.Mandates {
		if m.Spent != want[m.ID] {
			out = append(out, fmt.Sprintf("mandate %s: spent %d, but its charges hold %d", m.ID, m.Spent, want[m.ID]))
		}
	}
	sort.Strings(out)
	return out
}
