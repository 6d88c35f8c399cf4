package web

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/mandates"
)

// Consent is what a payer's decision on an agent's request does (the
// consent page of the authorization code grant, and the approval page of
// a CIBA request): approving makes the mandate the request proposes, for
// that payer, active, and records it as what the request grants; denying
// records the refusal. The request is decided once.
type Consent struct {
	Issuer   *authz.Issuer
	Mandates *mandates.Service
}

// Proposed returns the mandate terms a request asks the payer to grant.
func Proposed(req *authz.AuthRequest) (*mandates.AuthorizationDetail, error) {
	ds, err := mandates.ParseAuthorizationDetails(req.Details)
	if err != nil {
		return nil, err
	}
	if len(ds) != 1 || ds[0].IsReference() {
		return nil, errors.New("web: the request proposes no mandate terms")
	}
	return &ds[0], nil
}

// Approve is payerID's approval of request id of tenantID. The mandate is
// created first (pending its payer's approval), the request is then
// decided with it as the grant (which fails, leaving the mandate pending
// and unusable, when the request was decided already or expired), and
// the mandate is activated last: a mandate is active only for a request
// its payer approved.
func (c *Consent) Approve(ctx context.Context, tenantID, payerID, id string) (*authz.AuthRequest, *mandates.Mandate, error) {
	req, err := c.Issuer.GetAuthRequest(ctx, tenantID, id)
	if err != nil {
		return nil, nil, err
	}
	if req.Status != authz.AuthPending {
		return nil, nil, &apierr.Conflict{Param: "id", Code: "auth_request_" + apierr.Code(req.Status), Message: "This request was already decided."}
	}
	d, err := Proposed(req)
	if err != nil {
		return nil, nil, err
	}
	m, err := c.Mandates.Create(ctx, tenantID, &mandates.Mandate{Limits: *d.Limits, Description: d.Description,
		Payer: payerID, Agent: req.ClientID})
	if err != nil {
		return nil, nil, err
	}
	granted, err := json.Marshal([]mandates.AuthorizationDetail{m.Detail()})
	if err != nil {
		return nil, nil, err
	}
	if req, err = c.Issuer.Decide(ctx, tenantID, payerID, id, true, granted); err != nil {
		return nil, nil, err
	}
	if m.Status != mandates.StatusActive {
		if m, err = c.Mandates.Approve(ctx, tenantID, m.ID); err != nil {
			return nil, nil, err
		}
	}
	return req, m, nil
}

// Deny is payerID's refusal of request id of tenantID.
func (c *Consent) Deny(ctx context.Context, tenantID, payerID, id string) (*authz.AuthRequest, error) {
	return c.Issuer.Decide(ctx, tenantID, payerID, id, false, nil)
}
