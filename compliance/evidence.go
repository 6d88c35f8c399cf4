package compliance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/policies"
	"github.com/perfectpay/perfectpay/store"
)

// EvidenceRepo is what building a bundle reads in one store.
type EvidenceRepo interface {
	Repo
	DecisionOfCharge(ctx context.Context, tenantID, chargeID string) (*charging.Decision, error)
}

// Charges reads a charge.
type Charges interface {
	Get(ctx context.Context, o payments.Owner, id string) (*payments.Charge, error)
}

// AuditProver proves entries and signs bundles.
type AuditProver interface {
	Prove(ctx context.Context, tenantID string, targets []string) (*audit.Inclusion, error)
	Keys(ctx context.Context) (*audit.KeySet, error)
	SignEvidence(payload []byte) (string, error)
}

// Evidence builds signed evidence bundles.
type Evidence struct {
	DB       store.Runner[EvidenceRepo]
	Charges  Charges
	Mandates Mandates
	Signer   mandates.Signer
	Audit    AuditProver
	// IssuerJWKS returns the published token and mandate keys.
	IssuerJWKS func(ctx context.Context) []byte
	Now        func() time.Time
}

// Processor is what the processor answered about the charge.
type Processor struct {
	Status            string     `json:"status"`
	Amount            int64      `json:"amount"`
	Currency          string     `json:"currency"`
	AmountCaptured    int64      `json:"amount_captured"`
	AmountRefunded    int64      `json:"amount_refunded"`
	AuthorizationCode string     `json:"authorization_code,omitempty"`
	FailureCode       string     `json:"failure_code,omitempty"`
	FailureMessage    string     `json:"failure_message,omitempty"`
	DeclineCode       string     `json:"decline_code,omitempty"`
	CapturedAt        *time.Time `json:"captured_at,omitempty"`
	CanceledAt        *time.Time `json:"canceled_at,omitempty"`
}

// BundleKeys are the public keys a bundle's signatures verify with, as
// published (they are convenience: a verifier should pin its own copy).
type BundleKeys struct {
	Audit  json.RawMessage `json:"audit"`
	Issuer json.RawMessage `json:"issuer"`
}

// BundleDecision is the decision record in a bundle.
type BundleDecision struct {
	ID            string            `json:"id"`
	Mandate       string            `json:"mandate"`
	Agent         string            `json:"agent"`
	Charge        string            `json:"charge"`
	Approval      string            `json:"approval,omitempty"`
	Result        string            `json:"result"`
	Reasons       []policies.Reason `json:"reasons"`
	PolicyVersion string            `json:"policy_version"`
	InputDigest   string            `json:"input_digest"`
	LatencyMicros int64             `json:"latency_us"`
	Outcome       string            `json:"outcome,omitempty"`
	Created       time.Time         `json:"created"`
}

// Bundle is what an evidence bundle proves about one charge: the signed
// mandate chain (root first), the decision record with the exact policy
// input (which holds the token claims the agent presented; no secret is
// in it) and the policy modules of its version, the processor's answer,
// and the audit entries of the charge and decision with a proof of their
// inclusion against a signed checkpoint.
type Bundle struct {
	Object       string          `json:"object"`
	Format       int             `json:"format"`
	Created      time.Time       `json:"created"`
	Charge       json.RawMessage `json:"charge"`
	MandateChain []string        `json:"mandate_chain"`
	Decision     BundleDecision  `json:"decision"`
	PolicyInput  json.RawMessage `json:"policy_input"`
	TokenClaims  json.RawMessage `json:"token_claims"`
	Policy       PolicyVersion   `json:"policy"`
	Processor    Processor       `json:"processor"`
	Audit        audit.Inclusion `json:"audit"`
	Keys         BundleKeys      `json:"keys"`
}

// Build returns the signed evidence bundle of charge id of owner o: a
// compact JWS (typ evidence+jws) signed with the audit key.
func (e *Evidence) Build(ctx context.Context, o payments.Owner, id string) (string, error) {
	c, err := e.Charges.Get(ctx, o, id)
	if err != nil {
		return "", notFound(err, "charge", id)
	}
	if c.MandateID == "" {
		return "", apierr.Invalidf("id", apierr.Code("charge_without_mandate"),
			"Charge %s was not made by an agent on a mandate: it has no decision to prove.", id)
	}
	var d *charging.Decision
	var pv *PolicyVersion
	err = e.DB.InTx(ctx, func(tx EvidenceRepo) error {
		dc, err := tx.DecisionOfCharge(ctx, o.TenantID, c.ID)
		if err != nil {
			return err
		}
		if d, err = tx.DecisionRecord(ctx, o.TenantID, dc.ID); err != nil {
			return err
		}
		pv, err = tx.GetPolicyVersion(ctx, d.PolicyVersion)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return "", apierr.Invalidf("id", apierr.Code("evidence_unavailable"),
			"The decision of charge %s, its policy input or its policy version is not kept: no evidence can be built.", id)
	}
	if err != nil {
		return "", err
	}
	if len(d.Input) == 0 {
		return "", apierr.Invalidf("id", apierr.Code("evidence_unavailable"),
			"The policy input of charge %s's decision was not kept: no evidence can be built.", id)
	}
	chain, err := e.Mandates.Chain(ctx, o.TenantID, c.MandateID)
	if err != nil {
		return "", err
	}
	b := &Bundle{Object: "evidence_bundle", Format: 1, Created: e.now().UTC().Truncate(time.Microsecond),
		PolicyInput: d.Input, Policy: *pv, MandateChain: []string{},
		Decision: BundleDecision{ID: d.ID, Mandate: d.MandateID, Agent: d.AgentID, Charge: d.ChargeID, Approval: d.ApprovalID,
			Result: d.Result, Reasons: d.Reasons, PolicyVersion: d.PolicyVersion, InputDigest: d.InputDigest,
			LatencyMicros: d.LatencyMicros, Outcome: d.Outcome, Created: d.CreatedAt.UTC()},
		Processor: Processor{Status: c.Status, Amount: c.Amount, Currency: c.Currency, AmountCaptured: c.AmountCaptured,
			AmountRefunded: c.AmountRefunded, AuthorizationCode: c.AuthCode, FailureCode: c.FailureCode,
			FailureMessage: c.FailureMessage, DeclineCode: c.DeclineCode, CapturedAt: c.CapturedAt, CanceledAt: c.CanceledAt},
	}
	if b.Charge, err = json.Marshal(c); err != nil {
		return "", err
	}
	var in struct {
		Token json.RawMessage `json:"token"`
	}
	if err := json.Unmarshal(d.Input, &in); err != nil {
		return "", err
	}
	b.TokenClaims = in.Token
	for i := range chain {
		terms, err := chain[i].Canonical()
		if err != nil {
			return "", err
		}
		jws, err := e.Signer.SignMandate(ctx, terms)
		if err != nil {
			return "", err
		}
		b.MandateChain = append(b.MandateChain, jws)
	}
	inc, err := e.Audit.Prove(ctx, o.TenantID, []string{c.ID, d.ID})
	if err != nil {
		return "", err
	}
	b.Audit = *inc
	ks, err := e.Audit.Keys(ctx)
	if err != nil {
		return "", err
	}
	b.Keys = BundleKeys{Audit: ks.JSON(), Issuer: e.IssuerJWKS(ctx)}
	payload, err := json.Marshal(b)
	if err != nil {
		return "", err
	}
	return e.Audit.SignEvidence(payload)
}

func (e *Evidence) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// VerifyKeys are the keys an offline verification trusts; nil trusts the
// keys the bundle carries (which proves integrity, not origin).
type VerifyKeys struct {
	Audit  *audit.KeySet
	Issuer *jose.JSONWebKeySet
}

// Verified is what a verification established.
type Verified struct {
	Charge        string `json:"charge"`
	Decision      string `json:"decision"`
	Result        string `json:"result"`
	PolicyVersion string `json:"policy_version"`
	Mandates      int    `json:"mandates"`
	AuditEntries  int    `json:"audit_entries"`
	CheckpointPos int64  `json:"checkpoint_pos"`
	// KeysPinned is false when the bundle's own keys were trusted.
	KeysPinned bool `json:"keys_pinned"`
}

// mandateAlgs are the algorithms the issuer signs mandates with.
var mandateAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA}

// VerifyBundle verifies a signed evidence bundle offline: its signature;
// every signed mandate of the chain and that the chain links down to the
// charge's mandate; that the policy input hashes to the decision's digest,
// the policy modules to its version, and that the policy decides that
// input as recorded; that the processor's answer is the charge's; and the
// audit entries' inclusion against the signed checkpoint.
func VerifyBundle(ctx context.Context, compact string, keys VerifyKeys) (*Verified, *Bundle, error) {
	v := &Verified{KeysPinned: keys.Audit != nil}
	aks := keys.Audit
	if aks == nil {
		// Read the embedded keys first; the signature then proves the
		// bundle was not changed after signing by the holder of one of them.
		jws, err := jose.ParseSignedCompact(compact, []jose.SignatureAlgorithm{jose.EdDSA})
		if err != nil {
			return nil, nil, fmt.Errorf("not a signed evidence bundle: %w", err)
		}
		var peek struct {
			Keys BundleKeys `json:"keys"`
		}
		if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &peek); err != nil {
			return nil, nil, fmt.Errorf("bundle: %w", err)
		}
		if aks, err = audit.ParseKeySet(peek.Keys.Audit); err != nil {
			return nil, nil, err
		}
	}
	payload, err := audit.VerifyEvidence(aks, compact)
	if err != nil {
		return nil, nil, fmt.Errorf("bundle signature: %w", err)
	}
	var b Bundle
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return nil, nil, fmt.Errorf("bundle: %w", err)
	}
	if b.Object != "evidence_bundle" || b.Format != 1 {
		return nil, nil, errors.New("bundle: not an evidence bundle of format 1")
	}
	var charge payments.Charge
	if err := json.Unmarshal(b.Charge, &charge); err != nil {
		return nil, nil, fmt.Errorf("bundle charge: %w", err)
	}
	v.Charge, v.Decision, v.Result, v.PolicyVersion = charge.ID, b.Decision.ID, b.Decision.Result, b.Decision.PolicyVersion
	if b.Decision.Charge != charge.ID || b.Decision.Mandate != charge.MandateID || b.Decision.Agent != charge.AgentID {
		return v, &b, errors.New("the decision is not the charge's")
	}

	// The signed mandate chain.
	iks := keys.Issuer
	if iks == nil {
		iks = &jose.JSONWebKeySet{}
		if err := json.Unmarshal(b.Keys.Issuer, iks); err != nil {
			return v, &b, fmt.Errorf("bundle issuer keys: %w", err)
		}
	}
	parent := ""
	for i, compact := range b.MandateChain {
		terms, err := verifyMandate(iks, compact)
		if err != nil {
			return v, &b, fmt.Errorf("mandate %d of the chain: %w", i, err)
		}
		if terms.ParentID != parent || (i == 0) != (terms.ParentID == "") {
			return v, &b, fmt.Errorf("mandate %s does not descend from %q", terms.ID, parent)
		}
		parent = terms.ID
	}
	if len(b.MandateChain) == 0 || parent != charge.MandateID {
		return v, &b, errors.New("the mandate chain does not end at the charge's mandate")
	}
	v.Mandates = len(b.MandateChain)

	// The decision: input, token claims, policy, outcome.
	if policies.DigestJSON(b.PolicyInput) != b.Decision.InputDigest {
		return v, &b, errors.New("the policy input does not hash to the decision's input digest")
	}
	var in struct {
		Token json.RawMessage `json:"token"`
	}
	if err := json.Unmarshal(b.PolicyInput, &in); err != nil || !bytes.Equal(in.Token, b.TokenClaims) {
		return v, &b, errors.New("the token claims are not the ones in the policy input")
	}
	if b.Policy.Version != b.Decision.PolicyVersion || policies.VersionOf(b.Policy.Modules) != b.Policy.Version {
		return v, &b, errors.New("the policy modules do not hash to the decision's policy version")
	}
	r, err := policies.NewReplayer(ctx, b.Policy.Modules)
	if err != nil {
		return v, &b, err
	}
	got, err := r.Decide(ctx, b.PolicyInput)
	if got.Result == "" { // an evaluation error denies, as it did when deciding
		return v, &b, err
	}
	if got.Result != b.Decision.Result || !slices.Equal(got.Reasons, b.Decision.Reasons) {
		return v, &b, fmt.Errorf("the policy decides the recorded input %s, not %s as recorded", got.Result, b.Decision.Result)
	}

	// The processor's answer is the charge's.
	p := b.Processor
	if p.Status != charge.Status || p.Amount != charge.Amount || p.AmountCaptured != charge.AmountCaptured ||
		p.AmountRefunded != charge.AmountRefunded || p.AuthorizationCode != charge.AuthCode || p.DeclineCode != charge.DeclineCode {
		return v, &b, errors.New("the processor result is not the charge's")
	}

	// The audit entries and their inclusion.
	claims, err := audit.VerifyInclusion(&b.Audit, aks)
	if err != nil {
		return v, &b, fmt.Errorf("audit inclusion: %w", err)
	}
	var sawCharge, sawDecision bool
	for _, e := range b.Audit.Entries {
		sawCharge = sawCharge || e.Target == charge.ID
		sawDecision = sawDecision || e.Target == b.Decision.ID
	}
	if !sawCharge || !sawDecision {
		return v, &b, errors.New("the audit entries do not include the charge's and the decision's")
	}
	v.AuditEntries, v.CheckpointPos = len(b.Audit.Entries), claims.ChainPos
	return v, &b, nil
}

type mandateTerms struct {
	ID       string `json:"id"`
	ParentID string `json:"parent_id"`
}

func verifyMandate(ks *jose.JSONWebKeySet, compact string) (*mandateTerms, error) {
	jws, err := jose.ParseSignedCompact(compact, mandateAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, errors.New("not a JWS signed with an accepted algorithm")
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "mandate+jws" {
		return nil, fmt.Errorf("typ is %q, want mandate+jws", typ)
	}
	keys := ks.Key(h.KeyID)
	if len(keys) == 0 {
		return nil, fmt.Errorf("signed by key %q, which is not among the issuer keys", h.KeyID)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		return nil, errors.New("signature does not verify")
	}
	var t mandateTerms
	if err := json.Unmarshal(payload, &t); err != nil || t.ID == "" {
		return nil, errors.New("payload is not mandate terms")
	}
	return &t, nil
}
