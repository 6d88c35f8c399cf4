-- Idempotency claims name the node session that holds them: the
-- application_name of a connection the node keeps open for as long as it
-- lives. A claim whose session no longer appears in pg_stat_activity (the
-- node died, or the server restarted under it) may be taken over at once
-- instead of after its lock expires. NULL: claimed without a session.
ALTER TABLE idempotency_keys ADD COLUMN owner text;

-- The simulated acquirer's ledger, shared by every node like a real
-- acquirer's: any node can capture, void or refund an authorization made
-- by another. Keyed by the payment core's references (charge and refund
-- ids), which make every call idempotent.
CREATE TABLE sim_authorizations (
    reference     text PRIMARY KEY,
    approved      boolean NOT NULL,
    auth_code     text NOT NULL DEFAULT '',
    decline_code  text NOT NULL DEFAULT '',
    amount        bigint NOT NULL CHECK (amount >= 0),
    captured      bigint NOT NULL DEFAULT 0 CHECK (captured >= 0),
    refunded      bigint NOT NULL DEFAULT 0 CHECK (refunded >= 0),
    voided        boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sim_refunds (
    reference         text PRIMARY KEY,
    charge_reference  text NOT NULL,
    amount            bigint NOT NULL CHECK (amount >= 0),
    approved          boolean NOT NULL,
    decline_code      text NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL DEFAULT now()
);
