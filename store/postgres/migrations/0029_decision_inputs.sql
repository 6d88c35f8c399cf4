-- What a decision can be proven and replayed with: the exact policy input
-- of each decision the policy made (canonical JSON, whose SHA-256 is the
-- decision's input_digest), and every policy version that ever decided,
-- its modules kept by the version's digest.

CREATE TABLE decision_inputs (
    decision_id  text PRIMARY KEY REFERENCES decisions (id) ON DELETE CASCADE,
    tenant_id    text NOT NULL,
    input        text NOT NULL
);

CREATE TABLE policy_versions (
    version     text PRIMARY KEY,
    modules     text NOT NULL,          -- JSON {file name: Rego source}
    created_at  timestamptz NOT NULL
);

-- Replay and exports read a tenant's decisions in time order.
CREATE INDEX decisions_tenant_time ON decisions (tenant_id, created_at, id);
