-- A tenant's own restriction of the countries its agents may pay in: the
-- charge policy denies a charge at a merchant in another country. No row
-- or an empty list: unrestricted.
CREATE TABLE tenant_countries (
    tenant_id          text PRIMARY KEY REFERENCES tenants (id),
    allowed_countries  text[] NOT NULL,
    updated_at         timestamptz NOT NULL
);
