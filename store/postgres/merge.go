package postgres

import (
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// merger is a kind of write that several of, queued in one transaction,
// are sent as one multi-row statement. A batch of issued tokens so inserts
// its token rows in one statement and numbers and inserts its audit
// entries in another, where each row was a statement of its own:
// PostgreSQL parses, plans and executes one statement per batch, and the
// audit stripe's counter is updated once per batch instead of once per
// entry (each update of a row is a new version of it).
type merger struct {
	single string // the statement for one row, the row's values as $1…
	// multi returns the statement for rows and its arguments. When the
	// rows have destinations, the statement returns one row per input
	// row, in their order.
	multi func(rows [][]any) (sql string, args []any)
}

// mergeQueue returns q with the rows of each merger's kind replaced by one
// statement at the place of the first of them. A merged row so moves
// ahead of the writes queued between it and the first row of its kind:
// only writes of new rows that no other queued write reads are merged
// (token sessions, audit entries), so that changes nothing but the number
// of statements. No row moves across a barrier (a SAVEPOINT): rows are
// merged within the stretches between barriers. A kind with one row in a
// stretch keeps its own statement.
func mergeQueue(q []queued) []queued {
	if !repeats(q) {
		return q // every round trip of a charge but its inserts: no allocation
	}
	out := make([]queued, 0, len(q))
	start := 0
	for i, w := range q {
		if w.barrier {
			out = append(mergeStretch(out, q[start:i]), w)
			start = i + 1
		}
	}
	return mergeStretch(out, q[start:])
}

// repeats says whether a kind has two rows between two barriers of q.
func repeats(q []queued) bool {
	var kinds [4]*merger
	seen := kinds[:0] // the kinds of this stretch: a handful at most
	for _, w := range q {
		switch {
		case w.barrier:
			seen = seen[:0]
		case w.merge == nil:
		case slices.Contains(seen, w.merge):
			return true
		default:
			seen = append(seen, w.merge)
		}
	}
	return false
}

// mergeStretch appends q to out, merged (see mergeQueue); q has no barrier.
func mergeStretch(out, q []queued) []queued {
	var counts map[*merger]int
	merging := false
	for _, w := range q {
		if w.merge != nil {
			if counts == nil {
				counts = map[*merger]int{}
			}
			counts[w.merge]++
			merging = merging || counts[w.merge] > 1
		}
	}
	if !merging {
		return append(out, q...)
	}
	sent := map[*merger]bool{}
	for i, w := range q {
		m := w.merge
		if m == nil || counts[m] == 1 {
			out = append(out, w)
			continue
		}
		if sent[m] {
			continue
		}
		sent[m] = true
		rows := make([][]any, 0, counts[m])
		dests := make([][]any, 0, counts[m])
		for _, v := range q[i:] {
			if v.merge == m {
				rows, dests = append(rows, v.args), append(dests, v.dest)
			}
		}
		for _, d := range dests {
			if (d == nil) != (dests[0] == nil) {
				panic("postgres: rows of one merged kind must all return a row, or none")
			}
		}
		sql, args := m.multi(rows)
		mw := queued{sql: sql, args: args}
		if dests[0] != nil {
			mw.rows = func(r pgx.Rows) error { return scanEach(r, dests) }
		}
		out = append(out, mw)
	}
	return out
}

// scanEach reads one row into each of dests, in order.
func scanEach(rows pgx.Rows, dests [][]any) error {
	defer rows.Close()
	n := 0
	for rows.Next() {
		if n == len(dests) {
			return fmt.Errorf("postgres: a merged write returned more than its %d rows", len(dests))
		}
		if err := rows.Scan(dests[n]...); err != nil {
			return err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if n != len(dests) {
		return fmt.Errorf("postgres: a merged write returned %d rows for %d", n, len(dests))
	}
	return nil
}

// column is the i-th value of every row, as a T. A value of another type
// is a mistake in a merger's row (its single-row statement would take
// it), caught by the merge tests: it panics.
func column[T any](rows [][]any, i int) []T {
	out := make([]T, len(rows))
	for r, row := range rows {
		out[r] = row[i].(T)
	}
	return out
}

// columns are the rows' values laid out column by column, as the arrays
// a multi-row statement unnests: kinds[i] is what column i holds.
func columns(rows [][]any, kinds ...string) []any {
	out := make([]any, len(kinds))
	for i, k := range kinds {
		switch k {
		case "text":
			out[i] = column[string](rows, i)
		case "int":
			out[i] = column[int](rows, i)
		case "bool":
			out[i] = column[bool](rows, i)
		case "bytea":
			out[i] = column[[]byte](rows, i)
		case "timestamptz":
			out[i] = column[time.Time](rows, i)
		case "text null":
			col := make([]*string, len(rows))
			for r, row := range rows {
				if row[i] != nil {
					v := row[i].(string) // a string or nil, nothing else
					col[r] = &v
				}
			}
			out[i] = col
		default:
			panic("postgres: no column kind " + k)
		}
	}
	return out
}
