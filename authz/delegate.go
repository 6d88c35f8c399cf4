package authz

import (
	"context"
	"errors"
	"net/url"
	"strings"

	"github.com/ory/fosite"
)

// Delegated is the token Delegate minted.
type Delegated struct {
	AccessToken          string `json:"access_token"`
	TokenType            string `json:"token_type"`
	ExpiresIn            int64  `json:"expires_in"`
	Scope                string `json:"scope,omitempty"`
	AuthorizationDetails any    `json:"authorization_details,omitempty"`
}

// Delegate is the token exchange grant (RFC 8693) asked for by the holder
// of subj rather than by the actor: the holder, authenticated by subj at a
// resource of ours (the MCP endpoint), hands a narrower grant to the
// sub-agent actorID of the same tenant. It runs the very exchange handler
// the token endpoint runs — same narrowing of scope, audience and
// authorization_details (a child mandate within its parent), same chain
// depth limit, same lineage for revocation, same audit — with the actor's
// client authentication replaced by the holder's token: the actor must be
// an active agent of subj's tenant registered for the exchange grant, and
// named by subj's may_act when it has one. form carries the exchange's
// optional scope, resource and authorization_details.
//
// A DPoP-bound subj is refused: its holder's key would bind the new token,
// which the sub-agent does not hold; such a holder gives consent
// (actor_token) and the sub-agent exchanges at the token endpoint itself.
func (i *Issuer) Delegate(ctx context.Context, subj *AccessToken, actorID string, form url.Values) (*Delegated, error) {
	if subj == nil || subj.Raw == "" {
		return nil, fosite.ErrInvalidRequest.WithHint("No subject token.")
	}
	if subj.DPoPBound() {
		return nil, fosite.ErrInvalidRequest.WithHint("The token is DPoP-bound: give the sub-agent your consent and let it exchange the token at the token endpoint.")
	}
	if actorID == "" || actorID == subj.ClientID {
		return nil, fosite.ErrInvalidRequest.WithHint("Name a sub-agent other than yourself.")
	}
	cl, err := fositeStore{i}.GetClient(ctx, actorID)
	if errors.Is(err, fosite.ErrNotFound) {
		return nil, fosite.ErrInvalidRequest.WithHint("No such agent.")
	}
	if err != nil {
		return nil, err
	}
	c := cl.(*agentClient)
	if c.agent.TenantID != subj.TenantID {
		return nil, fosite.ErrInvalidRequest.WithHint("No such agent.")
	}
	if c.agent.Status != AgentActive {
		return nil, fosite.ErrInvalidRequest.WithHint("The agent " + actorID + " is " + c.agent.Status + ".")
	}
	f := url.Values{}
	for _, k := range []string{"scope", "resource", "authorization_details"} {
		if vs := form[k]; len(vs) > 0 {
			f[k] = vs
		}
	}
	f.Set("grant_type", GrantTokenExchange)
	f.Set("subject_token", subj.Raw)
	f.Set("subject_token_type", TokenTypeAccessToken)
	ar := fosite.NewAccessRequest(&session{})
	ar.Client = c
	ar.Form = f
	ar.GrantTypes = fosite.Arguments{GrantTokenExchange}
	ar.RequestedAt = i.now().UTC()
	if s := strings.TrimSpace(f.Get("scope")); s != "" {
		ar.SetRequestedScopes(fosite.RemoveEmpty(strings.Split(s, " ")))
	}
	ctx = withRequestURLs(ctx, []string{i.opt.Issuer + PathToken})
	if err := (&exchangeHandler{i}).HandleTokenEndpointRequest(ctx, ar); err != nil {
		return nil, err
	}
	resp, err := i.fosite.NewAccessResponse(ctx, ar)
	if err != nil {
		return nil, err
	}
	d := &Delegated{AccessToken: resp.GetAccessToken(), TokenType: resp.GetTokenType(),
		Scope: strings.Join(ar.GetGrantedScopes(), " "), AuthorizationDetails: resp.GetExtra("authorization_details")}
	if exp, ok := resp.GetExtra("expires_in").(int64); ok {
		d.ExpiresIn = exp
	} else {
		d.ExpiresIn = int64(i.opt.AccessTokenTTL.Seconds())
	}
	return d, nil
}
