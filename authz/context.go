package authz

import "context"

type verifiedKey struct{}

// WithVerified returns ctx carrying at, a token a resource endpoint has
// verified (signature, audience, revocation, DPoP), for handlers of other
// protocols served on that endpoint (MCP tools).
func WithVerified(ctx context.Context, at *AccessToken) context.Context {
	return context.WithValue(ctx, verifiedKey{}, at)
}

// VerifiedFrom returns the token WithVerified stored, or nil.
func VerifiedFrom(ctx context.Context) *AccessToken {
	at, _ := ctx.Value(verifiedKey{}).(*AccessToken)
	return at
}
