-- Passkeys (WebAuthn credentials) of users: public keys only.

CREATE TABLE user_passkeys (
    id                bytea PRIMARY KEY,
    tenant_id         text NOT NULL,
    user_id           text NOT NULL REFERENCES users (id),
    name              text NOT NULL DEFAULT '',
    public_key        bytea NOT NULL,
    attestation_type  text NOT NULL DEFAULT '',
    aaguid            bytea,
    sign_count        bigint NOT NULL DEFAULT 0,
    transports        text[] NOT NULL DEFAULT '{}',
    backup_eligible   boolean NOT NULL DEFAULT false,
    backup_state      boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL,
    last_used_at      timestamptz
);
CREATE INDEX user_passkeys_user ON user_passkeys (tenant_id, user_id);
