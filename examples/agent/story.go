package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Config is what the demo needs: the server and the tenant's keys.
type Config struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:8080.
	URL string
	// SecretKey is the tenant's secret key (sk_test_…).
	SecretKey string
	// PublishableKey (pk_test_…), when given, tokenizes the card the way a
	// browser would; otherwise the secret key does.
	PublishableKey string
	// HTTP is the client to use (http.DefaultClient when nil).
	HTTP *http.Client
	// Person adds the human-present story (a payer grants a mandate on the
	// consent page): "wait" prints the URLs a person opens and waits for
	// them, "auto" plays the person too, "" leaves it out.
	Person string
}

// Token exchange (RFC 8693) identifiers.
const (
	grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	tokenTypeAccess    = "urn:ietf:params:oauth:token-type:access_token"
)

// The demo's numbers, in cents (USD minor units).
const (
	currency          = "USD"
	budget            = 20000 // 200.00
	perChargeCap      = 5000  // 50.00
	approvalThreshold = 3000  // 30.00
	childBudget       = 3000  // 30.00
	childCap          = 1500  // 15.00
	childThreshold    = 1000  // 10.00
)

// story runs the demo and narrates it.
type story struct {
	c       *client
	out     io.Writer
	sk, pk  string
	jwks    *jose.JSONWebKeySet
	card    cardToken
	books   merchant
	music   merchant
	buyer   agent // agent A
	helper  agent // agent B, the sub-agent
	parent  mandate
	child   mandate
	tokA    string
	tokB    string
	spentA  int64 // what the story expects the parent mandate to have spent
	spentB  int64 // and the child
	charges int
}

// errStory is a step that did not behave as the story says.
var errStory = errors.New("the server did not behave as the story says")

func (s *story) failf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errStory, fmt.Sprintf(format, args...))
}

func (s *story) say(format string, args ...any) {
	fmt.Fprintf(s.out, "   "+format+"\n", args...)
}

func (s *story) ok(format string, args ...any) {
	fmt.Fprintf(s.out, "   ✓ "+format+"\n", args...)
}

// Run tells the story against the server in cfg, writing it to out. It
// returns an error as soon as a step does not behave as told.
func Run(ctx context.Context, cfg Config, out io.Writer) error {
	hc := cfg.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	if !strings.HasPrefix(cfg.SecretKey, "sk_") {
		return errors.New("a secret key (sk_test_…) is required: --key, or --server-output with the output of `perfectpay serve --dev`")
	}
	s := &story{c: &client{base: strings.TrimSuffix(cfg.URL, "/"), http: hc}, out: out, sk: cfg.SecretKey, pk: cfg.PublishableKey}
	steps := []struct {
		title string
		run   func(context.Context) error
	}{
		{"Register an agent", s.registerAgent},
		{"Tokenize the company card", s.tokenizeCard},
		{"Find the shops", s.findMerchants},
		{"Write the agent a mandate", s.createMandate},
		{"The agent gets an access token for its mandate", s.mintToken},
		{"The agent delegates part of the job to a sub-agent", s.delegate},
		{"Shopping", s.shop},
		{"Revoke the mandate", s.revoke},
		{"The paper trail", s.paperTrail},
	}
	if cfg.Person != "" {
		p := s.person(cfg.Person == "auto")
		steps = append(steps, []struct {
			title string
			run   func(context.Context) error
		}{
			{"A person in the loop: the shop invites its customer Pat", p.invitePayer},
			{"An agent that asks payers for their consent", p.registerAgent},
			{"Pat consents on the consent page (PAR + PKCE + RAR)", p.consent},
			{"The agent shops on Pat's mandate", p.spend},
		}...)
	}
	fmt.Fprintf(out, "PerfectPay agent demo against %s\n", s.c.base)
	fmt.Fprintln(out, "A company lets an AI agent buy books for its team, within limits it sets, and watches what happens.")
	for i, st := range steps {
		fmt.Fprintf(out, "\n%d. %s\n", i+1, st.title)
		if err := st.run(ctx); err != nil {
			return fmt.Errorf("step %d (%s): %w", i+1, st.title, err)
		}
	}
	fmt.Fprintf(out, "\nThe end: every step behaved as the story says.\n")
	return nil
}

func usd(cents int64) string { return fmt.Sprintf("%d.%02d %s", cents/100, cents%100, currency) }

// 1. Register an agent.
func (s *story) registerAgent(ctx context.Context) error {
	a, err := s.newAgent(ctx, "book-buyer")
	if err != nil {
		return err
	}
	s.buyer = *a
	s.say("The company registers its shopping agent %q as an OAuth2 client.", a.Name)
	s.ok("agent %s, %s, may use %s, scopes %s", a.ID, a.Status, strings.Join(a.GrantTypes, " and "), strings.Join(a.Scopes, " "))
	s.say("Its client secret is shown once (%s…); the server keeps only a hash.", a.ClientSecret[:min(8, len(a.ClientSecret))])
	return nil
}

func (s *story) newAgent(ctx context.Context, name string) (*agent, error) {
	var a agent
	err := s.c.mustCall(ctx, http.MethodPost, "/v1/agents", bearer(s.sk), map[string]any{
		"name": name, "token_endpoint_auth_method": "client_secret_basic",
		"grant_types": []string{"client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"},
		"scopes":      []string{"charges:write", "charges:read", "mandates:read"},
	}, &a)
	if err != nil {
		return nil, err
	}
	if a.ClientSecret == "" || a.Status != "active" {
		return nil, s.failf("agent %s: status %q, secret given: %v", a.ID, a.Status, a.ClientSecret != "")
	}
	return &a, nil
}

// 2. Tokenize a test card.
func (s *story) tokenizeCard(ctx context.Context) error {
	key, which := s.sk, "secret"
	if s.pk != "" {
		key, which = s.pk, "publishable"
	}
	err := s.c.mustCall(ctx, http.MethodPost, "/v1/tokens", bearer(key), map[string]any{
		"card": map[string]any{"number": "4242424242424242", "exp_month": 12, "exp_year": time.Now().Year() + 3,
			"cvc": "123", "name": "Acme Procurement"},
	}, &s.card)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(s.card.ID, "tok_") || s.card.Card.Last4 != "4242" {
		return s.failf("token %q for card …%s", s.card.ID, s.card.Card.Last4)
	}
	s.say("The company's card goes into the vault (with the %s key); from now on only its token is used.", which)
	s.ok("%s: %s ending %s, CVC check %s", s.card.ID, s.card.Card.Brand, s.card.Card.Last4, s.card.Card.CVCCheck)
	return nil
}

// 3. Find the demo merchants by their verified domains.
func (s *story) findMerchants(ctx context.Context) error {
	for _, m := range []struct {
		domain string
		mcc    string
		into   *merchant
	}{{"books.acme.example", "5942", &s.books}, {"music.acme.example", "5735", &s.music}} {
		var list struct{ Data []merchant }
		if err := s.c.mustCall(ctx, http.MethodGet, "/v1/merchants?domain="+url.QueryEscape(m.domain), bearer(s.sk), nil, &list); err != nil {
			return err
		}
		if len(list.Data) != 1 {
			return s.failf("%d merchants hold the verified domain %s, want 1 (is the server in --dev mode?)", len(list.Data), m.domain)
		}
		*m.into = list.Data[0]
		if m.into.MCC != m.mcc {
			return s.failf("merchant %s has MCC %s, want %s", m.into.ID, m.into.MCC, m.mcc)
		}
		s.ok("%s is %s (%s), merchant category %s, %s", m.domain, m.into.DisplayName, m.into.ID, m.into.MCC, m.into.Country)
	}
	s.say("The merchant's category and country come from its registered profile, never from what an agent claims.")
	return nil
}

// 4. Create the mandate.
func (s *story) createMandate(ctx context.Context) error {
	err := s.c.mustCall(ctx, http.MethodPost, "/v1/mandates", bearer(s.sk), map[string]any{
		"agent": s.buyer.ID, "payer": "self", "currency": currency, "budget": budget,
		"max_amount_per_charge": perChargeCap, "approval_threshold": approvalThreshold,
		"payment_methods":    []string{s.card.ID},
		"allowed_merchants":  []string{"books.acme.example"},
		"allowed_categories": []string{"5942"},
		"description":        "Buy books for the engineering team",
	}, &s.parent)
	if err != nil {
		return err
	}
	if s.parent.Status != "active" || s.parent.Budget != budget || s.parent.Agent != s.buyer.ID {
		return s.failf("mandate %s is %s with budget %d for %s", s.parent.ID, s.parent.Status, s.parent.Budget, s.parent.Agent)
	}
	s.say("The company (payer \"self\") lets %s spend on its card:", s.buyer.ID)
	s.say("  at most %s in all, at most %s per charge,", usd(budget), usd(perChargeCap))
	s.say("  a person approves anything above %s,", usd(approvalThreshold))
	s.say("  only at books.acme.example, only in merchant category 5942 (book stores).")
	s.ok("mandate %s is %s at once (the tenant itself pays)", s.parent.ID, s.parent.Status)
	return nil
}

// 5. client_credentials with authorization_details naming the mandate.
func (s *story) mintToken(ctx context.Context) error {
	details, _ := json.Marshal([]map[string]any{{"type": "payment_mandate", "mandate_id": s.parent.ID}})
	cc := clientcredentials.Config{
		ClientID: s.buyer.ID, ClientSecret: s.buyer.ClientSecret, TokenURL: s.c.base + "/oauth2/token",
		Scopes: []string{"charges:write"}, AuthStyle: oauth2.AuthStyleInHeader,
		EndpointParams: url.Values{"authorization_details": {string(details)}},
	}
	tok, err := cc.Token(context.WithValue(ctx, oauth2.HTTPClient, s.c.http))
	if err != nil {
		return fmt.Errorf("client_credentials: %w", err)
	}
	s.tokA = tok.AccessToken
	if s.jwks, err = s.c.fetchJWKS(ctx); err != nil {
		return err
	}
	claims, err := verifyAccessToken(s.jwks, s.tokA)
	if err != nil {
		return s.failf("the access token does not verify against /.well-known/jwks.json: %v", err)
	}
	if claims.ClientID != s.buyer.ID || len(claims.AuthorizationDetails) != 1 || claims.AuthorizationDetails[0].MandateID != s.parent.ID {
		return s.failf("token of %s for mandates %+v", claims.ClientID, claims.AuthorizationDetails)
	}
	s.say("The agent asks /oauth2/token (client_credentials, scope charges:write) for a token bound to its mandate.")
	s.ok("a %s token (RFC 9068 JWT, verified against the JWKS), valid %s", tok.TokenType, time.Until(tok.Expiry).Round(time.Minute))
	s.say("  sub %s, scope %q, authorization_details: payment_mandate %s, budget %s",
		claims.Sub, claims.Scope, claims.AuthorizationDetails[0].MandateID, usd(claims.AuthorizationDetails[0].Budget))
	return nil
}

// 6. Token exchange to a sub-agent, creating a child mandate.
func (s *story) delegate(ctx context.Context) error {
	b, err := s.newAgent(ctx, "paperback-finder")
	if err != nil {
		return err
	}
	s.helper = *b
	s.say("The company registers a second agent, %s (%s). The book buyer hands it its token;", b.Name, b.ID)
	s.say("the sub-agent trades it at /oauth2/token (RFC 8693 token exchange) for a narrower one of its own.")
	terms := func(budget int64) url.Values {
		details, _ := json.Marshal([]map[string]any{{
			"type": "payment_mandate", "currency": currency, "budget": budget,
			"max_amount_per_charge": childCap, "approval_threshold": childThreshold,
			"payment_methods":    []string{s.card.ID},
			"allowed_merchants":  []string{"books.acme.example"},
			"allowed_categories": []string{"5942"},
			"description":        "Reorder paperbacks",
		}})
		return url.Values{
			"grant_type":            {grantTokenExchange},
			"subject_token":         {s.tokA},
			"subject_token_type":    {tokenTypeAccess},
			"scope":                 {"charges:write"},
			"authorization_details": {string(details)},
		}
	}
	// First, greedily, more than the parent allows.
	status, tr, err := s.c.form(ctx, "/oauth2/token", b.ID, b.ClientSecret, terms(2*budget))
	if err != nil {
		return err
	}
	if status != http.StatusBadRequest || tr.Error != "invalid_authorization_details" {
		return s.failf("a token exchange asking for a budget of %s (the parent has %s): HTTP %d %q, want 400 invalid_authorization_details",
			usd(2*budget), usd(budget), status, tr.Error)
	}
	s.ok("asking for a budget of %s is refused: %s", usd(2*budget), tr.Error)
	s.say("    %s", tr.ErrorDescription)
	status, tr, err = s.c.form(ctx, "/oauth2/token", b.ID, b.ClientSecret, terms(childBudget))
	if err != nil {
		return err
	}
	if status != http.StatusOK || tr.AccessToken == "" {
		return s.failf("token exchange: HTTP %d %s: %s", status, tr.Error, tr.ErrorDescription)
	}
	s.tokB = tr.AccessToken
	claims, err := verifyAccessToken(s.jwks, s.tokB)
	if err != nil {
		return s.failf("the exchanged token does not verify: %v", err)
	}
	var act struct {
		Sub string          `json:"sub"`
		Act json.RawMessage `json:"act"`
	}
	_ = json.Unmarshal(claims.Act, &act)
	if claims.Sub != s.buyer.ID || claims.ClientID != b.ID || act.Sub != b.ID {
		return s.failf("exchanged token: sub %s, client_id %s, act %s", claims.Sub, claims.ClientID, claims.Act)
	}
	if len(claims.AuthorizationDetails) != 1 || claims.AuthorizationDetails[0].MandateID == "" || claims.AuthorizationDetails[0].MandateID == s.parent.ID {
		return s.failf("the exchanged token does not name a new child mandate: %+v", claims.AuthorizationDetails)
	}
	s.ok("issued_token_type %s; sub %s (on whose authority), client_id %s", tr.IssuedTokenType, claims.Sub, claims.ClientID)
	s.say("  act %s: the sub-agent acts for the book buyer (newest actor outermost)", compact(claims.Act))
	if err := s.c.mustCall(ctx, http.MethodGet, "/v1/mandates/"+claims.AuthorizationDetails[0].MandateID, bearer(s.sk), nil, &s.child); err != nil {
		return err
	}
	if s.child.ParentID != s.parent.ID || s.child.Depth != 1 || s.child.Agent != b.ID || s.child.Budget != childBudget || s.child.Status != "active" {
		return s.failf("child mandate %s: parent %s depth %d agent %s budget %d status %s",
			s.child.ID, s.child.ParentID, s.child.Depth, s.child.Agent, s.child.Budget, s.child.Status)
	}
	s.ok("child mandate %s (parent %s, depth %d): %s in all, %s per charge, approval above %s",
		s.child.ID, s.child.ParentID, s.child.Depth, usd(s.child.Budget), usd(*s.child.MaxAmountPerCharge), usd(*s.child.ApprovalThreshold))
	return nil
}

func compact(raw json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return b.String()
}

// chargeResult is one charge attempt's answer.
type chargeResult struct {
	status int
	charge *charge
	err    *errorBody
}

func (s *story) charge(ctx context.Context, tok, key string, req chargeRequest) (*chargeResult, error) {
	req.Currency, req.PaymentMethod = currency, s.card.ID
	if req.Merchant == "" {
		req.Merchant = s.books.ID
	}
	var ch charge
	status, eb, err := s.c.call(ctx, http.MethodPost, "/v1/charges", bearer(tok), req, map[string]string{"Idempotency-Key": key}, &ch)
	if err != nil {
		return nil, err
	}
	r := &chargeResult{status: status, err: eb}
	if eb == nil {
		r.charge = &ch
	}
	return r, nil
}

// expectAllowed makes a charge that must succeed.
func (s *story) expectAllowed(ctx context.Context, who, tok, key string, req chargeRequest) (*charge, error) {
	r, err := s.charge(ctx, tok, key, req)
	if err != nil {
		return nil, err
	}
	if r.err != nil {
		return nil, s.failf("%s's charge of %s was refused: HTTP %d %s: %s", who, usd(req.Amount), r.status, r.err.Error.Code, r.err.Error.Message)
	}
	if r.charge.Status != "succeeded" || r.charge.Decision == nil || r.charge.Decision.Result != "allow" {
		return nil, s.failf("charge %s is %s (decision %+v)", r.charge.ID, r.charge.Status, r.charge.Decision)
	}
	s.charges++
	return r.charge, nil
}

// expectRefused makes a charge that must be answered status with the
// error code and, when reason is set, a decision giving that reason.
func (s *story) expectRefused(ctx context.Context, who, tok string, req chargeRequest, status int, code, reason string) (*errorBody, error) {
	r, err := s.charge(ctx, tok, newKey(), req)
	if err != nil {
		return nil, err
	}
	if r.err == nil {
		return nil, s.failf("%s's charge of %s went through (%s), but it should have been refused", who, usd(req.Amount), r.charge.ID)
	}
	if r.status != status || r.err.Error.Code != code || (reason != "" && !r.err.Decision.has(reason)) {
		return nil, s.failf("%s's charge of %s: HTTP %d %s (%s), want HTTP %d %s with reason %s",
			who, usd(req.Amount), r.status, r.err.Error.Code, r.err.Error.Message, status, code, reason)
	}
	return r.err, nil
}

func (s *story) reasons(eb *errorBody) {
	if eb.Decision == nil {
		return
	}
	for _, r := range eb.Decision.Reasons {
		s.say("    reason %s: %s", r.Code, r.Message)
	}
}

// checkSpent reads both mandates and compares their counters with what
// the story expects.
func (s *story) checkSpent(ctx context.Context) error {
	for _, m := range []struct {
		id   string
		want int64
	}{{s.parent.ID, s.spentA}, {s.child.ID, s.spentB}} {
		var got mandate
		if err := s.c.mustCall(ctx, http.MethodGet, "/v1/mandates/"+m.id, bearer(s.sk), nil, &got); err != nil {
			return err
		}
		if got.Spent != m.want {
			return s.failf("mandate %s has spent %s, the story expects %s", m.id, usd(got.Spent), usd(m.want))
		}
		s.say("    mandate %s: %s spent of %s, %s left", got.ID, usd(got.Spent), usd(got.Budget), usd(got.Remaining))
	}
	return nil
}

// 7. Charges: allowed, over the cap, challenged then approved, wrong shop.
func (s *story) shop(ctx context.Context) error {
	// a) an ordinary purchase
	ch, err := s.expectAllowed(ctx, "the book buyer", s.tokA, newKey(), chargeRequest{
		Amount: 1250, Description: "The Go Programming Language",
		LineItems: []lineItem{{Name: "The Go Programming Language (paperback)", Quantity: 1, UnitAmount: 1250}},
	})
	if err != nil {
		return err
	}
	s.spentA += ch.Amount
	s.ok("the book buyer pays %s at %s for a paperback: %s %s", usd(ch.Amount), s.books.DisplayName, ch.ID, ch.Status)

	// b) the sub-agent buys within its child mandate; the parent pays too
	ch, err = s.expectAllowed(ctx, "the sub-agent", s.tokB, newKey(), chargeRequest{
		Amount: 999, Description: "Paperback reorder",
		LineItems: []lineItem{{Name: "Concurrency in Go", Quantity: 1, UnitAmount: 999}},
	})
	if err != nil {
		return err
	}
	if ch.Mandate != s.child.ID {
		return s.failf("the sub-agent's charge %s is on mandate %s, want the child %s", ch.ID, ch.Mandate, s.child.ID)
	}
	s.spentA += ch.Amount
	s.spentB += ch.Amount
	s.ok("the sub-agent pays %s on its child mandate: %s %s", usd(ch.Amount), ch.ID, ch.Status)
	s.say("  The amount is reserved on the child and on its parent, in one transaction:")
	if err := s.checkSpent(ctx); err != nil {
		return err
	}

	// c) over the per-charge cap
	eb, err := s.expectRefused(ctx, "the book buyer", s.tokA, chargeRequest{
		Amount: 6000, Description: "Rare first edition",
	}, http.StatusForbidden, "charge_denied", "per_charge_cap_exceeded")
	if err != nil {
		return err
	}
	s.ok("the book buyer tries %s for a first edition: refused (%s, %s)", usd(6000), eb.Error.Type, eb.Error.Code)
	s.reasons(eb)

	// d) the sub-agent tries more than its own (narrower) cap
	eb, err = s.expectRefused(ctx, "the sub-agent", s.tokB, chargeRequest{
		Amount: 1800, Description: "Hardcover set",
	}, http.StatusForbidden, "charge_denied", "per_charge_cap_exceeded")
	if err != nil {
		return err
	}
	s.ok("the sub-agent tries %s, within the parent's cap but not its own: refused", usd(1800))
	s.reasons(eb)

	// e) above the approval threshold: challenged, approved, retried
	key := newKey()
	req := chargeRequest{Amount: 4500, Description: "Team box set",
		LineItems: []lineItem{{Name: "Designing Data-Intensive Applications", Quantity: 1, UnitAmount: 4500}}}
	r, err := s.charge(ctx, s.tokA, key, req)
	if err != nil {
		return err
	}
	if r.err == nil || r.status != http.StatusPaymentRequired || r.err.Approval == nil || !r.err.Decision.has("approval_required") {
		return s.failf("a charge of %s above the approval threshold: HTTP %d %+v, want 402 with an approval", usd(req.Amount), r.status, r.err)
	}
	apr := r.err.Approval
	s.ok("the book buyer tries %s for a box set: HTTP 402 %s, approval %s (pending until %s)", usd(req.Amount), r.err.Error.Code, apr.ID, apr.ExpiresAt)
	s.reasons(r.err)
	var approved approval
	if err := s.c.mustCall(ctx, http.MethodPost, "/v1/approvals/"+apr.ID+"/approve", bearer(s.sk), nil, &approved); err != nil {
		return err
	}
	if approved.Status != "approved" {
		return s.failf("approval %s is %s after approving it", apr.ID, approved.Status)
	}
	s.ok("a person at the company approves %s (%s, %s)", apr.ID, usd(approved.Amount), approved.Status)
	req.Approval = apr.ID
	ch, err = s.expectAllowed(ctx, "the book buyer", s.tokA, key, req)
	if err != nil {
		return err
	}
	s.spentA += ch.Amount
	s.ok("the agent retries with the same Idempotency-Key and \"approval\": %q: %s %s", apr.ID, ch.ID, ch.Status)

	// f) the wrong shop
	eb, err = s.expectRefused(ctx, "the book buyer", s.tokA, chargeRequest{
		Amount: 1999, Merchant: s.music.ID, Description: "Team playlist vinyl",
	}, http.StatusForbidden, "charge_denied", "merchant_not_allowed")
	if err != nil {
		return err
	}
	if !eb.Decision.has("category_not_allowed") {
		return s.failf("the charge at %s was refused without category_not_allowed: %+v", s.music.DisplayName, eb.Decision.Reasons)
	}
	s.ok("the book buyer tries %s at %s: refused", usd(1999), s.music.DisplayName)
	s.reasons(eb)
	s.say("  After %d charges:", s.charges)
	return s.checkSpent(ctx)
}

// 8. Revoke the parent mandate: the child goes with it.
func (s *story) revoke(ctx context.Context) error {
	var m mandate
	if err := s.c.mustCall(ctx, http.MethodPost, "/v1/mandates/"+s.parent.ID+"/revoke", bearer(s.sk), nil, &m); err != nil {
		return err
	}
	if m.Status != "revoked" || !slices.Equal(m.Revoked, []string{s.parent.ID, s.child.ID}) {
		return s.failf("revoking %s: status %s, revoked %v (want it and its child %s)", s.parent.ID, m.Status, m.Revoked, s.child.ID)
	}
	s.ok("the company revokes %s; its child %s is revoked in the same transaction (revoked: %v)", m.ID, s.child.ID, m.Revoked)
	for _, a := range []struct {
		who, tok string
	}{{"the book buyer", s.tokA}, {"the sub-agent", s.tokB}} {
		eb, err := s.expectRefused(ctx, a.who, a.tok, chargeRequest{Amount: 500, Description: "One more bookmark"},
			http.StatusForbidden, "mandate_revoked", "")
		if err != nil {
			return err
		}
		if eb.Error.Type != "permission_error" || !strings.Contains(eb.Error.Message, s.parent.ID) {
			return s.failf("%s's charge after the revocation: %s %q, want a permission_error naming %s", a.who, eb.Error.Type, eb.Error.Message, s.parent.ID)
		}
		s.ok("%s's next charge (its token is still unexpired): %s %s", a.who, eb.Error.Type, eb.Error.Code)
		s.say("    %s", eb.Error.Message)
	}
	return nil
}

// 9. The mandate's history and its signature.
func (s *story) paperTrail(ctx context.Context) error {
	var events []mandateEvent
	after := ""
	for {
		var page struct {
			Data    []mandateEvent `json:"data"`
			HasMore bool           `json:"has_more"`
		}
		path := "/v1/mandates/" + s.parent.ID + "/events?limit=100"
		if after != "" {
			path += "&starting_after=" + after
		}
		if err := s.c.mustCall(ctx, http.MethodGet, path, bearer(s.sk), nil, &page); err != nil {
			return err
		}
		events = append(events, page.Data...)
		if !page.HasMore || len(page.Data) == 0 {
			break
		}
		after = page.Data[len(page.Data)-1].ID
	}
	s.say("History of %s, oldest first:", s.parent.ID)
	seen := map[string]int{}
	for _, e := range events {
		seen[e.Type]++
		s.say("  %-20s %-9s %-28s %s", e.Type, e.ActorType, e.ActorID, eventSummary(e))
	}
	for _, want := range []string{"mandate.created", "decision.allow", "decision.deny", "decision.challenge", "approval.approved", "mandate.revoked"} {
		if seen[want] == 0 {
			return s.failf("the history of %s has no %s event", s.parent.ID, want)
		}
	}
	s.ok("%d events: creation, every decision with its reasons, the approval, the charges, the revocation", len(events))

	var signed struct {
		Mandate string `json:"mandate"`
		JWS     string `json:"jws"`
	}
	if err := s.c.mustCall(ctx, http.MethodGet, "/v1/mandates/"+s.parent.ID+"/jws", bearer(s.sk), nil, &signed); err != nil {
		return err
	}
	payload, kid, err := verifyJWS(s.jwks, signed.JWS, "mandate+jws")
	if err != nil {
		return s.failf("the signed mandate does not verify: %v", err)
	}
	var terms struct {
		ID       string `json:"id"`
		Agent    string `json:"agent"`
		Payer    string `json:"payer"`
		Currency string `json:"currency"`
		Budget   int64  `json:"budget"`
		Cap      int64  `json:"max_amount_per_charge"`
	}
	if err := json.Unmarshal(payload, &terms); err != nil {
		return s.failf("the signed mandate's payload is not JSON: %v", err)
	}
	if terms.ID != s.parent.ID || terms.Agent != s.buyer.ID || terms.Budget != budget || terms.Cap != perChargeCap || !strings.EqualFold(terms.Currency, currency) {
		return s.failf("the signed terms %s do not match the mandate", payload)
	}
	s.ok("GET /v1/mandates/%s/jws verifies against /.well-known/jwks.json (key %s, algorithms %v only)", s.parent.ID, kid, allowedAlgs)
	s.say("  signed terms: agent %s may spend %s, at most %s per charge, for payer %s", terms.Agent, usd(terms.Budget), usd(terms.Cap), terms.Payer)
	return nil
}

// eventSummary is a short line for a history entry.
func eventSummary(e mandateEvent) string {
	var d struct {
		Result  string   `json:"result"`
		Reasons []reason `json:"reasons"`
		Charge  string   `json:"charge"`
		Status  string   `json:"status"`
		Amount  int64    `json:"amount"`
		Revoked []string `json:"revoked"`
	}
	_ = json.Unmarshal(e.Data, &d)
	switch {
	case len(d.Reasons) > 0:
		codes := make([]string, len(d.Reasons))
		for i, r := range d.Reasons {
			codes[i] = r.Code
		}
		return strings.Join(codes, ", ")
	case d.Charge != "" && d.Status != "":
		return fmt.Sprintf("%s %s %s", d.Charge, d.Status, usd(d.Amount))
	case d.Charge != "":
		return d.Charge
	case d.Amount > 0:
		return usd(d.Amount)
	}
	return ""
}
