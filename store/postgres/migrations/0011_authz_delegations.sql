-- Grants made by token exchange (e.g. a child mandate) and the tokens they
-- were derived from. A token issued later for such a grant carries the
-- same lineage, so revoking any token of it (RFC 7009) stops the grant's
-- tokens too; a revocation of a token named here is kept for good.
CREATE TABLE oauth_delegations (
    tenant_id       text NOT NULL REFERENCES tenants (id),
    grant_key       text NOT NULL,                -- e.g. the child mandate's id
    delegated_from  text[] NOT NULL,              -- token jtis, oldest first
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, grant_key)
);
CREATE INDEX oauth_delegations_from ON oauth_delegations USING gin (delegated_from);
