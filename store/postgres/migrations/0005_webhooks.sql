-- Webhooks: endpoints, the delivery outbox that dispatchers claim, and
-- every attempt made. An event (0002) fans out in its own transaction into
-- one webhook_deliveries row per subscribed, enabled endpoint.

CREATE TABLE webhook_endpoints (
    id                      text PRIMARY KEY,
    tenant_id               text NOT NULL REFERENCES tenants (id),
    url                     text NOT NULL,
    description             text NOT NULL DEFAULT '',
    events                  text[] NOT NULL,
    status                  text NOT NULL CHECK (status IN ('enabled', 'disabled')),
    disabled_reason         text NOT NULL DEFAULT '',
    -- Signing secrets, AES-256-GCM sealed with webhooks.secret_key (the
    -- endpoint id is the additional data). Never in clear.
    secret                  bytea NOT NULL,
    prev_secret             bytea,
    prev_secret_expires_at  timestamptz,
    failing_since           timestamptz,
    created_at              timestamptz NOT NULL,
    updated_at              timestamptz NOT NULL
);
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id, created_at);

-- The outbox. A pending row is due at next_attempt_at; a dispatcher claims
-- it (FOR UPDATE SKIP LOCKED) by moving next_attempt_at to the end of its
-- lease and setting claim_token, so a crashed dispatcher's rows come due
-- again. endpoint_id has no foreign key: deliveries outlive deleted endpoints.
CREATE TABLE webhook_deliveries (
    id               text PRIMARY KEY,
    tenant_id        text NOT NULL,
    event_id         text NOT NULL,
    endpoint_id      text NOT NULL,
    status           text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'canceled')),
    attempts         int NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    claim_token      text,
    last_status      int NOT NULL DEFAULT 0,
    last_error       text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    completed_at     timestamptz
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id, created_at);
CREATE INDEX webhook_deliveries_endpoint_pending ON webhook_deliveries (endpoint_id) WHERE status = 'pending';

CREATE TABLE webhook_attempts (
    seq              bigserial PRIMARY KEY,
    id               text NOT NULL UNIQUE,
    tenant_id        text NOT NULL,
    delivery_id      text NOT NULL,
    event_id         text NOT NULL,
    endpoint_id      text NOT NULL,
    attempt          int NOT NULL,
    url              text NOT NULL,
    status_code      int NOT NULL DEFAULT 0,
    latency_ms       bigint NOT NULL DEFAULT 0,
    error            text NOT NULL DEFAULT '',
    outcome          text NOT NULL,
    next_attempt_at  timestamptz,
    created_at       timestamptz NOT NULL
);
CREATE INDEX webhook_attempts_event ON webhook_attempts (tenant_id, event_id, seq);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (tenant_id, endpoint_id, seq);

-- GET /v1/events?type=…
CREATE INDEX events_tenant_type ON events (tenant_id, type, seq);
