package server_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/pgtest"
	"github.com/perfectpay/perfectpay/store/postgres"
)

// BenchmarkAgentChargeRowWrites counts what PostgreSQL writes for one agent
// charge: rows inserted, rows updated and how many of those updates were
// HOT (no new index entries), per table, from pg_stat_user_tables, after
// the node has stopped and every audit entry is sealed. index-entries/op is an upper bound of the index
// entries written: each insert and each update that is not HOT adds one
// to every index of its table (a partial index whose predicate the row
// misses takes none).
//
//	go test ./server/ -run '^$' -bench AgentChargeRowWrites -benchtime 300x
func BenchmarkAgentChargeRowWrites(b *testing.B) {
	ctx := context.Background()
	dsn := pgtest.NewURL(b)
	n := apptest.NewWithURL(b, "postgres", dsn)
	tok, body := agentChargeSetup(b, n, 100)
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(b, err)
	defer func() { _ = conn.Close(ctx) }()
	type counts struct{ ins, upd, hot int64 }
	stats := func() map[string]counts {
		_, err := conn.Exec(ctx, `SELECT pg_stat_force_next_flush()`)
		require.NoError(b, err)
		out := map[string]counts{}
		rows, err := conn.Query(ctx, `SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables`)
		require.NoError(b, err)
		for rows.Next() {
			var name string
			var c counts
			require.NoError(b, rows.Scan(&name, &c.ins, &c.upd, &c.hot))
			out[name] = c
		}
		require.NoError(b, rows.Err())
		return out
	}
	indexes := map[string]int64{}
	rows, err := conn.Query(ctx, `SELECT tablename, count(*) FROM pg_indexes WHERE schemaname = 'public' GROUP BY 1`)
	require.NoError(b, err)
	for rows.Next() {
		var name string
		var c int64
		require.NoError(b, rows.Scan(&name, &c))
		indexes[name] = c
	}
	require.NoError(b, rows.Err())

	before := stats()
	i := 0
	for b.Loop() {
		i++
		chargeOK(b, n, tok, body, i)
	}
	b.StopTimer()
	n.HTTP.Close()
	n.App.Close() // the group-committed access rows are written
	st, err := postgres.Open(ctx, dsn, postgres.Options{MaxConns: 2})
	require.NoError(b, err)
	_, err = audit.NewService(store.Bind(st, func(x *postgres.Tx) audit.Repo { return x }), 0, nil).SealAll(ctx)
	require.NoError(b, err)
	st.Close() // a backend's statistics are flushed when it exits
	after := stats()
	var lines []string
	var ins, upd, nonHOT, entries float64
	for name, a := range after {
		d := counts{a.ins - before[name].ins, a.upd - before[name].upd, a.hot - before[name].hot}
		if d.ins+d.upd == 0 {
			continue
		}
		per := func(v int64) float64 { return float64(v) / float64(i) }
		ins, upd, nonHOT = ins+per(d.ins), upd+per(d.upd), nonHOT+per(d.upd-d.hot)
		entries += per((d.ins + d.upd - d.hot) * indexes[name])
		lines = append(lines, fmt.Sprintf("%-22s %d indexes: %5.2f inserts, %5.2f updates (%5.2f HOT)",
			name, indexes[name], per(d.ins), per(d.upd), per(d.hot)))
	}
	slices.Sort(lines)
	b.Logf("per charge:\n%s", strings.Join(lines, "\n"))
	b.ReportMetric(ins, "inserts/op")
	b.ReportMetric(upd, "updates/op")
	b.ReportMetric(nonHOT, "non-HOT-updates/op")
	b.ReportMetric(entries, "index-entries/op")
}
