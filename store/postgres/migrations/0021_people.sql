-- People who sign in: team members and payers (customers) of a tenant,
-- their invitations, recovery codes, sessions and the logins seen.

CREATE TABLE users (
    id              text PRIMARY KEY,
    tenant_id       text NOT NULL REFERENCES tenants (id),
    kind            text NOT NULL CHECK (kind IN ('team', 'payer')),
    role            text NOT NULL DEFAULT '' CHECK (role IN ('', 'owner', 'admin', 'developer', 'auditor')),
    email           text NOT NULL,
    name            text NOT NULL DEFAULT '',
    status          text NOT NULL CHECK (status IN ('invited', 'active', 'disabled')),
    password_hash   text NOT NULL DEFAULT '',
    totp_sealed     bytea,
    totp_pending    bytea,
    totp_last_step  bigint NOT NULL DEFAULT 0,
    failed_logins   integer NOT NULL DEFAULT 0,
    locked_until    timestamptz,
    last_login_at   timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    UNIQUE (tenant_id, email)
);
CREATE INDEX users_list ON users (tenant_id, kind, created_at, id);

CREATE TABLE user_invitations (
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL,
    user_id     text NOT NULL REFERENCES users (id),
    purpose     text NOT NULL,
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);

CREATE TABLE user_recovery_codes (
    tenant_id   text NOT NULL,
    user_id     text NOT NULL REFERENCES users (id),
    hash        bytea NOT NULL,
    used_at     timestamptz,
    PRIMARY KEY (user_id, hash)
);

CREATE TABLE user_sessions (
    id_hash       bytea PRIMARY KEY,
    ref           text NOT NULL UNIQUE,
    tenant_id     text NOT NULL,
    user_id       text NOT NULL REFERENCES users (id),
    mfa_at        timestamptz,
    ip            text NOT NULL DEFAULT '',
    user_agent    text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL
);
CREATE INDEX user_sessions_user ON user_sessions (tenant_id, user_id);

CREATE TABLE user_login_marks (
    tenant_id   text NOT NULL,
    user_id     text NOT NULL REFERENCES users (id),
    mark        text NOT NULL,
    first_seen  timestamptz NOT NULL,
    PRIMARY KEY (user_id, mark)
);
