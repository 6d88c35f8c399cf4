-- The agent charge pipeline: decision records, step-up approvals and the
-- budget each agent charge holds on its mandate chain.

CREATE TABLE decisions (
    id              text PRIMARY KEY,
    tenant_id       text NOT NULL,
    mandate_id      text NOT NULL,
    agent_id        text NOT NULL,
    charge_id       text,
    approval_id     text,
    result          text NOT NULL CHECK (result IN ('allow', 'deny', 'challenge')),
    reasons         jsonb NOT NULL,
    policy_version  text NOT NULL,
    input_digest    text NOT NULL,
    latency_us      bigint NOT NULL,
    outcome         text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL
);
CREATE INDEX decisions_agent ON decisions (tenant_id, agent_id, created_at);
CREATE INDEX decisions_mandate ON decisions (tenant_id, mandate_id, created_at);
-- Velocity: declines are rare, so their counts read only these.
CREATE INDEX decisions_agent_declines ON decisions (tenant_id, agent_id, created_at) WHERE result = 'deny' OR outcome = 'failed';
CREATE INDEX decisions_mandate_declines ON decisions (tenant_id, mandate_id, created_at) WHERE result = 'deny' OR outcome = 'failed';
CREATE UNIQUE INDEX decisions_charge ON decisions (tenant_id, charge_id) WHERE charge_id IS NOT NULL;

CREATE TABLE approvals (
    id              text PRIMARY KEY,
    tenant_id       text NOT NULL,
    status          text NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'used')),
    mandate_id      text NOT NULL,
    agent_id        text NOT NULL,
    amount          bigint NOT NULL,
    currency        text NOT NULL,
    payment_method  text NOT NULL,
    merchant_id     text NOT NULL,
    purchase        jsonb,
    reasons         jsonb NOT NULL,
    binding         text NOT NULL,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    resolved_at     timestamptz,
    resolved_by     text NOT NULL DEFAULT '',
    charge_id       text NOT NULL DEFAULT ''
);
CREATE INDEX approvals_tenant ON approvals (tenant_id, created_at);

CREATE TABLE charge_holds (
    charge_id    text PRIMARY KEY,
    tenant_id    text NOT NULL,
    reservation  jsonb NOT NULL,
    held         bigint NOT NULL CHECK (held >= 0),
    counted      boolean NOT NULL
);

-- Merchants read the charges made to them.
CREATE INDEX charges_merchant ON charges (merchant_id, seq) WHERE merchant_id IS NOT NULL;
