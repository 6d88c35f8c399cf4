package authz

import (
	"context"
	"net/http"
	"net/url"
	"slices"

	"github.com/ory/fosite"
)

// errInvalidResource is RFC 8707 §2's error for a resource indicator the
// server does not serve or the agent may not ask for.
func errInvalidResource(hint string) *fosite.RFC6749Error {
	return &fosite.RFC6749Error{ErrorField: "invalid_target", DescriptionField: "The requested resource is invalid, unknown or not allowed.",
		HintField: hint, CodeField: http.StatusBadRequest}
}

// Resource is one protected resource this issuer mints tokens for.
func (i *Issuer) knownResource(r string) bool {
	return r == i.opt.Audience || slices.Contains(i.opt.Resources, r)
}

// requestedTargets is the aud of a token about to be minted: the RFC 8707
// resource indicators and the audience parameter asked for (each an
// absolute URI without fragment that we serve or the agent was registered
// for), or our API's audience when the request names none. A token is
// refused by every resource it does not name, so a token for one resource
// is never passed through to another.
func (i *Issuer) requestedTargets(ar fosite.AccessRequester, a *Agent) ([]string, error) {
	out := slices.Clone([]string(ar.GetRequestedAudience()))
	for _, r := range ar.GetRequestForm()["resource"] {
		if err := checkResourceURI(r); err != nil {
			return nil, err
		}
		if !i.knownResource(r) && !slices.Contains(a.Audiences, r) {
			return nil, errInvalidResource("This server does not issue tokens for resource " + r + ".")
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		out = []string{i.opt.Audience}
	}
	return out, nil
}

// checkResourceURI applies RFC 8707 §2: an absolute URI with no fragment.
func checkResourceURI(r string) error {
	u, err := url.Parse(r)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Fragment != "" || len(r) > 2048 {
		return errInvalidResource("resource must be an absolute URI without a fragment.")
	}
	return nil
}

// VerifyRequestFor is VerifyRequest for a protected resource other than
// our API (one of Options.Resources): the token's aud must name resource.
func (i *Issuer) VerifyRequestFor(ctx context.Context, r *http.Request, scheme, token, resource string) (*AccessToken, error) {
	return i.verifyRequest(ctx, r, scheme, token, resource)
}
