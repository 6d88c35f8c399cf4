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
	"github.com/perfectpay/perfectpay/server"
	"github.com/perfectpay/perfectpay/store"
)

// The step-up page: the payer of the mandate sees the exact charge the
// policy challenged and approves or declines it with a second-factor code
// typed on the page. The approval is the pipeline's record (single-use,
// expiring, bound to the exact request); the agent retries its charge
// with the approval's id.
func (p *Pages) mountApprovals(api *server.API) {
	p.handle(api, http.MethodGet, "/approvals/{id}", p.approvalPage)
	p.handle(api, http.MethodPost, "/approvals/{id}", p.resolveApproval)
}

type merchantView struct {
	Name, MCC, Country string
	Domains            []string
}

type approvalData struct {
	A         *charging.Approval
	Amount    string
	Merchant  merchantView
	Agent     string
	Chain     []string // agents, the payer's first
	Remaining string
	Period    string
	Purchase  string
	Reasons   []string
	Pending   bool
	Outcome   string
}

// approvalFor loads approval id for u: nil (and the answer written) when
// it is not the approval of a mandate u granted.
func (p *Pages) approvalFor(w http.ResponseWriter, r *http.Request, u *accounts.User, id string) *approvalData {
	notMine := func() *approvalData {
		p.fail(w, r, http.StatusNotFound, "There is no such approval waiting for you.")
		return nil
	}
	if p.Pipeline == nil || u.IsTeam() {
		return notMine()
	}
	a, err := p.Pipeline.GetApproval(r.Context(), u.TenantID, id)
	var nf *apierr.NotFound
	if errors.Is(err, store.ErrNotFound) || errors.As(err, &nf) {
		return notMine()
	}
	if err != nil {
		p.internal(w, r, err)
		return nil
	}
	chain, err := p.Mandates.Chain(r.Context(), u.TenantID, a.MandateID)
	if err != nil || len(chain) == 0 {
		if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.As(err, &nf) {
			p.internal(w, r, err)
			return nil
		}
		return notMine()
	}
	leaf := &chain[len(chain)-1]
	if leaf.Payer != u.ID {
		return notMine()
	}
	d := &approvalData{A: a, Amount: money.Format(a.Amount, strings.ToUpper(a.Currency)),
		Agent:     p.agentName(r.Context(), u.TenantID, a.AgentID),
		Remaining: money.Format(leaf.Remaining(), strings.ToUpper(leaf.Currency)),
		Pending:   a.Status == charging.ApprovalPending && time.Now().Before(a.ExpiresAt)}
	if leaf.Period != "" && leaf.PeriodBudget != nil {
		d.Period = money.Format(*leaf.PeriodBudget-leaf.PeriodSpentAt(time.Now()), strings.ToUpper(leaf.Currency)) + " this " + leaf.Period
	}
	for _, m := range chain {
		d.Chain = append(d.Chain, p.agentName(r.Context(), u.TenantID, m.Agent))
	}
	d.Merchant = p.merchantView(r, a.MerchantID)
	d.Reasons = reasonText(a.Reasons)
	d.Purchase = purchaseText(a.Purchase)
	return d
}

func (p *Pages) merchantView(r *http.Request, id string) merchantView {
	v := merchantView{Name: id}
	if p.Merchants == nil || id == "" {
		return v
	}
	m, err := p.Merchants.Get(r.Context(), id)
	if err != nil {
		return v
	}
	v.Name, v.MCC, v.Country = m.DisplayName, m.MCC, m.Country
	for _, d := range m.Domains {
		if d.Verified() {
			v.Domains = append(v.Domains, d.Name)
		}
	}
	return v
}

// purchaseText is the purchase's description, when the agent gave one.
func purchaseText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var doc map[string]any
	if json.Unmarshal(raw, &doc) != nil {
		return ""
	}
	for _, k := range []string{"description", "summary", "title"} {
		if s, ok := doc[k].(string); ok {
			return s
		}
	}
	return ""
}

func (p *Pages) approvalPage(w http.ResponseWriter, r *http.Request) {
	u, ok := p.RequireUser(w, r)
	if !ok {
		return
	}
	d := p.approvalFor(w, r, u, mux.Vars(r)["id"])
	if d == nil {
		return
	}
	p.Render(w, r, http.StatusOK, "approval", "Approve a purchase?", d)
}

func (p *Pages) resolveApproval(w http.ResponseWriter, r *http.Request) {
	u, ok := p.RequireUser(w, r)
	if !ok || !p.CheckCSRF(w, r) {
		return
	}
	id := mux.Vars(r)["id"]
	d := p.approvalFor(w, r, u, id)
	if d == nil {
		return
	}
	yes := r.PostFormValue("decision") == "approve"
	if !yes && r.PostFormValue("decision") != "deny" {
		p.RenderError(w, r, http.StatusBadRequest, "approval", "Approve a purchase?", "Choose approve or decline.", d)
		return
	}
	if !d.Pending {
		p.RenderError(w, r, http.StatusConflict, "approval", "Approve a purchase?", "This approval is no longer waiting: it was answered, used or it expired.", d)
		return
	}
	// Every answer is given with the second factor, typed now.
	factor, err := p.CheckFactor(r, u, r.PostFormValue("code"))
	if err != nil {
		p.codeRefused(w, r, err, "approval", "Approve a purchase?", d)
		return
	}
	a, err := p.Pipeline.ResolveApproval(ConfirmedContext(r, u, factor), u.TenantID, id, yes, u.ID)
	if errors.Is(err, charging.ErrApprovalClosed) {
		d.Pending = false
		p.RenderError(w, r, http.StatusConflict, "approval", "Approve a purchase?", "This approval is no longer waiting: it was answered, used or it expired.", d)
		return
	}
	if err != nil {
		p.internal(w, r, err)
		return
	}
	d.A, d.Pending, d.Outcome = a, false, a.Status
	title := "Purchase declined"
	if yes {
		title = "Purchase approved"
	}
	p.Render(w, r, http.StatusOK, "approval", title, d)
}
