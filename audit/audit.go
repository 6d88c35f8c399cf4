// Package audit is the tamper-evident audit trail: one entry for every API
// request and every state change, written in the same transaction as the
// change, later sealed into a hash chain that auditors can verify.
//
// Appending never takes a global lock: an entry is inserted with the hash of
// its own content only. A sealer (one at a time, on any node) links committed
// entries into the chain: chain_pos, prev_hash and hash. Verification walks
// the chain in chain_pos order and recomputes every hash, so editing,
// deleting or reordering any sealed entry is detected.
package audit

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"time"
)

// Actor types.
const (
	ActorAPIKey = "api_key"
	ActorAgent  = "agent"
	ActorUser   = "user"
	ActorSystem = "system"
)

// Entry is one audit event.
type Entry struct {
	Seq       int64           `json:"seq"`
	ID        string          `json:"id"`
	TenantID  string          `json:"tenant_id,omitempty"`
	ActorType string          `json:"actor_type"`
	ActorID   string          `json:"actor_id,omitempty"`
	IP        string          `json:"ip,omitempty"`
	Action    string          `json:"action"` // "api.request", "api_key.created", "charge.created", ...
	Target    string          `json:"target,omitempty"`
	RequestID string          `json:"request_id,omitempty"`
	Method    string          `json:"method,omitempty"`
	Route     string          `json:"route,omitempty"`
	Status    int             `json:"status,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
	CreatedAt time.Time       `json:"created_at"`

	// Content hash, set on append; chain fields, set by the sealer.
	ContentHash []byte `json:"content_hash"`
	ChainPos    int64  `json:"chain_pos,omitempty"`
	PrevHash    []byte `json:"prev_hash,omitempty"`
	Hash        []byte `json:"hash,omitempty"`
}

// Seal is the chain link the sealer writes for one entry.
type Seal struct {
	Seq      int64
	ChainPos int64
	PrevHash []byte
	Hash     []byte
}

// Anchor is where verification starts: the last link that retention removed
// (or the zero anchor for an untouched chain).
type Anchor struct {
	ChainPos int64
	Hash     []byte
}

// Filter selects entries for queries and exports.
type Filter struct {
	TenantID string
	Action   string
	Target   string
	Since    time.Time
	Until    time.Time
	AfterSeq int64
	Limit    int
}

// Writer appends entries; every domain's transaction includes it.
type Writer interface {
	AppendAudit(ctx context.Context, e *Entry) error
}

// Repo is the storage the audit domain needs.
type Repo interface {
	Writer
	ListAudit(ctx context.Context, f Filter) ([]Entry, error)
	// UnsealedAudit returns up to limit committed entries not yet in the
	// chain, oldest first. Entries that commit later are sealed later: the
	// chain's order is the order of sealing.
	UnsealedAudit(ctx context.Context, limit int) ([]Entry, error)
	// AuditHead returns the last sealed link, or the anchor when none.
	AuditHead(ctx context.Context) (Anchor, error)
	SealAudit(ctx context.Context, seals []Seal) error
	// AuditChain returns up to limit sealed entries with chain_pos > after.
	AuditChain(ctx context.Context, after int64, limit int) ([]Entry, error)
	AuditAnchor(ctx context.Context) (Anchor, error)
	// PruneAudit deletes the sealed entries up to and including
	// anchor.ChainPos and makes anchor the new starting point of the chain.
	// Returns the number deleted.
	PruneAudit(ctx context.Context, anchor Anchor) (int, error)
}

// contentDoc is what the content hash covers: every field an auditor reads.
type contentDoc struct {
	ID        string          `json:"id"`
	TenantID  string          `json:"tenant_id"`
	ActorType string          `json:"actor_type"`
	ActorID   string          `json:"actor_id"`
	IP        string          `json:"ip"`
	Action    string          `json:"action"`
	Target    string          `json:"target"`
	RequestID string          `json:"request_id"`
	Method    string          `json:"method"`
	Route     string          `json:"route"`
	Status    int             `json:"status"`
	Data      json.RawMessage `json:"data"`
	CreatedAt string          `json:"created_at"`
}

// ContentHash is SHA-256 over the canonical JSON of the entry's fields.
func ContentHash(e *Entry) []byte {
	data := e.Data
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	b, _ := json.Marshal(contentDoc{
		ID: e.ID, TenantID: e.TenantID, ActorType: e.ActorType, ActorID: e.ActorID,
		IP: e.IP, Action: e.Action, Target: e.Target, RequestID: e.RequestID,
		Method: e.Method, Route: e.Route, Status: e.Status, Data: data,
		CreatedAt: e.CreatedAt.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano),
	})
	sum := sha256.Sum256(b)
	return sum[:]
}

// LinkHash is SHA-256(prev_hash || content_hash || chain_pos).
func LinkHash(prev, content []byte, pos int64) []byte {
	h := sha256.New()
	h.Write(prev)
	h.Write(content)
	var p [8]byte
	for i := 0; i < 8; i++ {
		p[7-i] = byte(pos >> (8 * i))
	}
	h.Write(p[:])
	return h.Sum(nil)
}
