-- The sealer's links live beside the entries instead of in them. Sealing
-- used to UPDATE each entry with its chain_pos, prev_hash and hash; since
-- chain_pos is indexed, every seal wrote a new copy of the row and a new
-- entry in each of the table's nine indexes, about as much work again as
-- writing the entry. Now an append also queues the entry's seq in
-- audit_unsealed (one small row), and sealing moves it from there to a
-- row of audit_seals. Entries are only ever inserted and deleted.
CREATE TABLE audit_seals (
    seq        bigint PRIMARY KEY,
    chain_pos  bigint NOT NULL UNIQUE,
    prev_hash  bytea NOT NULL,
    hash       bytea NOT NULL
);
INSERT INTO audit_seals (seq, chain_pos, prev_hash, hash)
    SELECT seq, chain_pos, prev_hash, hash FROM audit_events WHERE chain_pos IS NOT NULL;

-- The entries the sealer has still to link, in seq order.
CREATE TABLE audit_unsealed (
    seq        bigint PRIMARY KEY
);
INSERT INTO audit_unsealed (seq) SELECT seq FROM audit_events WHERE chain_pos IS NULL;

DROP INDEX audit_events_unsealed;
ALTER TABLE audit_events DROP COLUMN chain_pos, DROP COLUMN prev_hash, DROP COLUMN hash;
