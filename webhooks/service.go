package webhooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"time"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/events"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/internal/egress"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/internal/page"
	"github.com/perfectpay/perfectpay/store"
)

// Clock tells the time; tests inject a fake one.
type Clock interface{ Now() time.Time }

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// invalid is a caller mistake about one parameter (an API 400), shown as
// "Invalid <param>: <what>.".
func invalid(param, format string, args ...any) error {
	return apierr.BadParam(param, "Invalid %s: %s.", param, fmt.Sprintf(format, args...))
}

// ErrEndpointDisabled is returned when redelivering to a disabled endpoint.
var ErrEndpointDisabled = errors.New("webhooks: endpoint is disabled")

// Limits on endpoints.
const (
	MaxEndpointsPerTenant = 32
	MaxEventsPerEndpoint  = 100
	MaxDescription        = 500
	// MaxRotationOverlap bounds how long an old secret keeps signing.
	MaxRotationOverlap = 7 * 24 * time.Hour
)

var eventTypeRE = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$`)

// ServiceOptions configure the Service.
type ServiceOptions struct {
	Policy egress.Policy
	Box    *SecretBox
	// RotationOverlap is how long the previous secret keeps signing after a
	// rotation when the request does not say.
	RotationOverlap time.Duration
	Clock           Clock
	Log             *slog.Logger
}

// Service manages endpoints, events and redeliveries.
type Service struct {
	db  store.Runner[Tx]
	opt ServiceOptions
}

// NewService returns the webhooks service.
func NewService(db store.Runner[Tx], o ServiceOptions) *Service {
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.RotationOverlap == 0 {
		o.RotationOverlap = 24 * time.Hour
	}
	return &Service{db: db, opt: o}
}

func (s *Service) now() time.Time { return s.opt.Clock.Now().UTC().Truncate(time.Microsecond) }

// Policy returns the destination policy.
func (s *Service) Policy() egress.Policy { return s.opt.Policy }

// DefaultRotationOverlap is the overlap used when a rotation does not say.
func (s *Service) DefaultRotationOverlap() time.Duration { return s.opt.RotationOverlap }

func (s *Service) checkEvents(events []string) ([]string, error) {
	if len(events) == 0 {
		return nil, invalid("enabled_events", "at least one event type (or \"*\" for all) is required")
	}
	if len(events) > MaxEventsPerEndpoint {
		return nil, invalid("enabled_events", "at most %d event types", MaxEventsPerEndpoint)
	}
	out := make([]string, 0, len(events))
	for _, e := range events {
		if e != WildcardEvents && !eventTypeRE.MatchString(e) || len(e) > 100 {
			return nil, invalid("enabled_events", "%q is not an event type (like \"charge.succeeded\") or \"*\"", e)
		}
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (s *Service) checkURL(u string) error {
	if err := s.opt.Policy.CheckURL(u); err != nil {
		return invalid("url", "%s", err.Error())
	}
	return nil
}

// EndpointInput creates an endpoint.
type EndpointInput struct {
	URL         string
	Events      []string
	Description string
}

// auditView is what audit entries say about an endpoint (never secrets).
func auditView(e *Endpoint) map[string]any {
	return map[string]any{"url": e.URL, "enabled_events": e.Events, "status": e.Status, "disabled_reason": e.DisabledReason}
}

// CreateEndpoint registers an endpoint and returns it with its signing
// secret, which is shown this once.
func (s *Service) CreateEndpoint(ctx context.Context, tenantID string, in EndpointInput) (*Endpoint, string, error) {
	if err := s.checkURL(in.URL); err != nil {
		return nil, "", err
	}
	types, err := s.checkEvents(in.Events)
	if err != nil {
		return nil, "", err
	}
	if len(in.Description) > MaxDescription {
		return nil, "", invalid("description", "at most %d characters", MaxDescription)
	}
	secret, err := NewSecret()
	if err != nil {
		return nil, "", err
	}
	now := s.now()
	e := &Endpoint{
		ID: ids.New(endpointPrefix), TenantID: tenantID, URL: in.URL, Description: in.Description,
		Events: types, Status: EndpointEnabled, CreatedAt: now, UpdatedAt: now,
	}
	if e.Secret, err = s.opt.Box.Seal(e.ID, secret); err != nil {
		return nil, "", err
	}
	err = s.db.InTx(ctx, func(tx Tx) error {
		existing, err := tx.ListEndpoints(ctx, tenantID)
		if err != nil {
			return err
		}
		if len(existing) >= MaxEndpointsPerTenant {
			return invalid("url", "a tenant may have at most %d webhook endpoints", MaxEndpointsPerTenant)
		}
		if err := tx.CreateEndpoint(ctx, e); err != nil {
			return err
		}
		if err := audit.Record(ctx, tx, "webhook_endpoint.created", e.ID, auditView(e)); err != nil {
			return err
		}
		return events.Emit(ctx, tx, tenantID, "webhook_endpoint.created", e)
	})
	if err != nil {
		return nil, "", err
	}
	return e, secret, nil
}

// ListEndpoints lists a tenant's endpoints (oldest first).
func (s *Service) ListEndpoints(ctx context.Context, tenantID string) ([]Endpoint, error) {
	var out []Endpoint
	err := s.db.InTx(ctx, func(tx Tx) error {
		var err error
		out, err = tx.ListEndpoints(ctx, tenantID)
		return err
	})
	return out, err
}

// GetEndpoint returns one endpoint.
func (s *Service) GetEndpoint(ctx context.Context, tenantID, id string) (*Endpoint, error) {
	var out *Endpoint
	err := s.db.InTx(ctx, func(tx Tx) error {
		var err error
		out, err = tx.GetEndpoint(ctx, tenantID, id)
		return err
	})
	return out, err
}

// EndpointUpdate changes the fields that are set.
type EndpointUpdate struct {
	URL         *string
	Events      []string // nil: unchanged
	Description *string
	// Disabled disables (true) or re-enables (false) the endpoint.
	Disabled *bool
}

// UpdateEndpoint changes an endpoint. Disabling cancels its pending
// deliveries; re-enabling clears the failure streak.
func (s *Service) UpdateEndpoint(ctx context.Context, tenantID, id string, up EndpointUpdate) (*Endpoint, error) {
	if up.URL != nil {
		if err := s.checkURL(*up.URL); err != nil {
			return nil, err
		}
	}
	var types []string
	if up.Events != nil {
		var err error
		if types, err = s.checkEvents(up.Events); err != nil {
			return nil, err
		}
	}
	if up.Description != nil && len(*up.Description) > MaxDescription {
		return nil, invalid("description", "at most %d characters", MaxDescription)
	}
	var e *Endpoint
	err := s.db.InTx(ctx, func(tx Tx) error {
		var err error
		e, err = tx.LockEndpoint(ctx, tenantID, id)
		if err != nil {
			return err
		}
		now := s.now()
		wasEnabled := e.Status == EndpointEnabled
		if up.URL != nil {
			e.URL = *up.URL
		}
		if types != nil {
			e.Events = types
		}
		if up.Description != nil {
			e.Description = *up.Description
		}
		if up.Disabled != nil {
			if *up.Disabled {
				e.Status, e.DisabledReason = EndpointDisabled, DisabledByUser
			} else {
				e.Status, e.DisabledReason, e.FailingSince = EndpointEnabled, "", nil
			}
		}
		e.UpdatedAt = now
		if err := tx.UpdateEndpoint(ctx, e); err != nil {
			return err
		}
		if err := audit.Record(ctx, tx, "webhook_endpoint.updated", e.ID, auditView(e)); err != nil {
			return err
		}
		if wasEnabled && e.Status == EndpointDisabled {
			return s.afterDisable(ctx, tx, e, now)
		}
		return events.Emit(ctx, tx, tenantID, "webhook_endpoint.updated", e)
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

// afterDisable cancels the endpoint's pending deliveries and tells the tenant.
func (s *Service) afterDisable(ctx context.Context, tx Tx, e *Endpoint, now time.Time) error {
	if _, err := tx.CancelDeliveries(ctx, e.TenantID, e.ID, "endpoint disabled ("+e.DisabledReason+")", now); err != nil {
		return err
	}
	if err := audit.RecordFor(ctx, tx, e.TenantID, "webhook_endpoint.disabled", e.ID, auditView(e)); err != nil {
		return err
	}
	return events.Emit(ctx, tx, e.TenantID, "webhook_endpoint.disabled", e)
}

// DeleteEndpoint removes an endpoint and cancels its pending deliveries.
// Its past deliveries and attempts stay listable on their events.
func (s *Service) DeleteEndpoint(ctx context.Context, tenantID, id string) (*Endpoint, error) {
	var e *Endpoint
	err := s.db.InTx(ctx, func(tx Tx) error {
		var err error
		if e, err = tx.LockEndpoint(ctx, tenantID, id); err != nil {
			return err
		}
		now := s.now()
		if _, err := tx.CancelDeliveries(ctx, tenantID, id, "endpoint deleted", now); err != nil {
			return err
		}
		if err := tx.DeleteEndpoint(ctx, tenantID, id); err != nil {
			return err
		}
		if err := audit.Record(ctx, tx, "webhook_endpoint.deleted", e.ID, auditView(e)); err != nil {
			return err
		}
		return events.Emit(ctx, tx, tenantID, "webhook_endpoint.deleted", e)
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

// RotateSecret gives the endpoint a new signing secret, returned this once.
// For overlap (nil: the configured default) deliveries carry signatures
// with both the new and the previous secret, so receivers can switch at
// their pace. A rotation during an overlap drops the oldest secret.
func (s *Service) RotateSecret(ctx context.Context, tenantID, id string, overlap *time.Duration) (*Endpoint, string, error) {
	ov := s.opt.RotationOverlap
	if overlap != nil {
		ov = *overlap
	}
	if ov < 0 || ov > MaxRotationOverlap {
		return nil, "", invalid("expires_in", "the overlap must be between 0 and %d seconds", int(MaxRotationOverlap.Seconds()))
	}
	secret, err := NewSecret()
	if err != nil {
		return nil, "", err
	}
	var e *Endpoint
	err = s.db.InTx(ctx, func(tx Tx) error {
		var err error
		if e, err = tx.LockEndpoint(ctx, tenantID, id); err != nil {
			return err
		}
		now := s.now()
		if ov > 0 {
			exp := now.Add(ov)
			e.PrevSecret, e.PrevSecretExpiresAt = e.Secret, &exp
		} else {
			e.PrevSecret, e.PrevSecretExpiresAt = nil, nil
		}
		if e.Secret, err = s.opt.Box.Seal(e.ID, secret); err != nil {
			return err
		}
		e.UpdatedAt = now
		if err := tx.UpdateEndpoint(ctx, e); err != nil {
			return err
		}
		return audit.Record(ctx, tx, "webhook_endpoint.secret_rotated", e.ID,
			map[string]any{"previous_secret_expires_at": e.PrevSecretExpiresAt})
	})
	if err != nil {
		return nil, "", err
	}
	return e, secret, nil
}

// SigningKeys returns the raw keys deliveries to e are signed with at now:
// the current secret, and the previous one while its overlap lasts.
func (s *Service) SigningKeys(e *Endpoint, now time.Time) ([][]byte, error) {
	return signingKeys(s.opt.Box, e, now)
}

func signingKeys(box *SecretBox, e *Endpoint, now time.Time) ([][]byte, error) {
	cur, err := box.Open(e.ID, e.Secret)
	if err != nil {
		return nil, err
	}
	k, err := DecodeSecret(cur)
	if err != nil {
		return nil, err
	}
	keys := [][]byte{k}
	if e.PrevSecret != nil && e.PrevSecretExpiresAt != nil && now.Before(*e.PrevSecretExpiresAt) {
		prev, err := box.Open(e.ID, e.PrevSecret)
		if err != nil {
			return nil, err
		}
		pk, err := DecodeSecret(prev)
		if err != nil {
			return nil, err
		}
		keys = append(keys, pk)
	}
	return keys, nil
}

// ListEvents returns a page of events, newest first, and whether older
// ones remain.
func (s *Service) ListEvents(ctx context.Context, f EventFilter) ([]events.Event, bool, error) {
	limit := f.Limit
	if err := page.Check(limit); err != nil {
		return nil, false, err
	}
	f.Limit = page.Fetch(limit)
	var out []events.Event
	err := s.db.InTx(ctx, func(tx Tx) error {
		if f.StartingAfter != "" {
			if _, err := tx.GetEvent(ctx, f.TenantID, f.StartingAfter); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return invalid("starting_after", "no such event: %s", f.StartingAfter)
				}
				return err
			}
		}
		var err error
		out, err = tx.ListEvents(ctx, f)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	out, more := page.Trim(out, limit)
	return out, more, nil
}

// GetEvent returns one event of the tenant.
func (s *Service) GetEvent(ctx context.Context, tenantID, id string) (*events.Event, error) {
	var out *events.Event
	err := s.db.InTx(ctx, func(tx Tx) error {
		var err error
		out, err = tx.GetEvent(ctx, tenantID, id)
		return err
	})
	return out, err
}

// ListDeliveries lists an event's deliveries (one per endpoint and
// redelivery), oldest first.
func (s *Service) ListDeliveries(ctx context.Context, tenantID, eventID string) ([]Delivery, error) {
	var out []Delivery
	err := s.db.InTx(ctx, func(tx Tx) error {
		if _, err := tx.GetEvent(ctx, tenantID, eventID); err != nil {
			return err
		}
		var err error
		out, err = tx.ListDeliveries(ctx, tenantID, eventID)
		return err
	})
	return out, err
}

// Redeliver queues the event again, now: to endpointID when given (it must
// be enabled; it need not be subscribed), else to every enabled endpoint
// subscribed to the event's type. Receivers see the same webhook-id as
// before, so they can tell it is a resend.
func (s *Service) Redeliver(ctx context.Context, tenantID, eventID, endpointID string) ([]Delivery, error) {
	var out []Delivery
	err := s.db.InTx(ctx, func(tx Tx) error {
		ev, err := tx.GetEvent(ctx, tenantID, eventID)
		if err != nil {
			return err
		}
		var targets []Endpoint
		if endpointID != "" {
			e, err := tx.GetEndpoint(ctx, tenantID, endpointID)
			if errors.Is(err, store.ErrNotFound) {
				return invalid("endpoint", "no such webhook endpoint: %s", endpointID)
			}
			if err != nil {
				return err
			}
			if e.Status != EndpointEnabled {
				return ErrEndpointDisabled
			}
			targets = []Endpoint{*e}
		} else {
			all, err := tx.ListEndpoints(ctx, tenantID)
			if err != nil {
				return err
			}
			for _, e := range all {
				if e.Status == EndpointEnabled && e.Subscribed(ev.Type) {
					targets = append(targets, e)
				}
			}
		}
		now := s.now()
		for _, e := range targets {
			d := Delivery{
				ID: ids.New(deliveryPrefix), TenantID: tenantID, EventID: ev.ID, EndpointID: e.ID,
				Status: DeliveryPending, NextAttemptAt: now, CreatedAt: now, UpdatedAt: now,
			}
			if err := tx.CreateDelivery(ctx, &d); err != nil {
				return err
			}
			out = append(out, d)
		}
		return audit.Record(ctx, tx, "event.redelivered", ev.ID, map[string]any{"deliveries": len(out), "endpoint": endpointID})
	})
	return out, err
}

// ListAttempts returns a page of delivery attempts, newest first.
func (s *Service) ListAttempts(ctx context.Context, f AttemptFilter) ([]Attempt, bool, error) {
	limit := f.Limit
	if err := page.Check(limit); err != nil {
		return nil, false, err
	}
	f.Limit = page.Fetch(limit)
	var out []Attempt
	err := s.db.InTx(ctx, func(tx Tx) error {
		var err error
		out, err = tx.ListAttempts(ctx, f)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	out, more := page.Trim(out, limit)
	return out, more, nil
}
