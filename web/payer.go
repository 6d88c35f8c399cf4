package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/internal/money"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/policies"
	"github.com/perfectpay/perfectpay/server"
	"github.com/perfectpay/perfectpay/store"
)

func (p *Pages) mountPayer(api *server.API) {
	p.handle(api, http.MethodGet, "/me", p.payerPage)
	p.handle(api, http.MethodPost, "/me/mandates/{id}/revoke", p.payerRevoke)
}

// recentEvents is how many history entries each mandate shows.
const recentEvents = 10

// maxEventPages bounds the history pages read per mandate.
const maxEventPages = 10

type eventRow struct {
	At      time.Time
	What    string
	Reasons []string
}

type mandateRow struct {
	M               *mandates.Mandate
	Agent           string
	Remaining       string
	PeriodRemaining string
	Terms           []string
	Events          []eventRow
	Live            bool
}

type approvalRow struct {
	ID       string
	Amount   string
	Merchant string
	Agent    string
	Expires  time.Time
}

type payerData struct {
	Mandates []mandateRow
	Pending  []approvalRow
}

// payerMandates lists the mandates u (a payer) granted.
func (p *Pages) payerMandates(r *http.Request, u *accounts.User) ([]mandates.Mandate, error) {
	var out []mandates.Mandate
	after := ""
	for range 10 { // at most 1,000 mandates on one page
		ms, more, err := p.Mandates.List(r.Context(), mandates.Filter{TenantID: u.TenantID, Payer: u.ID, StartingAfter: after, Limit: 100})
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
		if !more || len(ms) == 0 {
			break
		}
		after = ms[len(ms)-1].ID
	}
	return out, nil
}

// recent reads the last entries of a mandate's history, and the approvals
// its challenged decisions opened.
func (p *Pages) recent(r *http.Request, m *mandates.Mandate) ([]eventRow, []string, error) {
	ring, err := p.lastEvents(r, m, 4*recentEvents)
	if err != nil {
		return nil, nil, err
	}
	var approvals []string
	var rows []eventRow
	for i := len(ring) - 1; i >= 0 && len(rows) < recentEvents; i-- {
		e := ring[i]
		row := eventRow{At: e.CreatedAt, What: describeEvent(e.Type)}
		if strings.HasPrefix(e.Type, "decision.") {
			var d charging.Decision
			if json.Unmarshal(e.Data, &d) == nil {
				row.Reasons = reasonText(d.Reasons)
				if d.ApprovalID != "" && d.Result == policies.Challenge {
					approvals = append(approvals, d.ApprovalID)
				}
			}
		}
		rows = append(rows, row)
	}
	return rows, approvals, nil
}

// lastEvents reads the last n entries of a mandate's history (oldest
// first), paging through at most maxEventPages pages of it.
func (p *Pages) lastEvents(r *http.Request, m *mandates.Mandate, n int) ([]mandates.Event, error) {
	var ring []mandates.Event
	after := ""
	for range maxEventPages {
		evs, more, err := p.Mandates.Events(r.Context(), mandates.EventFilter{TenantID: m.TenantID, MandateID: m.ID, StartingAfter: after, Limit: 100})
		if err != nil {
			return nil, err
		}
		ring = append(ring, evs...)
		if len(ring) > n {
			ring = ring[len(ring)-n:]
		}
		if !more || len(evs) == 0 {
			break
		}
		after = evs[len(evs)-1].ID
	}
	return ring, nil
}

func reasonText(rs []policies.Reason) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.Message)
	}
	return out
}

var eventWords = map[string]string{
	"mandate.created": "Created", "mandate.approved": "Approved by you", "mandate.suspended": "Suspended",
	"mandate.resumed": "Resumed", "mandate.revoked": "Revoked", "mandate.expired": "Expired", "mandate.exhausted": "Budget used up",
	"decision.allow": "A purchase was allowed", "decision.deny": "A purchase was refused", "decision.challenge": "A purchase asked for your approval",
	"approval.approved": "You approved a purchase", "approval.denied": "You declined a purchase",
}

func describeEvent(t string) string {
	if w, ok := eventWords[t]; ok {
		return w
	}
	return strings.ReplaceAll(t, "_", " ")
}

func (p *Pages) mandateRow(r *http.Request, m *mandates.Mandate) (mandateRow, []string, error) {
	now := time.Now()
	row := mandateRow{M: m, Agent: p.agentName(r.Context(), m.TenantID, m.Agent),
		Remaining: money.Format(m.Remaining(), strings.ToUpper(m.Currency)),
		Live:      !mandates.Terminal(m.Status)}
	if m.Period != "" && m.PeriodBudget != nil {
		row.PeriodRemaining = money.Format(*m.PeriodBudget-m.PeriodSpentAt(now), strings.ToUpper(m.Currency)) + " this " + m.Period
	}
	row.Terms = Terms(&m.Limits, row.Agent, p.merchantName(r.Context()))
	evs, apr, err := p.recent(r, m)
	row.Events = evs
	return row, apr, err
}

func (p *Pages) payerPage(w http.ResponseWriter, r *http.Request) {
	u, ok := p.RequireUser(w, r)
	if !ok {
		return
	}
	if u.IsTeam() {
		http.Redirect(w, r, "/console", http.StatusSeeOther)
		return
	}
	d, err := p.payerData(r, u)
	if err != nil {
		p.internal(w, r, err)
		return
	}
	notice := ""
	if r.URL.Query().Get("revoked") != "" {
		notice = "The mandate was revoked. Its agent cannot spend any more, from now on."
	}
	p.render(w, r, http.StatusOK, "payer", &View{Title: "Your mandates", Notice: notice, Data: d})
}

func (p *Pages) payerData(r *http.Request, u *accounts.User) (*payerData, error) {
	ms, err := p.payerMandates(r, u)
	if err != nil {
		return nil, err
	}
	d := &payerData{}
	seen := map[string]bool{}
	for i := range ms {
		row, aprs, err := p.mandateRow(r, &ms[i])
		if err != nil {
			return nil, err
		}
		d.Mandates = append(d.Mandates, row)
		for _, id := range aprs {
			if seen[id] || p.Pipeline == nil {
				continue
			}
			seen[id] = true
			a, err := p.Pipeline.GetApproval(r.Context(), u.TenantID, id)
			if err != nil {
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				return nil, err
			}
			if a.Status == charging.ApprovalPending && time.Now().Before(a.ExpiresAt) {
				d.Pending = append(d.Pending, approvalRow{ID: a.ID, Amount: money.Format(a.Amount, strings.ToUpper(a.Currency)),
					Merchant: p.merchantName(r.Context())(a.MerchantID), Agent: row.Agent, Expires: a.ExpiresAt})
			}
		}
	}
	return d, nil
}

// payerRevoke revokes a mandate the signed-in payer granted, with every
// mandate delegated from it, through the same path as the API's revoke:
// the charge transaction reads the status, so the next charge is refused
// on every node.
func (p *Pages) payerRevoke(w http.ResponseWriter, r *http.Request) {
	u, ok := p.RequireUser(w, r)
	if !ok || !p.CheckCSRF(w, r) {
		return
	}
	id := mux.Vars(r)["id"]
	m, err := p.Mandates.Get(r.Context(), u.TenantID, id)
	var nf *apierr.NotFound
	if errors.Is(err, store.ErrNotFound) || errors.As(err, &nf) || (err == nil && (u.IsTeam() || m.Payer != u.ID)) {
		p.fail(w, r, http.StatusNotFound, "There is no such mandate of yours.")
		return
	}
	if err != nil {
		p.internal(w, r, err)
		return
	}
	if _, _, err := p.Mandates.Revoke(UserContext(r, u), u.TenantID, id); err != nil {
		p.internal(w, r, err)
		return
	}
	http.Redirect(w, r, "/me?revoked=1", http.StatusSeeOther)
}
