// Package webhooks delivers events to tenants' endpoints: endpoints and
// their sealed secrets, the dispatcher that claims and retries deliveries,
// the Standard Webhooks signer and the SSRF-safe dialer. Events and the
// outbox they are written to live in package events.
package webhooks

import (
	"context"
	"time"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/events"
)

// Endpoint statuses.
const (
	EndpointEnabled  = "enabled"
	EndpointDisabled = "disabled"
)

// Why an endpoint was disabled.
const (
	DisabledByUser  = "user"    // the tenant disabled it
	DisabledGone    = "gone"    // it answered 410 Gone
	DisabledFailing = "failing" // every delivery failed for DisableAfter
)

// WildcardEvents in an endpoint's events subscribes it to every type.
const WildcardEvents = "*"

const (
	endpointPrefix = "we"  // we_…
	deliveryPrefix = "whd" // whd_…
	attemptPrefix  = "wha" // wha_…
)

// Endpoint is a tenant's webhook destination. The secrets are stored
// encrypted (AES-256-GCM, see SecretBox): they are needed to sign, so they
// cannot be hashed. They never appear in JSON, logs, audit entries or events.
type Endpoint struct {
	ID             string     `json:"id"`
	TenantID       string     `json:"-"`
	URL            string     `json:"url"`
	Description    string     `json:"description"`
	Events         []string   `json:"enabled_events"`
	Status         string     `json:"status"`
	DisabledReason string     `json:"disabled_reason,omitempty"`
	CreatedAt      time.Time  `json:"created"`
	UpdatedAt      time.Time  `json:"updated"`
	FailingSince   *time.Time `json:"failing_since"`

	// Secret is the sealed current signing secret.
	Secret []byte `json:"-"`
	// PrevSecret, while PrevSecretExpiresAt is in the future, is the sealed
	// previous secret: deliveries are signed with both during the overlap.
	PrevSecret          []byte     `json:"-"`
	PrevSecretExpiresAt *time.Time `json:"-"`
}

// Subscribed reports whether the endpoint wants events of type typ.
func (e *Endpoint) Subscribed(typ string) bool {
	for _, t := range e.Events {
		if t == typ || t == WildcardEvents {
			return true
		}
	}
	return false
}

// Delivery statuses. A delivery is one event bound for one endpoint: the
// outbox row dispatchers claim.
const (
	DeliveryPending   = "pending"   // due at NextAttemptAt (or claimed until then)
	DeliverySucceeded = "succeeded" // a 2xx answer was received
	DeliveryFailed    = "failed"    // retries exhausted, or 410
	DeliveryCanceled  = "canceled"  // endpoint deleted or disabled before success
)

// Delivery is the outbox row for one event and one endpoint.
type Delivery struct {
	ID            string     `json:"id"`
	TenantID      string     `json:"-"`
	EventID       string     `json:"event"`
	EndpointID    string     `json:"webhook_endpoint"`
	Status        string     `json:"status"`
	Attempts      int        `json:"attempts"`
	NextAttemptAt time.Time  `json:"next_attempt_at"`
	LastStatus    int        `json:"last_status_code,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
	CreatedAt     time.Time  `json:"created"`
	UpdatedAt     time.Time  `json:"updated"`
	CompletedAt   *time.Time `json:"completed_at"`
	// ClaimToken identifies the dispatcher holding the lease (empty when
	// unclaimed). Completion is conditional on it.
	ClaimToken string `json:"-"`
}

// Attempt is one HTTP request made for a delivery.
type Attempt struct {
	Seq           int64      `json:"-"`
	ID            string     `json:"id"`
	TenantID      string     `json:"-"`
	DeliveryID    string     `json:"delivery"`
	EventID       string     `json:"event"`
	EndpointID    string     `json:"webhook_endpoint"`
	Attempt       int        `json:"attempt"`
	URL           string     `json:"url"`
	StatusCode    int        `json:"status_code"` // 0 when no answer was received
	LatencyMS     int64      `json:"latency_ms"`
	Error         string     `json:"error,omitempty"`
	Outcome       string     `json:"outcome"` // succeeded | retry | failed
	NextAttemptAt *time.Time `json:"next_attempt_at"`
	CreatedAt     time.Time  `json:"created"`
}

// Claimed is a delivery a dispatcher leased, with what it needs to send it.
// Endpoint is nil when the endpoint was deleted.
type Claimed struct {
	Delivery Delivery
	Event    events.Event
	Endpoint *Endpoint
}

// EventFilter selects events, newest first.
type EventFilter struct {
	TenantID string
	// Type is an exact type, or a prefix ending in ".*" ("charge.*").
	Type string
	// StartingAfter is an event id: only older events are returned.
	StartingAfter string
	Limit         int
}

// AttemptFilter selects attempts, newest first.
type AttemptFilter struct {
	TenantID      string
	EventID       string
	EndpointID    string
	StartingAfter string // attempt id
	Limit         int
}

// Repo is the storage the webhooks domain needs. EnqueueEvent (Outbox)
// inserts the event and, in the same transaction, one pending delivery for
// every enabled endpoint of the tenant subscribed to its type.
type Repo interface {
	events.Outbox

	CreateEndpoint(ctx context.Context, e *Endpoint) error
	GetEndpoint(ctx context.Context, tenantID, id string) (*Endpoint, error)
	// LockEndpoint is GetEndpoint that also locks the row until the
	// transaction ends (read-modify-write).
	LockEndpoint(ctx context.Context, tenantID, id string) (*Endpoint, error)
	ListEndpoints(ctx context.Context, tenantID string) ([]Endpoint, error)
	// UpdateEndpoint writes every field of e.
	UpdateEndpoint(ctx context.Context, e *Endpoint) error
	DeleteEndpoint(ctx context.Context, tenantID, id string) error
	// MarkEndpointFailing sets failing_since to now unless already set and
	// returns its value.
	MarkEndpointFailing(ctx context.Context, id string, now time.Time) (time.Time, error)
	// MarkEndpointHealthy clears failing_since.
	MarkEndpointHealthy(ctx context.Context, id string) error
	// DisableEndpoint disables an enabled endpoint; false when it was not
	// enabled (already disabled, or deleted).
	DisableEndpoint(ctx context.Context, tenantID, id, reason string, now time.Time) (bool, error)

	GetEvent(ctx context.Context, tenantID, id string) (*events.Event, error)
	ListEvents(ctx context.Context, f EventFilter) ([]events.Event, error)

	// CreateDelivery adds a pending delivery (redelivery).
	CreateDelivery(ctx context.Context, d *Delivery) error
	ListDeliveries(ctx context.Context, tenantID, eventID string) ([]Delivery, error)
	// CancelDeliveries cancels the endpoint's pending deliveries.
	CancelDeliveries(ctx context.Context, tenantID, endpointID, reason string, now time.Time) (int, error)
	// ClaimDeliveries leases up to limit pending deliveries due at now
	// (FOR UPDATE SKIP LOCKED on Postgres): each gets token, one more
	// attempt, and next_attempt_at = leaseUntil, so a crashed dispatcher's
	// deliveries become due again when the lease lapses.
	ClaimDeliveries(ctx context.Context, now, leaseUntil time.Time, limit int, token string) ([]Claimed, error)
	// CompleteDelivery writes d's outcome (status, next attempt, last
	// status/error, completed_at) if d.ClaimToken still holds the lease.
	// It reports false when the lease was lost.
	CompleteDelivery(ctx context.Context, d *Delivery) (bool, error)

	AppendAttempt(ctx context.Context, a *Attempt) error
	ListAttempts(ctx context.Context, f AttemptFilter) ([]Attempt, error)
}

// Tx is what a webhooks transaction can touch.
type Tx interface {
	Repo
	audit.Writer
}
