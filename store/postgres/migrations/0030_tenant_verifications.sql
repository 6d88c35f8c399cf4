-- Know your business: each tenant's verification status and the evidence
-- an operator reviewed (references, never documents). No row: unverified.
CREATE TABLE tenant_verifications (
    tenant_id            text PRIMARY KEY REFERENCES tenants (id),
    status               text NOT NULL CHECK (status IN ('unverified', 'pending', 'verified', 'rejected')),
    legal_name           text NOT NULL DEFAULT '',
    registration_number  text NOT NULL DEFAULT '',
    country              text NOT NULL DEFAULT '',
    evidence_reference   text NOT NULL DEFAULT '',
    notes                text NOT NULL DEFAULT '',
    reviewed_by          text NOT NULL DEFAULT '',
    updated_at           timestamptz NOT NULL
);
