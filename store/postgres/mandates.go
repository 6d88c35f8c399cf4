package postgres

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/perfectpay/perfectpay/internal/page"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/merchants"
	"github.com/perfectpay/perfectpay/store"
)

var (
	_ mandates.Repo  = (*Tx)(nil)
	_ merchants.Repo = (*Tx)(nil)
)

const mandateCols = `id, tenant_id, coalesce(parent_id, ''), depth, payer, agent, description, status, currency,
	max_amount_per_charge, budget, coalesce(period, ''), period_budget, max_charges, payment_methods,
	allowed_merchants, allowed_categories, blocked_categories, allowed_countries, valid_from, valid_until,
	approval_threshold, spent, period_spent, period_start, charge_count, created_at, updated_at, approved_at, revoked_at`

func scanMandate(row pgx.Row) (*mandates.Mandate, error) {
	var m mandates.Mandate
	err := row.Scan(&m.ID, &m.TenantID, &m.ParentID, &m.Depth, &m.Payer, &m.Agent, &m.Description, &m.Status, &m.Currency,
		&m.MaxAmountPerCharge, &m.Budget, &m.Period, &m.PeriodBudget, &m.MaxCharges, &m.PaymentMethods,
		&m.AllowedMerchants, &m.AllowedCategories, &m.BlockedCategories, &m.AllowedCountries, &m.ValidFrom, &m.ValidUntil,
		&m.ApprovalThreshold, &m.Spent, &m.PeriodSpent, &m.PeriodStart, &m.ChargeCount, &m.CreatedAt, &m.UpdatedAt,
		&m.ApprovedAt, &m.RevokedAt)
	if err != nil {
		return nil, mapErr(err)
	}
	for _, s := range []*[]string{&m.AllowedMerchants, &m.AllowedCategories, &m.BlockedCategories, &m.AllowedCountries} {
		if len(*s) == 0 {
			*s = nil
		}
	}
	m.CreatedAt, m.UpdatedAt = m.CreatedAt.UTC(), m.UpdatedAt.UTC()
	for _, p := range []**time.Time{&m.ValidFrom, &m.ValidUntil, &m.PeriodStart, &m.ApprovedAt, &m.RevokedAt} {
		*p = utcPtr(*p)
	}
	return &m, nil
}

func collectMandates(rows pgx.Rows, err error) ([]mandates.Mandate, error) {
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	var out []mandates.Mandate
	for rows.Next() {
		m, err := scanMandate(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *m)
	}
	return out, mapErr(rows.Err())
}

// nullSet stores an absent set as NULL.
func nullSet(s []string) any {
	if len(s) == 0 {
		return nil
	}
	return s
}

func (t *Tx) CreateMandate(ctx context.Context, m *mandates.Mandate) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO mandates (id, tenant_id, parent_id, depth, payer, agent, description, status, currency,
		max_amount_per_charge, budget, period, period_budget, max_charges, payment_methods, allowed_merchants,
		allowed_categories, blocked_categories, allowed_countries, valid_from, valid_until, approval_threshold,
		spent, period_spent, period_start, charge_count, created_at, updated_at, approved_at, revoked_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22,
		$23, $24, $25, $26, $27, $28, $29, $30)`,
		m.ID, m.TenantID, nullStr(m.ParentID), m.Depth, m.Payer, m.Agent, m.Description, m.Status, m.Currency,
		m.MaxAmountPerCharge, m.Budget, nullStr(m.Period), m.PeriodBudget, m.MaxCharges, m.PaymentMethods,
		nullSet(m.AllowedMerchants), nullSet(m.AllowedCategories), nullSet(m.BlockedCategories), nullSet(m.AllowedCountries),
		m.ValidFrom, m.ValidUntil, m.ApprovalThreshold, m.Spent, m.PeriodSpent, m.PeriodStart, m.ChargeCount,
		m.CreatedAt, m.UpdatedAt, m.ApprovedAt, m.RevokedAt)
	return mapErr(err)
}

func (t *Tx) GetMandate(ctx context.Context, tenantID, id string) (*mandates.Mandate, error) {
	return scanMandate(t.tx.QueryRow(ctx, `SELECT `+mandateCols+` FROM mandates WHERE id = $1 AND tenant_id = $2`, id, tenantID))
}

func (t *Tx) ListMandates(ctx context.Context, f mandates.Filter) ([]mandates.Mandate, bool, error) {
	var cursor any
	if f.StartingAfter != "" {
		var ok bool
		if err := t.tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM mandates WHERE id = $1 AND tenant_id = $2)`,
			f.StartingAfter, f.TenantID).Scan(&ok); err != nil {
			return nil, false, mapErr(err)
		}
		if !ok {
			return nil, false, store.ErrNotFound
		}
		cursor = f.StartingAfter
	}
	out, err := collectMandates(t.tx.Query(ctx, `SELECT `+mandateCols+` FROM mandates
		WHERE tenant_id = $1 AND ($2 = '' OR agent = $2) AND ($3 = '' OR payer = $3) AND ($4 = '' OR status = $4)
		  AND ($5 = '' OR parent_id = $5)
		  AND ($6::text IS NULL OR (created_at, id) < (SELECT created_at, id FROM mandates WHERE id = $6))
		ORDER BY created_at DESC, id DESC LIMIT $7`,
		f.TenantID, f.Agent, f.Payer, f.Status, f.ParentID, cursor, page.Fetch(f.Limit)))
	if err != nil {
		return nil, false, err
	}
	out, more := page.Trim(out, f.Limit)
	return out, more, nil
}

func (t *Tx) MandateChain(ctx context.Context, tenantID, id string) ([]mandates.Mandate, error) {
	out, err := collectMandates(t.tx.Query(ctx, `WITH RECURSIVE chain (cid, cparent, lvl) AS (
			SELECT id, parent_id, 0 FROM mandates WHERE id = $1 AND tenant_id = $2
			UNION ALL
			SELECT m.id, m.parent_id, c.lvl + 1 FROM mandates m JOIN chain c ON m.id = c.cparent
		)
		SELECT `+mandateCols+` FROM chain JOIN mandates ON mandates.id = chain.cid
		WHERE tenant_id = $2 ORDER BY chain.lvl DESC`, id, tenantID))
	if err != nil {
		return nil, err
	}
	if len(out) == 0 || out[len(out)-1].ID != id || out[0].ParentID != "" {
		return nil, store.ErrNotFound
	}
	return out, nil
}

func (t *Tx) SetMandateStatus(ctx context.Context, tenantID, id string, from []string, to string, at time.Time) (*mandates.Mandate, error) {
	m, err := scanMandate(t.tx.QueryRow(ctx, `UPDATE mandates SET status = $3, updated_at = $4,
			approved_at = CASE WHEN $3 = 'active' THEN coalesce(approved_at, $4) ELSE approved_at END,
			revoked_at = CASE WHEN $3 = 'revoked' THEN $4 ELSE revoked_at END
		WHERE id = $1 AND tenant_id = $2 AND status = ANY ($5)
		RETURNING `+mandateCols, id, tenantID, to, at, from))
	if !errors.Is(err, store.ErrNotFound) {
		return m, err
	}
	cur, err := t.GetMandate(ctx, tenantID, id)
	if err != nil {
		return nil, err
	}
	return cur, store.ErrConflict
}

func (t *Tx) RevokeMandateTree(ctx context.Context, tenantID, id string, at time.Time) ([]string, error) {
	if _, err := t.GetMandate(ctx, tenantID, id); err != nil {
		return nil, err
	}
	rows, err := t.tx.Query(ctx, `WITH RECURSIVE tree (id, lvl) AS (
			SELECT id, 0 FROM mandates WHERE id = $1 AND tenant_id = $2
			UNION ALL
			SELECT m.id, tree.lvl + 1 FROM mandates m JOIN tree ON m.parent_id = tree.id
		)
		UPDATE mandates m SET status = 'revoked', revoked_at = $3, updated_at = $3
		FROM tree WHERE m.id = tree.id AND m.status NOT IN ('revoked', 'expired')
		RETURNING m.id, tree.lvl`, id, tenantID, at)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	type node struct {
		id  string
		lvl int
	}
	var tree []node
	for rows.Next() {
		var n node
		if err := rows.Scan(&n.id, &n.lvl); err != nil {
			return nil, mapErr(err)
		}
		tree = append(tree, n)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err)
	}
	slices.SortFunc(tree, func(a, b node) int {
		if a.lvl != b.lvl {
			return a.lvl - b.lvl
		}
		if a.id < b.id {
			return -1
		}
		return 1
	})
	ids := make([]string, 0, len(tree))
	for _, n := range tree {
		ids = append(ids, n.id)
	}
	return ids, nil
}

func (t *Tx) ExpireMandates(ctx context.Context, now time.Time, limit int) ([]mandates.Mandate, error) {
	return collectMandates(t.tx.Query(ctx, `UPDATE mandates SET status = 'expired', updated_at = $1
		WHERE id IN (SELECT id FROM mandates WHERE valid_until IS NOT NULL AND valid_until <= $1
		             AND status NOT IN ('revoked', 'expired') ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
		RETURNING `+mandateCols, now, limit))
}

// periodOf picks the mandate's own period start from the day, week and
// month starts passed as $3, $4, $5.
const periodOf = `(CASE m.period WHEN 'day' THEN $3::timestamptz WHEN 'week' THEN $4::timestamptz WHEN 'month' THEN $5::timestamptz END)`

// reserveSQL is the whole reservation on one mandate: one conditional
// UPDATE. The row lock it takes serializes concurrent reservations on the
// mandate, and READ COMMITTED re-checks the WHERE clause against the row as
// the previous holder committed it, so no interleaving overspends.
const reserveSQL = `UPDATE mandates m SET
		spent = m.spent + $2,
		charge_count = m.charge_count + 1,
		period_spent = CASE WHEN m.period IS NULL THEN 0
		                    WHEN m.period_start >= ` + periodOf + ` THEN m.period_spent + $2
		                    ELSE $2 END,
		period_start = CASE WHEN m.period IS NULL THEN NULL ELSE GREATEST(m.period_start, ` + periodOf + `) END,
		status = CASE WHEN m.spent + $2 = m.budget OR m.charge_count + 1 = m.max_charges THEN 'exhausted' ELSE m.status END,
		updated_at = $6
	WHERE m.id = $1 AND m.status = 'active'
	  AND (m.valid_from IS NULL OR m.valid_from <= $6) AND (m.valid_until IS NULL OR m.valid_until > $6)
	  AND m.spent + $2 <= m.budget
	  AND (m.period IS NULL OR (CASE WHEN m.period_start >= ` + periodOf + ` THEN m.period_spent ELSE 0 END) + $2 <= m.period_budget)
	  AND (m.max_charges IS NULL OR m.charge_count + 1 <= m.max_charges)
	RETURNING m.status, m.period_start`

func (t *Tx) Reserve(ctx context.Context, chain []string, amount int64, now time.Time) (*mandates.Reservation, error) {
	ps := mandates.PeriodStartsAt(now)
	res := &mandates.Reservation{Chain: slices.Clone(chain), Amount: amount, At: now}
	for _, id := range chain {
		var status string
		var period *time.Time
		err := t.tx.QueryRow(ctx, reserveSQL, id, amount, ps.Day, ps.Week, ps.Month, now).Scan(&status, &period)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, t.refusal(ctx, id, amount, now)
		}
		if err != nil {
			return nil, mapErr(err)
		}
		if period != nil {
			if res.Periods == nil {
				res.Periods = map[string]time.Time{}
			}
			res.Periods[id] = *period
		}
		if status == mandates.StatusExhausted {
			res.Exhausted = append(res.Exhausted, id)
		}
	}
	return res, nil
}

// refusal explains why the reservation's UPDATE matched no row.
func (t *Tx) refusal(ctx context.Context, id string, amount int64, now time.Time) error {
	m, err := scanMandate(t.tx.QueryRow(ctx, `SELECT `+mandateCols+` FROM mandates WHERE id = $1`, id))
	if errors.Is(err, store.ErrNotFound) {
		return &mandates.RefusedError{MandateID: id, Limit: mandates.LimitNotFound}
	}
	if err != nil {
		return err
	}
	why := m.Refusal(amount, now)
	if why == "" {
		// Changed between the two statements; report it as the budget race it is.
		why = mandates.LimitBudget
	}
	return &mandates.RefusedError{MandateID: id, Limit: why, Status: m.Status}
}

func (t *Tx) Release(ctx context.Context, r *mandates.Reservation, keepCount bool) error {
	for _, id := range r.Chain {
		var period any
		if p, ok := r.Periods[id]; ok {
			period = p
		}
		tag, err := t.tx.Exec(ctx, `UPDATE mandates SET
				spent = GREATEST(spent - $2, 0),
				period_spent = CASE WHEN $3::timestamptz IS NOT NULL AND period_start = $3 THEN GREATEST(period_spent - $2, 0) ELSE period_spent END,
				charge_count = CASE WHEN $4 THEN charge_count ELSE GREATEST(charge_count - 1, 0) END,
				status = CASE WHEN status = 'exhausted' AND spent - $2 < budget
				               AND (max_charges IS NULL OR (CASE WHEN $4 THEN charge_count ELSE charge_count - 1 END) < max_charges)
				         THEN 'active' ELSE status END,
				updated_at = $5
			WHERE id = $1`, id, r.Amount, period, keepCount, time.Now().UTC().Truncate(time.Microsecond))
		if err != nil {
			return mapErr(err)
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
	}
	return nil
}

func (t *Tx) AppendMandateEvent(ctx context.Context, e *mandates.Event) error {
	var data any
	if len(e.Data) > 0 {
		data = string(e.Data)
	}
	return t.later(ctx, `INSERT INTO mandate_events (id, tenant_id, mandate_id, type, actor_type, actor_id, data, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING seq`,
		[]any{e.ID, e.TenantID, e.MandateID, e.Type, e.ActorType, e.ActorID, data, e.CreatedAt},
		func(r pgx.Row) error { return r.Scan(&e.Seq) })
}

func (t *Tx) ListMandateEvents(ctx context.Context, f mandates.EventFilter) ([]mandates.Event, bool, error) {
	if f.StartingAfter != "" {
		var seq int64
		err := t.tx.QueryRow(ctx, `SELECT seq FROM mandate_events WHERE id = $1 AND tenant_id = $2 AND mandate_id = $3`,
			f.StartingAfter, f.TenantID, f.MandateID).Scan(&seq)
		if err != nil {
			return nil, false, mapErr(err)
		}
		f.AfterSeq = max(f.AfterSeq, seq)
	}
	rows, err := t.tx.Query(ctx, `SELECT seq, id, tenant_id, mandate_id, type, actor_type, actor_id, data::text, created_at
		FROM mandate_events WHERE tenant_id = $1 AND mandate_id = $2 AND seq > $3 ORDER BY seq LIMIT $4`,
		f.TenantID, f.MandateID, f.AfterSeq, page.Fetch(f.Limit))
	if err != nil {
		return nil, false, mapErr(err)
	}
	defer rows.Close()
	var out []mandates.Event
	for rows.Next() {
		var e mandates.Event
		var data *string
		if err := rows.Scan(&e.Seq, &e.ID, &e.TenantID, &e.MandateID, &e.Type, &e.ActorType, &e.ActorID, &data, &e.CreatedAt); err != nil {
			return nil, false, mapErr(err)
		}
		if data != nil {
			e.Data = []byte(*data)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, false, mapErr(err)
	}
	out, more := page.Trim(out, f.Limit)
	return out, more, nil
}

// utcPtr returns *t in UTC (pgx scans into the local zone).
func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
