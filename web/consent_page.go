package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/server"
	"github.com/perfectpay/perfectpay/store"
)

// The consent page: the payer signs in (with the second factor), reads
// what an agent asks to be allowed to spend, in plain words, and approves
// with a code typed on the page, or declines. It serves the three ways a
// payer's yes is asked for:
//
//   - /consent/{azr_…} of the authorization code grant: the answer goes
//     back to the agent's redirect URI (code, or error=access_denied);
//   - /consent/{azr_…} of a CIBA request (the approval.requested event
//     carries this URL): the agent learns the answer at the token endpoint;
//   - /consent/mandates/{mdt_…}: a mandate the tenant created for this
//     payer, waiting for the payer's approval (pending_approval).
func (p *Pages) mountConsent(api *server.API) {
	p.handle(api, http.MethodGet, authz.PathConsent+"/mandates/{id}", p.mandateConsentPage)
	p.handle(api, http.MethodPost, authz.PathConsent+"/mandates/{id}", p.mandateConsent)
	p.handle(api, http.MethodGet, authz.PathConsent+"/{id}", p.consentPage)
	p.handle(api, http.MethodPost, authz.PathConsent+"/{id}", p.consent)
	api.Raw(http.MethodPost, authz.PathBCAuthorize, http.HandlerFunc(p.bcAuthorize))
}

// bcAuthorize serves POST /oauth2/bc-authorize (CIBA) for agents: the
// payer named by login_hint must be an active payer of the agent's tenant
// with a second factor (every approval is given with it), and the
// authorization_details must propose mandate terms.
func (p *Pages) bcAuthorize(w http.ResponseWriter, r *http.Request) {
	r = r.WithContext(audit.WithActor(r.Context(), audit.Actor{Type: audit.ActorSystem, IP: clientIP(r),
		RequestID: r.Header.Get("Request-Id")}))
	base := p.Issuer.Options().PublicURL
	p.Issuer.BackchannelAuthorize(w, r, authz.CIBAChecks{
		Details: server.ProposedMandate,
		Payer: func(ctx context.Context, tenantID, id string) (bool, error) {
			u, err := p.People.GetCustomer(ctx, tenantID, id)
			var nf *apierr.NotFound
			if errors.Is(err, store.ErrNotFound) || errors.As(err, &nf) {
				return false, nil
			}
			if err != nil {
				return false, err
			}
			return u.Status == accounts.UserActive && u.MFAEnrolled(), nil
		},
		ApprovalURL: func(id string) string { return base + authz.PathConsent + "/" + id },
	})
}

type consentData struct {
	Agent       string
	Terms       []string
	Description string
	Binding     string // CIBA: the binding message the agent shows too
	CIBA        bool
	Mandate     string // /consent/mandates: the mandate's id
	ExpiresAt   time.Time
	Pending     bool
	Outcome     string
}

func (p *Pages) consentFlow() *Consent { return &Consent{Issuer: p.Issuer, Mandates: p.Mandates} }

// consentFor loads request id for payer u: nil (and the answer written)
// when it is not a request of u's tenant (or, for CIBA, not addressed to u).
func (p *Pages) consentFor(w http.ResponseWriter, r *http.Request, u *accounts.User, id string) (*authz.AuthRequest, *consentData) {
	notMine := func() (*authz.AuthRequest, *consentData) {
		p.fail(w, r, http.StatusNotFound, "There is no such request waiting for you.")
		return nil, nil
	}
	if p.Issuer == nil || u.IsTeam() {
		return notMine()
	}
	req, err := p.Issuer.GetAuthRequest(r.Context(), u.TenantID, id)
	if errors.Is(err, store.ErrNotFound) {
		return notMine()
	}
	if err != nil {
		p.internal(w, r, err)
		return nil, nil
	}
	if req.Kind == authz.AuthRequestCIBA && req.Payer != u.ID {
		return notMine()
	}
	if req.Status != authz.AuthPending && req.Payer != u.ID {
		return notMine() // decided by someone else: nothing to show
	}
	d, err := Proposed(req)
	if err != nil {
		p.internal(w, r, err)
		return nil, nil
	}
	agent := p.agentName(r.Context(), u.TenantID, req.ClientID)
	cd := &consentData{Agent: agent, Terms: Terms(d.Limits, agent, p.merchantName(r.Context())), Description: d.Description,
		Binding: req.BindingMessage, CIBA: req.Kind == authz.AuthRequestCIBA, ExpiresAt: req.ExpiresAt,
		Pending: req.Status == authz.AuthPending && time.Now().Before(req.ExpiresAt), Outcome: req.Status}
	if cd.Pending {
		cd.Outcome = ""
	}
	return req, cd
}

func (p *Pages) consentPage(w http.ResponseWriter, r *http.Request) {
	u, ok := p.RequireUser(w, r)
	if !ok {
		return
	}
	if req, d := p.consentFor(w, r, u, mux.Vars(r)["id"]); d != nil {
		allowRedirect(w, req)
		p.Render(w, r, http.StatusOK, "consent", "Allow "+d.Agent+" to spend for you?", d)
	}
}

// allowRedirect lets the consent form's answer redirect to the agent: a
// form's navigation, redirects included, is held to the page's
// form-action, which otherwise names this origin only.
func allowRedirect(w http.ResponseWriter, req *authz.AuthRequest) {
	u, err := url.Parse(req.RedirectURI())
	if err != nil || u.Scheme == "" || u.Host == "" {
		return
	}
	w.Header().Set("Content-Security-Policy", strings.Replace(csp, "form-action 'self'", "form-action 'self' "+u.Scheme+"://"+u.Host, 1))
}

func (p *Pages) consent(w http.ResponseWriter, r *http.Request) {
	u, ok := p.RequireUser(w, r)
	if !ok || !p.CheckCSRF(w, r) {
		return
	}
	id := mux.Vars(r)["id"]
	req, d := p.consentFor(w, r, u, id)
	if d == nil {
		return
	}
	allowRedirect(w, req)
	title := "Allow " + d.Agent + " to spend for you?"
	yes := r.PostFormValue("decision") == "approve"
	if !yes && r.PostFormValue("decision") != "deny" {
		p.RenderError(w, r, http.StatusBadRequest, "consent", title, "Choose allow or decline.", d)
		return
	}
	if !d.Pending {
		p.RenderError(w, r, http.StatusConflict, "consent", title, "This request is no longer waiting: it was answered or it expired.", d)
		return
	}
	factor := ""
	if yes { // a yes is given with the second factor, typed now
		var err error
		if factor, err = p.CheckFactor(r, u, r.PostFormValue("code")); err != nil {
			p.codeRefused(w, r, err, "consent", title, d)
			return
		}
	}
	ctx := ConfirmedContext(r, u, factor)
	var err error
	if yes {
		req, _, err = p.consentFlow().Approve(ctx, u.TenantID, u.ID, id)
	} else {
		req, err = p.consentFlow().Deny(ctx, u.TenantID, u.ID, id)
	}
	var conflict *apierr.Conflict
	var invalid *apierr.Invalid
	switch {
	case errors.As(err, &conflict):
		d.Pending = false
		p.RenderError(w, r, http.StatusConflict, "consent", title, "This request is no longer waiting: it was answered or it expired.", d)
		return
	case errors.As(err, &invalid):
		p.RenderError(w, r, http.StatusUnprocessableEntity, "consent", title, "These terms can no longer be granted: "+invalid.Message, d)
		return
	case err != nil:
		p.internal(w, r, err)
		return
	}
	if req.Kind == authz.AuthRequestAuthorize {
		to, err := p.Issuer.CodeRedirect(ctx, req)
		if err != nil {
			p.internal(w, r, err)
			return
		}
		http.Redirect(w, r, to, http.StatusSeeOther)
		return
	}
	p.Issuer.PingClient(ctx, req)
	d.Pending, d.Outcome = false, req.Status
	if yes {
		title = "Allowed"
	} else {
		title = "Declined"
	}
	p.Render(w, r, http.StatusOK, "consent", title, d)
}

// mandateFor loads mandate id for payer u: a mandate of u's tenant whose
// payer is u.
func (p *Pages) mandateFor(w http.ResponseWriter, r *http.Request, u *accounts.User, id string) (*mandates.Mandate, *consentData) {
	if u.IsTeam() || !strings.HasPrefix(id, "mdt_") {
		p.fail(w, r, http.StatusNotFound, "There is no such mandate waiting for you.")
		return nil, nil
	}
	m, err := p.Mandates.Get(r.Context(), u.TenantID, id)
	var nf *apierr.NotFound
	if errors.Is(err, store.ErrNotFound) || errors.As(err, &nf) || (err == nil && m.Payer != u.ID) {
		p.fail(w, r, http.StatusNotFound, "There is no such mandate waiting for you.")
		return nil, nil
	}
	if err != nil {
		p.internal(w, r, err)
		return nil, nil
	}
	agent := p.agentName(r.Context(), u.TenantID, m.Agent)
	d := &consentData{Agent: agent, Terms: Terms(&m.Limits, agent, p.merchantName(r.Context())), Description: m.Description,
		Mandate: m.ID, Pending: m.Status == mandates.StatusPendingApproval, Outcome: m.Status}
	return m, d
}

func (p *Pages) mandateConsentPage(w http.ResponseWriter, r *http.Request) {
	u, ok := p.RequireUser(w, r)
	if !ok {
		return
	}
	if _, d := p.mandateFor(w, r, u, mux.Vars(r)["id"]); d != nil {
		p.Render(w, r, http.StatusOK, "consent", "Allow "+d.Agent+" to spend for you?", d)
	}
}

func (p *Pages) mandateConsent(w http.ResponseWriter, r *http.Request) {
	u, ok := p.RequireUser(w, r)
	if !ok || !p.CheckCSRF(w, r) {
		return
	}
	m, d := p.mandateFor(w, r, u, mux.Vars(r)["id"])
	if d == nil {
		return
	}
	title := "Allow " + d.Agent + " to spend for you?"
	yes := r.PostFormValue("decision") == "approve"
	if !yes && r.PostFormValue("decision") != "deny" {
		p.RenderError(w, r, http.StatusBadRequest, "consent", title, "Choose allow or decline.", d)
		return
	}
	if !d.Pending {
		p.RenderError(w, r, http.StatusConflict, "consent", title, "This mandate is no longer waiting for your approval.", d)
		return
	}
	factor := ""
	if yes {
		var err error
		if factor, err = p.CheckFactor(r, u, r.PostFormValue("code")); err != nil {
			p.codeRefused(w, r, err, "consent", title, d)
			return
		}
	}
	ctx := ConfirmedContext(r, u, factor)
	var err error
	if yes {
		m, err = p.Mandates.Approve(ctx, u.TenantID, m.ID)
	} else {
		m, _, err = p.Mandates.Revoke(ctx, u.TenantID, m.ID)
	}
	var conflict *apierr.Conflict
	if errors.As(err, &conflict) {
		d.Pending = false
		p.RenderError(w, r, http.StatusConflict, "consent", title, "This mandate is no longer waiting for your approval.", d)
		return
	}
	if err != nil {
		p.internal(w, r, err)
		return
	}
	d.Pending, d.Outcome = false, m.Status
	p.Render(w, r, http.StatusOK, "consent", title, d)
}
