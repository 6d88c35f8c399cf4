# The charge policy: may this agent make this charge on this mandate now?
#
# The decision is data.perfectpay.charge.decision:
#   {"result": "allow" | "deny" | "challenge", "reasons": [{"code", "message"}]}
# Any deny reason denies; otherwise any challenge reason asks a person to
# approve; otherwise the charge is allowed. Messages state the numbers, with
# amounts formatted by their currency's ISO 4217 exponent (input.currencies).
#
# Every rule applies to the mandate and to each of its ancestors (the chain):
# a sub-delegated mandate can never do more than any mandate above it.
# The merchant facts (id, name, mcc, country, domains) come from the
# merchant's registered profile; the purchase context the agent sent
# (input.charge.context) is for people and no rule reads it.
package perfectpay.charge

# The mandate and its ancestors, root first. The mandate is read first:
# on an input that is not an object it is undefined, and object.get is
# never asked to read a non-object (that is an error, not a deny).
chain := array.concat(object.get(input, "ancestors", []), [m]) if {
	m := input.mandate
}

# Rules read input.charge directly (a rule-level alias is a virtual document,
# and every lookup of one costs more than the input ref).

default decision := {"result": "deny", "reasons": [{"code": "policy_error", "message": "the policy reached no decision"}]}

decision := {"result": "deny", "reasons": sort_reasons(deny)} if {
	count(deny) > 0
} else := {"result": "challenge", "reasons": sort_reasons(challenge)} if {
	count(challenge) > 0
} else := {"result": "allow", "reasons": []}

sort_reasons(rs) := [r | some k in sort([r.code | some r in rs]); some r in rs; r.code == k]

# ---- Money formatting -------------------------------------------------------

pow10 := [1, 10, 100, 1000, 10000]

# money(6000, "USD") = "60.00 USD"; money(500, "JPY") = "500 JPY".
money(amount, cur) := sprintf("%d %s", [amount, cur]) if {
	is_number(amount)
	input.currencies[cur] == 0
}

money(amount, cur) := s if {
	is_number(amount)
	exp := input.currencies[cur]
	exp > 0
	minor := amount % pow10[exp]
	major := (amount - minor) / pow10[exp]
	s := sprintf(sprintf("%%d.%%0%dd %%s", [exp]), [major, minor, cur])
}

# A currency without a known exponent still yields a message (in minor
# units), so no rule is skipped for want of one.
money(amount, cur) := sprintf("%d %s minor units", [amount, cur]) if {
	is_number(amount)
	not input.currencies[cur]
}

# " of ancestor mandate mdt_…" for limits set above the charged mandate.
whose(m) := "" if {
	m.id == input.mandate.id
} else := sprintf(" of ancestor mandate %s", [m.id])

# ---- Who is charging ---------------------------------------------------------

# Fail closed: a rule can only fire on fields that exist, so a charge is
# denied unless every field the rules read is present and well typed.
# (Checked in one rule, on direct input refs: this runs on every decision,
# and each extra rule, virtual document or function call costs time.)
deny contains {"code": "invalid_input", "message": "the decision input is incomplete or malformed"} if {
	not input_complete
}

input_complete if {
	is_string(input.now)
	is_number(input.charge.amount)
	is_string(input.charge.currency)
	is_string(input.charge.payment_method)
	is_string(input.charge.merchant.id)
	is_string(input.charge.merchant.name)
	is_string(input.charge.merchant.mcc)
	is_string(input.charge.merchant.country)
	is_array(input.charge.merchant.domains)
	is_string(input.token.client_id)
	is_array(input.token.authorization_details)
	is_string(input.agent.status)
	is_string(input.tenant.status)
	is_object(input.mandate)

	# Every mandate of the chain has the fields the rules read (the Go
	# input builder always writes them with their types).
	every m in chain {
		_ = m.id
		_ = m.status
		_ = m.agent
		_ = m.currency
		_ = m.budget
		_ = m.spent
		_ = m.charge_count
		_ = m.payment_methods
	}
}

deny contains {"code": "tenant_inactive", "message": msg} if {
	input.tenant.status != "active"
	msg := sprintf("account %s is %s", [input.tenant.id, input.tenant.status])
}

deny contains {"code": "agent_inactive", "message": msg} if {
	input.agent.status != "active"
	msg := sprintf("agent %s is %s", [input.agent.client_id, input.agent.status])
}

deny contains {"code": "agent_mismatch", "message": msg} if {
	input.token.client_id != input.mandate.agent
	msg := sprintf("the token belongs to agent %s, but mandate %s names agent %s", [input.token.client_id, input.mandate.id, input.mandate.agent])
}

deny contains {"code": "token_mandate_mismatch", "message": msg} if {
	not token_grants_mandate
	msg := sprintf("the token does not grant mandate %s", [input.mandate.id])
}

token_grants_mandate if {
	some d in input.token.authorization_details
	d.type == "payment_mandate"
	d.mandate_id == input.mandate.id
}

# ---- Mandate state and window --------------------------------------------------

deny contains {"code": "mandate_inactive", "message": msg} if {
	some m in chain
	m.status != "active"
	msg := sprintf("mandate %s is %s", [m.id, m.status])
}

now_ns := time.parse_rfc3339_ns(input.now)

deny contains {"code": "mandate_not_yet_valid", "message": msg} if {
	some m in chain
	now_ns < time.parse_rfc3339_ns(m.valid_from)
	msg := sprintf("mandate %s is valid from %s", [m.id, m.valid_from])
}

deny contains {"code": "mandate_expired", "message": msg} if {
	some m in chain
	now_ns >= time.parse_rfc3339_ns(m.valid_until)
	msg := sprintf("mandate %s expired at %s", [m.id, m.valid_until])
}

# ---- Amounts -------------------------------------------------------------------

deny contains {"code": "invalid_amount", "message": msg} if {
	input.charge.amount <= 0
	msg := sprintf("charge amount %d must be positive", [input.charge.amount])
}

deny contains {"code": "currency_mismatch", "message": msg} if {
	some m in chain
	input.charge.currency != m.currency
	msg := sprintf("charge currency %s differs from the currency %s%s", [input.charge.currency, m.currency, whose(m)])
}

deny contains {"code": "per_charge_cap_exceeded", "message": msg} if {
	some m in chain
	input.charge.amount > m.max_amount_per_charge
	msg := sprintf("charge %s exceeds the per-charge cap%s of %s", [
		money(input.charge.amount, m.currency), whose(m), money(m.max_amount_per_charge, m.currency),
	])
}

deny contains {"code": "budget_exceeded", "message": msg} if {
	some m in chain
	input.charge.amount > m.budget - m.spent
	msg := sprintf("charge %s exceeds the remaining budget%s of %s (%s of %s spent)", [
		money(input.charge.amount, m.currency), whose(m), money(m.budget - m.spent, m.currency),
		money(m.spent, m.currency), money(m.budget, m.currency),
	])
}

# period_spent is the spending of the current period (the caller rolls it
# over at the period boundary).
deny contains {"code": "period_budget_exceeded", "message": msg} if {
	some m in chain
	input.charge.amount > m.period_budget - m.period_spent
	msg := sprintf("charge %s exceeds the remaining %s budget%s of %s (%s of %s spent this %s)", [
		money(input.charge.amount, m.currency), m.period, whose(m), money(m.period_budget - m.period_spent, m.currency),
		money(m.period_spent, m.currency), money(m.period_budget, m.currency), m.period,
	])
}

deny contains {"code": "max_charges_reached", "message": msg} if {
	some m in chain
	m.charge_count >= m.max_charges
	msg := sprintf("mandate %s has made %d of its %d charges", [m.id, m.charge_count, m.max_charges])
}

# ---- What is bought, where -----------------------------------------------------

deny contains {"code": "payment_method_not_allowed", "message": msg} if {
	some m in chain
	not input.charge.payment_method in m.payment_methods
	msg := sprintf("card %s is not one mandate %s may charge", [input.charge.payment_method, m.id])
}

merchant_allowed(m) if input.charge.merchant.id in m.allowed_merchants

merchant_allowed(m) if {
	some d in input.charge.merchant.domains
	d in m.allowed_merchants
}

deny contains {"code": "merchant_not_allowed", "message": msg} if {
	some m in chain
	count(m.allowed_merchants) > 0
	not merchant_allowed(m)
	msg := sprintf("merchant %s (%s) is not among the allowed merchants%s: %s", [
		input.charge.merchant.name, input.charge.merchant.id, whose(m), concat(", ", m.allowed_merchants),
	])
}

deny contains {"code": "category_not_allowed", "message": msg} if {
	some m in chain
	count(m.allowed_categories) > 0
	not input.charge.merchant.mcc in m.allowed_categories
	msg := sprintf("merchant category %s of %s is not among the allowed categories%s: %s", [
		input.charge.merchant.mcc, input.charge.merchant.name, whose(m), concat(", ", m.allowed_categories),
	])
}

deny contains {"code": "category_blocked", "message": msg} if {
	some m in chain
	input.charge.merchant.mcc in m.blocked_categories
	msg := sprintf("merchant category %s of %s is blocked%s", [input.charge.merchant.mcc, input.charge.merchant.name, whose(m)])
}

deny contains {"code": "country_not_allowed", "message": msg} if {
	some m in chain
	count(m.allowed_countries) > 0
	not input.charge.merchant.country in m.allowed_countries
	msg := sprintf("merchant country %s of %s is not among the allowed countries%s: %s", [
		input.charge.merchant.country, input.charge.merchant.name, whose(m), concat(", ", m.allowed_countries),
	])
}

# The account's own list of countries it may pay in (absent or empty:
# unrestricted). Inputs recorded before the list existed have no such
# field, so their decisions replay unchanged.
deny contains {"code": "tenant_country_not_allowed", "message": msg} if {
	allowed := input.tenant.allowed_countries
	is_array(allowed)
	count(allowed) > 0
	not input.charge.merchant.country in allowed
	msg := sprintf("merchant country %s is not among the countries this account may pay in: %s", [
		input.charge.merchant.country, concat(", ", allowed),
	])
}

# A list that is not an array of codes fails closed.
deny contains {"code": "invalid_input", "message": "the decision input is incomplete or malformed"} if {
	allowed := input.tenant.allowed_countries
	not is_array(allowed)
}

# ---- Velocity (the last hour) --------------------------------------------------

velocity_message(who, name, n, what, limit) := sprintf("%s %s had %d %s in the last hour; the limit is %d per hour", [who, name, n, what, limit])

# Each velocity rule compares the count first: under the limit (the usual
# case) the rule stops after one comparison.
deny contains {"code": "velocity_agent_charges", "message": msg} if {
	limit := input.limits.velocity.agent_charges_per_hour
	input.velocity.agent.charges >= limit
	limit > 0
	msg := velocity_message("agent", input.agent.client_id, input.velocity.agent.charges, "charges", limit)
}

deny contains {"code": "velocity_agent_declines", "message": msg} if {
	limit := input.limits.velocity.agent_declines_per_hour
	input.velocity.agent.declines >= limit
	limit > 0
	msg := velocity_message("agent", input.agent.client_id, input.velocity.agent.declines, "declines", limit)
}

deny contains {"code": "velocity_mandate_charges", "message": msg} if {
	limit := input.limits.velocity.mandate_charges_per_hour
	input.velocity.mandate.charges >= limit
	limit > 0
	msg := velocity_message("mandate", input.mandate.id, input.velocity.mandate.charges, "charges", limit)
}

deny contains {"code": "velocity_mandate_declines", "message": msg} if {
	limit := input.limits.velocity.mandate_declines_per_hour
	input.velocity.mandate.declines >= limit
	limit > 0
	msg := velocity_message("mandate", input.mandate.id, input.velocity.mandate.declines, "declines", limit)
}

# ---- Step-up approval ----------------------------------------------------------

# An approval covers this exact charge: same mandate, amount, currency,
# card and merchant, still valid.
approval_matches if {
	a := input.approval
	a.mandate_id == input.mandate.id
	a.amount == input.charge.amount
	a.currency == input.charge.currency
	a.payment_method == input.charge.payment_method
	a.merchant == input.charge.merchant.id
	now_ns < time.parse_rfc3339_ns(a.expires_at)
}

approved if {
	input.approval.status == "approved"
	approval_matches
}

challenge contains {"code": "approval_required", "message": msg} if {
	some m in chain
	input.charge.amount > m.approval_threshold
	not approved
	msg := sprintf("charge %s is above the approval threshold%s of %s: a person must approve it", [
		money(input.charge.amount, m.currency), whose(m), money(m.approval_threshold, m.currency),
	])
}

deny contains {"code": "approval_denied", "message": msg} if {
	input.approval.status == "denied"
	msg := sprintf("approval %s was denied", [input.approval.id])
}

deny contains {"code": "approval_invalid", "message": msg} if {
	input.approval.status == "approved"
	not approval_matches
	msg := sprintf("approval %s does not cover this charge or has expired", [input.approval.id])
}

# ---- Fraud signals (input.fraud, present when the fraud defences run) ----------

# They only ever deny or ask a person to approve; a matching approved
# approval answers a challenge as it does the approval threshold. Each rule
# first names input.fraud on its own: OPA's rule index then skips them all
# in one lookup when the fraud defences are off.

fraud_scope_words := {"agent": "by this agent", "mandate": "on this mandate", "card": "on this card", "merchant": "at this merchant"}

fraud_window_words := {"hour": "in the last hour", "day": "in the last 24 hours"}

# input.fraud.velocity is "scope/window" → {count, declines, amount}, and
# input.fraud.limits are by metric (count, amount), each limit naming its
# window's key (stat): a limit finds its window in one lookup, and a limit
# whose window has no totals never fires.
#
# [action, code, message] of every velocity limit reached. A count limit
# is reached when the charges already made in the window reach it (this
# charge would pass it); an amount limit when this charge would take the
# window's sum past it.
fraud_velocity contains [l.action, code, msg] if {
	input.fraud
	some l in input.fraud.limits.count
	input.fraud.velocity[l.stat].count >= l.limit
	code := sprintf("velocity_%s_charges_%s", [l.scope, l.window])
	msg := sprintf("%d charges %s %s, limit %d", [input.fraud.velocity[l.stat].count, fraud_scope_words[l.scope], fraud_window_words[l.window], l.limit])
}

fraud_velocity contains [l.action, code, msg] if {
	input.fraud
	some l in input.fraud.limits.amount
	v := input.fraud.velocity[l.stat]
	total := v.amount + input.charge.amount
	total > l.limit
	cur := input.charge.currency
	code := sprintf("velocity_%s_amount_%s", [l.scope, l.window])
	msg := sprintf("%s charged %s %s, %s with this charge, limit %s", [
		money(v.amount, cur), fraud_scope_words[l.scope], fraud_window_words[l.window], money(total, cur), money(l.limit, cur),
	])
}

deny contains {"code": code, "message": msg} if {
	input.fraud
	some [action, code, msg] in fraud_velocity
	action == "deny"
}

challenge contains {"code": code, "message": msg} if {
	input.fraud
	some [action, code, msg] in fraud_velocity
	action == "challenge"
	not approved
}

# An agent flagged as anomalous steps up on every charge until a person
# clears the flag.
challenge contains {"code": "agent_anomaly", "message": input.fraud.anomaly.message} if {
	input.fraud
	is_string(input.fraud.anomaly.message)
	not approved
}

deny contains {"code": "screener_rejected", "message": msg} if {
	s := input.fraud.screener
	s.decision == "reject"
	msg := sprintf("fraud screener %s rejected the charge (score %d)", [s.screener, s.score])
}

challenge contains {"code": "screener_review", "message": msg} if {
	s := input.fraud.screener
	s.decision == "review"
	not approved
	msg := sprintf("fraud screener %s asks for a review (score %d): a person must approve it", [s.screener, s.score])
}

deny contains {"code": "screener_unavailable", "message": msg} if {
	s := input.fraud.screener
	s.decision == "unavailable"
	s.fail_closed == true
	msg := sprintf("fraud screener %s did not answer in time and this account fails closed", [s.screener])
}

# The agent's own risk signals can ask for review or block; never allow.
deny contains {"code": "agent_risk_signal", "message": msg} if {
	input.fraud
	some r in input.fraud.risk_signals
	r.action == "block"
	msg := sprintf("the agent's own risk signal %s (score %v) says block", [r.type, r.score])
}

challenge contains {"code": "agent_risk_signal_review", "message": msg} if {
	input.fraud
	some r in input.fraud.risk_signals
	r.action == "review"
	not approved
	msg := sprintf("the agent's own risk signal %s (score %v) asks for a review: a person must approve it", [r.type, r.score])
}
