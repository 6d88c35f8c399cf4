-- A capture or void of a charge takes a claim, committed before the
-- processor is called, so two racing operations never both reach it. A
-- claim whose node died lapses at claim_until.
ALTER TABLE charges ADD COLUMN claim text NOT NULL DEFAULT '';
ALTER TABLE charges ADD COLUMN claim_until timestamptz;
