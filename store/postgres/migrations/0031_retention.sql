-- Retention sweeps delete the oldest decision records across tenants.
CREATE INDEX decisions_created ON decisions (created_at, id);
