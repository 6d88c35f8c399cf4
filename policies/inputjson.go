package policies

import (
	"encoding/json"
	"errors"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
)

// The decision record's JSON of the input document is written straight
// from the Input, byte for byte what encoding/json writes for the document
// Value builds (ast.JSON, then json.Marshal): object keys in byte order,
// absent optional fields left out, strings escaped as encoding/json
// escapes them (HTML characters, U+2028 and U+2029 included), numbers as
// OPA writes them. Auditors re-hash the stored bytes, so any difference is
// a changed digest: TestInputJSONMatchesDocument compares both encodings.

// jsonWriter appends JSON to b; a member after the first of an object or
// array is preceded by a comma.
type jsonWriter struct {
	b     []byte
	first bool
	err   error
}

func (w *jsonWriter) open(c byte) {
	w.b = append(w.b, c)
	w.first = true
}

func (w *jsonWriter) close(c byte) {
	w.b = append(w.b, c)
	w.first = false
}

// key starts an object member; k needs no escaping (a literal of this file).
func (w *jsonWriter) key(k string) {
	if !w.first {
		w.b = append(w.b, ',')
	}
	w.first = false
	w.b = append(w.b, '"')
	w.b = append(w.b, k...)
	w.b = append(w.b, '"', ':')
}

// anyKey starts an object member whose key is data, escaped.
func (w *jsonWriter) anyKey(k string) {
	if !w.first {
		w.b = append(w.b, ',')
	}
	w.first = false
	w.b = appendJSONString(w.b, k)
	w.b = append(w.b, ':')
}

// elem starts an array element.
func (w *jsonWriter) elem() {
	if !w.first {
		w.b = append(w.b, ',')
	}
	w.first = false
}

func (w *jsonWriter) str(s string) { w.b = appendJSONString(w.b, s) }

func (w *jsonWriter) int(n int64) { w.b = strconv.AppendInt(w.b, n, 10) }

// float writes f as ast.FloatNumberTerm spells it; NaN and ±Inf are no
// JSON numbers and fail as json.Marshal fails on them.
func (w *jsonWriter) float(f float64) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		w.fail(errors.New("policies: input JSON: a number is NaN or infinite"))
		return
	}
	w.b = strconv.AppendFloat(w.b, f, 'g', -1, 64)
}

func (w *jsonWriter) bool(v bool) { w.b = strconv.AppendBool(w.b, v) }

// time writes t as timeTerm spells it (RFC 3339 has nothing to escape).
func (w *jsonWriter) time(t time.Time) {
	w.b = append(w.b, '"')
	w.b = t.UTC().AppendFormat(w.b, time.RFC3339Nano)
	w.b = append(w.b, '"')
}

func (w *jsonWriter) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

func (w *jsonWriter) strs(ss []string) {
	w.open('[')
	for _, s := range ss {
		w.elem()
		w.str(s)
	}
	w.close(']')
}

// Optional members: left out when absent, as the document leaves them out.

func (w *jsonWriter) optInt(k string, p *int64) {
	if p != nil {
		w.key(k)
		w.int(*p)
	}
}

func (w *jsonWriter) optStr(k, s string) {
	if s != "" {
		w.key(k)
		w.str(s)
	}
}

func (w *jsonWriter) optStrs(k string, ss []string) {
	if len(ss) > 0 {
		w.key(k)
		w.strs(ss)
	}
}

func (w *jsonWriter) optTime(k string, t *time.Time) {
	if t != nil {
		w.key(k)
		w.time(*t)
	}
}

// appendJSONString is encoding/json's string encoding with HTML escaping
// (json.Marshal's): the same bytes for every string, valid UTF-8 or not.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// JSON is the input document as JSON (object keys sorted), e.g. for a
// decision record: the document Value builds, as json.Marshal writes
// ast.JSON of it.
func (in *Input) JSON() ([]byte, error) {
	size := jsonSize.Load()
	if size == 0 {
		size = 2048
	}
	w := &jsonWriter{b: make([]byte, 0, size)}
	in.writeJSON(w)
	if w.err != nil {
		return nil, w.err
	}
	if n := min(int64(len(w.b))+256, 16<<10); n != size {
		jsonSize.Store(n)
	}
	return w.b, nil
}

// jsonSize is the buffer a document's JSON starts with (0: 2 KiB): the
// last document's length plus some room, at most 16 KiB, so the buffer is
// not grown and copied on every decision (documents on one node are
// alike) and a record holds little unused room.
var jsonSize atomic.Int64

// writeJSON writes the document's members in key order: agent, ancestors,
// approval, charge, currencies, fraud, limits, mandate, now, tenant,
// token, velocity.
func (in *Input) writeJSON(w *jsonWriter) {
	w.open('{')
	w.key("agent")
	w.open('{')
	w.key("client_id")
	w.str(in.Agent.ClientID)
	w.key("status")
	w.str(in.Agent.Status)
	w.close('}')
	n := len(in.Chain)
	if n > 0 {
		w.key("ancestors")
		w.open('[')
		for i := range in.Chain[:n-1] {
			w.elem()
			writeMandate(w, &in.Chain[i])
		}
		w.close(']')
	}
	if a := in.Approval; a != nil {
		w.key("approval")
		w.open('{')
		w.key("amount")
		w.int(a.Amount)
		w.key("currency")
		w.str(a.Currency)
		w.key("expires_at")
		w.time(a.ExpiresAt)
		w.key("id")
		w.str(a.ID)
		w.key("mandate_id")
		w.str(a.MandateID)
		w.key("merchant")
		w.str(a.Merchant)
		w.key("payment_method")
		w.str(a.PaymentMethod)
		w.key("status")
		w.str(a.Status)
		w.close('}')
	}
	c := &in.Charge
	w.key("charge")
	w.open('{')
	w.key("amount")
	w.int(c.Amount)
	w.key("context")
	writeAnyMap(w, c.Context)
	w.key("currency")
	w.str(c.Currency)
	w.key("merchant")
	w.open('{')
	w.key("country")
	w.str(c.Merchant.Country)
	w.key("domains")
	w.strs(c.Merchant.Domains)
	w.key("id")
	w.str(c.Merchant.ID)
	w.key("mcc")
	w.str(c.Merchant.MCC)
	w.key("name")
	w.str(c.Merchant.Name)
	w.close('}')
	w.key("payment_method")
	w.str(c.PaymentMethod)
	w.close('}')
	w.key("currencies")
	w.open('{')
	for _, k := range sortedKeys(in.Currencies) {
		w.elem()
		w.str(k)
		w.b = append(w.b, ':')
		w.int(int64(in.Currencies[k]))
	}
	w.close('}')
	if f := in.Fraud; f != nil {
		w.key("fraud")
		f.writeJSON(w)
	}
	if l := in.Limits; l != nil {
		v := l.Velocity
		w.key("limits")
		w.open('{')
		w.key("velocity")
		w.open('{')
		w.key("agent_charges_per_hour")
		w.int(int64(v.AgentChargesPerHour))
		w.key("agent_declines_per_hour")
		w.int(int64(v.AgentDeclinesPerHour))
		w.key("mandate_charges_per_hour")
		w.int(int64(v.MandateChargesPerHour))
		w.key("mandate_declines_per_hour")
		w.int(int64(v.MandateDeclinesPerHour))
		w.close('}')
		w.close('}')
	}
	if n > 0 {
		w.key("mandate")
		writeMandate(w, &in.Chain[n-1])
	}
	w.key("now")
	w.time(in.Now)
	w.key("tenant")
	w.open('{')
	w.optStrs("allowed_countries", in.Tenant.AllowedCountries)
	w.key("id")
	w.str(in.Tenant.ID)
	w.key("status")
	w.str(in.Tenant.Status)
	w.close('}')
	w.key("token")
	w.open('{')
	if in.Token.Act != nil {
		w.key("act")
		writeActor(w, in.Token.Act)
	}
	w.key("authorization_details")
	w.open('[')
	for i := range in.Token.AuthorizationDetails {
		w.elem()
		writeDetail(w, &in.Token.AuthorizationDetails[i])
	}
	w.close(']')
	w.key("client_id")
	w.str(in.Token.ClientID)
	w.key("sub")
	w.str(in.Token.Sub)
	w.close('}')
	w.key("velocity")
	w.open('{')
	w.key("agent")
	writeCounts(w, in.Velocity.Agent)
	w.key("mandate")
	writeCounts(w, in.Velocity.Mandate)
	w.close('}')
	w.close('}')
}

func writeCounts(w *jsonWriter, c Counts) {
	w.open('{')
	w.key("charges")
	w.int(int64(c.Charges))
	w.key("declines")
	w.int(int64(c.Declines))
	w.close('}')
}

func writeActor(w *jsonWriter, a *Actor) {
	w.open('{')
	if a.Act != nil {
		w.key("act")
		writeActor(w, a.Act)
	}
	w.key("sub")
	w.str(a.Sub)
	w.close('}')
}

// writeMandate writes mandateTerm's object: the mandate's fields, its
// limits and its counters, in key order.
func writeMandate(w *jsonWriter, m *Mandate) {
	l := &m.Limits
	w.open('{')
	w.key("agent")
	w.str(m.Agent)
	w.optStrs("allowed_categories", l.AllowedCategories)
	w.optStrs("allowed_countries", l.AllowedCountries)
	w.optStrs("allowed_merchants", l.AllowedMerchants)
	w.optInt("approval_threshold", l.ApprovalThreshold)
	w.optStrs("blocked_categories", l.BlockedCategories)
	w.key("budget")
	w.int(l.Budget)
	w.key("charge_count")
	w.int(m.ChargeCount)
	w.key("currency")
	w.str(l.Currency)
	w.key("depth")
	w.int(int64(m.Depth))
	w.key("id")
	w.str(m.ID)
	w.optInt("max_amount_per_charge", l.MaxAmountPerCharge)
	w.optInt("max_charges", l.MaxCharges)
	w.optStr("parent_id", m.ParentID)
	w.key("payer")
	w.str(m.Payer)
	w.key("payment_methods")
	w.strs(l.PaymentMethods)
	w.optStr("period", l.Period)
	w.optInt("period_budget", l.PeriodBudget)
	if l.Period != "" {
		w.key("period_spent")
		w.int(m.PeriodSpent)
	}
	w.key("spent")
	w.int(m.Spent)
	w.key("status")
	w.str(m.Status)
	w.optTime("valid_from", l.ValidFrom)
	w.optTime("valid_until", l.ValidUntil)
	w.close('}')
}

// writeDetail writes an authorization detail: its type and mandate, and
// its limits when it has terms, in key order.
func writeDetail(w *jsonWriter, d *AuthorizationDetail) {
	w.open('{')
	l := d.Limits
	if l != nil {
		w.optStrs("allowed_categories", l.AllowedCategories)
		w.optStrs("allowed_countries", l.AllowedCountries)
		w.optStrs("allowed_merchants", l.AllowedMerchants)
		w.optInt("approval_threshold", l.ApprovalThreshold)
		w.optStrs("blocked_categories", l.BlockedCategories)
		w.key("budget")
		w.int(l.Budget)
		w.key("currency")
		w.str(l.Currency)
	}
	w.optStr("mandate_id", d.MandateID)
	if l != nil {
		w.optInt("max_amount_per_charge", l.MaxAmountPerCharge)
		w.optInt("max_charges", l.MaxCharges)
		w.key("payment_methods")
		w.strs(l.PaymentMethods)
		w.optStr("period", l.Period)
		w.optInt("period_budget", l.PeriodBudget)
	}
	w.key("type")
	w.str(d.Type)
	if l != nil {
		w.optTime("valid_from", l.ValidFrom)
		w.optTime("valid_until", l.ValidUntil)
	}
	w.close('}')
}

// writeJSON writes input.fraud in key order: anomaly, limits,
// risk_signals (when there are any), screener, velocity.
func (f *Fraud) writeJSON(w *jsonWriter) {
	w.open('{')
	if a := f.Anomaly; a != nil {
		w.key("anomaly")
		w.open('{')
		w.key("message")
		w.str(a.Message)
		w.key("metric")
		w.str(a.Metric)
		w.key("score")
		w.float(a.Score)
		w.close('}')
	}
	w.key("limits")
	w.b = append(w.b, limitsOf(f.Limits).json...)
	if len(f.RiskSignals) > 0 {
		w.key("risk_signals")
		w.open('[')
		for i := range f.RiskSignals {
			r := &f.RiskSignals[i]
			w.elem()
			w.open('{')
			w.key("action")
			w.str(r.Action)
			w.key("score")
			w.float(r.Score)
			w.key("type")
			w.str(r.Type)
			w.close('}')
		}
		w.close(']')
	}
	if s := f.Screener; s != nil {
		w.key("screener")
		w.open('{')
		w.key("decision")
		w.str(s.Decision)
		w.key("fail_closed")
		w.bool(s.FailClosed)
		w.key("reasons")
		w.strs(s.Reasons)
		w.key("score")
		w.int(int64(s.Score))
		w.key("screener")
		w.str(s.Screener)
		w.close('}')
	}
	w.key("velocity")
	w.open('{')
	for _, k := range f.keyedVelocity() {
		w.anyKey(k.key)
		w.open('{')
		w.key("amount")
		w.int(k.v.Amount)
		w.key("count")
		w.int(int64(k.v.Count))
		w.key("declines")
		w.int(int64(k.v.Declines))
		w.close('}')
	}
	w.close('}')
	w.close('}')
}

// limitsJSON is input.fraud.limits as JSON (see limitsOf), the metrics
// in key order.
func limitsJSON(ls []VelocityLimit, metrics []string) []byte {
	w := &jsonWriter{}
	w.open('{')
	for _, m := range slices.Sorted(slices.Values(metrics)) {
		w.anyKey(m)
		w.open('[')
		for i := range ls {
			l := &ls[i]
			if l.Metric != m {
				continue
			}
			w.elem()
			w.open('{')
			w.key("action")
			w.str(l.Action)
			w.key("limit")
			w.int(l.Limit)
			w.key("scope")
			w.str(l.Scope)
			w.key("stat")
			w.str(statKey(l.Scope, l.Window))
			w.key("window")
			w.str(l.Window)
			w.close('}')
		}
		w.close(']')
	}
	w.close('}')
	return w.b
}

func sortedKeys[V any](m map[string]V) []string {
	if len(m) <= 1 {
		for k := range m {
			return []string{k}
		}
		return nil
	}
	return slices.Sorted(maps.Keys(m))
}

// writeAnyMap writes what anyTerm makes of a map (the purchase context):
// members whose value is nil are left out.
func writeAnyMap(w *jsonWriter, m map[string]any) {
	w.open('{')
	for _, k := range sortedKeys(m) {
		v := m[k]
		if v == nil {
			continue
		}
		mark, first := len(w.b), w.first
		if !w.first {
			w.b = append(w.b, ',')
		}
		w.first = false
		w.str(k)
		w.b = append(w.b, ':')
		if !writeAny(w, v) {
			w.b, w.first = w.b[:mark], first
		}
	}
	w.close('}')
}

// writeAny writes what anyTerm makes of v; false (nothing written) when
// anyTerm leaves it out.
func writeAny(w *jsonWriter, v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case string:
		w.str(x)
	case bool:
		w.bool(x)
	case int:
		w.int(int64(x))
	case int64:
		w.int(x)
	case map[string]any:
		writeAnyMap(w, x)
	case []any:
		w.open('[')
		for _, e := range x {
			mark, first := len(w.b), w.first
			w.elem()
			if !writeAny(w, e) {
				w.b, w.first = w.b[:mark], first
			}
		}
		w.close(']')
	default:
		// Anything else is converted as the document converts it (OPA's
		// generic conversion) and written by encoding/json.
		t := anyTerm(v)
		if t == nil {
			return false
		}
		j, err := ast.JSON(t.Value)
		if err != nil {
			w.fail(err)
			return true
		}
		b, err := json.Marshal(j)
		if err != nil {
			w.fail(err)
			return true
		}
		w.b = append(w.b, b...)
	}
	return true
}
