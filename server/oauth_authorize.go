package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/mandates"
)

// The authorization code grant's endpoints: pushed authorization requests
// (RFC 9126) and the authorization endpoint, which hands the payer to the
// consent page (served by the web package at authz.PathConsent).

func (h *OAuthHandlers) mountAuthorize(api *API) {
	api.Raw(http.MethodPost, authz.PathPAR, http.HandlerFunc(h.par))
	api.Raw(http.MethodGet, authz.PathAuthorize, http.HandlerFunc(h.authorize))
}

func (h *OAuthHandlers) par(w http.ResponseWriter, r *http.Request) {
	h.Issuer.PushedAuthorize(w, withRequestActor(r), ProposedMandate)
}

// ProposedMandate checks the authorization_details of an authorization
// request or a CIBA request: one payment_mandate element with the terms
// the payer is asked to grant (never a reference to an existing mandate:
// the payer's approval is what makes the mandate).
func ProposedMandate(_ context.Context, _ *authz.Agent, raw string) error {
	ds, err := mandates.ParseAuthorizationDetails([]byte(raw))
	if err != nil {
		return err
	}
	if len(ds) != 1 || ds[0].IsReference() {
		return authz.RefuseDetails("ask for one payment_mandate element with the terms the payer is to approve (currency, budget, payment_methods, …), not a mandate_id")
	}
	return nil
}

// authorize serves GET /oauth2/authorize: the pushed request named by
// request_uri is taken up and the payer's browser goes to the consent
// page. A refusal goes back to the agent's redirect URI when that was
// checked, and is shown here otherwise.
func (h *OAuthHandlers) authorize(w http.ResponseWriter, r *http.Request) {
	r = withRequestActor(r)
	w.Header().Set("Cache-Control", "no-store")
	req, err := h.Issuer.StartAuthorize(r.Context(), r)
	var ae *authz.AuthorizeError
	switch {
	case errors.As(err, &ae) && ae.Redirect != "":
		http.Redirect(w, r, ae.Redirect, http.StatusSeeOther)
	case errors.As(err, &ae):
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": ae.Code, "error_description": ae.Description})
	case err != nil:
		h.s.writeError(w, r, err)
	default:
		http.Redirect(w, r, authz.PathConsent+"/"+req.ID, http.StatusSeeOther)
	}
}
