package memory

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/store"
)

// listUsersByScan is what ListUsers did before usersByTenant: every user
// of the table read, the tenant's of the kind sorted, the page cut.
func listUsersByScan(users map[string]accounts.User, f accounts.UserFilter) ([]accounts.User, bool, error) {
	var all []accounts.User
	for _, u := range users {
		if u.TenantID == f.TenantID && (f.Kind == "" || u.Kind == f.Kind) {
			all = append(all, *u.Clone())
		}
	}
	slices.SortFunc(all, func(a, b accounts.User) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	if f.StartingAfter != "" {
		i := slices.IndexFunc(all, func(u accounts.User) bool { return u.ID == f.StartingAfter })
		if i < 0 {
			return nil, false, store.ErrNotFound
		}
		all = all[i+1:]
	}
	if len(all) > f.Limit {
		return all[:f.Limit], true, nil
	}
	return all, false, nil
}

// TestUsersByTenantIndexMatchesTheTable keeps usersByTenant through the
// store's writes of users (creates of the team, customers and a user of
// no kind, in two tenants, with ties in creation; a taken id or email
// and an unknown tenant refused; updates that try to change a user's
// kind and creation, failed logins, emails changed), each also rolled
// back once. It then compares the index with the table sorted by tenant,
// kind, creation and id, and every page of ListUsers (each tenant, one
// whose id starts another's, an unknown one; each kind, every kind, an
// unknown kind; from the start and after every user, of the tenant or
// not, and an unknown one; several limits) with the page the table gives
// by a scan, nil and empty pages told apart.
func TestUsersByTenantIndexMatchesTheTable(t *testing.T) {
	ctx := context.Background()
	tenants := []string{"ten_a", "ten_ab", "ten_b"}
	s, in := tenantStore(t, tenants...)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	kinds := []string{accounts.UserPayer, accounts.UserTeam, accounts.UserPayer, ""}
	user := func(i int) *accounts.User {
		id := fmt.Sprintf("usr_%d", (i*37)%100) // usr_1 starts usr_10
		return &accounts.User{ID: id, TenantID: tenants[i%2], Kind: kinds[(i/2)%4], Email: id + "@example.com",
			Status: accounts.UserActive, CreatedAt: t0.Add(time.Duration((i*7)%13) * time.Second)} // ties
	}
	create := func(from, to int, err error) {
		in(err, func(tx *Tx) {
			for i := from; i < to; i++ {
				require.NoError(t, tx.CreateUser(ctx, user(i)))
			}
		})
	}
	create(0, 20, nil)
	create(20, 30, errRolledBack)
	create(20, 40, nil)
	in(nil, func(tx *Tx) {
		u := user(50)
		u.ID = user(3).ID
		require.ErrorIs(t, tx.CreateUser(ctx, u), store.ErrConflict)
		u = user(51)
		u.TenantID, u.Email = user(5).TenantID, user(5).Email
		require.ErrorIs(t, tx.CreateUser(ctx, u), store.ErrConflict)
		u = user(52)
		u.TenantID = "ten_c"
		require.ErrorIs(t, tx.CreateUser(ctx, u), store.ErrNotFound)
		for i := 0; i < 40; i += 3 {
			u := user(i)
			u.Kind, u.CreatedAt, u.Name = accounts.UserTeam, t0.Add(time.Hour), "changed" // kind and creation kept
			require.NoError(t, tx.UpdateUser(ctx, u))
			_, err := tx.FailLogin(ctx, u.TenantID, u.ID, 3, t0)
			require.NoError(t, err)
		}
		require.NoError(t, tx.SetUserEmail(ctx, user(4).TenantID, user(4).ID, "new@example.com"))
	})
	create(40, 44, errRolledBack)
	create(40, 50, nil)

	p := s.d.people
	var want []tenantUser
	for _, u := range p.users {
		want = append(want, listedUser(&u))
	}
	slices.SortFunc(want, compareTenantUsers)
	require.Len(t, want, 50)
	require.Equal(t, want, keysOf(p.usersByTenant), "the index holds exactly the users")

	cursors := []string{"", "usr_999"}
	for _, k := range want {
		cursors = append(cursors, k.id)
	}
	pages := 0
	for _, tn := range append(slices.Clone(tenants), "ten_c", "") {
		for _, kind := range []string{"", accounts.UserPayer, accounts.UserTeam, "other"} {
			for _, after := range cursors {
				for _, limit := range []int{0, 1, 3, 100} {
					f := accounts.UserFilter{TenantID: tn, Kind: kind, StartingAfter: after, Limit: limit}
					wantPage, wantMore, wantErr := listUsersByScan(p.users, f)
					in(errRolledBack, func(tx *Tx) {
						page, more, err := tx.ListUsers(ctx, f)
						require.Equal(t, wantErr, err, "%+v", f)
						require.Equal(t, wantPage, page, "%+v", f)
						require.Equal(t, wantPage == nil, page == nil, "%+v", f)
						require.Equal(t, wantMore, more, "%+v", f)
					})
					pages += len(wantPage)
				}
			}
		}
	}
	require.Greater(t, pages, 1000)
}

// BenchmarkListUsers: 100,000 users of 100 tenants, 1 in 50 of the team
// and the others customers; a page of 20 of one tenant's customers after
// one in the middle of its 1,000 (the customer list API).
//
//	go test ./store/memory/ -run '^$' -bench ListUsers
func BenchmarkListUsers(b *testing.B) {
	ctx := context.Background()
	tenants := tenantIDs(100)
	s := seedStore(b, tenants, retentionRows, func(tx *Tx, j int) error {
		kind := accounts.UserPayer
		if j%50 == 0 {
			kind = accounts.UserTeam
		}
		id := fmt.Sprintf("cus_%06d", j)
		return tx.CreateUser(ctx, &accounts.User{ID: id, TenantID: tenants[j%100], Kind: kind, Email: id + "@example.com",
			Status: accounts.UserActive, CreatedAt: benchAt(j), UpdatedAt: benchAt(j)})
	})
	eachRolledBack(b, s, func(tx *Tx) {
		us, more, err := tx.ListUsers(ctx, accounts.UserFilter{TenantID: "ten_0042", Kind: accounts.UserPayer,
			StartingAfter: "cus_050042", Limit: 20})
		if err != nil || len(us) != 20 || !more {
			b.Fatalf("listed %d, %v, %v", len(us), more, err)
		}
	})
}
