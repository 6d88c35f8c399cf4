package mandates

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Filter selects mandates of a tenant for listing, newest first.
type Filter struct {
	TenantID string
	Agent    string
	Payer    string
	Status   string
	ParentID string
	// StartingAfter is the id of the last mandate of the previous page.
	StartingAfter string
	Limit         int
}

// Event is one entry of a mandate's history: created, approved, every
// decision and charge, suspended, revoked, …
type Event struct {
	Seq       int64           `json:"-"`
	ID        string          `json:"id"`
	TenantID  string          `json:"-"`
	MandateID string          `json:"mandate"`
	Type      string          `json:"type"`
	ActorType string          `json:"actor_type,omitempty"`
	ActorID   string          `json:"actor_id,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
	CreatedAt time.Time       `json:"created"`
}

// EventFilter pages through one mandate's history, oldest first.
type EventFilter struct {
	TenantID  string
	MandateID string
	AfterSeq  int64
	// StartingAfter is the id of the last event of the previous page
	// (store.ErrNotFound when it is not an event of this mandate).
	StartingAfter string
	Limit         int
}

// Limits a reservation can hit.
const (
	LimitNotFound   = "not_found"
	LimitStatus     = "status"
	LimitWindow     = "window"
	LimitBudget     = "budget"
	LimitPeriod     = "period_budget"
	LimitMaxCharges = "max_charges"
)

// ErrRefused is wrapped by every *RefusedError.
var ErrRefused = errors.New("mandates: reservation refused")

// RefusedError says which mandate of a chain refused a reservation and why.
type RefusedError struct {
	MandateID string
	Limit     string // LimitStatus, LimitBudget, …
	Status    string // the mandate's status, for LimitStatus
}

func (e *RefusedError) Error() string {
	if e.Limit == LimitStatus {
		return fmt.Sprintf("mandates: mandate %s is %s", e.MandateID, e.Status)
	}
	return fmt.Sprintf("mandates: mandate %s refused the reservation: %s", e.MandateID, e.Limit)
}

func (e *RefusedError) Unwrap() error { return ErrRefused }

// Reservation is an amount reserved on every mandate of a chain.
type Reservation struct {
	Chain  []string  `json:"chain"` // root first
	Amount int64     `json:"amount"`
	At     time.Time `json:"at"` // the time given to Reserve
	// Periods holds, for each mandate of the chain with a period budget,
	// the start of the period the amount was counted in.
	Periods map[string]time.Time `json:"periods,omitempty"`
	// Exhausted lists the mandates this reservation used up (status set to
	// exhausted: budget or max_charges reached).
	Exhausted []string `json:"exhausted,omitempty"`
}

// Repo is the storage mandates need.
type Repo interface {
	// CreateMandate inserts m (store.ErrConflict on a duplicate id,
	// store.ErrNotFound when its parent does not exist).
	CreateMandate(ctx context.Context, m *Mandate) error
	GetMandate(ctx context.Context, tenantID, id string) (*Mandate, error)
	// ListMandates returns up to f.Limit mandates and whether more follow.
	ListMandates(ctx context.Context, f Filter) ([]Mandate, bool, error)
	// MandateChain returns the mandate and its ancestors, root first.
	MandateChain(ctx context.Context, tenantID, id string) ([]Mandate, error)
	// SetMandateStatus moves a mandate to status `to` at time at, but only
	// from one of the statuses `from`: store.ErrConflict otherwise (the
	// returned mandate then shows the current status), store.ErrNotFound
	// when it does not exist. Approval stamps approved_at.
	SetMandateStatus(ctx context.Context, tenantID, id string, from []string, to string, at time.Time) (*Mandate, error)
	// RevokeMandateTree revokes the mandate and every descendant that is
	// not already revoked or expired, and returns the ids it revoked, the
	// given mandate first when it was revoked now.
	RevokeMandateTree(ctx context.Context, tenantID, id string, at time.Time) ([]string, error)
	// ExpireMandates marks every mandate whose valid_until is at or before
	// now as expired and returns them.
	ExpireMandates(ctx context.Context, now time.Time, limit int) ([]Mandate, error)

	// Reserve adds amount to spent and period_spent (rolled over at the
	// period boundary) and one to charge_count of every mandate of chain
	// (root first), each in one conditional statement that refuses unless
	// the mandate is active, inside its window, and stays within budget,
	// period budget and max_charges. A mandate that reaches its budget or
	// max_charges becomes exhausted. On refusal it returns a *RefusedError
	// naming the mandate and the limit; the caller must then return an
	// error from the transaction, so the updates already made roll back.
	Reserve(ctx context.Context, chain []string, amount int64, now time.Time) (*Reservation, error)
	// Release gives a reservation back: spent, and period_spent when the
	// period it was counted in is still the mandate's current one;
	// charge_count too unless
	// keepCount (a refund of a charge that did happen). An exhausted
	// mandate becomes active again when it is no longer used up.
	Release(ctx context.Context, r *Reservation, keepCount bool) error

	AppendMandateEvent(ctx context.Context, e *Event) error
	ListMandateEvents(ctx context.Context, f EventFilter) ([]Event, bool, error)
}

// Refusal says which limit m refuses a reservation of amount at now by, or
// "" when it accepts. Stores use it to explain a refused conditional update.
func (m *Mandate) Refusal(amount int64, now time.Time) string {
	switch {
	case m.Status != StatusActive:
		return LimitStatus
	case !m.ActiveAt(now):
		return LimitWindow
	case m.Spent+amount > m.Budget:
		return LimitBudget
	case m.Period != "" && m.PeriodSpentAt(now)+amount > *m.PeriodBudget:
		return LimitPeriod
	case m.MaxCharges != nil && m.ChargeCount+1 > *m.MaxCharges:
		return LimitMaxCharges
	}
	return ""
}
