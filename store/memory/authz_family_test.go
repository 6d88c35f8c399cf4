package memory

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/authz"
)

// TestTokenFamilyIndexMatchesTheTable writes token sessions of grant
// families of every shape (a UUID family of one access token, access
// tokens joined later by a refresh token, a refresh token first, ids that
// are not UUIDs), deletes and prunes some, each round also once rolled
// back, and then requires the family index to hold exactly the table's
// sessions of each family, and DeactivateTokenFamily to deactivate and
// return what a scan of the table finds.
func TestTokenFamilyIndexMatchesTheTable(t *testing.T) {
	ctx := context.Background()
	s, in := tenantStore(t, "ten_1")
	now := time.Now().UTC().Truncate(time.Microsecond)
	famID := func(i int) string {
		switch i % 4 {
		case 3:
			return fmt.Sprintf("fam-%d", i) // not a UUID
		default:
			return familyUUID(i)
		}
	}
	mk := func(kind, sig string, fam int, exp time.Duration) *authz.TokenSession {
		return &authz.TokenSession{Kind: kind, Signature: sig, RequestID: famID(fam), ClientID: "agt_1", TenantID: "ten_1",
			Active: true, CreatedAt: now, ExpiresAt: now.Add(exp)}
	}
	for round := range 6 {
		err := []error{nil, errRolledBack}[round%2]
		in(err, func(tx *Tx) {
			for i := round * 60; i < round*60+60; i++ {
				exp := time.Hour
				if i%5 == 0 {
					exp = -time.Hour // pruned below
				}
				require.NoError(t, tx.CreateTokenSession(ctx, mk(authz.KindAccess, fmt.Sprintf("at_%d", i), i, exp)))
				switch i % 3 {
				case 1: // a second access token, then the refresh token
					require.NoError(t, tx.CreateTokenSession(ctx, mk(authz.KindAccess, fmt.Sprintf("at_%d_b", i), i, time.Hour)))
					require.NoError(t, tx.CreateTokenSession(ctx, mk(authz.KindRefresh, fmt.Sprintf("rt_%d", i), i, time.Hour)))
				case 2: // a code of another family, then a token of this one joins it
					require.NoError(t, tx.CreateTokenSession(ctx, mk(authz.KindCode, fmt.Sprintf("code_%d", i), i+1000, time.Hour)))
					require.NoError(t, tx.CreateTokenSession(ctx, mk(authz.KindAccess, fmt.Sprintf("at_%d_c", i), i+1000, time.Hour)))
				}
			}
			for i := max(0, round*60-30); i < round*60+60; i += 7 {
				require.NoError(t, tx.DeleteTokenSession(ctx, authz.KindAccess, fmt.Sprintf("at_%d", i)))
				require.NoError(t, tx.DeleteTokenSession(ctx, authz.KindRefresh, fmt.Sprintf("rt_%d", i)))
			}
			_, err := tx.PruneAuthz(ctx, now)
			require.NoError(t, err)
		})
	}

	a := s.d.authz
	byFamily := map[familyID][]tokKey{}
	for k, r := range a.tokens {
		byFamily[r.family] = append(byFamily[r.family], k)
	}
	cmp := func(x, y tokKey) int { return strings.Compare(x.kind+" "+x.sig, y.kind+" "+y.sig) }
	indexed := 0
	in(nil, func(tx *Tx) {
		for f, want := range byFamily {
			got := slices.Clone(tx.family(f))
			slices.SortFunc(got, cmp)
			slices.SortFunc(want, cmp)
			require.Equal(t, want, got, "family %s", f)
			indexed += len(got)
		}
	})
	for u := range a.fam1 {
		_, inN := a.famN[familyID{uuid: u}]
		require.False(t, inN, "a family is in one of the two")
	}
	n := len(a.fam1)
	for _, keys := range a.famN {
		n += len(keys)
	}
	require.Equal(t, len(a.tokens), n, "nothing indexed beyond the table")
	require.Equal(t, len(a.tokens), indexed)
	require.Greater(t, len(a.fam1), 10, "single-token families are held compactly")

	for f := range byFamily {
		var want []string
		for k, r := range a.tokens {
			if r.family == f && k.kind == authz.KindAccess && r.expires > now.UnixMicro() {
				want = append(want, k.sig)
			}
		}
		slices.Sort(want)
		in(errRolledBack, func(tx *Tx) {
			live, err := tx.DeactivateTokenFamily(ctx, f.String(), now)
			require.NoError(t, err)
			var got []string
			for _, l := range live {
				got = append(got, l.Signature)
			}
			require.Equal(t, want, got, "family %s", f)
			for k, r := range a.tokens {
				require.Equal(t, r.family != f && r.active, r.active, "only family %s deactivated: %v", f, k)
			}
		})
	}
}

// TestDelegatedFromMatchesTheTable records token-exchange delegations
// (chains sharing ancestors, a grant recorded twice, some rounds rolled
// back) and requires DelegatedFrom to answer, for every jti, what a scan
// of the delegations finds.
func TestDelegatedFromMatchesTheTable(t *testing.T) {
	ctx := context.Background()
	s, in := tenantStore(t, "ten_1")
	jti := func(i int) string { return fmt.Sprintf("jti_%d", i) }
	for round := range 6 {
		err := []error{nil, errRolledBack}[round%2]
		in(err, func(tx *Tx) {
			for g := round * 10; g < round*10+10; g++ {
				d := &authz.Delegation{TenantID: "ten_1", GrantKey: fmt.Sprintf("grant_%d", g%25),
					DelegatedFrom: []string{jti(g % 7), jti(100 + g), jti(100 + g)}}
				require.NoError(t, tx.RecordDelegation(ctx, d))
			}
		})
	}
	for i := range 200 {
		want := false
		for _, d := range s.d.authz.delegations {
			want = want || slices.Contains(d.DelegatedFrom, jti(i))
		}
		in(nil, func(tx *Tx) {
			got, err := tx.DelegatedFrom(ctx, jti(i))
			require.NoError(t, err)
			require.Equal(t, want, got, jti(i))
		})
	}
}
