package memory

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkDeleteLoginMarks: 100,000 login marks of 1,000 users; one
// user's 100 marks erased, rolled back.
//
//	go test ./store/memory/ -run '^$' -bench DeleteLoginMarks
func BenchmarkDeleteLoginMarks(b *testing.B) {
	ctx := context.Background()
	s := seedRows(b, func(tx *Tx, j int) error {
		_, err := tx.MarkLogin(ctx, "ten_a", fmt.Sprintf("usr_%03d", j%1000), fmt.Sprintf("dev_%06d", j), benchAt(j))
		return err
	})
	eachRolledBack(b, s, func(tx *Tx) {
		if n, err := tx.DeleteLoginMarks(ctx, "ten_a", "usr_417"); err != nil || n != 100 {
			b.Fatalf("deleted %d, %v", n, err)
		}
	})
}
