-- Erasing a person finds their audit entries still holding an IP by the
-- person as actor (a user) and as target. The two partial indexes of 0035
-- held every entry with an IP by actor and by target, agents' and API
-- keys' too: each issued token and each charge paid two index entries per
-- audit entry for a search only ever made for users. Entries by target
-- are found through audit_events_target; by actor, through an index of
-- users' entries alone.
DROP INDEX audit_events_ip_actor;
DROP INDEX audit_events_ip_target;
CREATE INDEX audit_events_ip_user ON audit_events (tenant_id, actor_id)
    WHERE ip_salt IS NOT NULL AND actor_type = 'user';
