package memory

import (
	"context"
	"fmt"
	"testing"

	"github.com/perfectpay/perfectpay/accounts"
)

// BenchmarkDeleteUserSessions: 100,000 sessions of 1,000 users; one
// user's 100 sessions ended (a password change, an erasure), rolled back.
//
//	go test ./store/memory/ -run '^$' -bench DeleteUserSessions
func BenchmarkDeleteUserSessions(b *testing.B) {
	ctx := context.Background()
	s := seedRows(b, func(tx *Tx, j int) error {
		if j < 1000 {
			if err := tx.CreateUser(ctx, &accounts.User{ID: fmt.Sprintf("usr_%03d", j), TenantID: "ten_a",
				Email: fmt.Sprintf("u%03d@example.com", j)}); err != nil {
				return err
			}
		}
		return tx.CreateSession(ctx, &accounts.Session{IDHash: []byte(fmt.Sprintf("%032d", j)),
			Ref: fmt.Sprintf("ses_%06d", j), TenantID: "ten_a", UserID: fmt.Sprintf("usr_%03d", j%1000),
			CreatedAt: benchAt(j), LastSeenAt: benchAt(j)})
	})
	eachRolledBack(b, s, func(tx *Tx) {
		if n, err := tx.DeleteUserSessions(ctx, "ten_a", "usr_417"); err != nil || n != 100 {
			b.Fatalf("deleted %d, %v", n, err)
		}
	})
}
