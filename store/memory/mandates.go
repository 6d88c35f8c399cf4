package memory

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/perfectpay/perfectpay/internal/page"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/merchants"
	"github.com/perfectpay/perfectpay/store"
)

var (
	_ mandates.Repo  = (*Tx)(nil)
	_ merchants.Repo = (*Tx)(nil)
)

// mandateData holds the mandates and merchants tables.
type mandateData struct {
	mandates  table[string, mandates.Mandate]
	events    table[int64, mandates.Event]
	eventSeq  int64
	merchants table[string, merchants.Merchant]
	// history holds each mandate's event seqs, ascending, and eventSeqs
	// the newest seq of each event id in its mandate's history: a page of
	// ListMandateEvents finds its cursor and reads its events, not the
	// events of every mandate.
	history   table[historyKey, []int64]
	eventSeqs table[historyEventKey, int64]
	// listed holds the mandate ids of each tenant, and of each of its
	// agents, payers and parents, oldest first (see mandateLists): a page
	// of ListMandates walks back from its cursor and stops one past its
	// limit. Nothing changes a mandate's tenant, agent, payer, parent,
	// creation time or id once created, and nothing deletes a mandate, so
	// a list holds exactly the mandates it names.
	listed table[mandateListKey, []string]
	// expiring holds the mandates that expire some day and are not yet
	// revoked or expired, by id, with their ValidUntil (see putMandate):
	// the minute of the expiry job reads the mandates it expires, not
	// every mandate ever made.
	expiring *ordered[expiringMandate]
	// named counts the live mandates that name each token of a tenant,
	// for the token shred (see shred.go).
	named table[useKey, int]
	// dueChecks holds the merchants' verified domains that have a next
	// re-check, by that time, then merchant id and domain (see
	// putMerchant): the re-check job reads the first due, not every
	// merchant's every domain.
	dueChecks *ordered[dueDomain]
	// byDomain holds, for each domain some merchant verified, the ids of
	// the merchants that verified it, ascending (see putMerchant): a
	// lookup by domain and the check of a merchant's domains read the
	// domain's merchants, not every merchant.
	byDomain table[string, []string]
	// byTenant holds each tenant's merchant ids, ascending (one, as
	// CreateMerchant checks; see putMerchant): a lookup by tenant reads
	// the tenant's, not every merchant.
	byTenant table[string, []string]
}

// expiringMandate is a mandate of the expiry index: its id and ValidUntil.
type expiringMandate struct {
	id    string
	until stamp
}

func newMandateData() *mandateData {
	return &mandateData{
		mandates:  table[string, mandates.Mandate]{},
		events:    table[int64, mandates.Event]{},
		merchants: table[string, merchants.Merchant]{},
		history:   table[historyKey, []int64]{},
		eventSeqs: table[historyEventKey, int64]{},
		listed:    table[mandateListKey, []string]{},
		expiring: newOrdered(func(a, b expiringMandate) int { return strings.Compare(a.id, b.id) },
			func(m expiringMandate) stamp { return m.until }),
		named:     table[useKey, int]{},
		dueChecks: newOrdered(compareDueDomains, nil),
		byDomain:  table[string, []string]{},
		byTenant:  table[string, []string]{},
	}
}

// expires tells whether m belongs in the expiry index: it has a
// ValidUntil and is neither revoked nor expired.
func expires(m *mandates.Mandate) bool { return m.ValidUntil != nil && !mandates.Terminal(m.Status) }

// putMandate stores m (a clone the caller no longer touches) and keeps
// the expiry index and the count of the tokens it names. Every write of
// a mandate goes through it.
func (tx *Tx) putMandate(m mandates.Mandate) {
	d := tx.d.mandates
	old, had := d.mandates[m.ID]
	put(tx, d.mandates, m.ID, m)
	tx.noteNames(&old, had, &m)
	was, is := had && expires(&old), expires(&m)
	if was && is && old.ValidUntil.Equal(*m.ValidUntil) {
		return
	}
	if was {
		d.expiring.drop(tx, expiringMandate{id: m.ID})
	}
	if is {
		d.expiring.add(tx, expiringMandate{m.ID, stampOf(*m.ValidUntil)})
	}
}

// mandateListKey names a list of listed: a tenant's mandates (by ""), or
// those of one of its agents, payers or parents.
type mandateListKey struct{ tenantID, by, value string }

// mandateLists names the lists m belongs to.
func mandateLists(m *mandates.Mandate) []mandateListKey {
	keys := []mandateListKey{{m.TenantID, "", ""}}
	for _, k := range []mandateListKey{{m.TenantID, "agent", m.Agent}, {m.TenantID, "payer", m.Payer},
		{m.TenantID, "parent", m.ParentID}} {
		if k.value != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// filterList is the list of listed that holds every mandate f can match,
// the narrowest f names.
func filterList(f *mandates.Filter) mandateListKey {
	switch {
	case f.ParentID != "":
		return mandateListKey{f.TenantID, "parent", f.ParentID}
	case f.Payer != "":
		return mandateListKey{f.TenantID, "payer", f.Payer}
	case f.Agent != "":
		return mandateListKey{f.TenantID, "agent", f.Agent}
	}
	return mandateListKey{f.TenantID, "", ""}
}

// mandatesBefore is the number of mandates of the list l that come
// before m, oldest first (newestFirst reversed).
func (tx *Tx) mandatesBefore(l []string, m *mandates.Mandate) int {
	d := tx.d.mandates
	i, _ := slices.BinarySearchFunc(l, m, func(id string, m *mandates.Mandate) int {
		return newestFirst(*m, d.mandates[id])
	})
	return i
}

// listMandate puts the id of m, just created, in its lists: at the end
// when it is the newest, as it usually is, else where it belongs.
func (tx *Tx) listMandate(m *mandates.Mandate) {
	d := tx.d.mandates
	for _, k := range mandateLists(m) {
		l := d.listed[k]
		if i := tx.mandatesBefore(l, m); i == len(l) {
			put(tx, d.listed, k, append(l, m.ID))
		} else {
			put(tx, d.listed, k, slices.Insert(slices.Clone(l), i, m.ID))
		}
	}
}

// historyKey names a mandate's history; historyEventKey an event in it.
type historyKey struct{ tenantID, mandateID string }

type historyEventKey struct {
	historyKey
	id string
}

func (tx *Tx) CreateMandate(_ context.Context, m *mandates.Mandate) error {
	d := tx.d.mandates
	if _, ok := d.mandates[m.ID]; ok {
		return store.ErrConflict
	}
	if _, ok := tx.d.tenants[m.TenantID]; !ok {
		return store.ErrNotFound
	}
	if m.ParentID != "" {
		if _, ok := d.mandates[m.ParentID]; !ok {
			return store.ErrNotFound
		}
	}
	tx.putMandate(*m.Clone())
	tx.listMandate(m)
	return nil
}

func (tx *Tx) GetMandate(_ context.Context, tenantID, id string) (*mandates.Mandate, error) {
	m, ok := tx.d.mandates.mandates[id]
	if !ok || m.TenantID != tenantID {
		return nil, store.ErrNotFound
	}
	return m.Clone(), nil
}

// newestFirst orders mandates by creation, newest first, then id.
func newestFirst(a, b mandates.Mandate) int {
	if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
		return c
	}
	return strings.Compare(b.ID, a.ID)
}

// ListMandates walks the narrowest list of the filter back from the
// cursor and stops one past its limit (to tell whether there is more): a
// page reads the mandates it returns and those the filter skips on the
// way, not every mandate in the store.
func (tx *Tx) ListMandates(_ context.Context, f mandates.Filter) ([]mandates.Mandate, bool, error) {
	d := tx.d.mandates
	l := d.listed[filterList(&f)]
	end := len(l)
	if f.StartingAfter != "" {
		c, ok := d.mandates[f.StartingAfter]
		if !ok || c.TenantID != f.TenantID {
			return nil, false, store.ErrNotFound
		}
		end = tx.mandatesBefore(l, &c)
	}
	var out []mandates.Mandate
	for i := end - 1; i >= 0 && len(out) < page.Fetch(f.Limit); i-- {
		m := d.mandates[l[i]]
		if m.TenantID != f.TenantID || (f.Agent != "" && m.Agent != f.Agent) || (f.Payer != "" && m.Payer != f.Payer) ||
			(f.Status != "" && m.Status != f.Status) || (f.ParentID != "" && m.ParentID != f.ParentID) {
			continue
		}
		out = append(out, *m.Clone())
	}
	out, more := page.Trim(out, f.Limit)
	return out, more, nil
}

func (tx *Tx) MandateChain(_ context.Context, tenantID, id string) ([]mandates.Mandate, error) {
	var chain []mandates.Mandate
	for id != "" {
		m, ok := tx.d.mandates.mandates[id]
		if !ok || m.TenantID != tenantID {
			return nil, store.ErrNotFound
		}
		chain = append(chain, *m.Clone())
		id = m.ParentID
	}
	slices.Reverse(chain)
	return chain, nil
}

func (tx *Tx) SetMandateStatus(_ context.Context, tenantID, id string, from []string, to string, at time.Time) (*mandates.Mandate, error) {
	m, ok := tx.d.mandates.mandates[id]
	if !ok || m.TenantID != tenantID {
		return nil, store.ErrNotFound
	}
	if !slices.Contains(from, m.Status) {
		return m.Clone(), store.ErrConflict
	}
	c := m.Clone()
	c.Status, c.UpdatedAt = to, at
	switch to {
	case mandates.StatusActive:
		if c.ApprovedAt == nil {
			c.ApprovedAt = &at
		}
	case mandates.StatusRevoked:
		c.RevokedAt = &at
	}
	tx.putMandate(*c)
	return c.Clone(), nil
}

func (tx *Tx) RevokeMandateTree(_ context.Context, tenantID, id string, at time.Time) ([]string, error) {
	d := tx.d.mandates
	root, ok := d.mandates[id]
	if !ok || root.TenantID != tenantID {
		return nil, store.ErrNotFound
	}
	// A mandate's children are in its parent list (a sub-mandate is made
	// in its parent's tenant): the walk reads the tree, not every mandate.
	children := func(id string) []string { return d.listed[mandateListKey{tenantID, "parent", id}] }
	type node struct {
		id    string
		level int
	}
	var tree []node
	for queue := []node{{id, 0}}; len(queue) > 0; queue = queue[1:] {
		cur := queue[0]
		tree = append(tree, cur)
		for _, kid := range children(cur.id) {
			queue = append(queue, node{kid, cur.level + 1})
		}
	}
	slices.SortFunc(tree, func(a, b node) int {
		if a.level != b.level {
			return a.level - b.level
		}
		return strings.Compare(a.id, b.id)
	})
	var revoked []string
	for _, n := range tree {
		m := d.mandates[n.id]
		if mandates.Terminal(m.Status) {
			continue
		}
		c := m.Clone()
		c.Status, c.RevokedAt, c.UpdatedAt = mandates.StatusRevoked, &at, at
		tx.putMandate(*c)
		revoked = append(revoked, n.id)
	}
	return revoked, nil
}

// ExpireMandates walks the expiry index in id order through the
// subtrees that hold a mandate due at now, and stops at its limit: it
// reads the mandates it expires, not every mandate ever made.
func (tx *Tx) ExpireMandates(_ context.Context, now time.Time, limit int) ([]mandates.Mandate, error) {
	d := tx.d.mandates
	var due []string
	if limit > 0 {
		d.expiring.walkDue(stampOf(now), func(m expiringMandate) bool {
			due = append(due, m.id)
			return len(due) < limit
		})
	}
	out := make([]mandates.Mandate, 0, len(due))
	for _, id := range due {
		m := d.mandates[id]
		c := m.Clone()
		c.Status, c.UpdatedAt = mandates.StatusExpired, now
		tx.putMandate(*c)
		out = append(out, *c.Clone())
	}
	return out, nil
}

func (tx *Tx) Reserve(_ context.Context, chain []string, amount int64, now time.Time) (*mandates.Reservation, error) {
	res := &mandates.Reservation{Chain: slices.Clone(chain), Amount: amount, At: now}
	for _, id := range chain {
		m, ok := tx.d.mandates.mandates[id]
		if !ok {
			return nil, &mandates.RefusedError{MandateID: id, Limit: mandates.LimitNotFound}
		}
		if why := m.Refusal(amount, now); why != "" {
			return nil, &mandates.RefusedError{MandateID: id, Limit: why, Status: m.Status}
		}
		c := m.Clone()
		if c.Period != "" {
			ps := c.ChargePeriod(now)
			c.PeriodSpent, c.PeriodStart = c.PeriodSpentAt(now)+amount, &ps
			if res.Periods == nil {
				res.Periods = map[string]time.Time{}
			}
			res.Periods[id] = ps
		}
		c.Spent += amount
		c.ChargeCount++
		c.UpdatedAt = now
		if c.Spent == c.Budget || (c.MaxCharges != nil && c.ChargeCount == *c.MaxCharges) {
			c.Status = mandates.StatusExhausted
			res.Exhausted = append(res.Exhausted, id)
		}
		tx.putMandate(*c)
	}
	return res, nil
}

func (tx *Tx) Release(_ context.Context, r *mandates.Reservation, keepCount bool) error {
	for _, id := range r.Chain {
		m, ok := tx.d.mandates.mandates[id]
		if !ok {
			return store.ErrNotFound
		}
		c := m.Clone()
		c.Spent = max(c.Spent-r.Amount, 0)
		if p, ok := r.Periods[id]; ok && c.PeriodStart != nil && c.PeriodStart.Equal(p) {
			c.PeriodSpent = max(c.PeriodSpent-r.Amount, 0)
		}
		if !keepCount {
			c.ChargeCount = max(c.ChargeCount-1, 0)
		}
		if c.Status == mandates.StatusExhausted && c.Spent < c.Budget && (c.MaxCharges == nil || c.ChargeCount < *c.MaxCharges) {
			c.Status = mandates.StatusActive
		}
		tx.putMandate(*c)
	}
	return nil
}

func (tx *Tx) AppendMandateEvent(_ context.Context, e *mandates.Event) error {
	d := tx.d.mandates
	setVar(tx, &d.eventSeq, d.eventSeq+1)
	e.Seq = d.eventSeq
	c := *e
	c.Data = slices.Clone(e.Data)
	put(tx, d.events, c.Seq, c)
	k := historyKey{c.TenantID, c.MandateID}
	put(tx, d.history, k, append(d.history[k], c.Seq))
	put(tx, d.eventSeqs, historyEventKey{k, c.ID}, c.Seq)
	return nil
}

// ListMandateEvents reads the mandate's history from the cursor on and
// stops one past its limit (to tell whether there is more).
func (tx *Tx) ListMandateEvents(_ context.Context, f mandates.EventFilter) ([]mandates.Event, bool, error) {
	d := tx.d.mandates
	k := historyKey{f.TenantID, f.MandateID}
	if f.StartingAfter != "" {
		seq, ok := d.eventSeqs[historyEventKey{k, f.StartingAfter}]
		if !ok {
			return nil, false, store.ErrNotFound
		}
		f.AfterSeq = max(f.AfterSeq, seq)
	}
	h := d.history[k]
	i, _ := slices.BinarySearch(h, f.AfterSeq+1)
	var out []mandates.Event
	for _, seq := range h[i:] {
		if len(out) >= page.Fetch(f.Limit) {
			break
		}
		e := d.events[seq]
		e.Data = slices.Clone(e.Data)
		out = append(out, e)
	}
	out, more := page.Trim(out, f.Limit)
	return out, more, nil
}
