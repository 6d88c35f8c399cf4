-- One successful agent charge's SQL, statement for statement, as
-- `perfectpay serve` sends it on PostgreSQL (captured with log_statement=all
-- for POST /v1/charges with an agent token; see BENCHMARKS.md "Agent
-- charges (issue 6)"). Used by BenchmarkAgentCharges:
--   pgbench -n -M prepared -f charge.pgbench.sql -c 16 -j 2 -t N/16 \
--     -D tenant=ten_… -D merchant=acct_… -D card=tok_… -D tkey=tk_… -D nm=64 -D velocity=0
-- 3 transactions and 6 autocommit statements: 30 round trips incl.
-- BEGIN/COMMIT (31 with a velocity limit on), as of commit 8bf74fd
-- "Charge hot path: fewer round trips, bounded velocity counts".
-- The table bench_mandates (n, mandate_id, agent_id, jti) lists the
-- benchmark's real mandates (created through the API); choosing one costs a
-- round trip the server does not make (it reads the mandate from the token).
\set m random(1, :nm)
\set r random(1, 9000000000000000000)
SELECT mandate_id AS mid, agent_id AS aid, jti FROM bench_mandates WHERE n = :m \gset

-- 1. Idempotency: claim the key (its own transaction).
BEGIN ISOLATION LEVEL READ COMMITTED;
INSERT INTO idempotency_keys AS k (tenant_id, credential_id, key, method, path, request_hash, state, status, header, body, created_at, locked_until, expires_at)
	VALUES (:tenant, :aid, 'pgb-' || :r::text, 'POST', '/v1/charges', '\xb603183447e1f68f35f04ceb4b10aeae8cc8cac71bbefb9dba9f71297d0339cd', 'in_progress', 0, '{}', NULL, now(), now() + interval '1 minute', now() + interval '1 day')
	ON CONFLICT (tenant_id, credential_id, key) DO UPDATE SET
		method = EXCLUDED.method, path = EXCLUDED.path, request_hash = EXCLUDED.request_hash,
		state = EXCLUDED.state, status = EXCLUDED.status, header = EXCLUDED.header, body = EXCLUDED.body,
		created_at = EXCLUDED.created_at, locked_until = EXCLUDED.locked_until, expires_at = EXCLUDED.expires_at
	WHERE (k.state = 'in_progress' AND k.locked_until <= EXCLUDED.created_at) OR k.expires_at <= EXCLUDED.created_at
	RETURNING true;
COMMIT;

-- 2. Load (autocommit reads): mandate chain, merchant, agent, tenant,
-- velocity (only when a limit is on). Revocations and the card token are
-- read only inside the charge transaction (3.).
WITH RECURSIVE chain (cid, cparent, lvl) AS (
		SELECT id, parent_id, 0 FROM mandates WHERE id = :mid AND tenant_id = :tenant
		UNION ALL
		SELECT m.id, m.parent_id, c.lvl + 1 FROM mandates m JOIN chain c ON m.id = c.cparent
	)
	SELECT id, tenant_id, coalesce(parent_id, ''), depth, payer, agent, description, status, currency,
		max_amount_per_charge, budget, coalesce(period, ''), period_budget, max_charges, payment_methods,
		allowed_merchants, allowed_categories, blocked_categories, allowed_countries, valid_from, valid_until,
		approval_threshold, spent, period_spent, period_start, charge_count, created_at, updated_at, approved_at, revoked_at
	FROM chain JOIN mandates ON mandates.id = chain.cid WHERE tenant_id = :tenant ORDER BY chain.lvl DESC;
SELECT m.id, m.tenant_id, m.display_name, m.mcc, m.country, m.created_at, m.updated_at,
	coalesce((SELECT json_agg(json_build_object('domain', d.domain, 'verified_at', d.verified_at) ORDER BY d.domain)
	          FROM merchant_domains d WHERE d.merchant_id = m.id), '[]') FROM merchants m WHERE m.id = :merchant;
SELECT id, tenant_id, name, status, auth_method, coalesce(jwks::text, ''), secret_hash, grant_types, scopes,
	audiences, created_at, updated_at, suspended_at, revoked_at FROM agents WHERE id = :aid;
SELECT id, name, status, created_at FROM tenants WHERE id = :tenant;
-- The velocity counts are read only when a velocity limit is on (-D velocity=1):
-- each count stops at its limit + 1000, LIMIT 0 for a limit that is off; as
-- here with the defaults (only the two decline limits on, 20 an hour each).
\if :velocity
SELECT (SELECT count(*) FROM (SELECT 1 FROM decisions WHERE tenant_id = :tenant AND agent_id = :aid AND created_at >= now() - interval '1 hour' AND result = 'allow' LIMIT 0) x),
	(SELECT count(*) FROM (SELECT 1 FROM decisions WHERE tenant_id = :tenant AND agent_id = :aid AND created_at >= now() - interval '1 hour' AND (result = 'deny' OR outcome = 'failed') LIMIT 1020) x),
	(SELECT count(*) FROM (SELECT 1 FROM decisions WHERE tenant_id = :tenant AND mandate_id = :mid AND created_at >= now() - interval '1 hour' AND result = 'allow' LIMIT 0) x),
	(SELECT count(*) FROM (SELECT 1 FROM decisions WHERE tenant_id = :tenant AND mandate_id = :mid AND created_at >= now() - interval '1 hour' AND (result = 'deny' OR outcome = 'failed') LIMIT 1020) x);
\endif

-- 3. The charge transaction: reveal the card (its livemode is the charge's),
-- the authoritative revocation check, reserve on the chain (root first; one mandate here), hold, decision
-- record + mandate history + audit, the charge + its audit entry.
BEGIN ISOLATION LEVEL READ COMMITTED;
SELECT id, tenant_id, tenant_key_id, livemode, brand, last4, exp_month, exp_year, fingerprint, cvc_check,
	wrapped_dek, ciphertext, created_at, deleted_at FROM vault_tokens WHERE id = :card AND tenant_id = :tenant;
SELECT id, tenant_id, kek_version, wrapped, created_at, rewrapped_at, destroyed_at FROM vault_tenant_keys WHERE id = :tkey;
SELECT kind FROM (
		SELECT 'tenant' AS kind, 1 AS o FROM tenants WHERE :tenant <> '' AND id = :tenant AND status = 'revoked'
		UNION ALL
		SELECT kind, CASE kind WHEN 'tenant' THEN 1 WHEN 'agent' THEN 2 ELSE 3 END FROM revocations
		WHERE (:tenant <> '' AND kind = 'tenant' AND id = :tenant)
		   OR (:aid <> '' AND kind = 'agent' AND id = :aid)
		   OR (:jti <> '' AND kind = 'token' AND id = :jti)
	) r ORDER BY o LIMIT 1;
UPDATE mandates m SET
		spent = m.spent + 1,
		charge_count = m.charge_count + 1,
		period_spent = CASE WHEN m.period IS NULL THEN 0
		                    WHEN m.period_start >= (CASE m.period WHEN 'day' THEN date_trunc('day', now()) WHEN 'week' THEN date_trunc('week', now()) WHEN 'month' THEN date_trunc('month', now()) END) THEN m.period_spent + 1
		                    ELSE 1 END,
		period_start = CASE WHEN m.period IS NULL THEN NULL ELSE GREATEST(m.period_start, (CASE m.period WHEN 'day' THEN date_trunc('day', now()) WHEN 'week' THEN date_trunc('week', now()) WHEN 'month' THEN date_trunc('month', now()) END)) END,
		status = CASE WHEN m.spent + 1 = m.budget OR m.charge_count + 1 = m.max_charges THEN 'exhausted' ELSE m.status END,
		updated_at = now()
	WHERE m.id = :mid AND m.status = 'active'
	  AND (m.valid_from IS NULL OR m.valid_from <= now()) AND (m.valid_until IS NULL OR m.valid_until > now())
	  AND m.spent + 1 <= m.budget
	  AND (m.period IS NULL OR (CASE WHEN m.period_start >= (CASE m.period WHEN 'day' THEN date_trunc('day', now()) WHEN 'week' THEN date_trunc('week', now()) WHEN 'month' THEN date_trunc('month', now()) END) THEN m.period_spent ELSE 0 END) + 1 <= m.period_budget)
	  AND (m.max_charges IS NULL OR m.charge_count + 1 <= m.max_charges)
	RETURNING m.status, m.period_start;
INSERT INTO charge_holds (charge_id, tenant_id, reservation, held, counted)
	VALUES ('ch_pgb' || :r::text, :tenant, '{"at": "2026-11-27T08:28:48.725316Z", "chain": ["mdt_22XoUS9gGKI3Bkiuo8WeWPC2"], "amount": 1}', 1, true);
INSERT INTO decisions (id, tenant_id, mandate_id, agent_id, charge_id, approval_id, result,
		reasons, policy_version, input_digest, latency_us, outcome, created_at)
	VALUES ('dec_pgb' || :r::text, :tenant, :mid, :aid, 'ch_pgb' || :r::text, NULL, 'allow', '[]', 'sha256:7493c4d3838875f8',
		'sha256:6ab30cc3b76ff6b04aef87555a96f994c1c664f12214766a6ab30cc3b76ff6b0', 120, '', now());
INSERT INTO mandate_events (id, tenant_id, mandate_id, type, actor_type, actor_id, data, created_at)
	VALUES ('mev_pgba' || :r::text, :tenant, :mid, 'decision.allow', 'agent', :aid,
		'{"id": "dec_8TK3ahfCcQHDMHqSUgX267kU", "agent": "agt_n4YOnbJdUAUpKrvLJnZ1Xueo", "charge": "ch_3GTxqO6sTfziEuhpPFQfbqaf", "result": "allow", "reasons": [], "mandate": "mdt_22XoUS9gGKI3Bkiuo8WeWPC2", "latency_us": 120, "input_digest": "sha256:6ab30cc3b76ff6b04aef87555a96f994c1c664f12214766", "policy_version": "sha256:7493c4d3838875f8"}',
		now()) RETURNING seq;
WITH s AS (UPDATE audit_stripes SET next = next + 1
		WHERE stripe = (SELECT stripe FROM audit_stripes ORDER BY stripe LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING stripe, next)
INSERT INTO audit_events (id, tenant_id, actor_type, actor_id, ip, action, target, request_id, method, route, status, data, created_at, content_hash,
		stripe, stripe_seq)
	SELECT 'aud_pgba' || :r::text, :tenant, 'agent', :aid, '127.0.0.1', 'charge.decision', 'dec_pgb' || :r::text, 'req_pgb' || :r::text, '', '', 0,
		'{"agent":"agt_n4YOnbJdUAUpKrvLJnZ1Xueo","approval":"","charge":"ch_3GTxqO6sTfziEuhpPFQfbqaf","input_digest":"sha256:6ab30cc3b76ff6b04aef87555a96f994c1c664f12214766","latency_us":120,"mandate":"mdt_22XoUS9gGKI3Bkiuo8WeWPC2","policy_version":"sha256:7493c4d3838875f8","reasons":[],"result":"allow"}',
		now(), '\x6ab30cc3b76ff6b04aef87555a96f994c1c664f12214766a6ab30cc3b76ff6b0', s.stripe, s.next FROM s RETURNING seq;
INSERT INTO charges (id, tenant_id, livemode, status, amount, amount_captured, amount_refunded,
		currency, capture_now, payment_method, card, description, metadata, mandate_id, agent_id, merchant_id, purchase,
		auth_code, failure_code, failure_message, decline_code, attempts, reversal_pending, created_at, updated_at,
		captured_at, canceled_at)
	VALUES ('ch_pgb' || :r::text, :tenant, false, 'pending', 1, 0, 0, 'usd', true, :card,
		'{"brand": "visa", "last4": "4242", "exp_year": 2028, "cvc_check": "pass", "exp_month": 12, "fingerprint": "au_RjvAY0AnNE_Ap"}',
		'printer paper', '{}', :mid, :aid, :merchant, '{"description": "printer paper"}', '', '', '', '', 0, false, now(), now(), NULL, NULL);
WITH s AS (UPDATE audit_stripes SET next = next + 1
		WHERE stripe = (SELECT stripe FROM audit_stripes ORDER BY stripe LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING stripe, next)
INSERT INTO audit_events (id, tenant_id, actor_type, actor_id, ip, action, target, request_id, method, route, status, data, created_at, content_hash,
		stripe, stripe_seq)
	SELECT 'aud_pgbb' || :r::text, :tenant, 'agent', :aid, '127.0.0.1', 'charge.created', 'ch_pgb' || :r::text, 'req_pgb' || :r::text, '', '', 0,
		'{"agent":"agt_n4YOnbJdUAUpKrvLJnZ1Xueo","amount":1,"capture": true,"currency":"usd","mandate":"mdt_22XoUS9gGKI3Bkiuo8WeWPC2","merchant":"acct_SH39MfYqGwQiIyEpcEqDd70o","payment_method":"tok_Zz4mKxec25v6Vx5Ck7vnngRE"}',
		now(), '\x6ab30cc3b76ff6b04aef87555a96f994c1c664f12214766a6ab30cc3b76ff6b0', s.stripe, s.next FROM s RETURNING seq;
COMMIT;

-- 4. The processor's answer: lock the charge, mark it succeeded, settle the
-- hold, the decision's outcome, history, audit entry, event + deliveries.
BEGIN ISOLATION LEVEL READ COMMITTED;
SELECT id, tenant_id, livemode, status, amount, amount_captured, amount_refunded, currency, capture_now,
	payment_method, card, description, metadata, coalesce(mandate_id, ''), coalesce(agent_id, ''), coalesce(merchant_id, ''),
	purchase, auth_code, failure_code, failure_message, decline_code, attempts, reversal_pending,
	created_at, updated_at, captured_at, canceled_at FROM charges WHERE id = 'ch_pgb' || :r::text AND tenant_id = :tenant FOR UPDATE;
UPDATE charges SET status = 'succeeded', amount_captured = 1, amount_refunded = 0, auth_code = 'QwNLJr',
		failure_code = '', failure_message = '', decline_code = '', attempts = 1, reversal_pending = false,
		updated_at = now(), captured_at = now(), canceled_at = NULL
	WHERE id = 'ch_pgb' || :r::text AND tenant_id = :tenant AND status = 'pending';
SELECT charge_id, tenant_id, reservation, held, counted FROM charge_holds
	WHERE charge_id = 'ch_pgb' || :r::text AND tenant_id = :tenant FOR UPDATE;
UPDATE decisions SET outcome = 'succeeded' WHERE tenant_id = :tenant AND charge_id = 'ch_pgb' || :r::text;
INSERT INTO mandate_events (id, tenant_id, mandate_id, type, actor_type, actor_id, data, created_at)
	VALUES ('mev_pgbb' || :r::text, :tenant, :mid, 'charge.succeeded', 'system', '',
		'{"held": 1, "amount": 1, "charge": "ch_3GTxqO6sTfziEuhpPFQfbqaf", "status": "succeeded", "captured": 1, "refunded": 0}', now()) RETURNING seq;
WITH s AS (UPDATE audit_stripes SET next = next + 1
		WHERE stripe = (SELECT stripe FROM audit_stripes ORDER BY stripe LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING stripe, next)
INSERT INTO audit_events (id, tenant_id, actor_type, actor_id, ip, action, target, request_id, method, route, status, data, created_at, content_hash,
		stripe, stripe_seq)
	SELECT 'aud_pgbc' || :r::text, :tenant, 'agent', :aid, '127.0.0.1', 'charge.succeeded', 'ch_pgb' || :r::text, 'req_pgb' || :r::text, '', '', 0,
		'{"amount":1,"attempts":1,"currency":"usd","decline_code":"","failure_code":"","reversal_pending": false,"status":"succeeded"}',
		now(), '\x6ab30cc3b76ff6b04aef87555a96f994c1c664f12214766a6ab30cc3b76ff6b0', s.stripe, s.next FROM s RETURNING seq;
WITH ev AS (
		INSERT INTO events (id, tenant_id, type, data, created_at) VALUES ('evt_pgb' || :r::text, :tenant, 'charge.succeeded',
			'{"object": {"id": "ch_3GTxqO6sTfziEuhpPFQfbqaf", "card": {"brand": "visa", "last4": "4242", "exp_year": 2028, "cvc_check": "pass", "exp_month": 12, "fingerprint": "au_RjvAY0AnNE_Ap"}, "paid": true, "agent": "agt_n4YOnbJdUAUpKrvLJnZ1Xueo", "amount": 1, "status": "succeeded", "object": "charge", "currency": "usd", "captured": true, "livemode": false, "mandate": "mdt_22XoUS9gGKI3Bkiuo8WeWPC2", "merchant": "acct_SH39MfYqGwQiIyEpcEqDd70o", "description": "printer paper", "payment_method": "tok_Zz4mKxec25v6Vx5Ck7vnngRE", "amount_captured": 1, "amount_refunded": 0}}',
			now())
		RETURNING id, tenant_id, type, created_at)
	INSERT INTO webhook_deliveries (id, tenant_id, event_id, endpoint_id, status, next_attempt_at, created_at, updated_at)
	SELECT 'whd_' || replace(gen_random_uuid()::text, '-', ''), ev.tenant_id, ev.id, ep.id, 'pending',
	       ev.created_at, ev.created_at, ev.created_at
	FROM ev JOIN webhook_endpoints ep ON ep.tenant_id = ev.tenant_id AND ep.status = 'enabled'
	     AND (ev.type = ANY (ep.events) OR '*' = ANY (ep.events));
COMMIT;

-- 5. Idempotency: store the response (one autocommit statement).
UPDATE idempotency_keys SET state = 'done', status = 200, header = '{"Content-Type": "application/json"}',
		body = convert_to(repeat('x', 900), 'UTF8'), expires_at = now() + interval '1 day'
	WHERE tenant_id = :tenant AND credential_id = :aid AND key = 'pgb-' || :r::text;

-- 6. The access audit entry of the request (autocommit).
WITH s AS (UPDATE audit_stripes SET next = next + 1
		WHERE stripe = (SELECT stripe FROM audit_stripes ORDER BY stripe LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING stripe, next)
INSERT INTO audit_events (id, tenant_id, actor_type, actor_id, ip, action, target, request_id, method, route, status, data, created_at, content_hash,
		stripe, stripe_seq)
	SELECT 'aud_pgbd' || :r::text, :tenant, 'agent', :aid, '127.0.0.1', 'api.request', '', 'req_pgb' || :r::text, 'POST', '/v1/charges', 200, NULL,
		now(), '\x6ab30cc3b76ff6b04aef87555a96f994c1c664f12214766a6ab30cc3b76ff6b0', s.stripe, s.next FROM s RETURNING seq;
