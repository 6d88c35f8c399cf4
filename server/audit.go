package server

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/compliance"
	"github.com/perfectpay/perfectpay/internal/apierr"
)

// AuditHandlers serve the audit trail to auditors: the entries of the
// caller's tenant and the signed checkpoints of the chain.
type AuditHandlers struct {
	Audit  *audit.Service
	Replay DecisionReplayer
}

// DecisionReplayer replays recorded decisions.
type DecisionReplayer interface {
	Replay(ctx context.Context, opts compliance.ReplayOptions) (*compliance.ReplayReport, error)
}

// Mount adds the routes.
func (h *AuditHandlers) Mount(api *API) {
	api.Handle(http.MethodGet, "/v1/audit_events", Access{Scope: accounts.AuditScope}, h.list)
	api.Handle(http.MethodGet, "/v1/audit_events/{id}", Access{Scope: accounts.AuditScope}, h.get)
	api.Handle(http.MethodGet, "/v1/audit/checkpoints", Access{Scope: accounts.AuditScope}, h.checkpoints)
	api.Handle(http.MethodGet, "/v1/decisions/replay", Access{Scope: accounts.AuditScope}, h.replay)
}

// replay evaluates the tenant's recorded decisions again
// (?since=&until=), each with its recorded input and the kept policy
// version that made it, and lists every one that comes out differently.
// It reads: a window of at most maxReplayWindow per call.
func (h *AuditHandlers) replay(w http.ResponseWriter, r *http.Request) error {
	since, until, err := timeRange(r)
	if err != nil {
		return err
	}
	if since.IsZero() || until.IsZero() {
		return BadRequest(apierr.ParameterMissing, "since", "since and until are required (a window of at most %s).", maxReplayWindow)
	}
	if until.Sub(since) > maxReplayWindow {
		return BadRequest(apierr.ParameterInvalid, "until", "The window from since to until is longer than %s.", maxReplayWindow)
	}
	rep, err := h.Replay.Replay(r.Context(), compliance.ReplayOptions{Filter: compliance.DecisionFilter{
		TenantID: PrincipalFrom(r).TenantID, Since: since, Until: until}})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

// maxReplayWindow bounds what one replay call evaluates (the CLI replays
// any range).
const maxReplayWindow = 31 * 24 * time.Hour

type auditActorView struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`
	IP   string `json:"ip,omitempty"`
}

type auditEventView struct {
	ID          string          `json:"id"`
	Object      string          `json:"object"`
	Actor       auditActorView  `json:"actor"`
	Action      string          `json:"action"`
	Target      string          `json:"target,omitempty"`
	RequestID   string          `json:"request_id,omitempty"`
	Method      string          `json:"method,omitempty"`
	Route       string          `json:"route,omitempty"`
	Status      int             `json:"status,omitempty"`
	Data        json.RawMessage `json:"data,omitempty"`
	Created     time.Time       `json:"created"`
	ContentHash string          `json:"content_hash"`
	ChainPos    int64           `json:"chain_pos,omitempty"`
	Hash        string          `json:"hash,omitempty"`
}

func viewAuditEvent(e *audit.Entry) auditEventView {
	return auditEventView{
		ID: e.ID, Object: "audit_event", Actor: auditActorView{Type: e.ActorType, ID: e.ActorID, IP: e.IP},
		Action: e.Action, Target: e.Target, RequestID: e.RequestID, Method: e.Method, Route: e.Route,
		Status: e.Status, Data: e.Data, Created: e.CreatedAt.UTC(), ContentHash: hex.EncodeToString(e.ContentHash),
		ChainPos: e.ChainPos, Hash: hex.EncodeToString(e.Hash),
	}
}

// timeParam reads an RFC 3339 time from the query (zero when absent).
func timeParam(r *http.Request, name string) (time.Time, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, BadRequest(apierr.ParameterInvalid, name, "%s must be an RFC 3339 time such as 2026-01-02T15:04:05Z.", name)
	}
	return t, nil
}

// timeRange reads ?since= and ?until= (since inclusive, until exclusive).
func timeRange(r *http.Request) (since, until time.Time, err error) {
	if since, err = timeParam(r, "since"); err != nil {
		return
	}
	if until, err = timeParam(r, "until"); err != nil {
		return
	}
	if !since.IsZero() && !until.IsZero() && !until.After(since) {
		err = BadRequest(apierr.ParameterInvalid, "until", "until must be after since.")
	}
	return
}

// shortParams reads query parameters that hold an identifier or a name,
// refusing any longer than 200 characters.
func shortParams(r *http.Request, names ...string) (map[string]string, error) {
	out := map[string]string{}
	for _, n := range names {
		v := r.URL.Query().Get(n)
		if len(v) > 200 {
			return nil, BadRequest(apierr.ParameterInvalid, n, "%s is longer than 200 characters.", n)
		}
		out[n] = v
	}
	return out, nil
}

// list pages the tenant's entries oldest first:
// ?actor=&actor_type=&action=&target=&since=&until=&limit=&starting_after=aud_….
func (h *AuditHandlers) list(w http.ResponseWriter, r *http.Request) error {
	pg, err := listPage(r)
	if err != nil {
		return err
	}
	q, err := shortParams(r, "actor", "actor_type", "action", "target")
	if err != nil {
		return err
	}
	since, until, err := timeRange(r)
	if err != nil {
		return err
	}
	list, more, err := h.Audit.Page(r.Context(), audit.Query{Filter: audit.Filter{
		TenantID: PrincipalFrom(r).TenantID, Action: q["action"], Target: q["target"], Since: since, Until: until,
	}, ActorID: q["actor"], ActorType: q["actor_type"]}, pg)
	if err != nil {
		return err
	}
	writeList(w, list, viewAuditEvent, more)
	return nil
}

func (h *AuditHandlers) get(w http.ResponseWriter, r *http.Request) error {
	e, err := h.Audit.Get(r.Context(), PrincipalFrom(r).TenantID, mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewAuditEvent(e))
	return nil
}

type checkpointView struct {
	ID       string    `json:"id"`
	Object   string    `json:"object"`
	ChainPos int64     `json:"chain_pos"`
	Hash     string    `json:"hash"`
	KID      string    `json:"kid"`
	JWS      string    `json:"jws"`
	Created  time.Time `json:"created"`
}

func viewCheckpoint(c *audit.Checkpoint) checkpointView {
	return checkpointView{ID: audit.CheckpointID(c.ID), Object: "audit_checkpoint", ChainPos: c.ChainPos,
		Hash: hex.EncodeToString(c.Hash), KID: c.KID, JWS: c.JWS, Created: c.CreatedAt.UTC()}
}

// checkpoints pages the signed checkpoints oldest first
// (?limit=&starting_after=acp_…); the audit public keys that verify them
// are at /.well-known/audit-keys.json.
func (h *AuditHandlers) checkpoints(w http.ResponseWriter, r *http.Request) error {
	pg, err := listPage(r)
	if err != nil {
		return err
	}
	list, more, err := h.Audit.Checkpoints(r.Context(), pg)
	if err != nil {
		return err
	}
	writeList(w, list, viewCheckpoint, more)
	return nil
}
