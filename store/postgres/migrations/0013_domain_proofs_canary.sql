-- Merchant domain verification (a challenge token proven by DNS TXT or an
-- HTTPS well-known file, re-checked on a schedule), and the secrets canary.

ALTER TABLE merchant_domains
    ADD COLUMN challenge_token      text,
    ADD COLUMN challenge_expires_at timestamptz,
    ADD COLUMN method               text CHECK (method IN ('dns', 'https', 'operator')),
    ADD COLUMN checked_at           timestamptz,
    ADD COLUMN next_check_at        timestamptz,
    ADD COLUMN failed_checks        int NOT NULL DEFAULT 0 CHECK (failed_checks >= 0);
-- Domains verified before proofs existed were marked by an operator.
UPDATE merchant_domains SET method = 'operator' WHERE verified_at IS NOT NULL;
CREATE INDEX merchant_domains_due ON merchant_domains (next_check_at) WHERE verified_at IS NOT NULL AND next_check_at IS NOT NULL;

-- One sealed value per server-wide secret, written at first start: a node
-- whose configured secret cannot open it refuses to start, naming the secret.
CREATE TABLE secret_canaries (
    name        text PRIMARY KEY,
    sealed      bytea NOT NULL,
    created_at  timestamptz NOT NULL
);
