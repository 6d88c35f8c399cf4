package memory

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/perfectpay/perfectpay/authz"
)

// familyUUID is the grant family id of family j, a UUID as fosite makes.
func familyUUID(j int) string {
	return fmt.Sprintf("%08x-0000-4000-8000-%012x", j, j)
}

// BenchmarkDeactivateTokenFamily revokes one refresh grant family (a
// refresh token and two access tokens) in a store holding 100,000 access
// tokens of client_credentials grants, one family each, and 1,000 refresh
// families: what an agent revoking its refresh token costs every other
// request, since the transaction holds the store.
func BenchmarkDeactivateTokenFamily(b *testing.B) {
	const n, refresh = 100_000, 1_000
	exp := time.Now().Add(time.Hour)
	s := seedStore(b, []string{"ten_0000"}, n+refresh, func(tx *Tx, j int) error {
		ctx := context.Background()
		mk := func(kind, sig string) *authz.TokenSession {
			return &authz.TokenSession{Kind: kind, Signature: sig, RequestID: familyUUID(j), ClientID: "agt_1",
				TenantID: "ten_0000", Active: true, CreatedAt: exp.Add(-time.Hour), ExpiresAt: exp}
		}
		if j < n {
			return tx.CreateTokenSession(ctx, mk(authz.KindAccess, fmt.Sprintf("at_%06d", j)))
		}
		for _, s := range []*authz.TokenSession{mk(authz.KindAccess, fmt.Sprintf("at_%06d_a", j)),
			mk(authz.KindAccess, fmt.Sprintf("at_%06d_b", j)), mk(authz.KindRefresh, fmt.Sprintf("rt_%06d", j))} {
			if err := tx.CreateTokenSession(ctx, s); err != nil {
				return err
			}
		}
		return nil
	})
	fam := familyUUID(n + refresh/2)
	eachRolledBack(b, s, func(tx *Tx) {
		live, err := tx.DeactivateTokenFamily(context.Background(), fam, time.Now())
		if err != nil || len(live) != 2 {
			b.Fatal(len(live), err)
		}
	})
}

// BenchmarkDelegatedFrom is the check an access token's revocation makes
// (was a grant delegated from this token?) in a store holding 100,000
// token-exchange grants, each delegated from a chain of three tokens.
func BenchmarkDelegatedFrom(b *testing.B) {
	const n = 100_000
	s := seedStore(b, []string{"ten_0000"}, n, func(tx *Tx, j int) error {
		return tx.RecordDelegation(context.Background(), &authz.Delegation{TenantID: "ten_0000", GrantKey: fmt.Sprintf("grant_%06d", j),
			DelegatedFrom: []string{fmt.Sprintf("jti_%06d_a", j), fmt.Sprintf("jti_%06d_b", j), fmt.Sprintf("jti_%06d_c", j)}})
	})
	eachRolledBack(b, s, func(tx *Tx) {
		for _, jti := range []string{"jti_050000_b", "jti_none"} {
			if found, err := tx.DelegatedFrom(context.Background(), jti); err != nil || found != (jti != "jti_none") {
				b.Fatal(jti, found, err)
			}
		}
	})
}
