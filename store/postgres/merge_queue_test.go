package postgres

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestMergeQueue: rows of a kind merge into one statement at the place of
// the first, within the stretches between barriers; a kind with one row in
// a stretch, and every other write, keep their statements and order.
func TestMergeQueue(t *testing.T) {
	kind := func(name string) *merger {
		return &merger{single: name, multi: func(rows [][]any) (string, []any) {
			var ids []string
			for _, r := range rows {
				ids = append(ids, fmt.Sprint(r[0]))
			}
			return name + "(" + strings.Join(ids, ",") + ")", nil
		}}
	}
	a, b := kind("a"), kind("b")
	row := func(m *merger, id int) queued { return queued{sql: m.single, args: []any{id}, merge: m} }
	plain := func(sql string) queued { return queued{sql: sql} }
	savepoint := queued{sql: "savepoint", barrier: true}
	for name, tc := range map[string]struct {
		q    []queued
		want string
	}{
		"nothing to merge": {[]queued{plain("x"), row(a, 1), plain("y"), row(b, 2)}, "x a y b"},
		"one statement per kind": {[]queued{plain("x"), row(a, 1), plain("y"), row(a, 2), row(b, 3), row(a, 4)},
			"x a(1,2,4) y b"},
		"two kinds": {[]queued{row(b, 1), row(a, 2), row(b, 3), row(a, 4)}, "b(1,3) a(2,4)"},
		"not across a savepoint": {[]queued{row(a, 1), savepoint, row(a, 2), plain("y"), row(a, 3), savepoint, row(a, 4)},
			"a savepoint a(2,3) y savepoint a"},
		"a savepoint last": {[]queued{row(a, 1), row(a, 2), savepoint}, "a(1,2) savepoint"},
	} {
		t.Run(name, func(t *testing.T) {
			var got []string
			for _, w := range mergeQueue(tc.q) {
				got = append(got, w.sql)
			}
			assert.Equal(t, tc.want, strings.Join(got, " "))
		})
	}
}

// TestMergeQueueAllocatesOnlyToMerge: a queue with nothing to merge (most
// of a charge's round trips) is sent as it is, without allocating.
func TestMergeQueueAllocatesOnlyToMerge(t *testing.T) {
	a := &merger{single: "a"}
	q := []queued{{sql: "x"}, {sql: "a", merge: a}, {sql: "savepoint", barrier: true}, {sql: "a", merge: a}}
	assert.Zero(t, testing.AllocsPerRun(100, func() { mergeQueue(q) }))
}
