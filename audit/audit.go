package audit

import (
	"bytes"
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
	Seq       int64  `json:"seq"`
	ID        string `json:"id"`
	TenantID  string `json:"tenant_id,omitempty"`
	ActorType string `json:"actor_type"`
	ActorID   string `json:"actor_id,omitempty"`
	// IP is the client's address. In the pseudonymous format it is held
	// outside the hashed content, beside its salt, so erasure and
	// retention can delete both: the hash covers IPDigest instead.
	IP        string          `json:"ip,omitempty"`
	Action    string          `json:"action"` // "api.request", "api_key.created", "charge.created", ...
	Target    string          `json:"target,omitempty"`
	RequestID string          `json:"request_id,omitempty"`
	Method    string          `json:"method,omitempty"`
	Route     string          `json:"route,omitempty"`
	Status    int             `json:"status,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
	CreatedAt time.Time       `json:"created_at"`

	// Format is how the content hash covers personal values: FormatClear
	// (entries written before the pseudonymous format) hashes the IP
	// itself, FormatPseudonymous its salted digest.
	Format int `json:"format,omitempty"`
	// IPSalt is the random salt of IPDigest, deleted with the IP.
	IPSalt []byte `json:"-"`
	// IPDigest is SHA-256(IPSalt || IP), what the content hash covers of
	// the IP in the pseudonymous format; without its salt it names no one.
	IPDigest []byte `json:"ip_digest,omitempty"`

	// Stripe and StripeSeq number the entry gap-free, in the transaction
	// that writes it (see Writer); 0 for entries written before numbering.
	Stripe    int   `json:"stripe,omitempty"`
	StripeSeq int64 `json:"stripe_seq,omitempty"`

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

// Query is a Filter that also selects by actor, or one entry by id (the
// cursor of a page), for auditors.
type Query struct {
	Filter
	ID        string
	ActorType string
	ActorID   string
}

// Writer appends entries; every domain's transaction includes it.
//
// AppendAudit numbers the entry in the writing transaction: it takes the
// next number of a stripe (a counter row) no other open transaction holds,
// so the numbers of a stripe have no gaps and commit in order, and an
// entry deleted before it was sealed leaves a hole that verification
// finds. Concurrent appends take different stripes and never wait on each
// other. It sets e.Seq, e.Stripe and e.StripeSeq.
type Writer interface {
	AppendAudit(ctx context.Context, e *Entry) error
}

// Stripe is one numbering counter: Next is the number of the last entry
// appended on it, Floor the number of the last entry retention removed.
type Stripe struct {
	ID    int
	Next  int64
	Floor int64
}

// Key is an audit signing key: an Ed25519 key pair whose private half is
// sealed under the signing KEK (see KeySealer).
type Key struct {
	KID        string
	PublicJWK  []byte
	PrivateEnc []byte
	KEKID      string
	CreatedAt  time.Time
	RetiredAt  *time.Time
}

// Checkpoint is a stored signed checkpoint: JWS signs the chain head
// (position, hash), the time and every stripe's counter.
type Checkpoint struct {
	ID        int64
	ChainPos  int64
	Hash      []byte
	KID       string
	JWS       string
	CreatedAt time.Time
}

// Retention is a stored signed retention record: JWS signs the removed
// chain range (FromPos..ToPos), the hash of the last removed link and the
// stripes' floors after the removal.
type Retention struct {
	ID        int64
	FromPos   int64
	ToPos     int64
	LastHash  []byte
	KID       string
	JWS       string
	CreatedAt time.Time
}

// Repo is the storage the audit domain needs.
type Repo interface {
	Writer
	ListAudit(ctx context.Context, f Filter) ([]Entry, error)
	// QueryAudit is ListAudit with q's actor and id conditions too.
	QueryAudit(ctx context.Context, q Query) ([]Entry, error)
	// UnsealedAudit returns up to limit committed entries not yet in the
	// chain, oldest first. Entries that commit later are sealed later: the
	// chain's order is the order of sealing.
	UnsealedAudit(ctx context.Context, limit int) ([]Entry, error)
	// PendingAudit is UnsealedAudit reading only what sealing needs.
	PendingAudit(ctx context.Context, limit int) ([]Pending, error)
	// AuditHead returns the last sealed link, or the anchor when none.
	AuditHead(ctx context.Context) (Anchor, error)
	SealAudit(ctx context.Context, seals []Seal) error
	// AuditChain returns up to limit sealed entries with chain_pos > after.
	AuditChain(ctx context.Context, after int64, limit int) ([]Entry, error)
	AuditAnchor(ctx context.Context) (Anchor, error)
	// PruneAudit deletes the sealed entries up to and including
	// anchor.ChainPos, and the checkpoints below it, makes anchor the new
	// starting point of the chain, raises the stripes' floors to floors and
	// stores the signed retention record r, all at once. Returns the number
	// of entries deleted.
	PruneAudit(ctx context.Context, anchor Anchor, floors map[int]int64, r *Retention) (int, error)

	// AuditNumbered returns the entries of stripe numbered from..to
	// (inclusive), sealed or not, by number.
	AuditNumbered(ctx context.Context, stripe int, from, to int64) ([]Entry, error)
	// AuditStripes returns every numbering stripe.
	AuditStripes(ctx context.Context) ([]Stripe, error)
	// LockAuditState serializes key creation and checkpoints across nodes
	// until the transaction ends.
	LockAuditState(ctx context.Context) error
	AuditKeys(ctx context.Context) ([]Key, error)
	CreateAuditKey(ctx context.Context, k *Key) error
	RetireAuditKey(ctx context.Context, kid string, at time.Time) error
	// AddAuditCheckpoint stores c and sets c.ID.
	AddAuditCheckpoint(ctx context.Context, c *Checkpoint) error
	// AuditCheckpoints returns up to limit checkpoints with ID > after, by
	// ID (which is also chain position order).
	AuditCheckpoints(ctx context.Context, after int64, limit int) ([]Checkpoint, error)
	// LatestAuditCheckpoint returns the newest checkpoint, or ErrNotFound.
	LatestAuditCheckpoint(ctx context.Context) (Checkpoint, error)
	// AuditRetentions returns every retention record, oldest first.
	AuditRetentions(ctx context.Context) ([]Retention, error)
}

// Entry formats: how the content hash covers personal values.
const (
	// FormatClear hashes the IP as it is: an entry written so keeps it
	// until retention removes the whole entry.
	FormatClear = 0
	// FormatPseudonymous hashes the IP's salted digest; the IP and its
	// salt sit outside the hashed content and can be forgotten
	// (ForgetPersonal) without breaking the chain.
	FormatPseudonymous = 1
)

// ForgetPersonal says which entries' personal values an erasure forgets:
// those of a tenant the subject did (actor_type user, actor_id Subject),
// and those about the subject written for no credential (actor_type system
// or user, target Subject), such as a payer's consent before signing in.
// Entries of API keys and agents keep their callers' addresses.
type ForgetPersonal struct {
	TenantID string
	Subject  string
}

// IPDigest is SHA-256(salt || ip).
func IPDigest(salt []byte, ip string) []byte {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(ip))
	return h.Sum(nil)
}

// PersonalOK says whether e's personal values, when still held, match the
// digests its content hash covers: a clear IP edited outside the hash is
// found. A forgotten IP (no IP, no salt) is fine.
func PersonalOK(e *Entry) bool {
	if e.Format != FormatPseudonymous {
		return true
	}
	if e.IP == "" && len(e.IPSalt) == 0 {
		return true
	}
	return len(e.IPDigest) > 0 && bytes.Equal(IPDigest(e.IPSalt, e.IP), e.IPDigest)
}

// contentDoc is what the content hash covers in FormatClear: every field
// an auditor reads.
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

// pseudonymousDoc is what the content hash covers in FormatPseudonymous:
// the IP's salted digest instead of the IP, and the format itself.
type pseudonymousDoc struct {
	Format    int             `json:"format"`
	ID        string          `json:"id"`
	TenantID  string          `json:"tenant_id"`
	ActorType string          `json:"actor_type"`
	ActorID   string          `json:"actor_id"`
	IPDigest  []byte          `json:"ip_digest"`
	Action    string          `json:"action"`
	Target    string          `json:"target"`
	RequestID string          `json:"request_id"`
	Method    string          `json:"method"`
	Route     string          `json:"route"`
	Status    int             `json:"status"`
	Data      json.RawMessage `json:"data"`
	CreatedAt string          `json:"created_at"`
}

// ContentHash is SHA-256 over the canonical JSON of the entry's hashed
// fields, as its Format says.
func ContentHash(e *Entry) []byte {
	data := e.Data
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	if e.Format == FormatPseudonymous {
		b, _ := json.Marshal(pseudonymousDoc{Format: e.Format,
			ID: e.ID, TenantID: e.TenantID, ActorType: e.ActorType, ActorID: e.ActorID,
			IPDigest: e.IPDigest, Action: e.Action, Target: e.Target, RequestID: e.RequestID,
			Method: e.Method, Route: e.Route, Status: e.Status, Data: data,
			CreatedAt: e.CreatedAt.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano),
		})
		sum := sha256.Sum256(b)
		return sum[:]
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

// LinkHash is SHA-256(prev_hash || content_hash || chain_pos), the link of
// an entry written before numbering (StripeSeq 0).
func LinkHash(prev, content []byte, pos int64) []byte {
	h := sha256.New()
	h.Write(prev)
	h.Write(content)
	h.Write(be64(pos))
	return h.Sum(nil)
}

// EntryLinkHash is the link hash of e after prev: for a numbered entry
// SHA-256(prev_hash || content_hash || chain_pos || stripe || stripe_seq),
// so renumbering a sealed entry breaks its link. (Every input has a fixed
// length and prev is empty or 32 bytes, so the two forms never collide.)
func EntryLinkHash(prev []byte, e *Entry, pos int64) []byte {
	return Pending{Seq: e.Seq, ContentHash: e.ContentHash, Stripe: e.Stripe, StripeSeq: e.StripeSeq}.LinkHash(prev, pos)
}

// Pending is what sealing reads of an entry not yet in the chain: its
// number and the inputs of its link hash.
type Pending struct {
	Seq         int64
	ContentHash []byte
	Stripe      int
	StripeSeq   int64
}

// LinkHash is EntryLinkHash of the entry p describes.
func (p Pending) LinkHash(prev []byte, pos int64) []byte {
	if p.StripeSeq == 0 {
		return LinkHash(prev, p.ContentHash, pos)
	}
	h := sha256.New()
	h.Write(prev)
	h.Write(p.ContentHash)
	h.Write(be64(pos))
	h.Write(be64(int64(p.Stripe)))
	h.Write(be64(p.StripeSeq))
	return h.Sum(nil)
}

func be64(v int64) []byte {
	var p [8]byte
	for i := 0; i < 8; i++ {
		p[7-i] = byte(v >> (8 * i))
	}
	return p[:]
}

// contentOK says whether e matches its content hash and its held personal
// values match their digests.
func contentOK(e *Entry) bool {
	return bytes.Equal(ContentHash(e), e.ContentHash) && PersonalOK(e)
}
