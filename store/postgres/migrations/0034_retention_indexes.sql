-- Indexes for the retention sweeps (0031 added the decisions' one). Each
-- sweep takes the oldest rows of its class past the cut-off, in bounded
-- batches, on every node every hour: without these each batch would read
-- the whole table. The card-token sweep also asks, per token, whether it
-- was charged since the cut-off.
CREATE INDEX charges_payment_method ON charges (tenant_id, payment_method, created_at);
CREATE INDEX charges_settled_updated ON charges (updated_at, id) WHERE status IN ('succeeded', 'canceled', 'failed');
CREATE INDEX vault_tokens_live_created ON vault_tokens (created_at) WHERE deleted_at IS NULL;
CREATE INDEX user_sessions_created ON user_sessions (created_at);
CREATE INDEX user_login_marks_first_seen ON user_login_marks (first_seen);
