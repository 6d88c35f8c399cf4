package web

import (
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/compliance"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/internal/money"
	"github.com/perfectpay/perfectpay/internal/page"
	"github.com/perfectpay/perfectpay/server"
)

// The auditor's page of one mandate: its delegation tree, its timeline
// newest first (filtered by agent, payer and time through a GET form, in
// pages) and every decision explained in plain words. Every team member
// may read it, an auditor included; it has no form that changes anything.
func (p *Pages) mountAudit(api *server.API) {
	p.handle(api, http.MethodGet, "/console/mandates/{id}", p.mandateTimelinePage)
}

// timelinePageSize is how many entries one page of the timeline shows.
const timelinePageSize = 25

// treeRow is a mandate of the delegation tree as the page shows it.
type treeRow struct {
	ID, Agent, Payer, Status, Left string
	Current                        bool
	Children                       []treeRow
}

// timelineRow is one entry of the timeline as the page shows it.
type timelineRow struct {
	ID, Kind, What, Mandate, Actor string
	// Factor says in words the factor the act was confirmed with.
	Factor   string
	At       time.Time
	Decision *decisionView
}

// decisionView explains a decision: the verdict in plain words, every
// reason, and what identifies the evaluation.
type decisionView struct {
	Result, Explanation, PolicyVersion, InputDigest, Latency string
	Reasons                                                  []string
}

// timelineFilterForm is the filter form as typed.
type timelineFilterForm struct {
	Agent, Payer, Since, Until string
}

type timelineData struct {
	ID        string
	Title     string
	Ancestors []string
	Tree      []treeRow
	Agents    []string
	Payers    []string
	Filter    timelineFilterForm
	Filtered  bool
	Entries   []timelineRow
	Next      template.URL // the next (older) page, or ""
}

func (p *Pages) mandateTimelinePage(w http.ResponseWriter, r *http.Request) {
	u, ok := p.team(w, r)
	if !ok {
		return
	}
	d, status, msg, err := p.timelineData(r, u)
	if msg != "" {
		p.fail(w, r, status, msg)
		return
	}
	if err != nil {
		p.internal(w, r, err)
		return
	}
	p.render(w, r, http.StatusOK, "mandate_timeline", &View{Title: d.Title, Data: d})
}

// filterDate reads a date of the filter form (2026-12-31, or a time in
// RFC 3339); an end date counts the whole day.
func filterDate(field, s string, end bool) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return time.Time{}, apierr.BadParam(field, "%s must be a date like 2026-12-31.", field)
	}
	if end {
		t = t.Add(24 * time.Hour)
	}
	return t, nil
}

// timelineData gathers the page; a refusal of the request comes back as
// a status and a message to show.
func (p *Pages) timelineData(r *http.Request, u *accounts.User) (*timelineData, int, string, error) {
	id := mux.Vars(r)["id"]
	q := r.URL.Query()
	f := timelineFilterForm{Agent: strings.TrimSpace(q.Get("agent")), Payer: strings.TrimSpace(q.Get("payer")),
		Since: strings.TrimSpace(q.Get("since")), Until: strings.TrimSpace(q.Get("until"))}
	after := q.Get("after")
	for _, v := range []string{id, f.Agent, f.Payer, f.Since, f.Until, after} {
		if len(v) > 200 {
			return nil, http.StatusBadRequest, "A filter is longer than 200 characters.", nil
		}
	}
	since, err := filterDate("since", f.Since, false)
	if err == nil {
		var until time.Time
		if until, err = filterDate("until", f.Until, true); err == nil {
			if !since.IsZero() && !until.IsZero() && !until.After(since) {
				err = apierr.BadParam("until", "until must be after since.")
			}
			tf := compliance.TimelineFilter{TenantID: u.TenantID, MandateID: id, Agent: f.Agent, Payer: f.Payer,
				Since: since, Until: until, Page: page.Page{Limit: page.MaxLimit}}
			if err == nil {
				return p.timelineOf(r, tf, f, after)
			}
		}
	}
	if msg, ok := refusal(err); ok {
		return nil, http.StatusBadRequest, msg, nil
	}
	return nil, 0, "", err
}

func (p *Pages) timelineOf(r *http.Request, tf compliance.TimelineFilter, f timelineFilterForm, after string) (*timelineData, int, string, error) {
	if p.Timelines == nil {
		return nil, http.StatusNotFound, "No timelines on this node.", nil
	}
	// The whole (filtered) story is bounded by compliance.MaxTimelineEntries;
	// read it in pages, then show it newest first.
	var all []compliance.Entry
	var tl *compliance.Timeline
	for {
		next, err := p.Timelines.Timeline(r.Context(), tf)
		if err != nil {
			var nf *apierr.NotFound
			if errors.As(err, &nf) {
				return nil, http.StatusNotFound, "No such mandate.", nil
			}
			if msg, ok := refusal(err); ok {
				return nil, http.StatusBadRequest, msg, nil
			}
			return nil, 0, "", err
		}
		tl = next
		all = append(all, next.Entries...)
		if !next.HasMore || len(next.Entries) == 0 {
			break
		}
		tf.StartingAfter = next.Entries[len(next.Entries)-1].ID
	}
	slices.Reverse(all)
	if after != "" {
		i := slices.IndexFunc(all, func(e compliance.Entry) bool { return e.ID == after })
		if i < 0 {
			return nil, http.StatusBadRequest, "No such entry of this timeline; start again from the newest.", nil
		}
		all = all[i+1:]
	}
	size := p.timelinePage
	if size <= 0 {
		size = timelinePageSize
	}
	shown, more := page.Trim(all, size)

	ctx := r.Context()
	names := map[string]string{}
	name := func(agent string) string {
		if n, ok := names[agent]; ok {
			return n
		}
		n := p.agentName(ctx, tf.TenantID, agent)
		names[agent] = n
		return n
	}
	m := &tl.Mandate
	d := &timelineData{ID: m.ID, Title: "Mandate of " + name(m.Agent), Ancestors: tl.Ancestors, Filter: f,
		Filtered: f != (timelineFilterForm{})}
	agents, payers := map[string]bool{}, map[string]bool{}
	var walk func(n *compliance.TreeNode) treeRow
	walk = func(n *compliance.TreeNode) treeRow {
		agents[n.Agent], payers[n.Payer] = true, true
		row := treeRow{ID: n.ID, Agent: name(n.Agent), Payer: n.Payer, Status: n.Status, Current: n.ID == m.ID,
			Left: money.Format(n.Budget-n.Spent, strings.ToUpper(n.Currency)) + " left of " + money.Format(n.Budget, strings.ToUpper(n.Currency))}
		for i := range n.Children {
			row.Children = append(row.Children, walk(&n.Children[i]))
		}
		return row
	}
	d.Tree = []treeRow{walk(&tl.Tree)}
	d.Agents, d.Payers = slices.Sorted(setKeys(agents)), slices.Sorted(setKeys(payers))
	for i := range shown {
		e := &shown[i]
		row := timelineRow{ID: e.ID, At: e.Created, Kind: e.Kind, What: describeEntry(e.Type), Mandate: e.Mandate,
			Factor: describeFactor(e.Factor)}
		switch {
		case e.Actor.Type == "agent" && e.Actor.ID != "":
			row.Actor = name(e.Actor.ID)
		case e.Actor.ID != "":
			row.Actor = e.Actor.Type + " " + e.Actor.ID
		default:
			row.Actor = e.Actor.Type
		}
		if dv := e.Decision; dv != nil {
			row.Decision = &decisionView{Result: dv.Result, Explanation: dv.Explanation, PolicyVersion: dv.PolicyVersion,
				InputDigest: dv.InputDigest, Latency: latencyText(dv.LatencyMicros), Reasons: reasonText(dv.Reasons)}
		}
		d.Entries = append(d.Entries, row)
	}
	if more && len(shown) > 0 {
		v := url.Values{}
		for k, s := range map[string]string{"agent": f.Agent, "payer": f.Payer, "since": f.Since, "until": f.Until} {
			if s != "" {
				v.Set(k, s)
			}
		}
		v.Set("after", shown[len(shown)-1].ID)
		d.Next = template.URL("/console/mandates/" + url.PathEscape(m.ID) + "?" + v.Encode())
	}
	return d, 0, "", nil
}

// describeFactor says in words the factor an act was confirmed with.
func describeFactor(f string) string {
	switch f {
	case "":
		return ""
	case accounts.FactorTOTP:
		return "an authenticator code"
	case accounts.FactorRecovery:
		return "a recovery code"
	case accounts.FactorPasskey:
		return "a passkey"
	}
	return f
}

// describeEntry says an entry's type in words.
func describeEntry(typ string) string {
	if w, ok := entryWords[typ]; ok {
		return w
	}
	return strings.ReplaceAll(strings.ReplaceAll(typ, "_", " "), ".", " ")
}

var entryWords = map[string]string{
	"mandate.created": "Mandate created", "mandate.approved": "Mandate approved by the payer",
	"mandate.delegated": "Delegated to another agent", "mandate.suspended": "Suspended", "mandate.resumed": "Resumed",
	"mandate.revoked": "Revoked", "decision.allow": "Decision: allowed", "decision.deny": "Decision: refused",
	"decision.challenge": "Decision: held for approval", "token.issued": "Access token issued",
	"token.revoked": "Access token revoked", "token.family_revoked": "Token family revoked",
}

func latencyText(us int64) string {
	return (time.Duration(us) * time.Microsecond).String()
}

func setKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if k != "" && !yield(k) {
				return
			}
		}
	}
}
