-- Foundation: tenants, API keys, idempotency, audit trail.

CREATE TABLE tenants (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    status      text NOT NULL CHECK (status IN ('active', 'revoked')),
    created_at  timestamptz NOT NULL
);

CREATE TABLE api_keys (
    id            text PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants (id),
    kind          text NOT NULL CHECK (kind IN ('secret', 'publishable', 'restricted')),
    mode          text NOT NULL CHECK (mode IN ('test', 'live')),
    prefix        text NOT NULL,
    last4         text NOT NULL,
    hash          bytea NOT NULL UNIQUE,   -- HMAC-SHA256 of the secret; never the secret
    scopes        text[] NOT NULL DEFAULT '{}',
    name          text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz,
    revoked_at    timestamptz,
    rolled_to     text
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at);

CREATE TABLE idempotency_keys (
    tenant_id      text NOT NULL,
    credential_id  text NOT NULL,
    key            text NOT NULL,
    method         text NOT NULL,
    path           text NOT NULL,
    request_hash   bytea NOT NULL,
    state          text NOT NULL CHECK (state IN ('in_progress', 'done')),
    status         int NOT NULL DEFAULT 0,
    header         jsonb NOT NULL DEFAULT '{}',
    body           bytea,
    created_at     timestamptz NOT NULL,
    locked_until   timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, credential_id, key)
);
CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at);

-- Audit entries are appended without any shared lock: each row carries the
-- hash of its own content. The sealer links committed rows into the chain
-- (chain_pos, prev_hash, hash) in the order it sees them commit.
CREATE TABLE audit_events (
    seq           bigserial PRIMARY KEY,
    id            text NOT NULL UNIQUE,
    tenant_id     text NOT NULL DEFAULT '',
    actor_type    text NOT NULL,
    actor_id      text NOT NULL DEFAULT '',
    ip            text NOT NULL DEFAULT '',
    action        text NOT NULL,
    target        text NOT NULL DEFAULT '',
    request_id    text NOT NULL DEFAULT '',
    method        text NOT NULL DEFAULT '',
    route         text NOT NULL DEFAULT '',
    status        int NOT NULL DEFAULT 0,
    data          text,                       -- JSON kept byte for byte (hashed)
    created_at    timestamptz NOT NULL,
    content_hash  bytea NOT NULL,
    chain_pos     bigint UNIQUE,
    prev_hash     bytea,
    hash          bytea
);
CREATE INDEX audit_events_unsealed ON audit_events (seq) WHERE chain_pos IS NULL;
CREATE INDEX audit_events_tenant ON audit_events (tenant_id, seq);
CREATE INDEX audit_events_target ON audit_events (target, seq);

-- The chain's head (last sealed link) and anchor (where verification starts
-- after retention removed older links).
CREATE TABLE audit_state (
    id           int PRIMARY KEY CHECK (id = 1),
    head_pos     bigint NOT NULL DEFAULT 0,
    head_hash    bytea NOT NULL DEFAULT '',
    anchor_pos   bigint NOT NULL DEFAULT 0,
    anchor_hash  bytea NOT NULL DEFAULT ''
);
INSERT INTO audit_state (id) VALUES (1);
