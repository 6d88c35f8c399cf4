# Table-driven tests of the charge policy: every rule and every reason code.
# Each case patches the allowed base input (RFC 6902 JSON patch) and states
# the expected result, the reason codes, and for some the exact messages.
package perfectpay.charge_test

import data.perfectpay.charge

parent := {
	"id": "mdt_parent", "status": "active", "agent": "agt_a", "payer": "cus_1", "depth": 0,
	"currency": "USD", "budget": 10000, "payment_methods": ["tok_mc", "tok_visa"],
	"spent": 0, "charge_count": 0,
}

child := {
	"id": "mdt_child", "parent_id": "mdt_parent", "status": "active", "agent": "agt_b", "payer": "cus_1", "depth": 1,
	"currency": "USD", "budget": 8000, "max_amount_per_charge": 5000, "payment_methods": ["tok_visa"],
	"valid_from": "2026-06-10T11:00:00Z", "valid_until": "2026-06-10T13:00:00Z",
	"spent": 0, "charge_count": 0,
}

base := {
	"now": "2026-06-10T12:00:00Z",
	"charge": {
		"amount": 2000, "currency": "USD", "payment_method": "tok_visa",
		"merchant": {"id": "acct_books", "name": "Acme Books", "mcc": "5942", "country": "US", "domains": ["books.example.com"]},
		"context": {"description": "a novel"},
	},
	"token": {
		"sub": "cus_1", "client_id": "agt_b", "act": {"sub": "agt_b", "act": {"sub": "agt_a"}},
		"authorization_details": [{"type": "payment_mandate", "mandate_id": "mdt_child"}],
	},
	"mandate": child,
	"ancestors": [parent],
	"agent": {"client_id": "agt_b", "status": "active"},
	"tenant": {"id": "ten_1", "status": "active"},
	"velocity": {"agent": {"charges": 0, "declines": 0}, "mandate": {"charges": 0, "declines": 0}},
	"limits": {"velocity": {
		"agent_charges_per_hour": 60, "agent_declines_per_hour": 10,
		"mandate_charges_per_hour": 60, "mandate_declines_per_hour": 10,
	}},
	"currencies": {"USD": 2, "EUR": 2, "JPY": 0, "KWD": 3},
}

approval := {
	"id": "apr_1", "status": "approved", "mandate_id": "mdt_child", "amount": 2000, "currency": "USD",
	"payment_method": "tok_visa", "merchant": "acct_books", "expires_at": "2026-06-10T12:05:00Z",
}

threshold := {"op": "add", "path": "/mandate/approval_threshold", "value": 1000}

cases := [
	{"name": "allowed", "patch": [], "result": "allow", "codes": []},
	{
		"name": "the purchase context decides nothing",
		"patch": [{"op": "replace", "path": "/charge/context", "value": {"mcc": "7995", "merchant": "acct_evil", "country": "KP", "amount": 1}}],
		"result": "allow", "codes": [],
	},
	# Who is charging.
	{"name": "tenant revoked", "patch": [{"op": "replace", "path": "/tenant/status", "value": "revoked"}], "result": "deny", "codes": ["tenant_inactive"], "messages": ["account ten_1 is revoked"]},
	{"name": "agent revoked", "patch": [{"op": "replace", "path": "/agent/status", "value": "revoked"}], "result": "deny", "codes": ["agent_inactive"], "messages": ["agent agt_b is revoked"]},
	{
		"name": "token of another agent",
		"patch": [{"op": "replace", "path": "/token/client_id", "value": "agt_x"}],
		"result": "deny", "codes": ["agent_mismatch"],
		"messages": ["the token belongs to agent agt_x, but mandate mdt_child names agent agt_b"],
	},
	{
		"name": "token for another mandate",
		"patch": [{"op": "replace", "path": "/token/authorization_details/0/mandate_id", "value": "mdt_other"}],
		"result": "deny", "codes": ["token_mandate_mismatch"], "messages": ["the token does not grant mandate mdt_child"],
	},
	{"name": "input without amount", "patch": [{"op": "remove", "path": "/charge/amount"}], "result": "deny", "codes": ["invalid_input"]},
	{"name": "input without currency", "patch": [{"op": "remove", "path": "/charge/currency"}], "result": "deny", "codes": ["invalid_input"]},
	{"name": "input without mandate", "patch": [{"op": "remove", "path": "/mandate"}], "result": "deny", "codes": ["invalid_input"]},
	{"name": "input without merchant country", "patch": [{"op": "remove", "path": "/charge/merchant/country"}], "result": "deny", "codes": ["invalid_input"]},
	{"name": "ancestor without budget", "patch": [{"op": "remove", "path": "/ancestors/0/budget"}], "result": "deny", "codes": ["invalid_input"]},
	{"name": "amount as a string", "patch": [{"op": "replace", "path": "/charge/amount", "value": "2000"}], "result": "deny", "codes": ["invalid_input"]},
	# Mandate state and window.
	{"name": "mandate suspended", "patch": [{"op": "replace", "path": "/mandate/status", "value": "suspended"}], "result": "deny", "codes": ["mandate_inactive"], "messages": ["mandate mdt_child is suspended"]},
	{"name": "ancestor revoked", "patch": [{"op": "replace", "path": "/ancestors/0/status", "value": "revoked"}], "result": "deny", "codes": ["mandate_inactive"], "messages": ["mandate mdt_parent is revoked"]},
	{
		"name": "not yet valid",
		"patch": [{"op": "replace", "path": "/mandate/valid_from", "value": "2026-06-10T12:00:00.000000001Z"}],
		"result": "deny", "codes": ["mandate_not_yet_valid"], "messages": ["mandate mdt_child is valid from 2026-06-10T12:00:00.000000001Z"],
	},
	{
		"name": "expired at exactly now",
		"patch": [{"op": "replace", "path": "/mandate/valid_until", "value": "2026-06-10T12:00:00Z"}],
		"result": "deny", "codes": ["mandate_expired"], "messages": ["mandate mdt_child expired at 2026-06-10T12:00:00Z"],
	},
	{"name": "ancestor expired", "patch": [{"op": "add", "path": "/ancestors/0/valid_until", "value": "2026-06-01T00:00:00Z"}], "result": "deny", "codes": ["mandate_expired"]},
	# Amounts.
	{"name": "zero amount", "patch": [{"op": "replace", "path": "/charge/amount", "value": 0}], "result": "deny", "codes": ["invalid_amount"], "messages": ["charge amount 0 must be positive"]},
	{
		"name": "other currency",
		"patch": [{"op": "replace", "path": "/charge/currency", "value": "EUR"}],
		"result": "deny", "codes": ["currency_mismatch"],
		"messages": ["charge currency EUR differs from the currency USD", "charge currency EUR differs from the currency USD of ancestor mandate mdt_parent"],
	},
	{
		"name": "over the per-charge cap",
		"patch": [{"op": "replace", "path": "/charge/amount", "value": 6000}],
		"result": "deny", "codes": ["per_charge_cap_exceeded"],
		"messages": ["charge 60.00 USD exceeds the per-charge cap of 50.00 USD"],
	},
	{"name": "exactly the per-charge cap", "patch": [{"op": "replace", "path": "/charge/amount", "value": 5000}], "result": "allow", "codes": []},
	{
		"name": "over an ancestor's per-charge cap",
		"patch": [{"op": "add", "path": "/ancestors/0/max_amount_per_charge", "value": 1505}],
		"result": "deny", "codes": ["per_charge_cap_exceeded"],
		"messages": ["charge 20.00 USD exceeds the per-charge cap of ancestor mandate mdt_parent of 15.05 USD"],
	},
	{
		"name": "over the remaining budget",
		"patch": [{"op": "replace", "path": "/mandate/spent", "value": 7000}],
		"result": "deny", "codes": ["budget_exceeded"],
		"messages": ["charge 20.00 USD exceeds the remaining budget of 10.00 USD (70.00 USD of 80.00 USD spent)"],
	},
	{"name": "exactly the remaining budget", "patch": [{"op": "replace", "path": "/mandate/spent", "value": 6000}], "result": "allow", "codes": []},
	{
		"name": "over an ancestor's remaining budget",
		"patch": [{"op": "replace", "path": "/ancestors/0/spent", "value": 9001}],
		"result": "deny", "codes": ["budget_exceeded"],
		"messages": ["charge 20.00 USD exceeds the remaining budget of ancestor mandate mdt_parent of 9.99 USD (90.01 USD of 100.00 USD spent)"],
	},
	{
		"name": "over the period budget",
		"patch": [
			{"op": "add", "path": "/mandate/period", "value": "day"},
			{"op": "add", "path": "/mandate/period_budget", "value": 3000},
			{"op": "add", "path": "/mandate/period_spent", "value": 2500},
		],
		"result": "deny", "codes": ["period_budget_exceeded"],
		"messages": ["charge 20.00 USD exceeds the remaining day budget of 5.00 USD (25.00 USD of 30.00 USD spent this day)"],
	},
	{
		"name": "within the period budget",
		"patch": [
			{"op": "add", "path": "/ancestors/0/period", "value": "week"},
			{"op": "add", "path": "/ancestors/0/period_budget", "value": 3000},
			{"op": "add", "path": "/ancestors/0/period_spent", "value": 1000},
		],
		"result": "allow", "codes": [],
	},
	{
		"name": "max charges reached",
		"patch": [{"op": "add", "path": "/mandate/max_charges", "value": 3}, {"op": "replace", "path": "/mandate/charge_count", "value": 3}],
		"result": "deny", "codes": ["max_charges_reached"], "messages": ["mandate mdt_child has made 3 of its 3 charges"],
	},
	{
		"name": "one charge left",
		"patch": [{"op": "add", "path": "/mandate/max_charges", "value": 3}, {"op": "replace", "path": "/mandate/charge_count", "value": 2}],
		"result": "allow", "codes": [],
	},
	{
		"name": "yen have no minor unit",
		"patch": [
			{"op": "replace", "path": "/charge/currency", "value": "JPY"},
			{"op": "replace", "path": "/charge/amount", "value": 600},
			{"op": "replace", "path": "/mandate/currency", "value": "JPY"},
			{"op": "replace", "path": "/mandate/max_amount_per_charge", "value": 500},
			{"op": "replace", "path": "/ancestors/0/currency", "value": "JPY"},
		],
		"result": "deny", "codes": ["per_charge_cap_exceeded"], "messages": ["charge 600 JPY exceeds the per-charge cap of 500 JPY"],
	},
	{
		"name": "dinars have three decimals",
		"patch": [
			{"op": "replace", "path": "/charge/currency", "value": "KWD"},
			{"op": "replace", "path": "/charge/amount", "value": 6007},
			{"op": "replace", "path": "/mandate/currency", "value": "KWD"},
			{"op": "replace", "path": "/mandate/max_amount_per_charge", "value": 1500},
			{"op": "replace", "path": "/ancestors/0/currency", "value": "KWD"},
		],
		"result": "deny", "codes": ["per_charge_cap_exceeded"], "messages": ["charge 6.007 KWD exceeds the per-charge cap of 1.500 KWD"],
	},
	{
		"name": "a currency without a known exponent",
		"patch": [
			{"op": "replace", "path": "/charge/currency", "value": "XTS"},
			{"op": "replace", "path": "/charge/amount", "value": 6000},
			{"op": "replace", "path": "/mandate/currency", "value": "XTS"},
			{"op": "replace", "path": "/ancestors/0/currency", "value": "XTS"},
		],
		"result": "deny", "codes": ["per_charge_cap_exceeded"], "messages": ["charge 6000 XTS minor units exceeds the per-charge cap of 5000 XTS minor units"],
	},
	# Card, merchant, category, country.
	{
		"name": "a card the parent has but the child does not",
		"patch": [{"op": "replace", "path": "/charge/payment_method", "value": "tok_mc"}],
		"result": "deny", "codes": ["payment_method_not_allowed"], "messages": ["card tok_mc is not one mandate mdt_child may charge"],
	},
	{
		"name": "a card on no mandate",
		"patch": [{"op": "replace", "path": "/charge/payment_method", "value": "tok_stolen"}],
		"result": "deny", "codes": ["payment_method_not_allowed"],
		"messages": ["card tok_stolen is not one mandate mdt_child may charge", "card tok_stolen is not one mandate mdt_parent may charge"],
	},
	{
		"name": "merchant not allowed",
		"patch": [{"op": "add", "path": "/mandate/allowed_merchants", "value": ["acct_music", "music.example.com"]}],
		"result": "deny", "codes": ["merchant_not_allowed"],
		"messages": ["merchant Acme Books (acct_books) is not among the allowed merchants: acct_music, music.example.com"],
	},
	{"name": "merchant allowed by id", "patch": [{"op": "add", "path": "/mandate/allowed_merchants", "value": ["acct_books"]}], "result": "allow", "codes": []},
	{"name": "merchant allowed by verified domain", "patch": [{"op": "add", "path": "/ancestors/0/allowed_merchants", "value": ["books.example.com"]}], "result": "allow", "codes": []},
	{
		"name": "a domain the merchant has not verified",
		"patch": [
			{"op": "add", "path": "/mandate/allowed_merchants", "value": ["books.example.com"]},
			{"op": "replace", "path": "/charge/merchant/domains", "value": []},
		],
		"result": "deny", "codes": ["merchant_not_allowed"],
	},
	{
		"name": "category not allowed",
		"patch": [{"op": "add", "path": "/mandate/allowed_categories", "value": ["5735", "5815"]}],
		"result": "deny", "codes": ["category_not_allowed"],
		"messages": ["merchant category 5942 of Acme Books is not among the allowed categories: 5735, 5815"],
	},
	{"name": "category allowed", "patch": [{"op": "add", "path": "/mandate/allowed_categories", "value": ["5942"]}], "result": "allow", "codes": []},
	{
		"name": "category blocked by an ancestor",
		"patch": [{"op": "add", "path": "/ancestors/0/blocked_categories", "value": ["5942", "7995"]}],
		"result": "deny", "codes": ["category_blocked"], "messages": ["merchant category 5942 of Acme Books is blocked of ancestor mandate mdt_parent"],
	},
	{
		"name": "country not allowed",
		"patch": [{"op": "add", "path": "/mandate/allowed_countries", "value": ["DE", "FR"]}],
		"result": "deny", "codes": ["country_not_allowed"],
		"messages": ["merchant country US of Acme Books is not among the allowed countries: DE, FR"],
	},
	{"name": "country allowed", "patch": [{"op": "add", "path": "/mandate/allowed_countries", "value": ["US"]}], "result": "allow", "codes": []},
	{
		"name": "merchant country outside the account's countries",
		"patch": [{"op": "add", "path": "/tenant/allowed_countries", "value": ["GB", "IE"]}],
		"result": "deny", "codes": ["tenant_country_not_allowed"],
		"messages": ["merchant country US is not among the countries this account may pay in: GB, IE"],
	},
	{"name": "merchant country among the account's countries", "patch": [{"op": "add", "path": "/tenant/allowed_countries", "value": ["GB", "US"]}], "result": "allow", "codes": []},
	{"name": "an empty list of the account's countries restricts nothing", "patch": [{"op": "add", "path": "/tenant/allowed_countries", "value": []}], "result": "allow", "codes": []},
	{"name": "the account's countries not a list", "patch": [{"op": "add", "path": "/tenant/allowed_countries", "value": "GB"}], "result": "deny", "codes": ["invalid_input"]},
	{
		"name": "account and mandate both refuse the country",
		"patch": [
			{"op": "add", "path": "/tenant/allowed_countries", "value": ["GB"]},
			{"op": "add", "path": "/mandate/allowed_countries", "value": ["FR"]},
		],
		"result": "deny", "codes": ["country_not_allowed", "tenant_country_not_allowed"],
	},
	# Velocity.
	{
		"name": "agent charges per hour",
		"patch": [{"op": "replace", "path": "/velocity/agent/charges", "value": 60}],
		"result": "deny", "codes": ["velocity_agent_charges"], "messages": ["agent agt_b had 60 charges in the last hour; the limit is 60 per hour"],
	},
	{"name": "agent charges just below the limit", "patch": [{"op": "replace", "path": "/velocity/agent/charges", "value": 59}], "result": "allow", "codes": []},
	{"name": "agent declines per hour", "patch": [{"op": "replace", "path": "/velocity/agent/declines", "value": 10}], "result": "deny", "codes": ["velocity_agent_declines"]},
	{"name": "mandate charges per hour", "patch": [{"op": "replace", "path": "/velocity/mandate/charges", "value": 61}], "result": "deny", "codes": ["velocity_mandate_charges"]},
	{
		"name": "mandate declines per hour",
		"patch": [{"op": "replace", "path": "/velocity/mandate/declines", "value": 10}],
		"result": "deny", "codes": ["velocity_mandate_declines"], "messages": ["mandate mdt_child had 10 declines in the last hour; the limit is 10 per hour"],
	},
	{
		"name": "a limit of 0 is off",
		"patch": [{"op": "replace", "path": "/limits/velocity/agent_charges_per_hour", "value": 0}, {"op": "replace", "path": "/velocity/agent/charges", "value": 1000}],
		"result": "allow", "codes": [],
	},
	# Step-up approval.
	{
		"name": "above the approval threshold",
		"patch": [threshold],
		"result": "challenge", "codes": ["approval_required"],
		"messages": ["charge 20.00 USD is above the approval threshold of 10.00 USD: a person must approve it"],
	},
	{"name": "at the approval threshold", "patch": [{"op": "add", "path": "/mandate/approval_threshold", "value": 2000}], "result": "allow", "codes": []},
	{"name": "threshold 0: every charge", "patch": [{"op": "add", "path": "/ancestors/0/approval_threshold", "value": 0}], "result": "challenge", "codes": ["approval_required"]},
	{"name": "approved", "patch": [threshold, {"op": "add", "path": "/approval", "value": approval}], "result": "allow", "codes": []},
	{
		"name": "approval still pending",
		"patch": [threshold, {"op": "add", "path": "/approval", "value": object.union(approval, {"status": "pending"})}],
		"result": "challenge", "codes": ["approval_required"],
	},
	{
		"name": "approval denied",
		"patch": [threshold, {"op": "add", "path": "/approval", "value": object.union(approval, {"status": "denied"})}],
		"result": "deny", "codes": ["approval_denied"], "messages": ["approval apr_1 was denied"],
	},
	{
		"name": "approval expired",
		"patch": [threshold, {"op": "add", "path": "/approval", "value": object.union(approval, {"expires_at": "2026-06-10T12:00:00Z"})}],
		"result": "deny", "codes": ["approval_invalid"], "messages": ["approval apr_1 does not cover this charge or has expired"],
	},
	{
		"name": "approval of another amount",
		"patch": [threshold, {"op": "add", "path": "/approval", "value": object.union(approval, {"amount": 1999})}],
		"result": "deny", "codes": ["approval_invalid"],
	},
	{
		"name": "approval for another merchant",
		"patch": [threshold, {"op": "add", "path": "/approval", "value": object.union(approval, {"merchant": "acct_music"})}],
		"result": "deny", "codes": ["approval_invalid"],
	},
	{
		"name": "a deny outweighs a challenge",
		"patch": [threshold, {"op": "replace", "path": "/charge/amount", "value": 6000}],
		"result": "deny", "codes": ["per_charge_cap_exceeded"],
	},
	{
		"name": "every reason is given, sorted by code",
		"patch": [
			{"op": "replace", "path": "/charge/amount", "value": 9000},
			{"op": "replace", "path": "/charge/payment_method", "value": "tok_mc"},
			{"op": "replace", "path": "/mandate/status", "value": "suspended"},
		],
		"result": "deny",
		"codes": ["budget_exceeded", "mandate_inactive", "payment_method_not_allowed", "per_charge_cap_exceeded"],
	},
]

# A case fails when the result, the set of codes, or a listed message differs.
failures contains tc.name if {
	some tc in cases
	d := charge.decision with input as json.patch(base, tc.patch)
	not matches(d, tc)
}

matches(d, tc) if {
	d.result == tc.result
	{r.code | some r in d.reasons} == {c | some c in tc.codes}
	every m in object.get(tc, "messages", []) {
		m in {r.message | some r in d.reasons}
	}
	[r.code | some r in d.reasons] == sort([r.code | some r in d.reasons])
}

test_cases if {
	print("failing cases:", failures)
	count(failures) == 0
}

test_every_reason_code_is_covered if {
	codes := {c | some tc in cases; some c in tc.codes}
	every c in [
		"invalid_input", "tenant_inactive", "agent_inactive", "agent_mismatch", "token_mandate_mismatch",
		"mandate_inactive", "mandate_not_yet_valid", "mandate_expired", "invalid_amount", "currency_mismatch",
		"per_charge_cap_exceeded", "budget_exceeded", "period_budget_exceeded", "max_charges_reached",
		"payment_method_not_allowed", "merchant_not_allowed", "category_not_allowed", "category_blocked",
		"country_not_allowed", "tenant_country_not_allowed", "velocity_agent_charges", "velocity_agent_declines", "velocity_mandate_charges",
		"velocity_mandate_declines", "approval_required", "approval_denied", "approval_invalid",
	] {
		c in codes
	}
}

test_allow_has_no_reasons if {
	d := charge.decision with input as base
	d == {"result": "allow", "reasons": []}
}

test_empty_input_denies if {
	d := charge.decision with input as {}
	d.result == "deny"
}

# ---- Fraud signals --------------------------------------------------------------

fraud := {
	"velocity": {
		"merchant/hour": {"count": 7, "declines": 0, "amount": 14000},
		"agent/day": {"count": 3, "declines": 1, "amount": 9500},
	},
	"limits": {"count": [], "amount": []},
	"risk_signals": [],
}

with_fraud(patch) := json.patch(object.union(base, {"fraud": fraud}), patch)

fraud_cases := [
	{"name": "signals under every limit", "patch": [{"op": "add", "path": "/fraud/limits/count/-", "value": {"scope": "merchant", "window": "hour", "stat": "merchant/hour", "action": "deny", "limit": 8}}], "result": "allow", "codes": []},
	{
		"name": "charges at a merchant in the hour",
		"patch": [{"op": "add", "path": "/fraud/limits/count/-", "value": {"scope": "merchant", "window": "hour", "stat": "merchant/hour", "action": "deny", "limit": 5}}],
		"result": "deny", "codes": ["velocity_merchant_charges_hour"],
		"messages": ["7 charges at this merchant in the last hour, limit 5"],
	},
	{
		"name": "an agent's spending in the day, challenged",
		"patch": [{"op": "add", "path": "/fraud/limits/amount/-", "value": {"scope": "agent", "window": "day", "stat": "agent/day", "action": "challenge", "limit": 10000}}],
		"result": "challenge", "codes": ["velocity_agent_amount_day"],
		"messages": ["95.00 USD charged by this agent in the last 24 hours, 115.00 USD with this charge, limit 100.00 USD"],
	},
	{
		"name": "a velocity challenge is answered by an approval",
		"patch": [
			{"op": "add", "path": "/fraud/limits/amount/-", "value": {"scope": "agent", "window": "day", "stat": "agent/day", "action": "challenge", "limit": 10000}},
			{"op": "add", "path": "/approval", "value": approval},
		],
		"result": "allow", "codes": [],
	},
	{
		"name": "a limit of a scope without stats",
		"patch": [{"op": "add", "path": "/fraud/limits/count/-", "value": {"scope": "card", "window": "hour", "stat": "card/hour", "action": "deny", "limit": 1}}],
		"result": "allow", "codes": [],
	},
	{
		"name": "an anomalous agent steps up",
		"patch": [{"op": "add", "path": "/fraud/anomaly", "value": {"metric": "charge_size", "score": 6.5, "message": "charge size 9.2 MADs above the agent's median"}}],
		"result": "challenge", "codes": ["agent_anomaly"], "messages": ["charge size 9.2 MADs above the agent's median"],
	},
	{
		"name": "screener rejects",
		"patch": [{"op": "add", "path": "/fraud/screener", "value": {"screener": "kount", "decision": "reject", "score": 91, "reasons": [], "fail_closed": false}}],
		"result": "deny", "codes": ["screener_rejected"], "messages": ["fraud screener kount rejected the charge (score 91)"],
	},
	{
		"name": "screener asks for review",
		"patch": [{"op": "add", "path": "/fraud/screener", "value": {"screener": "rules", "decision": "review", "score": 60, "reasons": [], "fail_closed": false}}],
		"result": "challenge", "codes": ["screener_review"],
	},
	{
		"name": "screener unavailable, failing open",
		"patch": [{"op": "add", "path": "/fraud/screener", "value": {"screener": "signifyd", "decision": "unavailable", "score": 0, "reasons": [], "fail_closed": false}}],
		"result": "allow", "codes": [],
	},
	{
		"name": "screener unavailable, failing closed",
		"patch": [{"op": "add", "path": "/fraud/screener", "value": {"screener": "signifyd", "decision": "unavailable", "score": 0, "reasons": [], "fail_closed": true}}],
		"result": "deny", "codes": ["screener_unavailable"],
	},
	{
		"name": "the agent's risk signal blocks",
		"patch": [{"op": "add", "path": "/fraud/risk_signals/-", "value": {"type": "account_takeover", "score": 0.9, "action": "block"}}],
		"result": "deny", "codes": ["agent_risk_signal"],
	},
	{
		"name": "the agent's risk signal asks for review",
		"patch": [{"op": "add", "path": "/fraud/risk_signals/-", "value": {"type": "new_device", "score": 0.4, "action": "review"}}],
		"result": "challenge", "codes": ["agent_risk_signal_review"],
	},
	{
		"name": "the agent's risk signal never allows",
		"patch": [
			threshold,
			{"op": "add", "path": "/fraud/risk_signals/-", "value": {"type": "trusted", "score": 0, "action": "allow"}},
		],
		"result": "challenge", "codes": ["approval_required"],
	},
]

fraud_failures contains tc.name if {
	some tc in fraud_cases
	d := charge.decision with input as with_fraud(tc.patch)
	not matches(d, tc)
}

test_fraud_cases if {
	print("failing fraud cases:", fraud_failures)
	count(fraud_failures) == 0
}

test_no_fraud_document_changes_nothing if {
	d := charge.decision with input as base
	d.result == "allow"
}

# The engine leaves risk_signals out when the agent sent none.
test_fraud_without_risk_signals if {
	d := charge.decision with input as with_fraud([
		{"op": "remove", "path": "/fraud/risk_signals"},
		{"op": "add", "path": "/fraud/limits/count/-", "value": {"scope": "merchant", "window": "hour", "stat": "merchant/hour", "action": "deny", "limit": 5}},
	])
	d.result == "deny"
	[r.code | some r in d.reasons] == ["velocity_merchant_charges_hour"]
}
