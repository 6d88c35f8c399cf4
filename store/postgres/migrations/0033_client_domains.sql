-- Hosts whose Client ID Metadata Documents a tenant accepts: an agent whose
-- client_id is an https URL on one of these hosts becomes an agent of that
-- tenant. A host belongs to one tenant at most (the primary key), so a URL
-- client id always names one tenant.
CREATE TABLE client_domains (
    domain      text PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id),
    created_at  timestamptz NOT NULL
);
CREATE INDEX client_domains_tenant ON client_domains (tenant_id, domain);
