-- charges.idempotency_key and its unique index, for databases migrated
-- before 0007 carried them. On a database where 0007 already made them,
-- this does nothing: the definitions are the same.
--
-- A charge is created once per credential and Idempotency-Key, even when the
-- key's claim lapsed because a node died mid-request.
ALTER TABLE charges ADD COLUMN IF NOT EXISTS idempotency_key text;
CREATE UNIQUE INDEX IF NOT EXISTS charges_idempotency ON charges (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
