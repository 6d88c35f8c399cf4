-- Each agent's standing anomaly flag (fraud.Flag): at most one per agent of
-- a tenant (the primary key), read by every node for each of the agent's
-- charges so that all of them step it up, and kept across restarts. A
-- person's clear deletes the row; the audit trail keeps the history.
CREATE TABLE agent_anomalies (
    tenant_id  text NOT NULL REFERENCES tenants (id),
    agent_id   text NOT NULL,
    metric     text NOT NULL,
    score      double precision NOT NULL,
    message    text NOT NULL,
    raised_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, agent_id)
);
