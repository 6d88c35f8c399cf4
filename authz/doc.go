// Package authz is the OAuth2 authorization server: agents as OAuth2
// clients of a tenant, the token endpoint on fosite (client_credentials,
// refresh_token with rotation and reuse detection, RFC 8693 token exchange
// with delegation chains), RFC 9068 JWT access tokens signed with keys kept
// sealed in the store, RFC 9396 authorization_details, RFC 9449 DPoP,
// RFC 7662 introspection, RFC 7009 revocation and the verification every
// resource endpoint runs.
//
// fosite speaks go-jose v3 at its boundary; this package keeps fosite's
// types inside its adapter (fosite.go) and signs and verifies with go-jose
// v4 and explicit algorithm allow-lists everywhere.
//
// The charge pipeline checks revocation inside its own transaction with
// CheckRevoked (or Revocations.IsRevoked); nodes learn about revocations,
// agent changes and key rotations through Listener (PostgreSQL
// LISTEN/NOTIFY) and drop their caches.
package authz
