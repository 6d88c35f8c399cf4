package compliance_test

import (
	"context"

	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/compliance"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/policies"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/memory"
	"github.com/perfectpay/perfectpay/store/pgtest"
	"github.com/perfectpay/perfectpay/store/postgres"
	"github.com/perfectpay/perfectpay/store/repos"
)

func ptr[T any](v T) *T { return &v }

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// input is a charge of amount on a mandate capped at 50.00 a charge.
func input(amount int64) *policies.Input {
	m := policies.Mandate{ID: "mdt_1", Status: "active", Agent: "agt_1", Payer: "cus_1",
		Limits: policies.Limits{Currency: "USD", Budget: 1_000_000_00, MaxAmountPerCharge: ptr[int64](50_00), PaymentMethods: []string{"tok_visa"}}}
	return &policies.Input{
		Now: now,
		Charge: policies.Charge{Amount: amount, Currency: "USD", PaymentMethod: "tok_visa",
			Merchant: policies.Merchant{ID: "acct_books", Name: "Acme Books", MCC: "5942", Country: "US", Domains: []string{"books.example.com"}}},
		Token: policies.Token{Sub: "cus_1", ClientID: "agt_1",
			AuthorizationDetails: []policies.AuthorizationDetail{{Type: "payment_mandate", MandateID: "mdt_1"}}},
		Chain:  []policies.Mandate{m},
		Agent:  policies.Agent{ClientID: "agt_1", Status: "active"},
		Tenant: policies.Tenant{ID: "ten_1", Status: "active"},
	}
}

// decided are the decisions of charges of 1..n cents (every 100th one
// stopped before the policy: no input), decided once for every store.
var decided = map[int][]charging.Decision{}

func decide(t testing.TB, n int) []charging.Decision {
	if ds, ok := decided[n]; ok {
		return ds
	}
	ctx := context.Background()
	eng, err := policies.New(ctx, policies.Velocity{})
	require.NoError(t, err)
	out := make([]charging.Decision, 0, n)
	for i := 1; i <= n; i++ {
		d := charging.Decision{ID: ids.New("dec"), TenantID: "ten_1", MandateID: "mdt_1", AgentID: "agt_1",
			CreatedAt: now.Add(time.Duration(i) * time.Millisecond)}
		if i%100 == 0 {
			d.Result, d.Reasons, d.PolicyVersion, d.InputDigest = policies.Deny, []policies.Reason{{Code: "mandate_revoked", Message: "revoked"}}, eng.Version(), "none"
		} else {
			in := input(int64(i))
			pd, err := eng.Decide(ctx, in)
			require.NoError(t, err)
			d.Result, d.Reasons, d.PolicyVersion = pd.Result, pd.Reasons, pd.PolicyVersion
			d.Input, err = in.JSON()
			require.NoError(t, err)
			d.InputDigest = policies.DigestJSON(d.Input)
		}
		out = append(out, d)
	}
	decided[n] = out
	return out
}

// record records the decisions of n charges as the pipeline does.
func record[X repos.Tx](t testing.TB, b store.Backend[X], n int) {
	ctx := context.Background()
	all := decide(t, n)
	for start := 0; start < len(all); start += 500 {
		batch := all[start:min(start+500, len(all))]
		require.NoError(t, b.InTx(ctx, func(tx X) error {
			for i := range batch {
				d := batch[i] // the store gets its own copy
				if err := tx.CreateDecision(ctx, &d); err != nil {
					return err
				}
				if len(d.Input) > 0 {
					if err := tx.RecordDecisionInput(ctx, &d); err != nil {
						return err
					}
				}
			}
			return nil
		}))
	}
}

func eachStore(t *testing.T, fn func(t *testing.T, svc *compliance.Service, tamper func(sql string, args ...any))) {
	t.Run("memory", func(t *testing.T) {
		b := memory.New()
		record(t, b, 10_000)
		fn(t, compliance.NewService(store.Bind(b, func(x *memory.Tx) compliance.Repo { return x }), nil), nil)
	})
	t.Run("postgres", func(t *testing.T) {
		b := pgtest.NewStore(t)
		record(t, b, 10_000)
		fn(t, compliance.NewService(store.Bind(b, func(x *postgres.Tx) compliance.Repo { return x }), nil), func(sql string, args ...any) {
			_, err := b.Pool().Exec(context.Background(), sql, args...)
			require.NoError(t, err)
		})
	})
}

// TestReplay: 10,000 recorded decisions replay with their kept policy
// version to zero differences; against a changed policy exactly the
// decisions it turns around are reported; a missing version and an input
// changed after the fact are named.
func TestReplay(t *testing.T) {
	eachStore(t, func(t *testing.T, svc *compliance.Service, tamper func(string, ...any)) {
		ctx := context.Background()
		src, err := policies.Sources()
		require.NoError(t, err)

		rep, err := svc.Replay(ctx, compliance.ReplayOptions{})
		require.NoError(t, err)
		assert.Equal(t, 9_900, rep.Checked)
		assert.Equal(t, 1000, len(rep.Differences), "the version was not kept yet: listed up to the default bound")
		assert.True(t, rep.Truncated)
		assert.Equal(t, "policy_version_missing", rep.Differences[0].Problem)

		version, err := svc.KeepPolicy(ctx, src)
		require.NoError(t, err)
		_, err = svc.KeepPolicy(ctx, src) // keeping again changes nothing
		require.NoError(t, err)
		rep, err = svc.Replay(ctx, compliance.ReplayOptions{})
		require.NoError(t, err)
		assert.Equal(t, 9_900, rep.Checked)
		assert.Equal(t, 100, rep.Skipped)
		assert.Equal(t, []string{version}, rep.Versions)
		assert.Empty(t, rep.Differences)
		kept, err := svc.PolicyVersion(ctx, version)
		require.NoError(t, err)
		assert.Equal(t, src, kept.Modules)

		// A policy change: the cap now refuses 40.01 and up.
		changed := map[string]string{}
		for name, s := range src {
			changed[name] = s
		}
		const rule = "input.charge.amount > m.max_amount_per_charge\n"
		require.Contains(t, changed["charge.rego"], rule)
		changed["charge.rego"] = strings.Replace(changed["charge.rego"], rule, "input.charge.amount > m.max_amount_per_charge - 1000\n", 1)
		// (Replayed over 30.00 to 59.99: the whole run is the check above.)
		rep, err = svc.Replay(ctx, compliance.ReplayOptions{Against: changed,
			Filter: compliance.DecisionFilter{Since: now.Add(3 * time.Second), Until: now.Add(6 * time.Second)}})
		require.NoError(t, err)
		assert.Equal(t, 2_970, rep.Checked)
		assert.Equal(t, policies.VersionOf(changed), rep.Against)
		want := 0
		for i := 40_01; i <= 50_00; i++ {
			if i%100 != 0 {
				want++
			}
		}
		require.Equal(t, want, len(rep.Differences))
		for _, d := range rep.Differences {
			assert.Equal(t, "outcome_differs", d.Problem)
			assert.Equal(t, policies.Allow, d.Recorded.Result)
			require.NotNil(t, d.Replayed)
			assert.Equal(t, policies.Deny, d.Replayed.Result)
			assert.Equal(t, "per_charge_cap_exceeded", d.Replayed.Reasons[0].Code)
		}
		// A time window replays only what it holds (40.00 to 49.99).
		window := compliance.DecisionFilter{TenantID: "ten_1", Since: now.Add(4 * time.Second), Until: now.Add(5 * time.Second)}
		rep, err = svc.Replay(ctx, compliance.ReplayOptions{Filter: window, Against: changed, MaxDifferences: 10})
		require.NoError(t, err)
		assert.Equal(t, 990, rep.Checked)
		assert.Equal(t, 10, len(rep.Differences))
		assert.True(t, rep.Truncated)
		rep, err = svc.Replay(ctx, compliance.ReplayOptions{Filter: compliance.DecisionFilter{TenantID: "ten_other"}})
		require.NoError(t, err)
		assert.Zero(t, rep.Checked)

		if tamper == nil {
			return
		}
		// An input rewritten after the decision no longer matches its digest.
		tamper(`UPDATE decision_inputs SET input = replace(input, '"amount":1234', '"amount":1') WHERE input LIKE '%"amount":1234,%'`)
		window = compliance.DecisionFilter{Since: now.Add(time.Second), Until: now.Add(2 * time.Second)}
		rep, err = svc.Replay(ctx, compliance.ReplayOptions{Filter: window})
		require.NoError(t, err)
		require.Equal(t, 1, len(rep.Differences))
		assert.Equal(t, "input_digest_mismatch", rep.Differences[0].Problem)
		// A kept policy rewritten no longer hashes to its version.
		tamper(`UPDATE policy_versions SET modules = replace(modules, 'max_amount_per_charge', 'max_amount_per_charge ') WHERE version = $1`, version)
		rep, err = svc.Replay(ctx, compliance.ReplayOptions{Filter: window})
		require.NoError(t, err)
		assert.Equal(t, 990, len(rep.Differences))
		assert.Equal(t, "policy_version_corrupt", rep.Differences[1].Problem)
	})
}
