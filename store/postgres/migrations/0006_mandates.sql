-- Mandates, their history, and merchant profiles.

CREATE TABLE merchants (
    id            text PRIMARY KEY,                       -- acct_…
    tenant_id     text NOT NULL UNIQUE REFERENCES tenants (id),
    display_name  text NOT NULL,
    mcc           text NOT NULL CHECK (mcc ~ '^[0-9]{4}$'),
    country       text NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);

CREATE TABLE merchant_domains (
    merchant_id  text NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    domain       text NOT NULL,
    verified_at  timestamptz,
    PRIMARY KEY (merchant_id, domain)
);
-- A domain counts for one merchant only, once verified.
CREATE UNIQUE INDEX merchant_domains_verified ON merchant_domains (domain) WHERE verified_at IS NOT NULL;

CREATE TABLE mandates (
    id                     text PRIMARY KEY,              -- mdt_…
    tenant_id              text NOT NULL REFERENCES tenants (id),
    parent_id              text REFERENCES mandates (id),
    depth                  int NOT NULL DEFAULT 0 CHECK (depth >= 0),
    payer                  text NOT NULL,
    agent                  text NOT NULL,
    description            text NOT NULL DEFAULT '',
    status                 text NOT NULL CHECK (status IN ('pending_approval', 'active', 'suspended', 'revoked', 'expired', 'exhausted')),
    currency               text NOT NULL,
    max_amount_per_charge  bigint,
    budget                 bigint NOT NULL CHECK (budget > 0),
    period                 text CHECK (period IN ('day', 'week', 'month')),
    period_budget          bigint,
    max_charges            bigint,
    payment_methods        text[] NOT NULL,
    allowed_merchants      text[],
    allowed_categories     text[],
    blocked_categories     text[],
    allowed_countries      text[],
    valid_from             timestamptz,
    valid_until            timestamptz,
    approval_threshold     bigint,
    spent                  bigint NOT NULL DEFAULT 0,
    period_spent           bigint NOT NULL DEFAULT 0,
    period_start           timestamptz,
    charge_count           bigint NOT NULL DEFAULT 0,
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    approved_at            timestamptz,
    revoked_at             timestamptz,
    -- The invariants hold in the schema too: a reservation that would break
    -- one fails even if a statement forgot its condition.
    CONSTRAINT mandates_within_budget CHECK (spent >= 0 AND spent <= budget),
    CONSTRAINT mandates_within_period_budget CHECK (period_budget IS NULL OR (period_spent >= 0 AND period_spent <= period_budget)),
    CONSTRAINT mandates_within_max_charges CHECK (charge_count >= 0 AND (max_charges IS NULL OR charge_count <= max_charges)),
    CONSTRAINT mandates_period_pair CHECK ((period IS NULL) = (period_budget IS NULL))
);
CREATE INDEX mandates_tenant_created ON mandates (tenant_id, created_at DESC, id DESC);
CREATE INDEX mandates_parent ON mandates (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX mandates_agent ON mandates (tenant_id, agent);
CREATE INDEX mandates_expiring ON mandates (valid_until) WHERE valid_until IS NOT NULL AND status NOT IN ('revoked', 'expired');

-- A mandate's history: created, approved, decisions, charges, revoked, …
CREATE TABLE mandate_events (
    seq         bigserial PRIMARY KEY,
    id          text NOT NULL UNIQUE,
    tenant_id   text NOT NULL,
    mandate_id  text NOT NULL REFERENCES mandates (id),
    type        text NOT NULL,
    actor_type  text NOT NULL DEFAULT '',
    actor_id    text NOT NULL DEFAULT '',
    data        jsonb,
    created_at  timestamptz NOT NULL
);
CREATE INDEX mandate_events_mandate ON mandate_events (mandate_id, seq);
