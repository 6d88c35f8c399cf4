package audit

import (
	"context"
	"strconv"
	"strings"

	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/internal/page"
)

// Page returns one page of the entries matching f, oldest first, with
// whether more follow. pg.StartingAfter is the id of the last entry of the
// previous page; it must match f too (an entry of another tenant is
// refused as unknown, so a cursor never reveals one).
func (s *Service) Page(ctx context.Context, q Query, pg page.Page) ([]Entry, bool, error) {
	if err := page.Check(pg.Limit); err != nil {
		return nil, false, err
	}
	var out []Entry
	err := s.db.InTx(ctx, func(tx Repo) error {
		if pg.StartingAfter != "" {
			cur, err := tx.QueryAudit(ctx, Query{Filter: Filter{TenantID: q.TenantID, Limit: 1}, ID: pg.StartingAfter})
			if err != nil {
				return err
			}
			if len(cur) == 0 {
				return apierr.Invalidf("starting_after", apierr.ResourceMissing, "No such audit event: '%s'.", pg.StartingAfter)
			}
			q.AfterSeq = max(q.AfterSeq, cur[0].Seq)
		}
		q.Limit = page.Fetch(pg.Limit)
		var err error
		out, err = tx.QueryAudit(ctx, q)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	out, more := page.Trim(out, pg.Limit)
	return out, more, nil
}

// Query returns the entries matching q, oldest first.
func (s *Service) Query(ctx context.Context, q Query) ([]Entry, error) {
	var out []Entry
	err := s.db.InTx(ctx, func(tx Repo) error {
		var err error
		out, err = tx.QueryAudit(ctx, q)
		return err
	})
	return out, err
}

// Get returns the entry id of tenant, or an *apierr.NotFound.
func (s *Service) Get(ctx context.Context, tenantID, id string) (*Entry, error) {
	list, err := s.Query(ctx, Query{Filter: Filter{TenantID: tenantID, Limit: 1}, ID: id})
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, &apierr.NotFound{Kind: "audit_event", ID: id}
	}
	return &list[0], nil
}

// CheckpointID names a stored checkpoint in the API ("acp_" and its number).
func CheckpointID(id int64) string { return "acp_" + strconv.FormatInt(id, 10) }

// ParseCheckpointID reads an id made by CheckpointID.
func ParseCheckpointID(s string) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimPrefix(s, "acp_"), 10, 64)
	if err != nil || !strings.HasPrefix(s, "acp_") || n < 1 {
		return 0, false
	}
	return n, true
}

// Checkpoints returns one page of the signed checkpoints, oldest first.
// They sign the whole chain's head, not one tenant's entries: an auditor
// uses them to check the inclusion of its tenant's entries.
func (s *Service) Checkpoints(ctx context.Context, pg page.Page) ([]Checkpoint, bool, error) {
	if err := page.Check(pg.Limit); err != nil {
		return nil, false, err
	}
	var after int64
	if pg.StartingAfter != "" {
		var ok bool
		if after, ok = ParseCheckpointID(pg.StartingAfter); !ok {
			return nil, false, apierr.Invalidf("starting_after", apierr.ResourceMissing, "No such audit checkpoint: '%s'.", pg.StartingAfter)
		}
	}
	var out []Checkpoint
	err := s.db.InTx(ctx, func(tx Repo) error {
		var err error
		out, err = tx.AuditCheckpoints(ctx, after, page.Fetch(pg.Limit))
		return err
	})
	if err != nil {
		return nil, false, err
	}
	out, more := page.Trim(out, pg.Limit)
	return out, more, nil
}
