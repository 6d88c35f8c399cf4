-- Declines (refusals and processor failures) are counted from rows of
-- their own. The partial indexes that counted them named decisions.outcome
-- in their predicate, so the settlement's UPDATE of the outcome could never
-- be a HOT update: every charge wrote a second copy of its decision and an
-- entry in each of the table's eight indexes. A decline is rare; a row here
-- is written with the refusal or the failed outcome and goes with its
-- decision.
CREATE TABLE decision_declines (
    decision_id  text PRIMARY KEY REFERENCES decisions (id) ON DELETE CASCADE,
    tenant_id    text NOT NULL,
    agent_id     text NOT NULL,
    mandate_id   text NOT NULL,
    created_at   timestamptz NOT NULL
);
CREATE INDEX decision_declines_agent ON decision_declines (tenant_id, agent_id, created_at);
CREATE INDEX decision_declines_mandate ON decision_declines (tenant_id, mandate_id, created_at);
INSERT INTO decision_declines (decision_id, tenant_id, agent_id, mandate_id, created_at)
    SELECT id, tenant_id, agent_id, mandate_id, created_at FROM decisions WHERE result = 'deny' OR outcome = 'failed';
DROP INDEX decisions_agent_declines;
DROP INDEX decisions_mandate_declines;
-- Room on each page for the settlement's update to stay on it.
ALTER TABLE decisions SET (fillfactor = 80);
