-- Retention's shred of unused card tokens asks, for each old token,
-- whether a live mandate names it. No index answered that: each batch of
-- the sweep read every mandate ever made, revoked and expired ones too.
-- This index holds the cards of live mandates alone; the sweep asks it
-- with the containment operator it serves (store/postgres/retention.go)
-- and its predicate, the live statuses, word for word.
CREATE INDEX mandates_live_cards ON mandates USING gin (payment_methods)
    WHERE status IN ('pending_approval', 'active', 'suspended');
