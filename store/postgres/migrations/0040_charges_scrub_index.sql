-- Retention's scrub of charge text takes the oldest settled charges that
-- still hold text. It read them through charges_settled_updated, which
-- holds every settled charge: a scrub changes neither a charge's status
-- nor its updated_at, so every sweep walked past all the charges scrubbed
-- before (every charge older than the cut-off) to find the few left.
-- This index holds the settled charges with text alone; a scrub takes a
-- charge out of it. Its predicate is the scrub's condition word for word
-- (store/postgres/retention.go), as the planner needs to match it. Nothing
-- else read charges_settled_updated.
CREATE INDEX charges_scrub ON charges (updated_at, id)
    WHERE status IN ('succeeded', 'canceled', 'failed')
      AND (description <> '' OR metadata <> '{}' OR purchase IS NOT NULL OR failure_message <> '');
DROP INDEX charges_settled_updated;
