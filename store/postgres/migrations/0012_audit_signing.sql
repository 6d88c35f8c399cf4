-- Audit trail a database writer cannot rewrite undetected.
--
-- Every entry is numbered gap-free in the transaction that writes it: the
-- writer takes a stripe (a counter row) no other open transaction holds
-- (FOR UPDATE SKIP LOCKED), so appends never wait on each other, and a
-- stripe's numbers commit in order. An entry deleted before the sealer
-- linked it leaves a hole in its stripe.
CREATE TABLE audit_stripes (
    stripe  serial PRIMARY KEY,
    next    bigint NOT NULL DEFAULT 0,   -- number of the last entry appended
    floor   bigint NOT NULL DEFAULT 0    -- number of the last entry retention removed
);
INSERT INTO audit_stripes (next) SELECT 0 FROM generate_series(1, 32);

ALTER TABLE audit_events ADD COLUMN stripe int, ADD COLUMN stripe_seq bigint;
CREATE UNIQUE INDEX audit_events_stripe_seq ON audit_events (stripe, stripe_seq) WHERE stripe IS NOT NULL;

-- The audit signing key (Ed25519), its private half sealed under the
-- signing KEK like the token signing keys, kept apart from them.
CREATE TABLE audit_keys (
    kid          text PRIMARY KEY,
    public_jwk   jsonb NOT NULL,
    private_enc  bytea NOT NULL,
    kek_id       text NOT NULL,
    created_at   timestamptz NOT NULL,
    retired_at   timestamptz
);

-- Signed checkpoints of the chain head (position, hash, time, counters).
CREATE TABLE audit_checkpoints (
    id          bigserial PRIMARY KEY,
    chain_pos   bigint NOT NULL,
    hash        bytea NOT NULL,
    kid         text NOT NULL,
    jws         text NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX audit_checkpoints_pos ON audit_checkpoints (chain_pos);

-- Signed records of what retention removed.
CREATE TABLE audit_retention (
    id          bigserial PRIMARY KEY,
    from_pos    bigint NOT NULL,
    to_pos      bigint NOT NULL,
    last_hash   bytea NOT NULL,
    kid         text NOT NULL,
    jws         text NOT NULL,
    created_at  timestamptz NOT NULL
);
