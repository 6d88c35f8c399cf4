package memory

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/audit"
)

// TestLoginMarksByKeyIndexMatchesTheTable keeps login marks by key
// through the store's writes (marks, marks seen again, users' marks
// erased, a prune), each also rolled back once, then compares the index
// with the table's keys sorted, and what DeleteLoginMarks deletes for
// every user (one whose id starts another's, one of another tenant, one
// unknown) with the keys of the user's prefix in the table.
func TestLoginMarksByKeyIndexMatchesTheTable(t *testing.T) {
	ctx := context.Background()
	s, in := tenantStore(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return t0.Add(time.Duration((i*7)%50) * time.Second) }
	who := [][2]string{{"ten_a", "usr_1"}, {"ten_a", "usr_10"}, {"ten_a", "usr_2"}, {"ten_ab", "usr_1"}, {"ten_b", "usr_3"}}
	mark := func(from, to int, err error) {
		in(err, func(tx *Tx) {
			for i := from; i < to; i++ {
				// Marks repeat: a mark seen again keeps its first time.
				w := who[i%len(who)]
				_, merr := tx.MarkLogin(ctx, w[0], w[1], fmt.Sprintf("dev_%03d", (i*37)%120), at(i))
				require.NoError(t, merr)
			}
		})
	}
	erase := func(tenantID, userID string, err error) {
		in(err, func(tx *Tx) {
			_, derr := tx.DeleteLoginMarks(ctx, tenantID, userID)
			require.NoError(t, derr)
		})
	}
	mark(0, 100, nil)
	mark(100, 130, errRolledBack)
	mark(100, 200, nil)
	erase("ten_a", "usr_1", errRolledBack)
	erase("ten_a", "usr_2", nil)
	in(nil, func(tx *Tx) {
		_, err := tx.PruneLoginMarks(ctx, at(3), 4)
		require.NoError(t, err)
	})
	mark(200, 300, nil)
	erase("ten_b", "usr_3", nil)
	mark(300, 310, nil)

	p := s.d.people
	want := slices.Sorted(maps.Keys(p.marks))
	require.Greater(t, len(want), 60)
	require.Equal(t, want, keysOf(p.marksByKey), "the index holds exactly the marks")

	for _, w := range append(who, [2]string{"ten_a", "usr_9"}, [2]string{"ten_a", ""}, [2]string{"ten", "a"}) {
		prefix := userKey(w[0], w[1]) + "/"
		var wantKeys []string
		for _, k := range want {
			if strings.HasPrefix(k, prefix) {
				wantKeys = append(wantKeys, k)
			}
		}
		in(errRolledBack, func(tx *Tx) {
			was := maps.Clone(p.marks)
			n, err := tx.DeleteLoginMarks(ctx, w[0], w[1])
			require.NoError(t, err)
			var got []string
			for k := range was {
				if _, ok := p.marks[k]; !ok {
					got = append(got, k)
				}
			}
			slices.Sort(got)
			require.Equal(t, wantKeys, got, "%s/%s", w[0], w[1])
			require.Equal(t, len(wantKeys), n)
		})
	}
	require.Equal(t, want, keysOf(p.marksByKey), "rolled back erasures leave the index as it was")
}

// TestAuditErasureIndexMatchesTheTable keeps the erasure index through
// the audit log's writes (appends of users', the system's, agents' and
// API keys' entries, with and without an IP, of no tenant, of the clear
// format; seals; erasures; a prune; entries edited behind the chain's
// back), each also rolled back once. It then checks that the index lists,
// for each person, exactly the entries an erasure of that person selects
// in the table (and otherwise only entries since forgotten under someone
// else), and compares what ForgetAuditPersonal clears for each person,
// of each tenant and of none, with the entries forgets selects in the
// table still holding an IP.
func TestAuditErasureIndexMatchesTheTable(t *testing.T) {
	ctx := context.Background()
	s, in := tenantStore(t)
	people := []string{"usr_1", "usr_10", "usr_2", "usr_3"}
	tenants := []string{"ten_a", "ten_b", ""}
	entry := func(i int) *audit.Entry {
		e := &audit.Entry{TenantID: tenants[i%3], Action: "x", Target: people[(i/3)%4]}
		if i%5 != 0 {
			e.IP = "192.0.2.1"
		}
		switch i % 7 {
		case 0, 1:
			e.ActorType, e.ActorID = audit.ActorUser, people[(i/7)%4] // on themselves or another
		case 2:
			e.ActorType, e.Target = audit.ActorSystem, people[(i/11)%4]
		case 3:
			e.ActorType, e.Target = audit.ActorSystem, "" // about no one
		case 4:
			e.ActorType, e.ActorID, e.Target = audit.ActorAgent, people[i%4], people[(i/2)%4]
		case 5:
			e.ActorType, e.ActorID = audit.ActorAPIKey, people[i%4]
		case 6:
			e.ActorType, e.ActorID, e.Target = audit.ActorUser, people[(i/3)%4], ""
		}
		return e
	}
	appendN := func(from, to int, err error) {
		in(err, func(tx *Tx) {
			for i := from; i < to; i++ {
				require.NoError(t, audit.Append(ctx, tx, entry(i)))
			}
		})
	}
	appendClear := func(from, to int) { // entries of the format before pseudonymous
		in(nil, func(tx *Tx) {
			for i := from; i < to; i++ {
				e := entry(i)
				e.Format, e.CreatedAt = audit.FormatClear, time.Now()
				require.NoError(t, tx.AppendAudit(ctx, e))
			}
		})
	}
	seal := func(n int, err error) {
		in(err, func(tx *Tx) {
			head, _ := tx.AuditHead(ctx)
			pending, _ := tx.PendingAudit(ctx, n)
			seals := make([]audit.Seal, len(pending))
			for i, p := range pending {
				seals[i] = audit.Seal{Seq: p.Seq, ChainPos: head.ChainPos + int64(i) + 1, PrevHash: []byte{1}, Hash: []byte{2}}
			}
			require.NoError(t, tx.SealAudit(ctx, seals))
		})
	}
	forget := func(tenantID, person string, err error) {
		in(err, func(tx *Tx) {
			_, ferr := tx.ForgetAuditPersonal(ctx, audit.ForgetPersonal{TenantID: tenantID, Subject: person})
			require.NoError(t, ferr)
		})
	}
	prune := func(pos int64, err error) {
		in(err, func(tx *Tx) {
			_, perr := tx.PruneAudit(ctx, audit.Anchor{ChainPos: pos, Hash: []byte{2}}, map[int]int64{}, &audit.Retention{ToPos: pos})
			require.NoError(t, perr)
		})
	}
	appendN(0, 200, nil)
	appendN(200, 260, errRolledBack)
	appendClear(200, 230)
	appendN(230, 400, nil)
	seal(150, nil)
	seal(100, errRolledBack)
	forget("ten_a", "usr_1", errRolledBack)
	forget("ten_a", "usr_2", nil)
	s.TamperAuditTables(func(tb AuditTables) { // one entry deleted, one given an IP back
		delete(tb.Entries, 300)
		e := tb.Entries[301]
		e.IP, e.IPSalt = "192.0.2.9", []byte{9}
		tb.Entries[301] = e
	})
	prune(60, errRolledBack)
	prune(60, nil)
	appendN(400, 450, nil)
	forget("ten_b", "usr_10", nil)
	appendN(450, 500, nil)

	// selects is forgets over the table: the entries an erasure clears.
	selects := func(f audit.ForgetPersonal) []int64 {
		var out []int64
		for seq, r := range s.d.auditEntries {
			if e := r.entry(seq, true); e.Format == audit.FormatPseudonymous && forgets(f, &e) && (e.IP != "" || e.IPSalt != nil) {
				out = append(out, seq)
			}
		}
		slices.Sort(out)
		return out
	}
	x := s.d.auditLog.personal
	for k, seqs := range x {
		require.True(t, slices.IsSorted(seqs), "%v", k)
		require.Equal(t, len(seqs), len(slices.Compact(slices.Clone(seqs))), "%v", k)
		var live []int64
		for _, seq := range seqs {
			r, ok := s.d.auditEntries[seq]
			require.True(t, ok, "%v lists %d, deleted", k, seq)
			if e := r.entry(seq, true); e.IP != "" || e.IPSalt != nil {
				live = append(live, seq)
			}
		}
		require.Equal(t, selects(audit.ForgetPersonal{TenantID: k.tenantID, Subject: k.person}), live, "%v", k)
	}
	total := 0
	for _, tn := range tenants {
		for _, p := range append(slices.Clone(people), "usr_9", "") {
			want := selects(audit.ForgetPersonal{TenantID: tn, Subject: p})
			total += len(want)
			if tn != "" && len(want) > 0 {
				require.Contains(t, x, personKey{tn, p})
			}
			indexed := maps.Clone(x)
			in(errRolledBack, func(tx *Tx) {
				was := maps.Clone(s.d.auditEntries)
				n, err := tx.ForgetAuditPersonal(ctx, audit.ForgetPersonal{TenantID: tn, Subject: p})
				require.NoError(t, err)
				var got []int64
				for seq, r := range was {
					if s.d.auditEntries[seq] != r {
						got = append(got, seq)
						e := s.d.auditEntries[seq].entry(seq, true)
						require.True(t, e.IP == "" && e.IPSalt == nil)
					}
				}
				slices.Sort(got)
				require.Equal(t, want, got, "%q/%q", tn, p)
				require.Equal(t, len(want), n)
			})
			require.Equal(t, indexed, s.d.auditLog.personal, "a rolled back erasure leaves the index as it was")
		}
	}
	require.Greater(t, total, 50)
}

// TestAuditErasureIndexForgetsPrunedEntries: an entry by one user about
// another, cleared by the first's erasure and then pruned, leaves the
// other's list as well, so the index never holds a deleted entry.
func TestAuditErasureIndexForgetsPrunedEntries(t *testing.T) {
	ctx := context.Background()
	s, in := tenantStore(t)
	in(nil, func(tx *Tx) {
		require.NoError(t, audit.Append(ctx, tx, &audit.Entry{TenantID: "ten_a", ActorType: audit.ActorUser,
			ActorID: "usr_a", Target: "usr_b", Action: "x", IP: "192.0.2.1"}))
		pending, err := tx.PendingAudit(ctx, 10)
		require.NoError(t, err)
		require.Len(t, pending, 1)
		require.NoError(t, tx.SealAudit(ctx, []audit.Seal{{Seq: pending[0].Seq, ChainPos: 1, PrevHash: []byte{1}, Hash: []byte{2}}}))
	})
	require.Len(t, s.d.auditLog.personal, 2, "listed under both people")
	in(nil, func(tx *Tx) {
		n, err := tx.ForgetAuditPersonal(ctx, audit.ForgetPersonal{TenantID: "ten_a", Subject: "usr_a"})
		require.NoError(t, err)
		require.Equal(t, 1, n)
	})
	in(nil, func(tx *Tx) {
		_, err := tx.PruneAudit(ctx, audit.Anchor{ChainPos: 1, Hash: []byte{2}}, map[int]int64{}, &audit.Retention{ToPos: 1})
		require.NoError(t, err)
	})
	require.Empty(t, s.d.auditEntries)
	require.Empty(t, s.d.auditLog.personal, "no list names the pruned entry")
}
