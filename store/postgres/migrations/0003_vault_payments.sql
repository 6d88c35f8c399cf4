-- Vault and payment core. No column ever holds a card number or CVC in
-- clear: the card is AES-256-GCM ciphertext under a per-token data key,
-- wrapped by the tenant key, wrapped by a KEK that lives outside the database.

CREATE TABLE vault_tenant_keys (
    id            text PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants (id),
    kek_version   int NOT NULL CHECK (kek_version >= 1),
    wrapped       bytea,                 -- tenant key wrapped by the KEK; NULL once destroyed
    created_at    timestamptz NOT NULL,
    rewrapped_at  timestamptz,
    destroyed_at  timestamptz,
    CHECK ((wrapped IS NULL) = (destroyed_at IS NOT NULL))
);
-- One live key per tenant: destroying it crypto-shreds all of its cards.
CREATE UNIQUE INDEX vault_tenant_keys_live ON vault_tenant_keys (tenant_id) WHERE destroyed_at IS NULL;
CREATE INDEX vault_tenant_keys_rewrap ON vault_tenant_keys (kek_version, id) WHERE destroyed_at IS NULL;

CREATE TABLE vault_tokens (
    id             text PRIMARY KEY,
    tenant_id      text NOT NULL REFERENCES tenants (id),
    tenant_key_id  text NOT NULL REFERENCES vault_tenant_keys (id),
    livemode       boolean NOT NULL,
    brand          text NOT NULL,
    last4          text NOT NULL,
    exp_month      int NOT NULL,
    exp_year       int NOT NULL,
    fingerprint    text NOT NULL,        -- HMAC under a per-tenant key, never a plain hash
    cvc_check      text NOT NULL CHECK (cvc_check IN ('pass', 'fail', 'unavailable')),
    wrapped_dek    bytea,                -- NULL once deleted
    ciphertext     bytea,                -- NULL once deleted
    created_at     timestamptz NOT NULL,
    deleted_at     timestamptz
);
CREATE INDEX vault_tokens_tenant ON vault_tokens (tenant_id, created_at);
CREATE INDEX vault_tokens_tenant_key ON vault_tokens (tenant_key_id);

CREATE TABLE charges (
    seq               bigserial UNIQUE,
    id                text PRIMARY KEY,
    tenant_id         text NOT NULL REFERENCES tenants (id),
    livemode          boolean NOT NULL,
    status            text NOT NULL CHECK (status IN ('pending', 'requires_capture', 'succeeded', 'canceled', 'failed')),
    amount            bigint NOT NULL CHECK (amount > 0),
    amount_captured   bigint NOT NULL DEFAULT 0,
    amount_refunded   bigint NOT NULL DEFAULT 0,
    currency          text NOT NULL,
    capture_now       boolean NOT NULL,
    payment_method    text NOT NULL,
    card              jsonb NOT NULL,     -- brand, last4, expiry, fingerprint, cvc_check
    description       text NOT NULL DEFAULT '',
    metadata          jsonb NOT NULL DEFAULT '{}',
    mandate_id        text,
    agent_id          text,
    merchant_id       text,
    purchase          jsonb,
    auth_code         text NOT NULL DEFAULT '',
    failure_code      text NOT NULL DEFAULT '',
    failure_message   text NOT NULL DEFAULT '',
    decline_code      text NOT NULL DEFAULT '',
    attempts          int NOT NULL DEFAULT 0,
    reversal_pending  boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    captured_at       timestamptz,
    canceled_at       timestamptz,
    CHECK (amount_captured BETWEEN 0 AND amount),
    CHECK (amount_refunded BETWEEN 0 AND amount_captured)
);
CREATE INDEX charges_tenant ON charges (tenant_id, livemode, seq DESC);
CREATE INDEX charges_mandate ON charges (mandate_id) WHERE mandate_id IS NOT NULL;
CREATE INDEX charges_unresolved ON charges (updated_at) WHERE status = 'pending' OR reversal_pending;

CREATE TABLE refunds (
    id            text PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants (id),
    livemode      boolean NOT NULL,
    charge_id     text NOT NULL REFERENCES charges (id),
    amount        bigint NOT NULL CHECK (amount > 0),
    currency      text NOT NULL,
    status        text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    reason        text NOT NULL DEFAULT '',
    failure_code  text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX refunds_charge ON refunds (charge_id);
CREATE INDEX refunds_pending ON refunds (updated_at) WHERE status = 'pending';
