-- One successful agent charge's SQL, statement for statement and round trip
-- for round trip, as `perfectpay serve` sends it on PostgreSQL for
-- POST /v1/charges with an agent token on a root mandate. Captured from
-- TestAgentChargeCost (server/agentcharges_cost_test.go) with its tracer
-- printing each statement's full text and arguments, as of commit 85dff56
-- "charging: read the card and its key with the claim, six round trips";
-- each audit append since also queues its entry for the sealer
-- (audit_unsealed, migration 0037), as the server's statement does, and
-- the audit entries one transaction queues together are one statement.
-- The server's arguments are pgbench variables here (prepared as
-- parameters with -M prepared) or, for values it computes (times, ids,
-- hashes, JSON), now(), ids built from :r and literals of the same shape
-- and size as the benchmark's charges (with -M prepared pgbench takes
-- every ":name" as a variable, even inside a literal: JSON literals have a
-- space after a colon before a letter, and digests start with a digit).
-- Used by BenchmarkAgentCharges (e2e/bench_test.go):
--   pgbench -n -M prepared -f charge.pgbench.sql -c 16 -j 2 -t N/16 \
--     -D tenant=ten_… -D merchant=acct_… -D card=tok_… -D nm=64 -D velocity=0 -D ab=1
-- (-D velocity=1: the velocity counts are read, as with a velocity limit
-- on; -D ab: the access-audit batch size, see 7.)
-- 6 round trips and 2 commits, each round trip one pipeline
-- (\startpipeline … \endpipeline, which needs -M extended or prepared):
--   1. the load (reads), 2. BEGIN + claim + revocation check + card,
--   3. the reservation, 4. the inserts + COMMIT, 5. BEGIN + the charge
--   FOR UPDATE, 6. the settlement + stored answer + COMMIT.
-- Besides these: one round trip the server does not make — choosing the
-- mandate (the server reads it from the token): the table bench_mandates
-- (n, mandate_id, agent_id, jti) lists the benchmark's real mandates,
-- created through the API; and the access-audit row (7.), which the server
-- group-commits with other requests' rows.
-- Not here: the sealer linking the entries into the chain (a background
-- job: one statement per batch of entries); the agents of a delegated chain (read in 1. and 2. only when
-- the mandate has ancestors; the benchmark's mandates are roots) and the
-- simulated acquirer's own bookkeeping (sim_authorizations), which stands
-- in for an outside processor. Each charge transaction (2.–4.) runs alone,
-- as a node runs one that finds no other charge on its mandate chain
-- waiting; a node runs the charges that queue on one chain (a hot
-- mandate) as one transaction, a savepoint each (charging/group.go).
\set m random(1, :nm)
\set r random(1, 9000000000000000000)
SELECT mandate_id AS mid, agent_id AS aid, jti FROM bench_mandates WHERE n = :m \gset

-- 1. The load, one pipeline: mandate chain, merchant, agent, tenant and
-- its countries, the charge of this Idempotency-Key (none), velocity
-- counts (only when a limit is on; each count stops at its limit + 1000,
-- LIMIT 0 for a limit that is off: as here with the defaults, only the two
-- decline limits on, 20 an hour each).
\startpipeline
WITH RECURSIVE chain (cid, cparent, lvl) AS (
		SELECT id, parent_id, 0 FROM mandates WHERE id = :mid AND tenant_id = :tenant
		UNION ALL
		SELECT m.id, m.parent_id, c.lvl + 1 FROM mandates m JOIN chain c ON m.id = c.cparent
	)
	SELECT id, tenant_id, coalesce(parent_id, ''), depth, payer, agent, description, status, currency,
max_amount_per_charge, budget, coalesce(period, ''), period_budget, max_charges, payment_methods,
allowed_merchants, allowed_categories, blocked_categories, allowed_countries, valid_from, valid_until,
approval_threshold, spent, period_spent, period_start, charge_count, created_at, updated_at, approved_at, revoked_at FROM chain JOIN mandates ON mandates.id = chain.cid
	WHERE tenant_id = :tenant ORDER BY chain.lvl DESC;
SELECT m.id, m.tenant_id, m.display_name, m.mcc, m.country, m.created_at, m.updated_at,
coalesce((SELECT json_agg(json_build_object('domain', d.domain, 'verified_at', d.verified_at,
          'token', d.challenge_token, 'token_expires_at', d.challenge_expires_at, 'method', d.method,
          'checked_at', d.checked_at, 'next_check_at', d.next_check_at, 'failed_checks', d.failed_checks) ORDER BY d.domain)
          FROM merchant_domains d WHERE d.merchant_id = m.id), '[]') FROM merchants m WHERE m.id = :merchant;
SELECT id, tenant_id, name, status, auth_method, coalesce(jwks::text, ''), secret_hash, grant_types, scopes,
audiences, created_at, updated_at, suspended_at, revoked_at, redirect_uris, backchannel_mode, backchannel_endpoint FROM agents WHERE id = :aid;
SELECT t.id, t.name, t.status, t.created_at, c.allowed_countries, c.operator_countries
	FROM tenants t LEFT JOIN tenant_countries c ON c.tenant_id = t.id WHERE t.id = :tenant;
SELECT id, tenant_id, livemode, status, amount, amount_captured, amount_refunded, currency, capture_now,
payment_method, card, description, metadata, coalesce(mandate_id, ''), coalesce(agent_id, ''), coalesce(merchant_id, ''),
purchase, auth_code, failure_code, failure_message, decline_code, attempts, reversal_pending,
created_at, updated_at, captured_at, canceled_at, claim, claim_until, coalesce(idempotency_key, '') FROM charges WHERE tenant_id = :tenant AND idempotency_key = :aid::text || ':' || :mid::text || ':' || 'pgb-' || :r::text;
\if :velocity
SELECT (SELECT count(*) FROM (SELECT 1 FROM decisions WHERE tenant_id = :tenant AND agent_id = :aid AND created_at >= now() - interval '1 hour' AND result = 'allow' LIMIT 0) x), (SELECT count(*) FROM (SELECT 1 FROM decisions WHERE tenant_id = :tenant AND agent_id = :aid AND created_at >= now() - interval '1 hour' AND (result = 'deny' OR outcome = 'failed') LIMIT 1020) x), (SELECT count(*) FROM (SELECT 1 FROM decisions WHERE tenant_id = :tenant AND mandate_id = :mid AND created_at >= now() - interval '1 hour' AND result = 'allow' LIMIT 0) x), (SELECT count(*) FROM (SELECT 1 FROM decisions WHERE tenant_id = :tenant AND mandate_id = :mid AND created_at >= now() - interval '1 hour' AND (result = 'deny' OR outcome = 'failed') LIMIT 1020) x);
\endif
\endpipeline

-- 2. The charge transaction opens, one pipeline: claim the Idempotency-Key
-- (naming this session: pgbench's connection stands in for the node's),
-- the authoritative revocation check, the card token joined with its
-- tenant key.
\startpipeline
BEGIN ISOLATION LEVEL READ COMMITTED;
INSERT INTO idempotency_keys AS k
	(tenant_id, credential_id, key, method, path, request_hash, state, status, header, body, created_at, locked_until, expires_at, owner)
	VALUES (:tenant, :aid::text || ':' || :mid::text, 'pgb-' || :r::text, 'POST', '/v1/charges', '\xbcab5f07843d1a56f2a1e1704bad93cb456ae4de6d8efde7a586937f16efb93a', 'in_progress', 0, '{}', NULL, now(), now() + interval '1 minute', now() + interval '1 day',
		(SELECT a.application_name FROM pg_stat_get_activity(pg_backend_pid()) a WHERE a.application_name = 'pgbench'::text))
	ON CONFLICT (tenant_id, credential_id, key) DO UPDATE SET
		method = EXCLUDED.method, path = EXCLUDED.path, request_hash = EXCLUDED.request_hash,
		state = EXCLUDED.state, status = EXCLUDED.status, header = EXCLUDED.header, body = EXCLUDED.body,
		created_at = EXCLUDED.created_at, locked_until = EXCLUDED.locked_until, expires_at = EXCLUDED.expires_at,
		owner = EXCLUDED.owner
	WHERE (k.state = 'in_progress' AND (k.locked_until <= EXCLUDED.created_at OR (k.owner IS NOT NULL AND NOT EXISTS (
			SELECT 1 FROM pg_stat_activity a WHERE a.application_name = k.owner AND a.datname = current_database()))))
		OR k.expires_at <= EXCLUDED.created_at
	RETURNING true;
SELECT kind FROM (
		SELECT 'tenant' AS kind, 1 AS o FROM tenants WHERE :tenant <> '' AND id = :tenant AND status = 'revoked'
		UNION ALL
		SELECT kind, CASE kind WHEN 'tenant' THEN 1 WHEN 'agent' THEN 2 ELSE 3 END FROM revocations
		WHERE (:tenant <> '' AND kind = 'tenant' AND id = :tenant)
		   OR (:aid <> '' AND kind = 'agent' AND id = :aid)
		   OR (:jti <> '' AND kind = 'token' AND id = :jti)
	) r ORDER BY o LIMIT 1;
SELECT t.id, t.tenant_id, t.tenant_key_id, t.livemode, t.brand, t.last4, t.exp_month,
	t.exp_year, t.fingerprint, t.cvc_check, t.wrapped_dek, t.ciphertext, t.created_at, t.deleted_at,
	k.id, k.tenant_id, k.kek_version, k.wrapped, k.created_at, k.rewrapped_at, k.destroyed_at
	FROM vault_tokens t LEFT JOIN vault_tenant_keys k ON k.id = t.tenant_key_id
	WHERE t.id = :card AND t.tenant_id = :tenant;
\endpipeline

-- 3. The reservation on the mandate chain (root first; one mandate here),
-- alone: its answer decides whether the charge goes on.
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

-- 4. The charge, its audit entry and the decision's (one statement: the
-- server sends the audit entries a transaction queues together as one
-- multi-row insert), the hold, the decision record and its input, the
-- mandate's history, COMMIT: one pipeline.
\startpipeline
INSERT INTO charges (id, tenant_id, livemode, status, amount, amount_captured, amount_refunded,
	currency, capture_now, payment_method, card, description, metadata, mandate_id, agent_id, merchant_id, purchase,
	auth_code, failure_code, failure_message, decline_code, attempts, reversal_pending, created_at, updated_at,
	captured_at, canceled_at, idempotency_key)
	VALUES ('ch_pgb' || :r::text, :tenant, false, 'pending', 1, 0, 0, 'usd', true, :card,
	'{"brand":"visa","last4":"4242","exp_month":12,"exp_year":2027,"fingerprint":"JKh1IVeuSC8No_Ot","cvc_check":"pass"}',
	'printer paper', '{}', :mid, :aid, :merchant, '{"description":"printer paper"}', '', '', '', '', 0, false, now(), now(),
	NULL, NULL, :aid::text || ':' || :mid::text || ':' || 'pgb-' || :r::text);
WITH free AS (
		UPDATE audit_stripes SET next = next + 2
		WHERE stripe = (SELECT stripe FROM audit_stripes ORDER BY stripe LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING stripe, next),
	added AS (
		INSERT INTO audit_stripes (next) SELECT 2 WHERE NOT EXISTS (SELECT 1 FROM free) RETURNING stripe, next),
	s AS (SELECT stripe, next FROM free UNION ALL SELECT stripe, next FROM added),
	e AS (INSERT INTO audit_events
	(id, tenant_id, actor_type, actor_id, ip, action, target, request_id, method, route, status, data, created_at, content_hash,
	 format, ip_salt, ip_digest, stripe, stripe_seq)
	SELECT u.id, u.tenant_id, u.actor_type, u.actor_id, u.ip, u.action, u.target, u.request_id, u.method, u.route,
		u.status, u.data, u.created_at, u.content_hash, u.format, u.ip_salt, u.ip_digest, s.stripe, s.next - 2 + u.ord
	FROM s, unnest(ARRAY['aud_pgba' || :r::text, 'aud_pgbb' || :r::text]::text[],
		ARRAY[:tenant, :tenant]::text[],
		ARRAY['agent', 'agent']::text[],
		ARRAY[:aid, :aid]::text[],
		ARRAY['127.0.0.1', '127.0.0.1']::text[],
		ARRAY['charge.created', 'charge.decision']::text[],
		ARRAY['ch_pgb' || :r::text, 'dec_pgb' || :r::text]::text[],
		ARRAY['req_pgb' || :r::text, 'req_pgb' || :r::text]::text[],
		ARRAY['', '']::text[],
		ARRAY['', '']::text[],
		ARRAY[0, 0]::int[],
		ARRAY['{"agent":"agt_rmCoQYUw9vVBsDJcb80osDEa","amount":1,"capture": true,"currency":"usd","mandate":"mdt_KiELgywe7YwVPsJkS21jSPnd","merchant":"acct_dKjAy3xhBAzolkHi4XBWRjpr","payment_method":"tok_bC73LZGe8jFiw5LgwwySWeeL"}', '{"agent":"agt_rmCoQYUw9vVBsDJcb80osDEa","approval":"","charge":"ch_q7DfYxymakbEISsjLBFeyHAg","input_digest":"sha256:6ab30cc3b76ff6b04aef87555a96f994c1c664f12214766a6ab30cc3b76ff6b0","latency_us":982,"mandate":"mdt_KiELgywe7YwVPsJkS21jSPnd","policy_version":"sha256:7493c4d3838875f8","reasons":[],"result":"allow"}']::text[],
		ARRAY[now(), now()]::timestamptz[],
		ARRAY['\x25025d5d305c6034e62ca3f82bc0d59f399f95445c9d1fc8a03298ea5b003a28', '\x0505df98c42a660193eee3552ed7bc965e14b37ddd3f433595b685198bd7cbe0']::bytea[],
		ARRAY[1, 1]::int[],
		ARRAY['\xfca04ba21334b2087f79c63dedd82ae4', '\xae33bf44d5f35c9de23b3419f33635e3']::bytea[],
		ARRAY['\x2d88b09d6960f780e2b0d193fab6c78875c09f07cb51b30b75aeb5c92fd2e51b', '\xb5834895a45c23b1806723670954c736b42415e29a1fc006e5e9972f36f372a4']::bytea[]) WITH ORDINALITY
	AS u(id, tenant_id, actor_type, actor_id, ip, action, target, request_id, method, route, status, data, created_at, content_hash, format, ip_salt, ip_digest, ord)
	ORDER BY u.ord
	RETURNING seq, stripe, stripe_seq),
	u AS (INSERT INTO audit_unsealed (seq) SELECT seq FROM e)
	SELECT seq, stripe, stripe_seq FROM e ORDER BY stripe_seq;
INSERT INTO charge_holds (charge_id, tenant_id, reservation, held, counted) VALUES ('ch_pgb' || :r::text, :tenant,
	'{"chain":["mdt_KiELgywe7YwVPsJkS21jSPnd"],"amount":1,"at":"2026-12-01T21:13:27.952563Z"}', 1, true);
INSERT INTO decisions (id, tenant_id, mandate_id, agent_id, charge_id, approval_id, result,
	reasons, policy_version, input_digest, latency_us, outcome, created_at)
	VALUES ('dec_pgb' || :r::text, :tenant, :mid, :aid, 'ch_pgb' || :r::text, NULL, 'allow', '[]', 'sha256:7493c4d3838875f8',
	'sha256:6ab30cc3b76ff6b04aef87555a96f994c1c664f12214766a6ab30cc3b76ff6b0', 982, '', now());
INSERT INTO decision_inputs (decision_id, tenant_id, input) VALUES ('dec_pgb' || :r::text, :tenant,
	'{"agent":{"client_id":"agt_rmCoQYUw9vVBsDJcb80osDEa","status":"active"},"ancestors":[],"charge":{"amount":1,"context":{"description":"printer paper"},"currency":"USD","merchant":{"country":"US","domains":[],"id":"acct_dKjAy3xhBAzolkHi4XBWRjpr","mcc":"5942","name":"Acme Books"},"payment_method":"tok_bC73LZGe8jFiw5LgwwySWeeL"},"currencies":{"USD":2},"limits":{"velocity":{"agent_charges_per_hour":0,"agent_declines_per_hour":0,"mandate_charges_per_hour":0,"mandate_declines_per_hour":0}},"mandate":{"agent":"agt_rmCoQYUw9vVBsDJcb80osDEa","allowed_merchants":["acct_dKjAy3xhBAzolkHi4XBWRjpr"],"budget":90000000,"charge_count":16,"currency":"USD","depth":0,"id":"mdt_KiELgywe7YwVPsJkS21jSPnd","payer":"ten_2qAifTOAxrBcjBSKqWXlg2Hu","payment_methods":["tok_bC73LZGe8jFiw5LgwwySWeeL","tok_Zz4mKxec25v6Vx5Ck7vnngRE"],"spent":16,"status":"active"},"now":"2026-12-01T21:13:27.952563Z","tenant":{"id":"ten_2qAifTOAxrBcjBSKqWXlg2Hu","status":"active"},"token":{"authorization_details":[{"allowed_merchants":["acct_dKjAy3xhBAzolkHi4XBWRjpr"],"budget":90000000,"currency":"usd","mandate_id":"mdt_KiELgywe7YwVPsJkS21jSPnd","payment_methods":["tok_bC73LZGe8jFiw5LgwwySWeeL","tok_Zz4mKxec25v6Vx5Ck7vnngRE"],"type":"payment_mandate"}],"client_id":"agt_rmCoQYUw9vVBsDJcb80osDEa","sub":"agt_rmCoQYUw9vVBsDJcb80osDEa"},"velocity":{"agent":{"charges":0,"declines":0},"mandate":{"charges":0,"declines":0}}}');
INSERT INTO mandate_events (id, tenant_id, mandate_id, type, actor_type, actor_id, data, created_at)
	VALUES ('mev_pgba' || :r::text, :tenant, :mid, 'decision.allow', 'agent', :aid,
	'{"id":"dec_uMbgXi5jXG15k1AbzaxSMd5v","mandate":"mdt_KiELgywe7YwVPsJkS21jSPnd","agent":"agt_rmCoQYUw9vVBsDJcb80osDEa","charge":"ch_q7DfYxymakbEISsjLBFeyHAg","result":"allow","reasons":[],"policy_version":"sha256:7493c4d3838875f8","input_digest":"sha256:6ab30cc3b76ff6b04aef87555a96f994c1c664f12214766a6ab30cc3b76ff6b0","latency_us":982,"created":"2026-12-01T21:13:27.952563Z"}',
	now()) RETURNING seq;
COMMIT;
\endpipeline

-- 5. The processor's answer: BEGIN and lock the charge, one pipeline.
\startpipeline
BEGIN ISOLATION LEVEL READ COMMITTED;
SELECT id, tenant_id, livemode, status, amount, amount_captured, amount_refunded, currency, capture_now,
payment_method, card, description, metadata, coalesce(mandate_id, ''), coalesce(agent_id, ''), coalesce(merchant_id, ''),
purchase, auth_code, failure_code, failure_message, decline_code, attempts, reversal_pending,
created_at, updated_at, captured_at, canceled_at, claim, claim_until, coalesce(idempotency_key, '') FROM charges WHERE id = 'ch_pgb' || :r::text AND tenant_id IS NOT DISTINCT FROM :tenant FOR UPDATE;
\endpipeline

-- 6. Settle, one pipeline: mark the charge succeeded, its audit entry, the
-- event and its webhook deliveries, the decision's outcome, the mandate's
-- history, the stored idempotent answer, COMMIT.
\startpipeline
UPDATE charges SET status = 'succeeded', amount_captured = 1, amount_refunded = 0, auth_code = 'D8xlGn',
	failure_code = '', failure_message = '', decline_code = '', attempts = 1, reversal_pending = false,
	updated_at = now(), captured_at = now(), canceled_at = NULL, claim = '', claim_until = NULL
	WHERE id = 'ch_pgb' || :r::text AND tenant_id IS NOT DISTINCT FROM :tenant AND status = 'pending';
WITH free AS (
		UPDATE audit_stripes SET next = next + 1
		WHERE stripe = (SELECT stripe FROM audit_stripes ORDER BY stripe LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING stripe, next),
	added AS (
		INSERT INTO audit_stripes (next) SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM free) RETURNING stripe, next),
	s AS (SELECT stripe, next FROM free UNION ALL SELECT stripe, next FROM added),
	e AS (INSERT INTO audit_events
	(id, tenant_id, actor_type, actor_id, ip, action, target, request_id, method, route, status, data, created_at, content_hash,
	 format, ip_salt, ip_digest, stripe, stripe_seq)
	SELECT 'aud_pgbc' || :r::text, :tenant, 'agent', :aid, '127.0.0.1', 'charge.succeeded', 'ch_pgb' || :r::text, 'req_pgb' || :r::text, '', '', 0,
	'{"amount":1,"attempts":1,"currency":"usd","decline_code":"","failure_code":"","reversal_pending": false,"status":"succeeded"}',
	now(), '\xf17b31db24300c6039d3518dbf1638e658239db4a0203cd532263b8a2cec8efa', 1, '\xacfe83503b94607080a14188a3e7b75b', '\x47330fa43c175638cefbc06800b2ac4dbe04dd7a4ec36514e5cdb015962a3412', s.stripe, s.next FROM s
	RETURNING seq, stripe, stripe_seq),
	u AS (INSERT INTO audit_unsealed (seq) SELECT seq FROM e)
	SELECT seq, stripe, stripe_seq FROM e;
WITH ev AS (
	INSERT INTO events (id, tenant_id, type, data, created_at) VALUES ('evt_pgb' || :r::text, :tenant, 'charge.succeeded',
	'{"object":{"id":"ch_q7DfYxymakbEISsjLBFeyHAg","object":"charge","livemode": false,"status":"succeeded","amount":1,"amount_captured":1,"amount_refunded":0,"currency":"usd","captured": true,"paid": true,"refunded": false,"payment_method":"tok_bC73LZGe8jFiw5LgwwySWeeL","card":{"brand":"visa","last4":"4242","exp_month":12,"exp_year":2027,"fingerprint":"JKh1IVeuSC8No_Ot","cvc_check":"pass"},"description":"printer paper","metadata":{},"mandate":"mdt_KiELgywe7YwVPsJkS21jSPnd","agent":"agt_rmCoQYUw9vVBsDJcb80osDEa","merchant":"acct_dKjAy3xhBAzolkHi4XBWRjpr","purchase":{"description":"printer paper"},"authorization_code":"D8xlGn","failure_code":"","failure_message":"","decline_code":"","created":"2026-12-01T21:13:27.957143Z","captured_at":"2026-12-01T21:13:27.966468Z","canceled_at": null}}',
	now())
	RETURNING id, tenant_id, type, created_at)
INSERT INTO webhook_deliveries (id, tenant_id, event_id, endpoint_id, status, next_attempt_at, created_at, updated_at)
SELECT 'whd_' || replace(gen_random_uuid()::text, '-', ''), ev.tenant_id, ev.id, ep.id, 'pending',
       ev.created_at, ev.created_at, ev.created_at
FROM ev JOIN webhook_endpoints ep ON ep.tenant_id = ev.tenant_id AND ep.status = 'enabled'
     AND (ev.type = ANY (ep.events) OR '*' = ANY (ep.events));
UPDATE decisions SET outcome = 'succeeded' WHERE tenant_id = :tenant AND charge_id = 'ch_pgb' || :r::text;
INSERT INTO mandate_events (id, tenant_id, mandate_id, type, actor_type, actor_id, data, created_at)
	VALUES ('mev_pgbb' || :r::text, :tenant, :mid, 'charge.succeeded', 'system', '',
	'{"amount":1,"captured":1,"charge":"ch_q7DfYxymakbEISsjLBFeyHAg","held":1,"refunded":0,"status":"succeeded"}', now()) RETURNING seq;
UPDATE idempotency_keys SET state = 'done', status = 200, header = '{"Content-Type": "application/json"}',
	body = convert_to('{"id":"ch_q7DfYxymakbEISsjLBFeyHAg","object":"charge","livemode": false,"status":"succeeded","amount":1,"amount_captured":1,"amount_refunded":0,"currency":"usd","captured": true,"paid": true,"refunded": false,"payment_method":"tok_bC73LZGe8jFiw5LgwwySWeeL","card":{"brand":"visa","last4":"4242","exp_month":12,"exp_year":2027,"fingerprint":"JKh1IVeuSC8No_Ot","cvc_check":"pass"},"description":"printer paper","metadata":{},"mandate":"mdt_KiELgywe7YwVPsJkS21jSPnd","agent":"agt_rmCoQYUw9vVBsDJcb80osDEa","merchant":"acct_dKjAy3xhBAzolkHi4XBWRjpr","purchase":{"description":"printer paper"},"authorization_code":"D8xlGn","failure_code":"","failure_message":"","decline_code":"","created":"2026-12-01T21:13:27.957143Z","captured_at":"2026-12-01T21:13:27.966468Z","canceled_at": null,"decision":{"id":"dec_uMbgXi5jXG15k1AbzaxSMd5v","policy_version":"sha256:7493c4d3838875f8","reasons":[],"result":"allow"}}' || chr(10), 'UTF8'),
	expires_at = now() + interval '1 day'
	WHERE tenant_id = :tenant AND credential_id = :aid::text || ':' || :mid::text AND key = 'pgb-' || :r::text AND state = 'in_progress' AND request_hash = '\xbcab5f07843d1a56f2a1e1704bad93cb456ae4de6d8efde7a586937f16efb93a';
COMMIT;
\endpipeline

-- 7. The access-audit row of the request. The server writes it through a
-- group commit shared by the node's requests: while one batch commits,
-- the rows that arrive wait and go together in the next, as one pipeline
-- BEGIN, one multi-row INSERT of the batch's rows, COMMIT. A pgbench
-- client runs one charge at a time and shares nothing with the others, so
-- it batches its own rows: with probability 1/:ab a charge writes :ab rows
-- (1 to 8) in that one pipeline (from a series here, where the server
-- unnests arrays of the rows' values), so each charge costs one row and
-- 1/:ab of a round trip and a commit, as in a server batch of :ab rows. BenchmarkAgentCharges sets
-- -D ab to the mean batch the server formed in the HTTP run before it.
\set batch random(1, :ab)
\if :batch = 1
\startpipeline
BEGIN ISOLATION LEVEL READ COMMITTED;
WITH free AS (
		UPDATE audit_stripes SET next = next + :ab
		WHERE stripe = (SELECT stripe FROM audit_stripes ORDER BY stripe LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING stripe, next),
	added AS (
		INSERT INTO audit_stripes (next) SELECT :ab WHERE NOT EXISTS (SELECT 1 FROM free) RETURNING stripe, next),
	s AS (SELECT stripe, next FROM free UNION ALL SELECT stripe, next FROM added),
	e AS (INSERT INTO audit_events
	(id, tenant_id, actor_type, actor_id, ip, action, target, request_id, method, route, status, data, created_at, content_hash,
	 format, ip_salt, ip_digest, stripe, stripe_seq)
	SELECT 'aud_pgbd' || g::text || :r::text, :tenant, 'agent', :aid, '127.0.0.1', 'api.request', '', 'req_pgb' || g::text || :r::text, 'POST', '/v1/charges', 200,
	NULL, now(), '\xe64d1e82a0eedc928f18397bc5a4be9df214bd4acc233191af64fe0d5eea1f6e', 1, '\x5c6f011a4675054a6e4c49fd04a9820a', '\x42a16d616647d6bc44d061092d139bb8bb94a40644936c407ff3e2bc248f5fb1', s.stripe, s.next - :ab + g
	FROM s, generate_series(1, :ab) AS g
	ORDER BY g
	RETURNING seq, stripe, stripe_seq),
	u AS (INSERT INTO audit_unsealed (seq) SELECT seq FROM e)
	SELECT seq, stripe, stripe_seq FROM e ORDER BY stripe_seq;
COMMIT;
\endpipeline
\endif
