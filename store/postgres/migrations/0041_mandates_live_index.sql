-- Retention's shred of unused card tokens asks, for each old token,
-- whether a live mandate names it. No index answered that: each batch of
-- the sweep read every mandate ever made, revoked and expired ones too.
-- This index holds the live mandates alone (its predicate, the live
-- statuses, is the sweep's condition word for word): a batch reads the
-- cards of the live mandates once and matches its tokens against them by
-- hash (store/postgres/retention.go).
CREATE INDEX mandates_live ON mandates (tenant_id)
    WHERE status IN ('pending_approval', 'active', 'suspended');
