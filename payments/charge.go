// Package payments is the payment core: charges and refunds on a card
// token, through a Processor (the built-in simulated acquirer by default).
//
// A charge is written first as `pending`, in one transaction with its audit
// entry (Open). The processor is called after that commit, with the charge
// id as its idempotency reference (Authorize), and its answer is recorded in
// a second transaction together with the audit entry and the outbox event
// (Record). These steps run on a transaction the caller owns: the charging
// package calls them inside its own transactions, next to its mandate
// ledger, so the budget moves in the same commit as the charge. Merchant
// charges run them on the core's own transactions (Create).
//
// # Processor time-outs
//
// A call whose answer is lost (time-out) is retried at once with the same
// reference, Config.Retries times; the processor answers a repeated
// reference with its first outcome, so a retry never charges twice. When
// every attempt timed out, the charge is marked `failed` with
// `processing_error` and a reversal (a void of the same reference) is sent,
// so an authorization the acquirer made without our hearing of it is
// cancelled; a reversal that fails is kept (reversal_pending) and retried by
// the resolver. A charge left `pending` by a node that died mid-call is
// picked up by the resolver on any node after Config.ResolveAfter and
// completed the same way (authorize again with the same reference, then
// record). Refunds whose answer was lost stay `pending` and the resolver
// retries them with the same refund reference until the processor answers.
package payments

import (
	"context"
	"time"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/events"
	"github.com/perfectpay/perfectpay/policies"
	"github.com/perfectpay/perfectpay/vault"
)

// Charge statuses.
const (
	StatusPending         = "pending" // the processor call is in flight
	StatusRequiresCapture = "requires_capture"
	StatusSucceeded       = "succeeded"
	StatusCanceled        = "canceled"
	StatusFailed          = "failed"
)

// Refund statuses.
const (
	RefundPending   = "pending"
	RefundSucceeded = "succeeded"
	RefundFailed    = "failed"
)

// CardDetails is the masked card a charge was made on (never the number).
type CardDetails struct {
	Brand       string `json:"brand"`
	Last4       string `json:"last4"`
	ExpMonth    int    `json:"exp_month"`
	ExpYear     int    `json:"exp_year"`
	Fingerprint string `json:"fingerprint"`
	CVCCheck    string `json:"cvc_check"`
}

// Purchase describes what an agent bought: context for people, never input
// to a decision.
type Purchase struct {
	Description string     `json:"description,omitempty"`
	LineItems   []LineItem `json:"line_items,omitempty"`
	OrderURL    string     `json:"order_url,omitempty"`
}

// LineItem is one line of a purchase.
type LineItem struct {
	Name       string `json:"name"`
	Quantity   int64  `json:"quantity"`
	UnitAmount int64  `json:"unit_amount"`
}

// Charge is a payment on a card token. Its JSON form is the API object and
// the event snapshot; it holds no card number.
type Charge struct {
	ID             string            `json:"id"`
	Object         string            `json:"object"`
	TenantID       string            `json:"-"`
	Livemode       bool              `json:"livemode"`
	Status         string            `json:"status"`
	Amount         int64             `json:"amount"`
	AmountCaptured int64             `json:"amount_captured"`
	AmountRefunded int64             `json:"amount_refunded"`
	Currency       string            `json:"currency"`
	Captured       bool              `json:"captured"`
	Paid           bool              `json:"paid"`
	Refunded       bool              `json:"refunded"`
	CaptureNow     bool              `json:"-"`
	PaymentMethod  string            `json:"payment_method"`
	Card           CardDetails       `json:"card"`
	Description    string            `json:"description"`
	Metadata       map[string]string `json:"metadata"`
	MandateID      string            `json:"mandate"`
	AgentID        string            `json:"agent"`
	MerchantID     string            `json:"merchant"`
	Purchase       *Purchase         `json:"purchase"`
	AuthCode       string            `json:"authorization_code,omitempty"`
	FailureCode    string            `json:"failure_code"`
	FailureMessage string            `json:"failure_message"`
	DeclineCode    string            `json:"decline_code"`
	// IdempotencyKey is the caller's credential and Idempotency-Key: a
	// charge is created once per key even if the key's claim lapsed (a node
	// died mid-request and the client retried after the claim's lock).
	IdempotencyKey string `json:"-"`
	// Attempts counts authorization calls to the processor.
	Attempts int `json:"-"`
	// ReversalPending: a void of an authorization we may not have heard of
	// is still to be sent.
	ReversalPending bool `json:"-"`
	// RiskSignals are the caller's, for the audit entry of the insert
	// (not stored with the charge).
	RiskSignals []policies.RiskSignal `json:"-"`
	// Claim is the capture or void under way ("" when none): taken and
	// committed before the processor is called, so a racing operation is
	// refused instead of reaching the processor too. It lapses at
	// ClaimUntil (its node died mid-call).
	Claim      string     `json:"-"`
	ClaimUntil *time.Time `json:"-"`
	Created    time.Time  `json:"created"`
	Updated    time.Time  `json:"-"`
	CapturedAt *time.Time `json:"captured_at"`
	CanceledAt *time.Time `json:"canceled_at"`
}

// derive fills the fields computed from the others.
func (c *Charge) derive() {
	c.Object = "charge"
	c.Captured = c.AmountCaptured > 0
	c.Paid = c.Status == StatusRequiresCapture || c.Status == StatusSucceeded
	c.Refunded = c.AmountCaptured > 0 && c.AmountRefunded == c.AmountCaptured
	if c.Metadata == nil {
		c.Metadata = map[string]string{}
	}
}

// Refund returns money of a captured charge.
type Refund struct {
	ID          string    `json:"id"`
	Object      string    `json:"object"`
	TenantID    string    `json:"-"`
	Livemode    bool      `json:"livemode"`
	ChargeID    string    `json:"charge"`
	Amount      int64     `json:"amount"`
	Currency    string    `json:"currency"`
	Status      string    `json:"status"`
	Reason      string    `json:"reason"`
	FailureCode string    `json:"failure_code"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"-"`
}

// ListFilter selects a page of charges, newest first.
type ListFilter struct {
	Livemode bool
	// MerchantID, when set, selects the charges made to that merchant
	// account (by any payer) instead of the tenant's own charges.
	MerchantID string
	Limit      int
	// StartingAfter is the id of the last charge of the previous page.
	StartingAfter string
}

// Repo is the storage the payment core needs.
type Repo interface {
	CreateCharge(ctx context.Context, c *Charge) error
	GetCharge(ctx context.Context, tenantID, id string) (*Charge, error)
	// ChargeByIdempotencyKey finds the charge created with key.
	ChargeByIdempotencyKey(ctx context.Context, tenantID, key string) (*Charge, error)
	// LockCharge is GetCharge holding the row until the transaction ends.
	LockCharge(ctx context.Context, tenantID, id string) (*Charge, error)
	// UpdateCharge writes c's mutable fields if the stored status is still
	// fromStatus, and store.ErrConflict otherwise.
	UpdateCharge(ctx context.Context, c *Charge, fromStatus string) error
	// ListCharges returns up to f.Limit charges of the tenant (or, with
	// f.MerchantID, made to that merchant), newest first; store.ErrNotFound
	// when f.StartingAfter names no charge of that selection.
	ListCharges(ctx context.Context, tenantID string, f ListFilter) ([]Charge, error)
	// ChargesToResolve lists charges of any tenant that are pending or have
	// a reversal pending and were last updated before t.
	ChargesToResolve(ctx context.Context, before time.Time, limit int) ([]Charge, error)

	CreateRefund(ctx context.Context, r *Refund) error
	GetRefund(ctx context.Context, tenantID, id string) (*Refund, error)
	// UpdateRefund writes r's status fields if the stored status is still
	// fromStatus, and store.ErrConflict otherwise.
	UpdateRefund(ctx context.Context, r *Refund, fromStatus string) error
	// RefundsToResolve lists pending refunds of any tenant last updated before t.
	RefundsToResolve(ctx context.Context, before time.Time, limit int) ([]Refund, error)
}

// Tx is what a payments transaction touches: charges and refunds, the
// vault (detokenization happens inside the charge transaction), the audit
// trail and the outbox.
type Tx interface {
	Repo
	vault.Repo
	audit.Writer
	events.Outbox
}
