-- Events: written in the same transaction as the change they describe.
CREATE TABLE events (
    seq         bigserial PRIMARY KEY,
    id          text NOT NULL UNIQUE,
    tenant_id   text NOT NULL,
    type        text NOT NULL,
    data        jsonb NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX events_tenant ON events (tenant_id, seq);
