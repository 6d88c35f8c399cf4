package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/compliance"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/policies"
	"github.com/perfectpay/perfectpay/store"
)

// testAuditQuery: entries selected by id, actor, tenant, action and time,
// paged by sequence number.
func testAuditQuery[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	start := now().Truncate(time.Microsecond)
	var ids []string
	in(t, b, func(tx X) error {
		for i := range 6 {
			e := &audit.Entry{TenantID: []string{"ten_q1", "ten_q2"}[i%2], ActorType: audit.ActorAgent,
				ActorID: []string{"agt_x", "agt_y", "agt_z"}[i%3], Action: "thing.done", Target: "obj_q",
				CreatedAt: start.Add(time.Duration(i) * time.Second)}
			if err := audit.Append(ctx, tx, e); err != nil {
				return err
			}
			ids = append(ids, e.ID)
		}
		return nil
	})
	q := func(qu audit.Query) []string {
		var out []string
		in(t, b, func(tx X) error {
			list, err := tx.QueryAudit(ctx, qu)
			for _, e := range list {
				out = append(out, e.ID)
			}
			return err
		})
		return out
	}
	assert.Equal(t, []string{ids[0], ids[2], ids[4]}, q(audit.Query{Filter: audit.Filter{TenantID: "ten_q1"}}))
	assert.Equal(t, []string{ids[3]}, q(audit.Query{Filter: audit.Filter{TenantID: "ten_q2"}, ID: ids[3]}))
	assert.Empty(t, q(audit.Query{Filter: audit.Filter{TenantID: "ten_q1"}, ID: ids[3]}), "another tenant's entry by id")
	assert.Equal(t, []string{ids[0], ids[3]}, q(audit.Query{Filter: audit.Filter{Target: "obj_q"}, ActorType: audit.ActorAgent, ActorID: "agt_x"}))
	assert.Empty(t, q(audit.Query{Filter: audit.Filter{Target: "obj_q"}, ActorType: audit.ActorAPIKey, ActorID: "agt_x"}))
	assert.Equal(t, []string{ids[2], ids[3]}, q(audit.Query{Filter: audit.Filter{Target: "obj_q",
		Since: start.Add(2 * time.Second), Until: start.Add(4 * time.Second)}}))
	first := q(audit.Query{Filter: audit.Filter{Target: "obj_q", Limit: 2}})
	require.Equal(t, ids[:2], first)
	var seq int64
	in(t, b, func(tx X) error {
		list, err := tx.QueryAudit(ctx, audit.Query{ID: ids[1]})
		if len(list) == 1 {
			seq = list[0].Seq
		}
		return err
	})
	assert.Equal(t, ids[2:], q(audit.Query{Filter: audit.Filter{Target: "obj_q", AfterSeq: seq}}))
}

// testComplianceRecords: policy versions are kept once; decision records
// come with their inputs in time order, by tenant and window, and a
// rolled back input is gone.
func testComplianceRecords[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	v := &compliance.PolicyVersion{Version: "sha256:abc", Modules: map[string]string{"charge.rego": "package x"}, CreatedAt: now().Truncate(time.Microsecond)}
	in(t, b, func(tx X) error { return tx.PutPolicyVersion(ctx, v) })
	in(t, b, func(tx X) error {
		return tx.PutPolicyVersion(ctx, &compliance.PolicyVersion{Version: "sha256:abc", Modules: map[string]string{"other.rego": "package y"}, CreatedAt: now()})
	})
	in(t, b, func(tx X) error {
		got, err := tx.GetPolicyVersion(ctx, "sha256:abc")
		require.NoError(t, err)
		assert.Equal(t, v.Modules, got.Modules, "the first kept stays")
		_, err = tx.GetPolicyVersion(ctx, "sha256:none")
		assert.ErrorIs(t, err, store.ErrNotFound)
		return nil
	})

	base := now().Truncate(time.Microsecond)
	var decs []*charging.Decision
	for i := range 5 {
		d := &charging.Decision{ID: ids.New("dec"), TenantID: []string{"ten_r1", "ten_r2"}[i%2], MandateID: "mdt_1", AgentID: "agt_1",
			Result: policies.Allow, Reasons: []policies.Reason{}, PolicyVersion: "sha256:abc", InputDigest: "d",
			CreatedAt: base.Add(time.Duration(5-i) * time.Second)} // created in reverse order
		if i != 2 {
			d.Input = []byte(`{"n":` + string(rune('0'+i)) + `}`)
		}
		decs = append(decs, d)
		in(t, b, func(tx X) error {
			if err := tx.CreateDecision(ctx, d); err != nil {
				return err
			}
			if len(d.Input) == 0 {
				return nil
			}
			return tx.RecordDecisionInput(ctx, d)
		})
	}
	list := func(f compliance.DecisionFilter) []charging.Decision {
		var out []charging.Decision
		in(t, b, func(tx X) error {
			var err error
			out, err = tx.DecisionRecords(ctx, f)
			return err
		})
		return out
	}
	r1 := list(compliance.DecisionFilter{TenantID: "ten_r1"})
	require.Len(t, r1, 3)
	assert.Equal(t, []string{decs[4].ID, decs[2].ID, decs[0].ID}, []string{r1[0].ID, r1[1].ID, r1[2].ID}, "oldest first")
	assert.JSONEq(t, `{"n":4}`, string(r1[0].Input))
	assert.Nil(t, r1[1].Input, "no input recorded")
	next := list(compliance.DecisionFilter{TenantID: "ten_r1", AfterTime: r1[0].CreatedAt, AfterID: r1[0].ID, Limit: 1})
	require.Len(t, next, 1)
	assert.Equal(t, decs[2].ID, next[0].ID)
	assert.Len(t, list(compliance.DecisionFilter{Since: base.Add(2 * time.Second), Until: base.Add(4 * time.Second)}), 2)
	in(t, b, func(tx X) error {
		d, err := tx.DecisionRecord(ctx, "ten_r2", decs[1].ID)
		require.NoError(t, err)
		assert.JSONEq(t, `{"n":1}`, string(d.Input))
		_, err = tx.DecisionRecord(ctx, "ten_r1", decs[1].ID)
		assert.ErrorIs(t, err, store.ErrNotFound, "another tenant's decision")
		return nil
	})

	// An input written in a transaction that fails is not kept.
	d := &charging.Decision{ID: ids.New("dec"), TenantID: "ten_r3", MandateID: "mdt_1", AgentID: "agt_1", Result: policies.Deny,
		Reasons: []policies.Reason{{Code: "c", Message: "m"}}, PolicyVersion: "v", InputDigest: "d", CreatedAt: base, Input: []byte(`{}`)}
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error {
		if err := tx.CreateDecision(ctx, d); err != nil {
			return err
		}
		if err := tx.RecordDecisionInput(ctx, d); err != nil {
			return err
		}
		return errBoom
	}), errBoom)
	assert.Empty(t, list(compliance.DecisionFilter{TenantID: "ten_r3"}))
}

// testTenantVerifications: none until set; set, replaced; a tenant that
// does not exist is refused.
func testTenantVerifications[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	tn := MakeTenant(t, b)
	in(t, b, func(tx X) error {
		_, err := tx.GetVerification(ctx, tn.ID)
		assert.ErrorIs(t, err, store.ErrNotFound)
		return nil
	})
	v := &accounts.Verification{TenantID: tn.ID, Status: accounts.VerificationPending, LegalName: "Acme Ltd", Country: "GB",
		Updated: now().Truncate(time.Microsecond)}
	in(t, b, func(tx X) error { return tx.PutVerification(ctx, v) })
	v2 := *v
	v2.Status, v2.EvidenceReference, v2.ReviewedBy = accounts.VerificationVerified, "doc-1", "ops"
	in(t, b, func(tx X) error { return tx.PutVerification(ctx, &v2) })
	in(t, b, func(tx X) error {
		got, err := tx.GetVerification(ctx, tn.ID)
		require.NoError(t, err)
		assert.Equal(t, v2.Status, got.Status)
		assert.Equal(t, "doc-1", got.EvidenceReference)
		assert.Equal(t, "Acme Ltd", got.LegalName)
		assert.True(t, v2.Updated.Equal(got.Updated))
		return nil
	})
	err := b.InTx(ctx, func(tx X) error {
		return tx.PutVerification(ctx, &accounts.Verification{TenantID: "ten_missing", Status: accounts.VerificationPending, Updated: now()})
	})
	require.Error(t, err)
	assert.False(t, errors.Is(err, errBoom))
}
