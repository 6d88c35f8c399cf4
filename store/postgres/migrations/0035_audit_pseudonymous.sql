-- Audit entries hold the client's IP outside their hashed content. From
-- here on an entry is written in format 1: its content hash covers
-- ip_digest, SHA-256(ip_salt || ip), and the clear ip sits beside it with
-- its random salt, so erasing a customer (or retention) can delete both
-- and the chain still verifies. Entries written before (format 0) keep
-- hashing their ip as it is: they keep it until audit retention removes
-- them whole.
ALTER TABLE audit_events
    ADD COLUMN format    smallint NOT NULL DEFAULT 0,
    ADD COLUMN ip_salt   bytea,
    ADD COLUMN ip_digest bytea;
-- Erasure finds a customer's entries still holding an IP by actor and by
-- target.
CREATE INDEX audit_events_ip_actor ON audit_events (tenant_id, actor_id) WHERE ip_salt IS NOT NULL;
CREATE INDEX audit_events_ip_target ON audit_events (tenant_id, target) WHERE ip_salt IS NOT NULL;
