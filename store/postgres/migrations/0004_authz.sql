-- Authorization server: agents (OAuth2 clients of a tenant), one-time
-- identifiers, token sessions, revocations and signing keys.

CREATE TABLE agents (
    id            text PRIMARY KEY,               -- the OAuth client_id
    tenant_id     text NOT NULL REFERENCES tenants (id),
    name          text NOT NULL,
    status        text NOT NULL CHECK (status IN ('active', 'suspended', 'revoked')),
    auth_method   text NOT NULL CHECK (auth_method IN ('private_key_jwt', 'client_secret_basic')),
    jwks          jsonb,                          -- public keys only
    secret_hash   bytea,                          -- HMAC-SHA256 of the secret; never the secret
    grant_types   text[] NOT NULL,
    scopes        text[] NOT NULL,
    audiences     text[] NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    suspended_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX agents_tenant ON agents (tenant_id, created_at, id);

-- Client assertion and DPoP proof jti values, refused while recorded.
CREATE TABLE oauth_jtis (
    ns          text NOT NULL,
    jti         text NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (ns, jti)
);
CREATE INDEX oauth_jtis_expires ON oauth_jtis (expires_at);

-- Issued tokens: access tokens by jti, refresh tokens by the keyed hash of
-- their value. request_id is the grant family a refresh chain shares.
CREATE TABLE oauth_tokens (
    kind              text NOT NULL CHECK (kind IN ('access', 'refresh')),
    signature         text NOT NULL,
    request_id        text NOT NULL,
    client_id         text NOT NULL,
    tenant_id         text NOT NULL,
    access_signature  text NOT NULL DEFAULT '',
    active            boolean NOT NULL DEFAULT true,
    data              jsonb NOT NULL,
    created_at        timestamptz NOT NULL,
    expires_at        timestamptz NOT NULL,
    PRIMARY KEY (kind, signature)
);
CREATE INDEX oauth_tokens_request ON oauth_tokens (request_id);
CREATE INDEX oauth_tokens_expires ON oauth_tokens (expires_at);

-- Revoked tokens (jti), agents (client id) and tenants. The charge
-- transaction reads this table, so a revocation committed before it began
-- denies the charge on every node.
CREATE TABLE revocations (
    kind        text NOT NULL CHECK (kind IN ('token', 'agent', 'tenant')),
    id          text NOT NULL,
    tenant_id   text NOT NULL,
    reason      text NOT NULL,
    revoked_at  timestamptz NOT NULL,
    expires_at  timestamptz,                      -- prunable after (tokens)
    PRIMARY KEY (kind, id)
);
CREATE INDEX revocations_expires ON revocations (expires_at) WHERE expires_at IS NOT NULL;

-- Issuer signing keys; private halves sealed with the signing KEK.
CREATE TABLE signing_keys (
    kid          text PRIMARY KEY,
    alg          text NOT NULL,
    public_jwk   jsonb NOT NULL,
    private_enc  bytea NOT NULL,
    kek_id       text NOT NULL,
    created_at   timestamptz NOT NULL,
    retired_at   timestamptz,
    expires_at   timestamptz
);
