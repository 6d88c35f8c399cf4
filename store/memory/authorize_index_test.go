package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/authz"
)

// TestAuthRequestIndexMatchesTheTable keeps authReqByPayer through the
// store's writes of requests (creates of three tenants, one of whose ids
// starts another's, for payers one of whose ids starts another's or for
// none yet, many at one instant; decisions that name or change the payer
// and the status; prunes), each also rolled back once. It then compares
// the index with the table's requests, and ListAuthRequests for every
// tenant, payer, status and limit with the table filtered and sorted
// newest first (creation, then id, descending), cut at the limit.
func TestAuthRequestIndexMatchesTheTable(t *testing.T) {
	ctx := context.Background()
	tenants := []string{"ten_0000", "ten_00", "ten_0001"}
	payers := []string{"", "cus_1", "cus_10", "cus_2"}
	s, in := tenantStore(t, tenants...)
	in(nil, func(tx *Tx) { require.NoError(t, addAgent(tx)) })
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	request := func(j int) *authz.AuthRequest {
		at := t0.Add(time.Duration((j*7)%5) * time.Second)
		return &authz.AuthRequest{ID: fmt.Sprintf("areq_%04d", (j*37)%1000), Kind: "ciba", TenantID: tenants[j%3],
			ClientID: "agt_1", Payer: payers[(j/3)%4], Status: authz.AuthPending, CreatedAt: at, UpdatedAt: at,
			ExpiresAt: at.Add(time.Duration(j%40) * time.Minute)}
	}
	create := func(from, to int, err error) {
		in(err, func(tx *Tx) {
			for j := from; j < to; j++ {
				require.NoError(t, tx.CreateAuthRequest(ctx, request(j)))
			}
		})
	}
	decide := func(k int, err error) {
		in(err, func(tx *Tx) {
			for j := 0; j < 200; j += k {
				r, ok := tx.d.authRequests[request(j).ID]
				if !ok || r.Status != authz.AuthPending {
					continue
				}
				r = cloneAuthRequest(r)
				r.Payer = payers[1+(j/5)%3]
				r.Status = []string{authz.AuthApproved, authz.AuthDenied}[j%2]
				require.NoError(t, tx.UpdateAuthRequest(ctx, &r, authz.AuthPending))
			}
		})
	}
	prune := func(at time.Duration, err error) {
		in(err, func(tx *Tx) {
			_, perr := tx.PruneAuthRequests(ctx, t0.Add(at))
			require.NoError(t, perr)
		})
	}
	create(0, 80, nil)
	create(80, 120, errRolledBack)
	create(80, 160, nil)
	decide(3, nil)
	decide(2, errRolledBack)
	prune(10*time.Minute, errRolledBack)
	prune(4*time.Minute, nil)
	create(160, 200, nil)
	decide(7, nil)

	var want []payerRequest
	for _, r := range s.d.authRequests {
		want = append(want, listedRequest(&r))
	}
	slices.SortFunc(want, comparePayerRequests)
	require.Greater(t, len(want), 150)
	require.Equal(t, want, keysOf(s.d.authReqByPayer), "the index holds exactly the requests")

	checked := 0
	for _, tn := range append(slices.Clone(tenants), "ten_unknown") {
		for _, payer := range append(slices.Clone(payers), "cus_9") {
			for _, status := range []string{"", authz.AuthPending, authz.AuthApproved, authz.AuthDenied} {
				var all []authz.AuthRequest
				for _, r := range s.d.authRequests {
					if r.TenantID == tn && r.Payer == payer && (status == "" || r.Status == status) {
						all = append(all, r)
					}
				}
				slices.SortFunc(all, func(a, b authz.AuthRequest) int {
					return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), strings.Compare(b.ID, a.ID))
				})
				for _, limit := range []int{-1, 0, 1, 3, 1000} {
					exp := []authz.AuthRequest{}
					for _, r := range all {
						if limit > 0 && len(exp) == limit {
							break
						}
						exp = append(exp, cloneAuthRequest(r))
					}
					in(errRolledBack, func(tx *Tx) {
						got, err := tx.ListAuthRequests(ctx, tn, payer, status, limit)
						require.NoError(t, err)
						require.Equal(t, exp, got, "%q %q %q %d", tn, payer, status, limit)
					})
					checked += len(exp)
				}
			}
		}
	}
	require.Greater(t, checked, 300)
}
