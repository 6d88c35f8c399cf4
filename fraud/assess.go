package fraud

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/events"
	"github.com/perfectpay/perfectpay/internal/logging"
	"github.com/perfectpay/perfectpay/policies"
	"github.com/perfectpay/perfectpay/store"
)

// Event and audit actions of the anomaly flag.
const (
	ActionAnomaly        = "agent.anomaly"
	ActionAnomalyCleared = "agent.anomaly_cleared"
)

// Tx is where a flag is recorded: its row, its audit entry and its event
// together.
type Tx interface {
	audit.Writer
	events.Outbox
	Repo
}

// Config tunes the Assessor.
type Config struct {
	// Limits are the velocity thresholds given to the policy.
	Limits []policies.VelocityLimit
	// Timeout bounds one screening.
	Timeout time.Duration
	// FailClosed is the default when the screener gives no answer in
	// time; FailClosedTenants and FailOpenTenants choose per tenant.
	FailClosed        bool
	FailClosedTenants []string
	FailOpenTenants   []string
	Anomaly           AnomalyConfig
	// MaxKeys bounds every in-memory table.
	MaxKeys int
}

// CardLookup finds what a screener may know of a card token.
type CardLookup func(ctx context.Context, tenantID, token string) (Card, error)

// Assessor gathers a charge's fraud signals into the policy input and
// hears every charge's outcome (charging.FraudSignals). Its windows and
// the charge history that detects anomalies are this node's: with N nodes
// behind a balancer, each sees its share of an agent's charges. A raised
// anomaly flag is stored (Repo), so every node reads it for each of the
// agent's charges and a restart keeps it; without a store (record nil) it
// lives in this node's memory.
type Assessor struct {
	cfg       Config
	windows   *Windows
	anomalies *Anomalies
	screener  Screener
	cards     CardLookup
	cardMu    sync.RWMutex
	cardCache map[string]Card // tenant:token → Card, emptied past MaxKeys
	record    store.Runner[Tx]
	log       *slog.Logger
	// limited says which scope (by index) and window (hour, day) a limit
	// names; nLimited counts them.
	limited  [nScopes][2]bool
	nLimited int
}

// NewAssessor returns an assessor; screener may be nil (none), cards may
// be nil (the token stands for the card).
func NewAssessor(cfg Config, screener Screener, cards CardLookup, record store.Runner[Tx], log *slog.Logger) *Assessor {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 300 * time.Millisecond
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Assessor{cfg: cfg, windows: NewWindows(cfg.MaxKeys), anomalies: NewAnomalies(cfg.Anomaly, cfg.MaxKeys),
		screener: screener, cards: cards, record: record, log: log}
	for _, l := range cfg.Limits {
		scope, window := slices.Index(scopeNames[:], l.Scope), slices.Index([]string{"hour", "day"}, l.Window)
		if scope >= 0 && window >= 0 && !a.limited[scope][window] {
			a.limited[scope][window] = true
			a.nLimited++
		}
	}
	return a
}

// Windows are the velocity windows (tests, benchmarks).
func (a *Assessor) Windows() *Windows { return a.windows }

// Anomalies is the anomaly detector.
func (a *Assessor) Anomalies() *Anomalies { return a.anomalies }

// The scopes of the velocity windows, in the order of windowKeys.
const (
	scopeAgent = iota
	scopeMandate
	scopeCard
	scopeMerchant
	nScopes
)

var scopeNames = [nScopes]string{"agent", "mandate", "card", "merchant"}

// windowKeys returns the charge's card and its window keys
// ("agent:ten:agt:USD", …) appended to buf, so that a caller's buffer on
// the stack makes looking them up allocate nothing; a scope the charge
// lacks (no mandate) has a nil key.
func (a *Assessor) windowKeys(ctx context.Context, in *policies.Input, buf []byte) (Card, [nScopes][]byte) {
	t, cur := in.Tenant.ID, in.Charge.Currency
	card := a.card(ctx, t, in.Charge.PaymentMethod)
	var keys [nScopes][]byte
	b := buf
	cut := func(start int) []byte { return b[start:len(b):len(b)] }
	start := len(b)
	b = appendKey(b, "agent:", t, in.Agent.ClientID, cur)
	keys[scopeAgent] = cut(start)
	if n := len(in.Chain); n > 0 {
		start = len(b)
		b = append(append(append(append(b, "mandate:"...), in.Chain[n-1].ID...), ':'), cur...)
		keys[scopeMandate] = cut(start)
	}
	start = len(b)
	b = appendKey(b, "card:", t, card.Fingerprint, cur)
	keys[scopeCard] = cut(start)
	start = len(b)
	b = appendKey(b, "merchant:", t, in.Charge.Merchant.ID, cur)
	keys[scopeMerchant] = cut(start)
	return card, keys
}

// appendKey appends prefix, tenant, ':', id, ':', currency to b.
func appendKey(b []byte, prefix, tenant, id, cur string) []byte {
	b = append(append(append(b, prefix...), tenant...), ':')
	return append(append(append(b, id...), ':'), cur...)
}

func (a *Assessor) card(ctx context.Context, tenantID, token string) Card {
	var buf [128]byte
	k := append(append(append(buf[:0], tenantID...), ':'), token...)
	a.cardMu.RLock()
	c, ok := a.cardCache[string(k)]
	a.cardMu.RUnlock()
	if ok {
		return c
	}
	c = Card{Fingerprint: "tok:" + token}
	if a.cards != nil {
		if got, err := a.cards(ctx, tenantID, token); err == nil && got.Fingerprint != "" {
			c = got
		}
	}
	a.cardMu.Lock()
	if a.cardCache == nil || len(a.cardCache) >= max(16, a.cfg.MaxKeys) {
		a.cardCache = map[string]Card{}
	}
	a.cardCache[string(k)] = c
	a.cardMu.Unlock()
	return c
}

// Assess implements charging.FraudSignals. The policy input carries the
// velocity of the scopes and windows a limit names (what the policy
// reads); the screener and the anomaly detector see them all.
func (a *Assessor) Assess(ctx context.Context, in *policies.Input) {
	var buf [512]byte
	card, keys := a.windowKeys(ctx, in, buf[:0])
	f := &policies.Fraud{Limits: a.cfg.Limits, RiskSignals: RiskSignalsFrom(ctx)}
	var vel Velocities
	stats := [nScopes]*Stats{&vel.Agent, &vel.Mandate, &vel.Card, &vel.Merchant}
	if a.nLimited > 0 {
		f.Velocity = make([]policies.VelocityStat, 0, a.nLimited)
	}
	for scope, key := range keys {
		if key == nil {
			continue
		}
		st := a.windows.stats(key, in.Now)
		*stats[scope] = st
		if a.limited[scope][0] {
			f.Velocity = append(f.Velocity, policies.VelocityStat{Scope: scopeNames[scope], Window: "hour",
				Count: st.Hour.Count, Declines: st.Hour.Declines, Amount: st.Hour.Amount})
		}
		if a.limited[scope][1] {
			f.Velocity = append(f.Velocity, policies.VelocityStat{Scope: scopeNames[scope], Window: "day",
				Count: st.Day.Count, Declines: st.Day.Declines, Amount: st.Day.Amount})
		}
	}
	f.Anomaly = a.anomaly(ctx, in, vel.Agent)
	if a.screener != nil {
		c := &Charge{TenantID: in.Tenant.ID, AgentID: in.Agent.ClientID, Amount: in.Charge.Amount, Currency: in.Charge.Currency,
			Merchant: in.Charge.Merchant, Card: card, At: in.Now, Velocity: vel, RiskSignal: f.RiskSignals}
		if n := len(in.Chain); n > 0 {
			c.MandateID = in.Chain[n-1].ID
		}
		if _, ok := a.screener.(inline); !ok {
			c.Reference = c.MandateID + ":" + in.Now.Format(time.RFC3339Nano)
		}
		res, err := Screen(ctx, a.screener, c, a.cfg.Timeout, a.failClosed(in.Tenant.ID))
		if err != nil {
			a.log.WarnContext(ctx, "fraud screener gave no answer", "screener", a.screener.Name(), "err", err)
		}
		f.Screener = res
	}
	in.Fraud = f
}

// anomaly is the agent's standing flag, or a new one it raises when this
// charge departs from the agent's history; nil when neither.
func (a *Assessor) anomaly(ctx context.Context, in *policies.Input, st Stats) *policies.Anomaly {
	if a.record == nil {
		agentKey := in.Tenant.ID + ":" + in.Agent.ClientID
		flag, _ := a.anomalies.Check(agentKey, in.Charge.Amount, MerchantCategory(in.Charge.Merchant))
		if flag == nil {
			if flag = a.spendRate(in, st); flag != nil {
				flag, _ = a.anomalies.Raise(agentKey, *flag)
			}
		}
		return flag
	}
	if cur, err := a.standing(ctx, in.Tenant.ID, in.Agent.ClientID); err != nil {
		// The charge itself needs the store next: it fails there if the
		// store is down. Detection still runs on this node's history.
		a.log.WarnContext(ctx, "reading an agent's anomaly flag failed", "agent", in.Agent.ClientID, "err", err)
	} else if cur != nil {
		return cur
	}
	var buf [128]byte
	flag := a.anomalies.detect(agentKey(buf[:0], in), in.Charge.Amount, MerchantCategory(in.Charge.Merchant))
	if flag == nil {
		flag = a.spendRate(in, st)
	}
	if flag == nil {
		return nil
	}
	return a.raise(ctx, in.Tenant.ID, in.Agent.ClientID, flag, in.Now)
}

// agentKey appends the key of the charge's agent in the anomaly
// detector (tenant:agent) to b.
func agentKey(b []byte, in *policies.Input) []byte {
	return append(append(append(b, in.Tenant.ID...), ':'), in.Agent.ClientID...)
}

// ReadsStanding reports whether Assess reads the agent's stored flag (a
// store is attached). A caller that reads it with its own reads, in the
// same round trip, hands the result over with WithStanding.
func (a *Assessor) ReadsStanding() bool { return a.record != nil }

// standingRead is the result of a caller's read of an agent's stored
// flag (GetAnomaly's: a flag, store.ErrNotFound or a failed read).
type standingRead struct {
	tenantID, agentID string
	flag              *Flag
	err               error
}

type standingKey struct{}

// WithStanding returns ctx carrying what the caller read of the agent's
// stored flag, GetAnomaly's answer as it came, so that Assess of that
// agent's charge does not read it again.
func WithStanding(ctx context.Context, tenantID, agentID string, flag *Flag, err error) context.Context {
	return context.WithValue(ctx, standingKey{}, &standingRead{tenantID, agentID, flag, err})
}

// standing is the agent's stored flag: read by the caller (WithStanding)
// or here, one read by primary key.
func (a *Assessor) standing(ctx context.Context, tenantID, agentID string) (*policies.Anomaly, error) {
	var cur *Flag
	var err error
	if r, ok := ctx.Value(standingKey{}).(*standingRead); ok && r.tenantID == tenantID && r.agentID == agentID {
		cur, err = r.flag, r.err
	} else {
		err = a.record.Autocommit(ctx, func(tx Tx) error {
			var err error
			cur, err = tx.GetAnomaly(ctx, tenantID, agentID)
			return err
		})
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &cur.Anomaly, nil
}

// raise stores flag with its audit entry and its agent.anomaly event in
// one transaction and returns the flag that stands: another node's, when
// it raised one first (then nothing is announced twice). When the write
// fails the flag still steps this charge up.
func (a *Assessor) raise(ctx context.Context, tenantID, agentID string, flag *policies.Anomaly, at time.Time) *policies.Anomaly {
	flag.Message = logging.RedactPAN(flag.Message)
	var stood *Flag
	err := a.record.InTx(context.WithoutCancel(ctx), func(tx Tx) error {
		stood = nil
		err := tx.RaiseAnomaly(ctx, &Flag{TenantID: tenantID, AgentID: agentID, Anomaly: *flag, RaisedAt: at.UTC()})
		if errors.Is(err, store.ErrConflict) {
			stood, err = tx.GetAnomaly(ctx, tenantID, agentID)
			return err
		}
		if err != nil {
			return err
		}
		return announce(ctx, tx, tenantID, ActionAnomaly, agentID, flag)
	})
	if err != nil {
		a.log.ErrorContext(ctx, "recording an anomaly failed", "agent", agentID, "err", err)
		return flag
	}
	if stood != nil {
		return &stood.Anomaly
	}
	return flag
}

// spendRate is a new flag for an agent whose last hour's spending, this
// charge included, passes SpendRateFactor times its hourly average over
// the rest of the day.
func (a *Assessor) spendRate(in *policies.Input, st Stats) *policies.Anomaly {
	factor := a.cfg.Anomaly.SpendRateFactor
	restCount, rest := st.Day.Count-st.Hour.Count, st.Day.Amount-st.Hour.Amount
	if factor <= 0 || restCount < max(1, a.cfg.Anomaly.MinHistory) || rest <= 0 {
		return nil
	}
	base := float64(rest) / 23
	hour := float64(st.Hour.Amount + in.Charge.Amount)
	if hour <= factor*base {
		return nil
	}
	return &policies.Anomaly{Metric: "spend_rate", Score: math.Round(hour/base*10) / 10,
		Message: fmt.Sprintf("agent %s: %.0f spent in the last hour with this charge, %.1f times its hourly average of %.0f over the rest of the day (limit %.1f times); a person must clear the agent",
			in.Agent.ClientID, hour, hour/base, base, factor)}
}

func (a *Assessor) failClosed(tenantID string) bool {
	switch {
	case slices.Contains(a.cfg.FailClosedTenants, tenantID):
		return true
	case slices.Contains(a.cfg.FailOpenTenants, tenantID):
		return false
	}
	return a.cfg.FailClosed
}

// Observe implements charging.FraudSignals.
func (a *Assessor) Observe(ctx context.Context, in *policies.Input, declined bool) {
	var buf [512]byte
	_, keys := a.windowKeys(ctx, in, buf[:0])
	a.windows.record(in.Now, in.Charge.Amount, declined, keys[:]...)
	if !declined {
		var buf [128]byte
		a.anomalies.record(agentKey(buf[:0], in), in.Charge.Amount, MerchantCategory(in.Charge.Merchant))
	}
}

// ClearAnomaly lifts an agent's anomaly flag (a person looked at it) on
// every node: the row goes with its audit entry and its event in one
// transaction. False when the agent had no flag.
func (a *Assessor) ClearAnomaly(ctx context.Context, tenantID, agentID string) (bool, error) {
	if a.record == nil {
		return a.anomalies.Clear(tenantID + ":" + agentID), nil
	}
	cleared := false
	err := a.record.InTx(ctx, func(tx Tx) error {
		cleared = false
		f, err := tx.ClearAnomaly(ctx, tenantID, agentID)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		cleared = true
		return announce(ctx, tx, tenantID, ActionAnomalyCleared, agentID, &f.Anomaly)
	})
	if err != nil {
		return false, err
	}
	return cleared, nil
}

// AnomalyOf returns an agent's standing flag, if any.
func (a *Assessor) AnomalyOf(ctx context.Context, tenantID, agentID string) (*policies.Anomaly, error) {
	if a.record == nil {
		return a.anomalies.Flag(tenantID + ":" + agentID), nil
	}
	return a.standing(ctx, tenantID, agentID)
}

type anomalyView struct {
	Agent   string  `json:"agent"`
	Metric  string  `json:"metric"`
	Score   float64 `json:"score"`
	Message string  `json:"message"`
}

// announce writes a flag's audit entry and its event in tx.
func announce(ctx context.Context, tx Tx, tenantID, action, agentID string, f *policies.Anomaly) error {
	v := anomalyView{Agent: agentID, Metric: f.Metric, Score: f.Score, Message: f.Message}
	if err := audit.RecordFor(ctx, tx, tenantID, action, agentID, v); err != nil {
		return err
	}
	return events.Emit(ctx, tx, tenantID, action, v)
}
