package audit

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"time"

	"github.com/perfectpay/perfectpay/internal/ids"
)

// Actor says who did something; it travels in the request context.
type Actor struct {
	TenantID  string
	Type      string
	ID        string
	IP        string
	RequestID string
}

type actorKey struct{}

// WithActor returns ctx carrying a.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom returns the actor in ctx, or the system actor.
func ActorFrom(ctx context.Context) Actor {
	if a, ok := ctx.Value(actorKey{}).(Actor); ok {
		return a
	}
	return Actor{Type: ActorSystem}
}

type factorKey struct{}

// WithFactor returns ctx carrying the factor that confirmed the act under
// way: the second factor a payer gave to approve a mandate, a consent, a
// CIBA request or a held charge ("totp", "recovery_code", "passkey").
func WithFactor(ctx context.Context, factor string) context.Context {
	return context.WithValue(ctx, factorKey{}, factor)
}

// FactorFrom returns the factor in ctx, or "".
func FactorFrom(ctx context.Context) string {
	f, _ := ctx.Value(factorKey{}).(string)
	return f
}

// AddFactor returns data with "factor" set to the factor in ctx (a copy;
// data itself when ctx carries none or data names one already).
func AddFactor(ctx context.Context, data map[string]any) map[string]any {
	f := FactorFrom(ctx)
	if _, ok := data["factor"]; f == "" || ok {
		return data
	}
	out := make(map[string]any, len(data)+1)
	for k, v := range data {
		out[k] = v
	}
	out["factor"] = f
	return out
}

// Record appends a state-change entry for the actor in ctx. data is a
// summary of the change (never secrets or card data); it is marshalled to
// JSON. Under WithFactor, a map (or nil) data also names the factor that
// confirmed the act (AddFactor).
func Record(ctx context.Context, w Writer, action, target string, data any) error {
	a := ActorFrom(ctx)
	switch d := data.(type) {
	case map[string]any:
		data = AddFactor(ctx, d)
	case nil:
		if f := FactorFrom(ctx); f != "" {
			data = map[string]any{"factor": f}
		}
	}
	e := &Entry{
		TenantID:  a.TenantID,
		ActorType: a.Type,
		ActorID:   a.ID,
		IP:        a.IP,
		RequestID: a.RequestID,
		Action:    action,
		Target:    target,
	}
	if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			return err
		}
		e.Data = b
	}
	return Append(ctx, w, e)
}

// RecordFor is Record for a tenant other than the actor's (e.g. the system
// acting on a tenant's behalf).
func RecordFor(ctx context.Context, w Writer, tenantID, action, target string, data any) error {
	a := ActorFrom(ctx)
	a.TenantID = tenantID
	return Record(WithActor(ctx, a), w, action, target, data)
}

// Append fills id, time, the IP's salted digest and content hash, then
// writes e in FormatPseudonymous.
func Append(ctx context.Context, w Writer, e *Entry) error {
	if e.ID == "" {
		e.ID = ids.New("aud")
	}
	e.Format, e.IPSalt, e.IPDigest = FormatPseudonymous, nil, nil
	if e.IP != "" {
		e.IPSalt = make([]byte, 16)
		if _, err := rand.Read(e.IPSalt); err != nil {
			return err
		}
		e.IPDigest = IPDigest(e.IPSalt, e.IP)
	}
	if e.CreatedAt.IsZero() {
		e.CreatedAt = time.Now()
	}
	e.CreatedAt = e.CreatedAt.UTC().Truncate(time.Microsecond)
	e.ContentHash = ContentHash(e)
	return w.AppendAudit(ctx, e)
}
