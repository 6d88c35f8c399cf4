-- People in the loop of the issuer: redirect URIs and CIBA delivery of
-- agents, authorization codes, PKCE challenges and pushed authorization
-- requests as token sessions, and the requests waiting for a payer's
-- decision (an authorization code request at the consent page, a CIBA
-- request).

ALTER TABLE agents
    ADD COLUMN redirect_uris        text[] NOT NULL DEFAULT '{}',
    ADD COLUMN backchannel_mode     text   NOT NULL DEFAULT '' CHECK (backchannel_mode IN ('', 'poll', 'ping')),
    ADD COLUMN backchannel_endpoint text   NOT NULL DEFAULT '';

ALTER TABLE oauth_tokens DROP CONSTRAINT oauth_tokens_kind_check;
ALTER TABLE oauth_tokens ADD CONSTRAINT oauth_tokens_kind_check
    CHECK (kind IN ('access', 'refresh', 'authorize_code', 'pkce', 'par'));

CREATE TABLE auth_requests (
    id               text PRIMARY KEY,               -- consent page id, or the CIBA auth_req_id
    kind             text NOT NULL CHECK (kind IN ('authorize', 'ciba')),
    tenant_id        text NOT NULL REFERENCES tenants (id),
    client_id        text NOT NULL REFERENCES agents (id),
    payer            text NOT NULL DEFAULT '',       -- CIBA: the login_hint; else who decided
    status           text NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'consumed')),
    details          jsonb,                          -- the requested authorization_details
    granted          jsonb,                          -- what the payer granted
    binding_message  text NOT NULL DEFAULT '',
    data             jsonb NOT NULL,                 -- the request as the issuer keeps it
    poll_interval    integer NOT NULL DEFAULT 0,     -- CIBA: seconds between polls
    last_polled_at   timestamptz,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL
);
CREATE INDEX auth_requests_payer ON auth_requests (tenant_id, payer, status, created_at);
CREATE INDEX auth_requests_expires ON auth_requests (expires_at);
