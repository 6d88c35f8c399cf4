package compliance

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/internal/page"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/policies"
	"github.com/perfectpay/perfectpay/store"
)

// Mandates is what the timeline reads of the mandates domain.
type Mandates interface {
	Get(ctx context.Context, tenantID, id string) (*mandates.Mandate, error)
	Chain(ctx context.Context, tenantID, id string) ([]mandates.Mandate, error)
	List(ctx context.Context, f mandates.Filter) ([]mandates.Mandate, bool, error)
	Events(ctx context.Context, f mandates.EventFilter) ([]mandates.Event, bool, error)
}

// AuditLog is what the timeline and the evidence read of the audit trail.
type AuditLog interface {
	Query(ctx context.Context, q audit.Query) ([]audit.Entry, error)
}

// MaxTimelineEntries bounds what one timeline gathers before paging (a
// mandate with more history is read in pages by time: ?since=).
const MaxTimelineEntries = 10000

// MaxTreeMandates bounds the delegation tree a timeline walks.
const MaxTreeMandates = 1000

// TimelineFilter narrows a timeline. Agent keeps the mandates of that
// agent and the entries it acted in; Payer the mandates of that payer;
// Since (inclusive) and Until (exclusive) the time.
type TimelineFilter struct {
	TenantID  string
	MandateID string
	Agent     string
	Payer     string
	Since     time.Time
	Until     time.Time
	page.Page
}

// TreeNode is one mandate of the delegation tree.
type TreeNode struct {
	ID       string     `json:"id"`
	Agent    string     `json:"agent"`
	Payer    string     `json:"payer"`
	Status   string     `json:"status"`
	Depth    int        `json:"depth"`
	Currency string     `json:"currency"`
	Budget   int64      `json:"budget"`
	Spent    int64      `json:"spent"`
	Created  time.Time  `json:"created"`
	Children []TreeNode `json:"children"`
}

// Actor is who acted in an entry.
type Actor struct {
	Type string `json:"type,omitempty"`
	ID   string `json:"id,omitempty"`
}

// DecisionView is a policy decision as a timeline shows it, with its
// reasons in plain words.
type DecisionView struct {
	ID            string            `json:"id"`
	Result        string            `json:"result"`
	Reasons       []policies.Reason `json:"reasons"`
	PolicyVersion string            `json:"policy_version"`
	InputDigest   string            `json:"input_digest"`
	LatencyMicros int64             `json:"latency_us"`
	Charge        string            `json:"charge,omitempty"`
	Approval      string            `json:"approval,omitempty"`
	Explanation   string            `json:"explanation"`
}

// Entry is one thing that happened to a mandate of the tree.
type Entry struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	Mandate string    `json:"mandate,omitempty"`
	// Kind groups entries: mandate, approval, delegation, token, decision,
	// charge, suspension, revocation.
	Kind  string `json:"kind"`
	Type  string `json:"type"`
	Actor Actor  `json:"actor"`
	// Factor is the second factor the actor confirmed the act with: a
	// payer's approval of the mandate, of a consent or CIBA request, or of
	// a held charge ("totp", "recovery_code", "passkey"; empty when none
	// was asked, or the entry was written before factors were recorded).
	Factor   string          `json:"factor,omitempty"`
	Decision *DecisionView   `json:"decision,omitempty"`
	Data     json.RawMessage `json:"data,omitempty"`
}

// Timeline is a mandate's whole story: its ancestors, its delegation tree
// and, oldest first, every entry of the mandates of the tree.
type Timeline struct {
	Object    string           `json:"object"`
	Mandate   mandates.Mandate `json:"mandate"`
	Ancestors []string         `json:"ancestors"`
	Tree      TreeNode         `json:"tree"`
	Entries   []Entry          `json:"entries"`
	HasMore   bool             `json:"has_more"`
}

// Timelines builds mandate timelines.
type Timelines struct {
	Mandates Mandates
	Audit    AuditLog
}

func notFound(err error, kind, id string) error {
	if errors.Is(err, store.ErrNotFound) {
		return &apierr.NotFound{Kind: kind, ID: id}
	}
	return err
}

// Timeline returns the timeline of f.MandateID: the tree below it, and a
// page (f.Limit entries after f.StartingAfter) of its entries.
func (t *Timelines) Timeline(ctx context.Context, f TimelineFilter) (*Timeline, error) {
	if err := page.Check(f.Limit); err != nil {
		return nil, err
	}
	chain, err := t.Mandates.Chain(ctx, f.TenantID, f.MandateID)
	if err != nil {
		return nil, notFound(err, "mandate", f.MandateID)
	}
	if len(chain) == 0 {
		return nil, &apierr.NotFound{Kind: "mandate", ID: f.MandateID}
	}
	m := chain[len(chain)-1]
	out := &Timeline{Object: "mandate_timeline", Mandate: m, Ancestors: []string{}}
	for _, a := range chain[:len(chain)-1] {
		out.Ancestors = append(out.Ancestors, a.ID)
	}
	var tree []mandates.Mandate
	if out.Tree, err = t.tree(ctx, f.TenantID, &m, &tree); err != nil {
		return nil, err
	}
	var entries []Entry
	agents := map[string]bool{}
	for i := range tree {
		tm := &tree[i]
		if (f.Agent != "" && tm.Agent != f.Agent) || (f.Payer != "" && tm.Payer != f.Payer) {
			continue
		}
		agents[tm.Agent] = true
		if entries, err = t.mandateEntries(ctx, tm, entries); err != nil {
			return nil, err
		}
	}
	if entries, err = t.tokenEntries(ctx, f.TenantID, m.CreatedAt, slices.Sorted(mapsKeys(agents)), entries); err != nil {
		return nil, err
	}
	slices.SortStableFunc(entries, func(a, b Entry) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.ID, b.ID))
	})
	kept := entries[:0]
	for _, e := range entries {
		if (!f.Since.IsZero() && e.Created.Before(f.Since)) || (!f.Until.IsZero() && !e.Created.Before(f.Until)) {
			continue
		}
		if f.Agent != "" && e.Kind == "token" && e.Actor.ID != f.Agent {
			continue
		}
		kept = append(kept, e)
	}
	entries = kept
	if f.StartingAfter != "" {
		i := slices.IndexFunc(entries, func(e Entry) bool { return e.ID == f.StartingAfter })
		if i < 0 {
			return nil, apierr.Invalidf("starting_after", apierr.ResourceMissing, "No such entry of the timeline of %s: '%s'.", m.ID, f.StartingAfter)
		}
		entries = entries[i+1:]
	}
	out.Entries, out.HasMore = page.Trim(entries, f.Limit)
	out.Entries = slices.Clip(out.Entries)
	return out, nil
}

func mapsKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// tree walks the delegation tree below m (breadth first, at most
// MaxTreeMandates mandates), appending every mandate to all.
func (t *Timelines) tree(ctx context.Context, tenantID string, m *mandates.Mandate, all *[]mandates.Mandate) (TreeNode, error) {
	*all = append(*all, *m)
	node := TreeNode{ID: m.ID, Agent: m.Agent, Payer: m.Payer, Status: m.Status, Depth: m.Depth, Currency: m.Currency,
		Budget: m.Budget, Spent: m.Spent, Created: m.CreatedAt.UTC(), Children: []TreeNode{}}
	after := ""
	for {
		kids, more, err := t.Mandates.List(ctx, mandates.Filter{TenantID: tenantID, ParentID: m.ID, StartingAfter: after, Limit: page.MaxLimit})
		if err != nil {
			return node, err
		}
		for i := range kids {
			if len(*all) >= MaxTreeMandates {
				return node, apierr.BadParam("id", "The delegation tree of %s has more than %d mandates; ask for the timeline of a sub-tree.", m.ID, MaxTreeMandates)
			}
			child, err := t.tree(ctx, tenantID, &kids[i], all)
			if err != nil {
				return node, err
			}
			node.Children = append(node.Children, child)
		}
		if !more || len(kids) == 0 {
			break
		}
		after = kids[len(kids)-1].ID
	}
	slices.SortFunc(node.Children, func(a, b TreeNode) int { return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.ID, b.ID)) })
	return node, nil
}

// kindOf groups a mandate event type.
func kindOf(typ string) string {
	switch {
	case strings.HasPrefix(typ, "decision."):
		return "decision"
	case strings.HasPrefix(typ, "charge."), strings.HasPrefix(typ, "refund."):
		return "charge"
	case strings.HasPrefix(typ, "approval."), typ == "mandate.approved":
		return "approval"
	case typ == "mandate.delegated":
		return "delegation"
	case typ == "mandate.suspended", typ == "mandate.resumed":
		return "suspension"
	case typ == "mandate.revoked":
		return "revocation"
	}
	return "mandate"
}

// mandateEntries appends the history of m.
func (t *Timelines) mandateEntries(ctx context.Context, m *mandates.Mandate, out []Entry) ([]Entry, error) {
	after := ""
	for {
		evs, more, err := t.Mandates.Events(ctx, mandates.EventFilter{TenantID: m.TenantID, MandateID: m.ID, StartingAfter: after, Limit: page.MaxLimit})
		if err != nil {
			return nil, err
		}
		for i := range evs {
			if len(out) >= MaxTimelineEntries {
				return nil, apierr.BadParam("since", "The timeline holds more than %d entries; narrow it with since and until.", MaxTimelineEntries)
			}
			out = append(out, entryOf(&evs[i]))
		}
		if !more || len(evs) == 0 {
			return out, nil
		}
		after = evs[len(evs)-1].ID
	}
}

func entryOf(ev *mandates.Event) Entry {
	e := Entry{ID: ev.ID, Created: ev.CreatedAt.UTC(), Mandate: ev.MandateID, Kind: kindOf(ev.Type), Type: ev.Type,
		Actor: Actor{Type: ev.ActorType, ID: ev.ActorID}, Data: ev.Data, Factor: factorOf(ev.Data)}
	if e.Kind == "decision" {
		var d charging.Decision
		if json.Unmarshal(ev.Data, &d) == nil && d.ID != "" {
			e.Decision = &DecisionView{ID: d.ID, Result: d.Result, Reasons: d.Reasons, PolicyVersion: d.PolicyVersion,
				InputDigest: d.InputDigest, LatencyMicros: d.LatencyMicros, Charge: d.ChargeID, Approval: d.ApprovalID,
				Explanation: Explain(d.Result, d.Reasons)}
			e.Data = nil
		}
	}
	return e
}

// factorOf reads the factor an entry's data names (audit.AddFactor).
func factorOf(data json.RawMessage) string {
	var d struct {
		Factor string `json:"factor"`
	}
	if len(data) == 0 || data[0] != '{' || json.Unmarshal(data, &d) != nil {
		return ""
	}
	return d.Factor
}

// tokenEntries appends the access tokens the tree's agents were issued
// and the revocations of their tokens since the mandate was created.
func (t *Timelines) tokenEntries(ctx context.Context, tenantID string, since time.Time, agents []string, out []Entry) ([]Entry, error) {
	for _, agent := range agents {
		for _, action := range []string{"token.issued", "token.revoked", "token.family_revoked"} {
			var after int64
			for {
				list, err := t.Audit.Query(ctx, audit.Query{Filter: audit.Filter{TenantID: tenantID,
					Action: action, Since: since, AfterSeq: after, Limit: 1000}, ActorType: audit.ActorAgent, ActorID: agent})
				if err != nil {
					return nil, err
				}
				for i := range list {
					if len(out) >= MaxTimelineEntries {
						return nil, apierr.BadParam("since", "The timeline holds more than %d entries; narrow it with since and until.", MaxTimelineEntries)
					}
					a := &list[i]
					out = append(out, Entry{ID: a.ID, Created: a.CreatedAt.UTC(), Kind: "token", Type: a.Action,
						Actor: Actor{Type: a.ActorType, ID: a.ActorID}, Data: a.Data})
				}
				if len(list) < 1000 {
					break
				}
				after = list[len(list)-1].Seq
			}
		}
	}
	return out, nil
}

// Explain says a decision in plain words: its result and every reason
// the policy gave (the reasons carry the amounts and limits involved).
func Explain(result string, reasons []policies.Reason) string {
	var verdict string
	switch result {
	case policies.Allow:
		verdict = "Allowed: the charge was within every limit of the mandate chain"
	case policies.Challenge:
		verdict = "Held for approval"
	case policies.Deny:
		verdict = "Refused"
	default:
		verdict = fmt.Sprintf("Decided %q", result)
	}
	if len(reasons) == 0 {
		return verdict + "."
	}
	if result == policies.Allow {
		verdict, _ = strings.CutSuffix(verdict, ": the charge was within every limit of the mandate chain")
		verdict += "; the policy noted that"
	} else {
		verdict += " because"
	}
	msgs := make([]string, 0, len(reasons))
	for _, r := range reasons {
		msgs = append(msgs, r.Message)
	}
	return verdict + " " + strings.Join(msgs, "; ") + "."
}
