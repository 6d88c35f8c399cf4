package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/internal/money"
	"github.com/perfectpay/perfectpay/internal/page"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/policies"
	"github.com/perfectpay/perfectpay/server"
)

// The team console: owners, admins and developers register, suspend and
// revoke agents, create (with a preview in plain words), suspend and revoke
// mandates, and read recent decisions with their reasons. Auditors see the
// same pages without a single form that changes anything.
func (p *Pages) mountConsole(api *server.API) {
	p.handle(api, http.MethodGet, "/console", p.consolePage)
	p.handle(api, http.MethodPost, "/console/agents", p.consoleCreateAgent)
	p.handle(api, http.MethodPost, "/console/agents/{id}/{action}", p.consoleAgentAction)
	p.handle(api, http.MethodPost, "/console/mandates", p.consoleCreateMandate)
	p.handle(api, http.MethodPost, "/console/mandates/{id}/{action}", p.consoleMandateAction)
}

type decisionRow struct {
	At      time.Time
	Mandate string
	Agent   string
	Result  string
	Reasons []string
}

type consoleData struct {
	CanWrite  bool
	Agents    []authz.Agent
	Mandates  []mandateRow
	Decisions []decisionRow
	Form      mandateForm
	Preview   []string
	Secret    string // a new agent's client secret, shown once
	SecretFor string
}

// mandateForm is the mandate form as typed (amounts in major units).
type mandateForm struct {
	Agent, Payer, Currency, Budget, PerCharge, Period, PeriodBudget string
	PaymentMethods, Merchants, Threshold, ValidUntil, Description   string
}

// team returns the signed-in team member (with MFA), or answers.
func (p *Pages) team(w http.ResponseWriter, r *http.Request) (*accounts.User, bool) {
	u, ok := p.RequireUser(w, r)
	if !ok {
		return nil, false
	}
	if !u.IsTeam() {
		p.fail(w, r, http.StatusForbidden, "The console is for the team of the account.")
		return nil, false
	}
	return u, true
}

// writer returns the signed-in team member allowed to change things.
func (p *Pages) writer(w http.ResponseWriter, r *http.Request) (*accounts.User, bool) {
	u, ok := p.team(w, r)
	if !ok || !p.CheckCSRF(w, r) {
		return nil, false
	}
	if !u.CanWrite() {
		p.fail(w, r, http.StatusForbidden, "Your role (auditor) can read the console but not change anything.")
		return nil, false
	}
	return u, true
}

func (p *Pages) consoleData(r *http.Request, u *accounts.User) (*consoleData, error) {
	d := &consoleData{CanWrite: u.CanWrite(), Form: mandateForm{Currency: "USD"}}
	if p.Issuer != nil {
		agents, _, err := p.Issuer.ListAgents(r.Context(), u.TenantID, page.Page{Limit: page.MaxLimit})
		if err != nil {
			return nil, err
		}
		d.Agents = agents
	}
	ms, _, err := p.Mandates.List(r.Context(), mandates.Filter{TenantID: u.TenantID, Limit: 20})
	if err != nil {
		return nil, err
	}
	for i := range ms {
		row, _, err := p.mandateRow(r, &ms[i])
		if err != nil {
			return nil, err
		}
		d.Mandates = append(d.Mandates, row)
		evs, err := p.decisions(r, &ms[i], row.Agent)
		if err != nil {
			return nil, err
		}
		d.Decisions = append(d.Decisions, evs...)
	}
	slices.SortFunc(d.Decisions, func(a, b decisionRow) int { return b.At.Compare(a.At) })
	if len(d.Decisions) > 20 {
		d.Decisions = d.Decisions[:20]
	}
	return d, nil
}

// decisions are the recent decisions of one mandate.
func (p *Pages) decisions(r *http.Request, m *mandates.Mandate, agent string) ([]decisionRow, error) {
	evs, err := p.lastEvents(r, m, page.MaxLimit)
	if err != nil {
		return nil, err
	}
	var out []decisionRow
	for _, e := range evs {
		if !strings.HasPrefix(e.Type, "decision.") {
			continue
		}
		row := decisionRow{At: e.CreatedAt, Mandate: m.ID, Agent: agent, Result: strings.TrimPrefix(e.Type, "decision.")}
		var dec struct {
			Reasons []policies.Reason `json:"reasons"`
		}
		if json.Unmarshal(e.Data, &dec) == nil {
			row.Reasons = reasonText(dec.Reasons)
		}
		out = append(out, row)
	}
	return out, nil
}

func (p *Pages) consolePage(w http.ResponseWriter, r *http.Request) {
	u, ok := p.team(w, r)
	if !ok {
		return
	}
	d, err := p.consoleData(r, u)
	if err != nil {
		p.internal(w, r, err)
		return
	}
	p.render(w, r, http.StatusOK, "console", &View{Title: "Console", Notice: consoleNotice(r.URL.Query().Get("done")), Data: d})
}

func consoleNotice(done string) string {
	switch done {
	case "suspend":
		return "Suspended."
	case "resume":
		return "Resumed."
	case "revoke":
		return "Revoked, on every node, from now on."
	case "created":
		return "Created."
	}
	return ""
}

// consoleAgain renders the console with an error or a notice and data
// the handler filled in (a form to correct, a secret shown once).
func (p *Pages) consoleAgain(w http.ResponseWriter, r *http.Request, u *accounts.User, status int, msg, notice string, edit func(*consoleData)) {
	d, err := p.consoleData(r, u)
	if err != nil {
		p.internal(w, r, err)
		return
	}
	if edit != nil {
		edit(d)
	}
	p.render(w, r, status, "console", &View{Title: "Console", Error: msg, Notice: notice, Data: d})
}

func (p *Pages) consoleCreateAgent(w http.ResponseWriter, r *http.Request) {
	u, ok := p.writer(w, r)
	if !ok {
		return
	}
	in := authz.AgentInput{Name: strings.TrimSpace(r.PostFormValue("name")), AuthMethod: "client_secret_basic"}
	if jwks := strings.TrimSpace(r.PostFormValue("jwks")); jwks != "" {
		in.AuthMethod, in.JWKS = "private_key_jwt", json.RawMessage(jwks)
	}
	a, secret, err := p.Issuer.CreateAgent(UserContext(r, u), u.TenantID, in)
	if msg, ok := refusal(err); ok {
		p.consoleAgain(w, r, u, http.StatusBadRequest, msg, "", nil)
		return
	}
	if err != nil {
		p.internal(w, r, err)
		return
	}
	p.consoleAgain(w, r, u, http.StatusOK, "", "Agent registered.", func(d *consoleData) { d.Secret, d.SecretFor = secret, a.ID })
}

// refusal is the message of a domain's refusal of input (shown on the page).
func refusal(err error) (string, bool) {
	var inv *apierr.Invalid
	var cf *apierr.Conflict
	var nf *apierr.NotFound
	var fb *apierr.Forbidden
	switch {
	case errors.As(err, &inv):
		return inv.Message, true
	case errors.As(err, &cf):
		return cf.Message, true
	case errors.As(err, &nf):
		return nf.Error() + ".", true
	case errors.As(err, &fb):
		return fb.Message, true
	}
	var se *server.Error
	if errors.As(err, &se) {
		return se.Message, true
	}
	return "", false
}

func (p *Pages) consoleAgentAction(w http.ResponseWriter, r *http.Request) {
	p.consoleAction(w, r, func(ctx context.Context, tenantID, id, action string) (err error) {
		switch action {
		case "suspend":
			_, err = p.Issuer.SuspendAgent(ctx, tenantID, id)
		case "resume":
			_, err = p.Issuer.ResumeAgent(ctx, tenantID, id)
		case "revoke":
			_, err = p.Issuer.RevokeAgent(ctx, tenantID, id)
		default:
			return errNoAction
		}
		return err
	})
}

func (p *Pages) consoleMandateAction(w http.ResponseWriter, r *http.Request) {
	p.consoleAction(w, r, func(ctx context.Context, tenantID, id, action string) (err error) {
		switch action {
		case "suspend":
			_, err = p.Mandates.Suspend(ctx, tenantID, id)
		case "resume":
			_, err = p.Mandates.Resume(ctx, tenantID, id)
		case "revoke":
			_, _, err = p.Mandates.Revoke(ctx, tenantID, id)
		default:
			return errNoAction
		}
		return err
	})
}

// errNoAction is an action a console form may not name.
var errNoAction = errors.New("web: no such console action")

// consoleAction runs one suspend/resume/revoke form of the console for a
// team member who may write: a refusal is shown on the console again, a
// success goes back to it.
func (p *Pages) consoleAction(w http.ResponseWriter, r *http.Request, apply func(ctx context.Context, tenantID, id, action string) error) {
	u, ok := p.writer(w, r)
	if !ok {
		return
	}
	id, action := mux.Vars(r)["id"], mux.Vars(r)["action"]
	err := apply(UserContext(r, u), u.TenantID, id, action)
	if errors.Is(err, errNoAction) {
		p.fail(w, r, http.StatusNotFound, "No such action.")
		return
	}
	if msg, ok := refusal(err); ok {
		p.consoleAgain(w, r, u, http.StatusBadRequest, msg, "", nil)
		return
	}
	if err != nil {
		p.internal(w, r, err)
		return
	}
	http.Redirect(w, r, "/console?done="+action, http.StatusSeeOther)
}

// parseAmount reads an amount typed in major units ("200", "49.99") as
// minor units of currency.
func parseAmount(field, s, currency string) (*int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	exp, ok := money.Exponent(currency)
	if !ok {
		return nil, apierr.BadParam("currency", "Unknown currency %q.", currency)
	}
	whole, frac, _ := strings.Cut(s, ".")
	if len(frac) > exp || whole == "" || strings.Trim(whole, "0123456789") != "" || strings.Trim(frac, "0123456789") != "" || len(whole) > 12 {
		return nil, apierr.BadParam(field, "%s must be an amount like 25 or 25.%s.", field, strings.Repeat("0", exp))
	}
	v, _ := strconv.ParseInt(whole+frac+strings.Repeat("0", exp-len(frac)), 10, 64)
	return &v, nil
}

func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

// mandateFromForm builds the mandate terms the form describes.
func mandateFromForm(f mandateForm) (*mandates.Mandate, error) {
	cur := strings.ToUpper(strings.TrimSpace(f.Currency))
	m := &mandates.Mandate{Agent: strings.TrimSpace(f.Agent), Payer: strings.TrimSpace(f.Payer), Description: strings.TrimSpace(f.Description)}
	m.Currency = cur
	budget, err := parseAmount("budget", f.Budget, cur)
	if err != nil {
		return nil, err
	}
	if budget == nil {
		return nil, apierr.MissingParam("budget", "budget is required.")
	}
	m.Budget = *budget
	if m.MaxAmountPerCharge, err = parseAmount("max_amount_per_charge", f.PerCharge, cur); err != nil {
		return nil, err
	}
	if m.ApprovalThreshold, err = parseAmount("approval_threshold", f.Threshold, cur); err != nil {
		return nil, err
	}
	if f.Period != "" {
		m.Period = f.Period
		if m.PeriodBudget, err = parseAmount("period_budget", f.PeriodBudget, cur); err != nil {
			return nil, err
		}
	}
	m.PaymentMethods = splitList(f.PaymentMethods)
	m.AllowedMerchants = splitList(f.Merchants)
	if v := strings.TrimSpace(f.ValidUntil); v != "" {
		t, err := time.Parse("2006-01-02", v)
		if err != nil {
			return nil, apierr.BadParam("valid_until", "valid_until must be a date like 2026-12-31.")
		}
		t = t.Add(24*time.Hour - time.Second)
		m.ValidUntil = &t
	}
	return m, nil
}

func (p *Pages) consoleCreateMandate(w http.ResponseWriter, r *http.Request) {
	u, ok := p.writer(w, r)
	if !ok {
		return
	}
	f := mandateForm{Agent: r.PostFormValue("agent"), Payer: r.PostFormValue("payer"), Currency: r.PostFormValue("currency"),
		Budget: r.PostFormValue("budget"), PerCharge: r.PostFormValue("max_amount_per_charge"), Period: r.PostFormValue("period"),
		PeriodBudget: r.PostFormValue("period_budget"), PaymentMethods: r.PostFormValue("payment_methods"),
		Merchants: r.PostFormValue("allowed_merchants"), Threshold: r.PostFormValue("approval_threshold"),
		ValidUntil: r.PostFormValue("valid_until"), Description: r.PostFormValue("description")}
	keep := func(d *consoleData) { d.Form = f }
	m, err := mandateFromForm(f)
	if msg, ok := refusal(err); ok {
		p.consoleAgain(w, r, u, http.StatusBadRequest, msg, "", keep)
		return
	}
	if err != nil {
		p.internal(w, r, err)
		return
	}
	if r.PostFormValue("intent") != "create" {
		// Preview: the terms in plain words; nothing is stored.
		terms := Terms(&m.Limits, p.agentName(r.Context(), u.TenantID, m.Agent), p.merchantName(r.Context()))
		p.consoleAgain(w, r, u, http.StatusOK, "", "", func(d *consoleData) { d.Form, d.Preview = f, terms })
		return
	}
	created, err := p.Mandates.Create(UserContext(r, u), u.TenantID, m)
	if msg, ok := refusal(err); ok {
		p.consoleAgain(w, r, u, http.StatusBadRequest, msg, "", keep)
		return
	}
	if err != nil {
		p.internal(w, r, err)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/console?done=created#m-%s", created.ID), http.StatusSeeOther)
}
