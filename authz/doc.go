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
// # Delegation
//
// Token exchange hands authority on without shedding what guards it:
//
//   - Binding: a DPoP-bound subject token is exchanged only by a request
//     that carries a DPoP proof, so the issued token is bound too, and only
//     when that proof is signed with the subject token's key, or when the
//     actor_token is the holder's consent: a DPoP proof (typ dpop+jwt,
//     actor_token_type jwt) signed with the subject token's key, for POST
//     at the token endpoint, whose ath is the subject token's hash and
//     whose sub is the actor's client id, fresh and single-use.
//   - Family: an exchanged token lists in delegated_from the jtis of the
//     tokens it came from; revoking any of them revokes it. Grants made by
//     an exchange (a child mandate) keep that lineage (RecordDelegation),
//     and a client_credentials token for such a grant carries it and the
//     exchange's act chain (DetailType.State reports the delegators), so
//     revoking the exchanged token, or revoking or suspending any agent
//     along the chain, stops it. A revoked token that a grant was
//     delegated from stays revoked for good.
//   - Introspection asks each detail type's State whether the grant still
//     stands (a revoked mandate or ancestor makes the token inactive) and
//     adds its extension members (remaining budget).
//
// # Signatures
//
// Every JWS verified here has an explicit algorithm allow-list, and every
// ECDSA signature must be in low-S form (lows.go); what the issuer signs
// is put in that form. With Options.DPoPNonce, proofs at the token
// endpoint and at resource endpoints must carry a server nonce (RFC 9449
// §9). The rotation job (Run) retires signing keys and prunes retired
// keys once every token they signed has expired.
//
// The charge pipeline checks revocation inside its own transaction with
// CheckRevoked (or Revocations.IsRevoked): the token, its agent, its
// tenant, every agent of its delegation chain and every token of its
// family. Nodes learn about revocations, agent changes and key rotations
// through Listener (PostgreSQL LISTEN/NOTIFY) and drop their caches.
package authz
