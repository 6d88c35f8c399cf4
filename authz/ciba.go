package authz

// Client-Initiated Backchannel Authentication (OpenID CIBA core 1.0), so
// that an agent with no browser of its own can ask a payer to approve a
// mandate: POST /oauth2/bc-authorize names the payer (login_hint), a
// binding_message both sides show, and the proposed authorization_details;
// the issuer answers an auth_req_id and emits approval.requested (to the
// tenant's webhooks) with the URL of the approval page, which the tenant
// forwards to the payer's device. The agent polls the token endpoint with
// grant_type urn:openid:params:grant-type:ciba (poll mode), or waits for
// a ping to its client notification endpoint first (ping mode). A request
// is an AuthRequest of kind ciba, decided on the same consent page and by
// the same Decide as an authorization code request.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ory/fosite"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/events"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/internal/egress"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/internal/logging"
	"github.com/perfectpay/perfectpay/internal/seal"
	"github.com/perfectpay/perfectpay/store"
)

// CIBA pacing and lifetimes.
const (
	// CIBAInterval is the minimum time between two polls of one request;
	// a faster poll is answered slow_down.
	CIBAInterval = 5 * time.Second
	// CIBADefaultExpiry and CIBAMaxExpiry bound requested_expiry.
	CIBADefaultExpiry = 5 * time.Minute
	CIBAMaxExpiry     = 10 * time.Minute
	// EventApprovalRequested tells the tenant a payer's approval is asked.
	EventApprovalRequested = "approval.requested"
)

// CIBAChecks are what the issuer asks of the rest of the product at
// /oauth2/bc-authorize.
type CIBAChecks struct {
	// Details validates the proposed authorization_details.
	Details func(ctx context.Context, a *Agent, raw string) error
	// Payer reports whether id is a payer of tenantID who can approve.
	Payer func(ctx context.Context, tenantID, id string) (bool, error)
	// ApprovalURL is the page where the payer decides request id.
	ApprovalURL func(id string) string
}

// cibaData is what a CIBA request keeps besides its AuthRequest fields.
type cibaData struct {
	Scope    []string `json:"scope"`
	Audience []string `json:"audience"`
	// NotifySealed is the client_notification_token of ping mode, sealed:
	// the issuer must present it back, so it cannot keep only a hash.
	NotifySealed []byte `json:"notify_sealed,omitempty"`
}

// ApprovalRequested is the data of an approval.requested event.
type ApprovalRequested struct {
	ID             string          `json:"id"`
	Object         string          `json:"object"`
	Kind           string          `json:"kind"`
	Payer          string          `json:"payer"`
	Agent          string          `json:"agent"`
	BindingMessage string          `json:"binding_message,omitempty"`
	Details        json.RawMessage `json:"authorization_details"`
	ApprovalURL    string          `json:"approval_url"`
	ExpiresAt      time.Time       `json:"expires_at"`
}

func (i *Issuer) notifyKey() []byte {
	m := hmac.New(sha256.New, i.opt.SigningKEK)
	m.Write([]byte("ciba client notification token"))
	return m.Sum(nil)
}

func cibaError(code, desc string) *fosite.RFC6749Error {
	return &fosite.RFC6749Error{ErrorField: code, DescriptionField: desc, CodeField: http.StatusBadRequest}
}

// BackchannelAuthorize serves POST /oauth2/bc-authorize.
func (i *Issuer) BackchannelAuthorize(w http.ResponseWriter, r *http.Request, checks CIBAChecks) {
	ctx := r.Context()
	out, err := i.backchannelAuthorize(r, checks)
	if err != nil {
		var rfc *fosite.RFC6749Error
		if errors.As(err, &rfc) && rfc.ErrorField == fosite.ErrInvalidClient.ErrorField {
			rfc.CodeField = http.StatusUnauthorized
		}
		i.writeTokenError(ctx, w, nil, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func (i *Issuer) backchannelAuthorize(r *http.Request, checks CIBAChecks) (map[string]any, error) {
	ctx := r.Context()
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/x-www-form-urlencoded" {
		return nil, fosite.ErrInvalidRequest.WithHint("The body must be application/x-www-form-urlencoded.")
	}
	if err := r.ParseForm(); err != nil {
		return nil, fosite.ErrInvalidRequest.WithHint("The form body could not be parsed.")
	}
	form := r.PostForm
	a, err := i.AuthenticateAgent(r, form)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(a.GrantTypes, GrantCIBA) {
		return nil, fosite.ErrUnauthorizedClient.WithHint("The agent is not registered for the CIBA grant.")
	}
	for _, p := range []string{"id_token_hint", "login_hint_token", "user_code", "request"} {
		if form.Get(p) != "" {
			return nil, fosite.ErrInvalidRequest.WithHintf("%s is not supported: name the payer with login_hint.", p)
		}
	}
	payer := form.Get("login_hint")
	if payer == "" || len(payer) > 64 {
		return nil, fosite.ErrInvalidRequest.WithHint("login_hint (the payer's id) is required.")
	}
	msg := form.Get("binding_message")
	if !validBindingMessage(msg) {
		return nil, cibaError("invalid_binding_message", "binding_message must be 1 to 64 printable characters.")
	}
	expiry := CIBADefaultExpiry
	if re := form.Get("requested_expiry"); re != "" {
		n, err := strconv.Atoi(re)
		if err != nil || n <= 0 {
			return nil, fosite.ErrInvalidRequest.WithHint("requested_expiry must be a positive number of seconds.")
		}
		expiry = min(time.Duration(n)*time.Second, CIBAMaxExpiry)
	}
	data := cibaData{Scope: strings.Fields(form.Get("scope"))}
	for _, s := range data.Scope {
		if s == "openid" {
			continue // CIBA's scope; it grants nothing more here
		}
		if !slices.Contains(a.Scopes, s) || s == ScopeOfflineAccess {
			return nil, fosite.ErrInvalidScope.WithHintf("The agent may not ask for scope %q here.", s)
		}
	}
	data.Scope = slices.DeleteFunc(data.Scope, func(s string) bool { return s == "openid" })
	if data.Audience, err = i.requestedTargets(&fosite.AccessRequest{Request: fosite.Request{Form: form}}, a); err != nil {
		return nil, err
	}
	token := form.Get("client_notification_token")
	switch {
	case a.BackchannelMode == BackchannelPing && (token == "" || len(token) > 1024):
		return nil, fosite.ErrInvalidRequest.WithHint("client_notification_token is required in ping mode.")
	case a.BackchannelMode != BackchannelPing && token != "":
		return nil, fosite.ErrInvalidRequest.WithHint("client_notification_token is only for ping mode.")
	}
	raw := form.Get("authorization_details")
	if raw == "" {
		return nil, errInvalidDetails("authorization_details is required: what the payer is asked to grant.")
	}
	elems, err := i.details.parseDetails(raw)
	if err == nil {
		err = i.details.checkSingle(elems)
	}
	if err == nil && checks.Details != nil {
		err = checks.Details(ctx, a, raw)
	}
	if err != nil {
		if desc, ok := detailRefusal(err); ok {
			return nil, errInvalidDetails(desc)
		}
		if inv := invalidMessage(err); inv != "" {
			return nil, errInvalidDetails(inv)
		}
		return nil, err
	}
	if checks.Payer != nil {
		ok, err := checks.Payer(ctx, a.TenantID, payer)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, cibaError("unknown_user_id", "login_hint names no payer of this tenant who can approve.")
		}
	}
	now := i.stamp()
	req := &AuthRequest{ID: ids.New("azr"), Kind: AuthRequestCIBA, TenantID: a.TenantID, ClientID: a.ID, Payer: payer,
		Status: AuthPending, Details: json.RawMessage(raw), BindingMessage: msg, PollInterval: int(CIBAInterval / time.Second),
		CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(expiry)}
	if token != "" {
		if data.NotifySealed, err = seal.Seal(i.notifyKey(), []byte(token), []byte("ciba:"+req.ID)); err != nil {
			return nil, err
		}
	}
	if req.Data, err = json.Marshal(data); err != nil {
		return nil, err
	}
	ev := ApprovalRequested{ID: req.ID, Object: "approval_request", Kind: AuthRequestCIBA, Payer: payer, Agent: a.ID,
		BindingMessage: msg, Details: req.Details, ExpiresAt: req.ExpiresAt}
	if checks.ApprovalURL != nil {
		ev.ApprovalURL = checks.ApprovalURL(req.ID)
	}
	actx := audit.WithActor(ctx, agentActor(ctx, a.TenantID, a.ID))
	err = i.db.InTx(ctx, func(tx Tx) error {
		if err := tx.CreateAuthRequest(ctx, req); err != nil {
			return err
		}
		if err := audit.RecordFor(actx, tx, a.TenantID, "ciba.requested", req.ID,
			map[string]any{"client_id": a.ID, "payer": payer, "expires_at": req.ExpiresAt}); err != nil {
			return err
		}
		return events.Emit(actx, tx, a.TenantID, EventApprovalRequested, ev)
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"auth_req_id": req.ID, "expires_in": int(expiry / time.Second), "interval": req.PollInterval}, nil
}

func validBindingMessage(s string) bool {
	if s == "" || !utf8.ValidString(s) || utf8.RuneCountInString(s) > 64 || logging.RedactPAN(s) != s {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// invalidMessage is the message of a validation refusal (apierr.Invalid),
// or "".
func invalidMessage(err error) string {
	var inv *apierr.Invalid
	if errors.As(err, &inv) {
		return inv.Error()
	}
	return ""
}

// defaultPingClient reaches public addresses only (Options.PingClient
// replaces it).
var defaultPingClient = egress.NewHTTPClient(egress.Policy{}, nil, 10*time.Second, nil)

func (i *Issuer) pingClient() *http.Client {
	if i.opt.PingClient != nil {
		return i.opt.PingClient
	}
	return defaultPingClient
}

// --- the CIBA grant at the token endpoint ---

// cibaHandler answers grant_type urn:openid:params:grant-type:ciba.
type cibaHandler struct{ i *Issuer }

func (h *cibaHandler) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool { return false }

func (h *cibaHandler) CanHandleTokenEndpointRequest(_ context.Context, ar fosite.AccessRequester) bool {
	return ar.GetGrantTypes().ExactOne(GrantCIBA)
}

// HandleTokenEndpointRequest reads the request named by auth_req_id, under
// its lock: expired_token after it expired, access_denied when the payer
// declined, slow_down when polled again within the interval,
// authorization_pending while the payer has not answered; an approved
// request is used up (consumed) here, once, and its grant goes into the
// token.
func (h *cibaHandler) HandleTokenEndpointRequest(ctx context.Context, ar fosite.AccessRequester) error {
	if !h.CanHandleTokenEndpointRequest(ctx, ar) {
		return fosite.ErrUnknownRequest
	}
	c := ar.GetClient().(*agentClient)
	if !c.GetGrantTypes().Has(GrantCIBA) {
		return fosite.ErrUnauthorizedClient.WithHint("The agent may not use the CIBA grant.")
	}
	id := ar.GetRequestForm().Get("auth_req_id")
	if id == "" {
		return fosite.ErrInvalidRequest.WithHint("auth_req_id is required.")
	}
	i := h.i
	var req *AuthRequest
	var refusal error
	err := i.db.InTx(ctx, func(tx Tx) error {
		r, err := tx.GetAuthRequest(ctx, id, true)
		if errors.Is(err, store.ErrNotFound) || (err == nil && (r.Kind != AuthRequestCIBA || r.ClientID != c.agent.ID)) {
			refusal = fosite.ErrInvalidGrant.WithHint("Unknown auth_req_id.")
			return nil
		}
		if err != nil {
			return err
		}
		now := i.now()
		switch {
		case r.Status == AuthConsumed:
			refusal = fosite.ErrInvalidGrant.WithHint("The auth_req_id was already used.")
			return nil
		case r.Status == AuthDenied:
			refusal = cibaError("access_denied", "The payer declined.")
			return nil
		case !now.Before(r.ExpiresAt):
			refusal = cibaError("expired_token", "The auth_req_id has expired; start a new request.")
			return nil
		case r.Status == AuthApproved:
			r.Status, r.UpdatedAt = AuthConsumed, i.stamp()
			if err := tx.UpdateAuthRequest(ctx, r, AuthApproved); err != nil {
				return err
			}
			req = r
			return audit.RecordFor(audit.WithActor(ctx, agentActor(ctx, r.TenantID, r.ClientID)), tx, r.TenantID,
				"ciba.redeemed", r.ID, map[string]any{"client_id": r.ClientID})
		}
		// Pending: pace the polls.
		last := r.LastPolledAt
		at := i.stamp()
		r.LastPolledAt = &at
		if err := tx.UpdateAuthRequest(ctx, r, AuthPending); err != nil {
			return err
		}
		if last != nil && now.Sub(*last) < time.Duration(r.PollInterval)*time.Second {
			refusal = cibaError("slow_down", "Poll at most every "+strconv.Itoa(r.PollInterval)+" seconds.")
		} else {
			refusal = cibaError("authorization_pending", "The payer has not answered yet.")
		}
		return nil
	})
	if err != nil {
		return err
	}
	if refusal != nil {
		return refusal
	}
	var data cibaData
	if err := json.Unmarshal(req.Data, &data); err != nil {
		return err
	}
	scopes := data.Scope
	if len(scopes) == 0 {
		scopes = slices.DeleteFunc(slices.Clone(c.agent.Scopes), func(s string) bool { return s == ScopeOfflineAccess })
	}
	for _, s := range scopes {
		ar.GrantScope(s)
	}
	for _, a := range data.Audience {
		ar.GrantAudience(a)
	}
	states, err := i.details.states(ctx, c.agent.TenantID, req.Granted)
	if err != nil {
		return err
	}
	for _, st := range states {
		if !st.Active {
			return fosite.ErrInvalidGrant.WithHint("What the payer granted was revoked or has ended.")
		}
	}
	sess := ar.GetSession().(*session)
	sess.Subject, sess.TenantID, sess.ClientID, sess.GrantType = c.agent.ID, c.agent.TenantID, c.agent.ID, GrantCIBA
	sess.JKT, sess.AuthorizationDetails = jktFrom(ctx), req.Granted
	sess.SetExpiresAt(fosite.AccessToken, i.now().Add(i.opt.AccessTokenTTL))
	return nil
}

func (h *cibaHandler) PopulateTokenEndpointResponse(ctx context.Context, ar fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, ar) {
		return fosite.ErrUnknownRequest
	}
	if _, err := h.i.helper.IssueAccessToken(ctx, h.i.opt.AccessTokenTTL, ar, resp); err != nil {
		return err
	}
	return h.i.finishResponse(ctx, ar, resp, false)
}

// PingClient tells a ping-mode agent that its CIBA request was answered
// (CIBA core §10.2): a POST of {"auth_req_id"} to its client notification
// endpoint with the client_notification_token as bearer. It is best
// effort: a failure is logged, and the agent still learns the answer by
// polling. Other requests are left alone.
func (i *Issuer) PingClient(ctx context.Context, req *AuthRequest) {
	if req == nil || req.Kind != AuthRequestCIBA || req.Status == AuthPending {
		return
	}
	var data cibaData
	if err := json.Unmarshal(req.Data, &data); err != nil || len(data.NotifySealed) == 0 {
		return
	}
	a, err := i.GetAgent(ctx, req.TenantID, req.ClientID)
	if err != nil || a.BackchannelMode != BackchannelPing || a.BackchannelEndpoint == "" {
		return
	}
	token, err := seal.Open(i.notifyKey(), data.NotifySealed, []byte("ciba:"+req.ID))
	if err != nil {
		i.log.ErrorContext(ctx, "ciba: notification token does not open", "auth_req_id", req.ID)
		return
	}
	body, _ := json.Marshal(map[string]string{"auth_req_id": req.ID})
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, a.BackchannelEndpoint, bytes.NewReader(body))
	if err != nil {
		return
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Authorization", "Bearer "+string(token))
	resp, err := i.pingClient().Do(hr)
	if err != nil {
		i.log.WarnContext(ctx, "ciba: ping failed", "auth_req_id", req.ID, "err", err)
		return
	}
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		i.log.WarnContext(ctx, "ciba: ping refused", "auth_req_id", req.ID, "status", resp.StatusCode)
	}
}
