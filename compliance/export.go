package compliance

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/internal/page"
	"github.com/perfectpay/perfectpay/payments"
)

// Export kinds and formats.
const (
	ExportAudit     = "audit_events"
	ExportDecisions = "decisions"
	ExportCharges   = "charges"
	FormatJSONL     = "jsonl"
	FormatCSV       = "csv"
)

// exportBatch is how many rows one read returns: the export holds one
// batch at a time, whatever the number of rows.
const exportBatch = 1000

// ExportRequest says what to export.
type ExportRequest struct {
	Kind   string
	Format string
	// TenantID limits the export to one tenant ("" for every tenant; the
	// charges export needs one).
	TenantID string
	// Livemode selects live charges (the charges export).
	Livemode     bool
	Since, Until time.Time
}

// ExportCheckpoint is the signed audit checkpoint an export extends.
type ExportCheckpoint struct {
	ChainPos int64  `json:"chain_pos"`
	Hash     string `json:"hash"`
	JWS      string `json:"jws"`
}

// Manifest describes one export file; it is signed with the audit key.
type Manifest struct {
	Object   string     `json:"object"`
	Kind     string     `json:"kind"`
	Format   string     `json:"format"`
	TenantID string     `json:"tenant,omitempty"`
	Livemode bool       `json:"livemode,omitempty"`
	Since    *time.Time `json:"since,omitempty"`
	Until    *time.Time `json:"until,omitempty"`
	Rows     int64      `json:"rows"`
	Bytes    int64      `json:"bytes"`
	// SHA256 is the hex SHA-256 of the export file.
	SHA256 string `json:"sha256"`
	// Checkpoint is the signed audit checkpoint taken when the export
	// began: the audit chain the export's rows belong to extends it.
	Checkpoint ExportCheckpoint `json:"checkpoint"`
	Created    time.Time        `json:"created"`
}

// ExportAuditLog is what an export needs of the audit service.
type ExportAuditLog interface {
	Query(ctx context.Context, q audit.Query) ([]audit.Entry, error)
	ExportCheckpoint(ctx context.Context) (*audit.Export, error)
	SignManifest(payload []byte) (string, error)
}

// ChargeLister pages through charges, newest first.
type ChargeLister interface {
	List(ctx context.Context, o payments.Owner, p page.Page) ([]payments.Charge, bool, error)
}

// Exporter streams exports.
type Exporter struct {
	Service *Service
	Audit   ExportAuditLog
	Charges ChargeLister
}

// countingHash counts and hashes what is written through it.
type countingHash struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}

// rowWriter writes rows as JSON lines or CSV records.
type rowWriter struct {
	format string
	out    io.Writer
	csv    *csv.Writer
	enc    *json.Encoder
	rows   int64
}

func newRowWriter(format string, w io.Writer, header []string) (*rowWriter, error) {
	rw := &rowWriter{format: format, out: w}
	switch format {
	case FormatJSONL:
		rw.enc = json.NewEncoder(w)
		rw.enc.SetEscapeHTML(false)
	case FormatCSV:
		rw.csv = csv.NewWriter(w)
		if err := rw.csv.Write(header); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("compliance: unknown export format %q (jsonl or csv)", format)
	}
	return rw, nil
}

// cell defuses a value a spreadsheet would run as a formula.
func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func (rw *rowWriter) write(obj any, record []string) error {
	rw.rows++
	if rw.enc != nil {
		return rw.enc.Encode(obj)
	}
	for i := range record {
		record[i] = cell(record[i])
	}
	return rw.csv.Write(record)
}

func (rw *rowWriter) flush() error {
	if rw.csv != nil {
		rw.csv.Flush()
		return rw.csv.Error()
	}
	return nil
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// Export writes the rows req asks for to w, one batch in memory at a time,
// and returns the signed manifest (a compact JWS) describing what was
// written: its rows, bytes and SHA-256, and the audit checkpoint it extends.
func (x *Exporter) Export(ctx context.Context, req ExportRequest, w io.Writer) (string, *Manifest, error) {
	if req.Kind == ExportCharges && req.TenantID == "" {
		return "", nil, fmt.Errorf("compliance: the charges export needs a tenant")
	}
	cp, err := x.Audit.ExportCheckpoint(ctx)
	if err != nil {
		return "", nil, err
	}
	m := &Manifest{Object: "export_manifest", Kind: req.Kind, Format: req.Format, TenantID: req.TenantID, Livemode: req.Livemode}
	if !req.Since.IsZero() {
		m.Since = &req.Since
	}
	if !req.Until.IsZero() {
		m.Until = &req.Until
	}
	if m.Checkpoint, err = checkpointOf(cp); err != nil {
		return "", nil, err
	}
	ch := &countingHash{w: w, h: sha256.New()}
	switch req.Kind {
	case ExportAudit:
		err = x.exportAudit(ctx, req, ch, m)
	case ExportDecisions:
		err = x.exportDecisions(ctx, req, ch, m)
	case ExportCharges:
		err = x.exportCharges(ctx, req, ch, m)
	default:
		err = fmt.Errorf("compliance: unknown export kind %q (audit_events, decisions or charges)", req.Kind)
	}
	if err != nil {
		return "", nil, err
	}
	m.Bytes, m.SHA256, m.Created = ch.n, hex.EncodeToString(ch.h.Sum(nil)), time.Now().UTC().Truncate(time.Microsecond)
	payload, err := json.Marshal(m)
	if err != nil {
		return "", nil, err
	}
	jws, err := x.Audit.SignManifest(payload)
	return jws, m, err
}

func checkpointOf(ex *audit.Export) (ExportCheckpoint, error) {
	var c audit.CheckpointClaims
	parts := strings.Split(ex.Checkpoint, ".")
	if len(parts) != 3 {
		return ExportCheckpoint{}, fmt.Errorf("compliance: malformed checkpoint")
	}
	payload, err := decodeSegment(parts[1])
	if err != nil {
		return ExportCheckpoint{}, err
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return ExportCheckpoint{}, err
	}
	return ExportCheckpoint{ChainPos: c.ChainPos, Hash: hex.EncodeToString(c.Hash), JWS: ex.Checkpoint}, nil
}

var auditHeader = []string{"seq", "id", "tenant_id", "actor_type", "actor_id", "ip", "action", "target", "request_id",
	"method", "route", "status", "data", "created_at", "content_hash", "chain_pos", "hash"}

func (x *Exporter) exportAudit(ctx context.Context, req ExportRequest, w io.Writer, m *Manifest) error {
	rw, err := newRowWriter(req.Format, w, auditHeader)
	if err != nil {
		return err
	}
	q := audit.Query{Filter: audit.Filter{TenantID: req.TenantID, Since: req.Since, Until: req.Until, Limit: exportBatch}}
	for {
		batch, err := x.Audit.Query(ctx, q)
		if err != nil {
			return err
		}
		for i := range batch {
			e := &batch[i]
			if err := rw.write(e, []string{strconv.FormatInt(e.Seq, 10), e.ID, e.TenantID, e.ActorType, e.ActorID, e.IP,
				e.Action, e.Target, e.RequestID, e.Method, e.Route, strconv.Itoa(e.Status), string(e.Data), rfc3339(e.CreatedAt),
				hex.EncodeToString(e.ContentHash), strconv.FormatInt(e.ChainPos, 10), hex.EncodeToString(e.Hash)}); err != nil {
				return err
			}
		}
		if len(batch) < exportBatch {
			break
		}
		q.AfterSeq = batch[len(batch)-1].Seq
	}
	m.Rows = rw.rows
	return rw.flush()
}

var decisionHeader = []string{"id", "tenant_id", "mandate", "agent", "charge", "approval", "result", "reasons",
	"policy_version", "input_digest", "latency_us", "outcome", "created_at"}

type decisionRow struct {
	charging.Decision
	TenantID string `json:"tenant_id"`
}

func (x *Exporter) exportDecisions(ctx context.Context, req ExportRequest, w io.Writer, m *Manifest) error {
	rw, err := newRowWriter(req.Format, w, decisionHeader)
	if err != nil {
		return err
	}
	f := DecisionFilter{TenantID: req.TenantID, Since: req.Since, Until: req.Until, Limit: exportBatch}
	for {
		var batch []charging.Decision
		err := x.Service.db.InTx(ctx, func(tx Repo) error {
			var err error
			batch, err = tx.DecisionRecords(ctx, f)
			return err
		})
		if err != nil {
			return err
		}
		for i := range batch {
			d := &batch[i]
			reasons, _ := json.Marshal(d.Reasons)
			if err := rw.write(decisionRow{Decision: *d, TenantID: d.TenantID}, []string{d.ID, d.TenantID, d.MandateID,
				d.AgentID, d.ChargeID, d.ApprovalID, d.Result, string(reasons), d.PolicyVersion, d.InputDigest,
				strconv.FormatInt(d.LatencyMicros, 10), d.Outcome, rfc3339(d.CreatedAt)}); err != nil {
				return err
			}
		}
		if len(batch) < exportBatch {
			break
		}
		last := batch[len(batch)-1]
		f.AfterTime, f.AfterID = last.CreatedAt, last.ID
	}
	m.Rows = rw.rows
	return rw.flush()
}

var chargeHeader = []string{"id", "livemode", "status", "amount", "currency", "amount_captured", "amount_refunded",
	"payment_method", "card_brand", "card_last4", "mandate", "agent", "merchant", "description", "created"}

// exportCharges writes the tenant's charges of one mode, newest first
// (the order the charges list pages in).
func (x *Exporter) exportCharges(ctx context.Context, req ExportRequest, w io.Writer, m *Manifest) error {
	rw, err := newRowWriter(req.Format, w, chargeHeader)
	if err != nil {
		return err
	}
	o := payments.Owner{TenantID: req.TenantID, Livemode: req.Livemode}
	pg := page.Page{Limit: page.MaxLimit}
	for {
		batch, more, err := x.Charges.List(ctx, o, pg)
		if err != nil {
			return err
		}
		for i := range batch {
			c := &batch[i]
			if (!req.Since.IsZero() && c.Created.Before(req.Since)) || (!req.Until.IsZero() && !c.Created.Before(req.Until)) {
				continue
			}
			if err := rw.write(c, []string{c.ID, strconv.FormatBool(c.Livemode), c.Status, strconv.FormatInt(c.Amount, 10),
				c.Currency, strconv.FormatInt(c.AmountCaptured, 10), strconv.FormatInt(c.AmountRefunded, 10), c.PaymentMethod,
				c.Card.Brand, c.Card.Last4, c.MandateID, c.AgentID, c.MerchantID, c.Description, rfc3339(c.Created)}); err != nil {
				return err
			}
		}
		if !more || len(batch) == 0 {
			break
		}
		// Older than the window: nothing further is in it.
		if last := batch[len(batch)-1]; !req.Since.IsZero() && last.Created.Before(req.Since) {
			break
		}
		pg.StartingAfter = batch[len(batch)-1].ID
	}
	m.Rows = rw.rows
	return rw.flush()
}

func decodeSegment(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

// VerifyExport checks an export file (read from r) against its signed
// manifest and the audit keys ks: the manifest's signature, the file's
// size and SHA-256, and the checkpoint's signature.
func VerifyExport(ks *audit.KeySet, manifest string, r io.Reader) (*Manifest, error) {
	payload, err := audit.VerifyManifest(ks, manifest)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	var m Manifest
	dec := json.NewDecoder(strings.NewReader(string(payload)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return nil, err
	}
	if n != m.Bytes || hex.EncodeToString(h.Sum(nil)) != m.SHA256 {
		return &m, fmt.Errorf("the file is not the one the manifest describes (%d bytes, sha256 %s)", m.Bytes, m.SHA256)
	}
	if _, err := audit.VerifyCheckpointJWS(ks, m.Checkpoint.JWS); err != nil {
		return &m, fmt.Errorf("manifest checkpoint: %w", err)
	}
	return &m, nil
}
