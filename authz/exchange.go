package authz

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"slices"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite"
)

// RFC 8693 token type identifiers.
const (
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeJWT         = "urn:ietf:params:oauth:token-type:jwt"
)

// errInvalidTarget is RFC 8693 §2.2.2's error for an audience or resource
// the subject token does not cover.
func errInvalidTarget(hint string) *fosite.RFC6749Error {
	return &fosite.RFC6749Error{ErrorField: "invalid_target", DescriptionField: "The requested audience or resource is not acceptable.",
		HintField: hint, CodeField: http.StatusBadRequest}
}

// exchangeHandler is the RFC 8693 token exchange grant: the authenticated
// agent (the actor) trades a subject token for a new access token that
// may only narrow what the subject token grants, and whose act claim adds
// the actor in front of the subject token's delegation chain.
type exchangeHandler struct{ i *Issuer }

var _ fosite.TokenEndpointHandler = (*exchangeHandler)(nil)

func (h *exchangeHandler) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool {
	return false
}

func (h *exchangeHandler) CanHandleTokenEndpointRequest(_ context.Context, ar fosite.AccessRequester) bool {
	return ar.GetGrantTypes().ExactOne(GrantTokenExchange)
}

func (h *exchangeHandler) HandleTokenEndpointRequest(ctx context.Context, ar fosite.AccessRequester) error {
	if !h.CanHandleTokenEndpointRequest(ctx, ar) {
		return fosite.ErrUnknownRequest
	}
	i := h.i
	c := ar.GetClient().(*agentClient)
	if !c.GetGrantTypes().Has(GrantTokenExchange) {
		return fosite.ErrUnauthorizedClient.WithHint("The agent may not use the token exchange grant.")
	}
	form := ar.GetRequestForm()
	subj, err := i.exchangeInput(ctx, form.Get("subject_token"), form.Get("subject_token_type"), "subject_token")
	if err != nil {
		return err
	}
	if subj.TenantID != c.agent.TenantID {
		return fosite.ErrInvalidRequest.WithHint("The subject_token is not valid.")
	}
	consented := false
	if raw := form.Get("actor_token"); raw != "" && isConsent(raw) {
		if err := i.checkConsent(ctx, raw, form.Get("actor_token_type"), subj, c.agent.ID); err != nil {
			return err
		}
		consented = true
	} else if raw != "" {
		actor, err := i.exchangeInput(ctx, raw, form.Get("actor_token_type"), "actor_token")
		if err != nil {
			return err
		}
		if actor.ClientID != c.agent.ID || actor.TenantID != c.agent.TenantID {
			return fosite.ErrInvalidRequest.WithHint("The actor_token must be a token of the authenticated agent.")
		}
	} else if form.Get("actor_token_type") != "" {
		return fosite.ErrInvalidRequest.WithHint("actor_token_type without actor_token.")
	}
	if err := checkBinding(ctx, subj, consented); err != nil {
		return err
	}
	if rt := form.Get("requested_token_type"); rt != "" && rt != TokenTypeAccessToken && rt != TokenTypeJWT {
		return fosite.ErrInvalidRequest.WithHintf("requested_token_type %q is not supported; ask for an access token.", rt)
	}
	if subj.MayAct != nil && subj.MayAct.Sub != c.agent.ID {
		return fosite.ErrInvalidRequest.WithHint("The subject_token's may_act does not name this agent.")
	}

	// The chain: the actor outermost, then the subject token's actors. A
	// subject token whose client acted for someone else (sub != client_id)
	// without a chain yet contributes that client as the first actor.
	prev := subj.Act
	if prev == nil && subj.Subject != subj.ClientID {
		prev = &Actor{Sub: subj.ClientID}
	}
	act := &Actor{Sub: c.agent.ID, Act: prev}
	if act.Depth() > i.opt.MaxDelegationDepth {
		return fosite.ErrInvalidRequest.WithHintf("The delegation chain would be %d deep; at most %d is allowed.", act.Depth(), i.opt.MaxDelegationDepth)
	}

	// Scope: a subset of the subject token's, and of what this agent may hold.
	have := subj.Scopes()
	want := ar.GetRequestedScopes()
	if len(want) == 0 {
		for _, s := range have {
			if slices.Contains(c.agent.Scopes, s) && s != ScopeOfflineAccess {
				want = append(want, s)
			}
		}
	}
	for _, s := range want {
		if !slices.Contains(have, s) {
			return fosite.ErrInvalidScope.WithHintf("Scope %q is not granted to the subject_token; an exchange may only narrow.", s)
		}
		if !slices.Contains(c.agent.Scopes, s) || s == ScopeOfflineAccess {
			return fosite.ErrInvalidScope.WithHintf("The agent may not hold scope %q.", s)
		}
		ar.GrantScope(s)
	}
	// Audience and resource: a subset of the subject token's audience.
	targets := append(slices.Clone([]string(ar.GetRequestedAudience())), form["resource"]...)
	if len(targets) == 0 {
		targets = subj.Audience
	}
	for _, t := range targets {
		if !slices.Contains(subj.Audience, t) {
			return errInvalidTarget("Audience " + t + " is not covered by the subject_token.")
		}
		if !slices.Contains(ar.GetGrantedAudience(), t) {
			ar.GrantAudience(t)
		}
	}
	err = i.fillSession(ctx, ar, c, subj.Subject, act, GrantTokenExchange, subj, func(dc DetailContext, raw string) (json.RawMessage, error) {
		return i.details.narrow(ctx, dc, subj.AuthorizationDetails, raw)
	})
	if err != nil {
		return err
	}
	return i.recordDelegations(ctx, c.agent.TenantID, ar.GetSession().(*session))
}

// recordDelegations records, for every granted element that stands for a
// delegated grant (a child mandate), the token family it was delegated
// from, so tokens issued for that grant later carry the same lineage. It
// fails when a token of the family was revoked meanwhile: LockTokenFamily
// orders this against RevokeToken, which keeps such a revocation for good.
func (i *Issuer) recordDelegations(ctx context.Context, tenantID string, sess *session) error {
	states, err := i.details.states(ctx, tenantID, sess.AuthorizationDetails)
	if err != nil {
		return err
	}
	now := i.stamp()
	var ds []*Delegation
	for _, st := range states {
		if st.Key != "" && len(st.Delegators) > 0 {
			ds = append(ds, &Delegation{TenantID: tenantID, GrantKey: st.Key, DelegatedFrom: sess.DelegatedFrom, CreatedAt: now})
		}
	}
	if len(ds) == 0 || len(sess.DelegatedFrom) == 0 {
		return nil
	}
	revoked := false
	err = i.db.InTx(ctx, func(tx Tx) error {
		for _, jti := range sess.DelegatedFrom {
			if err := tx.LockTokenFamily(ctx, jti); err != nil {
				return err
			}
		}
		for _, jti := range sess.DelegatedFrom {
			what, err := tx.IsRevoked(ctx, jti, "", "")
			if err != nil {
				return err
			}
			if what != "" {
				revoked = true
				return nil
			}
		}
		for _, d := range ds {
			if err := tx.RecordDelegation(ctx, d); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil && revoked {
		return fosite.ErrInvalidRequest.WithHint("The subject_token was revoked.")
	}
	return err
}

// checkBinding is the rule that keeps a sender-constrained subject token
// sender-constrained: a DPoP-bound subject token is exchanged only by a
// request that carries a DPoP proof (so the issued token is bound too),
// and only when that proof is signed by the key the subject token is
// bound to, or when the actor_token is the holder's consent (checkConsent).
func checkBinding(ctx context.Context, subj *AccessToken, consented bool) error {
	if !subj.DPoPBound() {
		return nil
	}
	jkt := jktFrom(ctx)
	switch {
	case jkt == "":
		return fosite.ErrInvalidRequest.WithHint("The subject_token is DPoP-bound: send a DPoP proof signed with its key, " +
			"or the holder's consent as actor_token with a DPoP proof of your own.")
	case consented:
		return nil
	case subtle.ConstantTimeCompare([]byte(jkt), []byte(subj.Cnf.JKT)) != 1:
		return fosite.ErrInvalidRequest.WithHint("The subject_token is DPoP-bound to another key: send a proof signed with it, " +
			"or the holder's consent as actor_token.")
	}
	return nil
}

// consentType is the typ of a holder's consent: a DPoP proof (RFC 9449
// §4.2) with the extra claim sub naming the actor.
const consentType = "dpop+jwt"

// isConsent reports whether an actor_token is a holder's consent rather
// than an access token of ours (by its typ header; the signature is
// checked by checkConsent).
func isConsent(raw string) bool {
	jws, err := jose.ParseSignedCompact(raw, dpopAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		return false
	}
	typ, _ := jws.Signatures[0].Protected.ExtraHeaders[jose.HeaderType].(string)
	return typ == consentType
}

// checkConsent verifies a holder's consent to hand a DPoP-bound subject
// token on to actor: a proof signed with the key the subject token is
// bound to, for POST at this token endpoint, whose ath is the subject
// token's hash and whose sub is the actor's client id, fresh and
// single-use like every DPoP proof (actor_token_type jwt).
func (i *Issuer) checkConsent(ctx context.Context, raw, typ string, subj *AccessToken, actor string) error {
	if typ != TokenTypeJWT {
		return fosite.ErrInvalidRequest.WithHintf("A holder's consent is an actor_token of type %s.", TokenTypeJWT)
	}
	if !subj.DPoPBound() {
		return fosite.ErrInvalidRequest.WithHint("A holder's consent is only for a DPoP-bound subject_token.")
	}
	p, claims, err := i.verifyDPoP(ctx, raw, http.MethodPost, requestURLsFrom(ctx), subj.Raw)
	var te *TokenError
	if errors.As(err, &te) {
		return fosite.ErrInvalidRequest.WithHintf("The actor_token (the holder's consent) is not valid: %s", te.Description)
	}
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare([]byte(p.JKT), []byte(subj.Cnf.JKT)) != 1 {
		return fosite.ErrInvalidRequest.WithHint("The actor_token (the holder's consent) is not signed with the key the subject_token is bound to.")
	}
	if claims.Sub != actor {
		return fosite.ErrInvalidRequest.WithHint("The actor_token (the holder's consent) does not name this agent as sub.")
	}
	return nil
}

// exchangeInput verifies a subject or actor token of ours: signature,
// issuer, lifetime and revocation (of the token and of every agent in its
// chain). Any failure is RFC 8693's invalid_request.
func (i *Issuer) exchangeInput(ctx context.Context, raw, typ, param string) (*AccessToken, error) {
	if raw == "" {
		return nil, fosite.ErrInvalidRequest.WithHintf("%s is required.", param)
	}
	if typ != TokenTypeAccessToken && typ != TokenTypeJWT {
		return nil, fosite.ErrInvalidRequest.WithHintf("%s_type must be %s or %s.", param, TokenTypeAccessToken, TokenTypeJWT)
	}
	at, err := i.parseToken(ctx, raw)
	if err != nil {
		return nil, fosite.ErrInvalidRequest.WithHintf("The %s is not valid.", param)
	}
	what, _, err := i.chainRevoked(ctx, at)
	if err != nil {
		return nil, err
	}
	if what != "" {
		return nil, fosite.ErrInvalidRequest.WithHintf("The %s was revoked.", param)
	}
	return at, nil
}

// chainRevoked checks the token, its agent, its tenant, every agent of
// its delegation chain and every token of its family (the tokens it was
// exchanged from). It reports what was revoked ("" for nothing) and its
// id (a jti, an agent's client id or the tenant's id).
func (i *Issuer) chainRevoked(ctx context.Context, at *AccessToken) (what, id string, err error) {
	return walkRevocations(at, func(jti, clientID, tenantID string) (string, error) {
		return i.revoked.check(ctx, jti, clientID, tenantID)
	})
}

// walkRevocations asks check about everything a token's authority rests
// on, the token itself first, and stops at the first revoked one.
func walkRevocations(at *AccessToken, check func(jti, clientID, tenantID string) (string, error)) (what, id string, err error) {
	what, err = check(at.JTI, at.ClientID, at.TenantID)
	if err != nil || what != "" {
		return what, revokedID(what, at, at.JTI, at.ClientID), err
	}
	for _, agent := range delegators(at) {
		if what, err = check("", agent, ""); err != nil || what != "" {
			return what, agent, err
		}
	}
	for _, jti := range slices.Backward(at.DelegatedFrom) {
		if jti == "" {
			continue
		}
		if what, err = check(jti, "", ""); err != nil || what != "" {
			return what, jti, err
		}
	}
	return "", "", nil
}

// revokedID is the id of what was revoked: the jti, the token's tenant,
// or the agent.
func revokedID(what string, at *AccessToken, jti, agent string) string {
	switch what {
	case RevokedToken:
		return jti
	case RevokedTenant:
		return at.TenantID
	}
	return agent
}

// delegators are the agents a token's authority passed through besides
// its own client: the subject (when an agent) and every actor.
func delegators(at *AccessToken) []string {
	var out []string
	add := func(id string) {
		if id != "" && id != at.ClientID && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	if at.Act != nil {
		add(at.Subject)
	}
	for _, a := range at.Act.Chain() {
		add(a)
	}
	return out
}

// CheckRevoked is the charge pipeline's revocation check for a verified
// token, run on the caller's own transaction: it reports what was revoked
// among the token, its agent, its tenant, every agent of its delegation
// chain and every token of its family ("" for nothing).
func CheckRevoked(ctx context.Context, r Revocations, at *AccessToken) (string, error) {
	what, _, err := walkRevocations(at, func(jti, clientID, tenantID string) (string, error) {
		return r.IsRevoked(ctx, jti, clientID, tenantID)
	})
	return what, err
}

func (h *exchangeHandler) PopulateTokenEndpointResponse(ctx context.Context, ar fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, ar) {
		return fosite.ErrUnknownRequest
	}
	if _, err := h.i.helper.IssueAccessToken(ctx, h.i.opt.AccessTokenTTL, ar, resp); err != nil {
		if errors.Is(err, fosite.ErrServerError) {
			return err
		}
		return fosite.ErrServerError.WithWrap(err)
	}
	resp.SetExtra("issued_token_type", TokenTypeAccessToken)
	return h.i.finishResponse(ctx, ar, resp, false)
}
