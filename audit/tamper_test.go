package audit_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/memory"
	"github.com/perfectpay/perfectpay/store/pgtest"
	"github.com/perfectpay/perfectpay/store/postgres"
)

// tables is what a database writer without the audit signing key can do
// to a backend's audit tables: read and overwrite rows, delete them, move
// the head, the anchor and the stripe counters, delete checkpoints.
type tables interface {
	rows(t *testing.T) []audit.Entry // every entry, by seq
	put(t *testing.T, e audit.Entry) // overwrite the row e.Seq, every column
	del(t *testing.T, seq int64)
	setHead(t *testing.T, a audit.Anchor)
	setAnchor(t *testing.T, a audit.Anchor)
	setStripe(t *testing.T, id int, next, floor int64)
	deleteCheckpointsFrom(t *testing.T, pos int64)
	deleteRetention(t *testing.T)
}

type pgTables struct{ pg *postgres.Store }

func (p pgTables) exec(t *testing.T, sql string, args ...any) {
	_, err := p.pg.Pool().Exec(context.Background(), sql, args...)
	require.NoError(t, err)
}

func (p pgTables) rows(t *testing.T) []audit.Entry {
	var out []audit.Entry
	require.NoError(t, p.pg.InTx(context.Background(), func(tx *postgres.Tx) error {
		var err error
		out, err = tx.ListAudit(context.Background(), audit.Filter{Limit: 1_000_000})
		return err
	}))
	return out
}

func (p pgTables) put(t *testing.T, e audit.Entry) {
	var pos any
	if e.ChainPos != 0 {
		pos = e.ChainPos
	}
	p.exec(t, `UPDATE audit_events SET action = $2, data = $3, created_at = $4, content_hash = $5,
		stripe = $6, stripe_seq = $7 WHERE seq = $1`,
		e.Seq, e.Action, string(e.Data), e.CreatedAt, e.ContentHash, e.Stripe, e.StripeSeq)
	// The seal beside it, or its place in the sealer's queue.
	if pos == nil {
		p.exec(t, `DELETE FROM audit_seals WHERE seq = $1`, e.Seq)
		p.exec(t, `INSERT INTO audit_unsealed (seq) VALUES ($1) ON CONFLICT DO NOTHING`, e.Seq)
		return
	}
	p.exec(t, `DELETE FROM audit_unsealed WHERE seq = $1`, e.Seq)
	p.exec(t, `INSERT INTO audit_seals (seq, chain_pos, prev_hash, hash) VALUES ($1, $2, $3, $4)
		ON CONFLICT (seq) DO UPDATE SET chain_pos = excluded.chain_pos, prev_hash = excluded.prev_hash, hash = excluded.hash`,
		e.Seq, pos, e.PrevHash, e.Hash)
}

func (p pgTables) del(t *testing.T, seq int64) {
	p.exec(t, `DELETE FROM audit_events WHERE seq = $1`, seq)
	p.exec(t, `DELETE FROM audit_seals WHERE seq = $1`, seq)
	p.exec(t, `DELETE FROM audit_unsealed WHERE seq = $1`, seq)
}

func (p pgTables) setHead(t *testing.T, a audit.Anchor) {
	p.exec(t, `UPDATE audit_state SET head_pos = $1, head_hash = $2`, a.ChainPos, a.Hash)
}

func (p pgTables) setAnchor(t *testing.T, a audit.Anchor) {
	p.exec(t, `UPDATE audit_state SET anchor_pos = $1, anchor_hash = $2`, a.ChainPos, a.Hash)
}

func (p pgTables) setStripe(t *testing.T, id int, next, floor int64) {
	p.exec(t, `UPDATE audit_stripes SET next = $2, floor = $3 WHERE stripe = $1`, id, next, floor)
}

func (p pgTables) deleteCheckpointsFrom(t *testing.T, pos int64) {
	p.exec(t, `DELETE FROM audit_checkpoints WHERE chain_pos >= $1`, pos)
}

func (p pgTables) deleteRetention(t *testing.T) { p.exec(t, `DELETE FROM audit_retention`) }

type memTables struct{ m *memory.Store }

func (m memTables) rows(*testing.T) []audit.Entry {
	var out []audit.Entry
	m.m.TamperAuditTables(func(tb memory.AuditTables) {
		for _, e := range tb.Entries {
			out = append(out, e)
		}
	})
	slices.SortFunc(out, func(a, b audit.Entry) int { return int(a.Seq - b.Seq) })
	return out
}

func (m memTables) put(_ *testing.T, e audit.Entry) {
	m.m.TamperAuditTables(func(tb memory.AuditTables) { tb.Entries[e.Seq] = e })
}

func (m memTables) del(_ *testing.T, seq int64) {
	m.m.TamperAuditTables(func(tb memory.AuditTables) { delete(tb.Entries, seq) })
}

func (m memTables) setHead(_ *testing.T, a audit.Anchor) {
	m.m.TamperAuditTables(func(tb memory.AuditTables) { *tb.Head = a })
}

func (m memTables) setAnchor(_ *testing.T, a audit.Anchor) {
	m.m.TamperAuditTables(func(tb memory.AuditTables) { *tb.Anchor = a })
}

func (m memTables) setStripe(t *testing.T, id int, next, floor int64) {
	require.Equal(t, 1, id, "the memory store has one stripe")
	m.m.TamperAuditTables(func(tb memory.AuditTables) { *tb.StripeNext, *tb.StripeFloor = next, floor })
}

func (m memTables) deleteCheckpointsFrom(_ *testing.T, pos int64) {
	m.m.TamperAuditTables(func(tb memory.AuditTables) {
		*tb.Checkpoints = slices.DeleteFunc(*tb.Checkpoints, func(c audit.Checkpoint) bool { return c.ChainPos >= pos })
	})
}

func (m memTables) deleteRetention(*testing.T) {
	m.m.TamperAuditTables(func(tb memory.AuditTables) { *tb.Retentions = nil })
}

// backend is one store under attack.
type backend struct {
	db     store.Runner[audit.Repo]
	tables tables
}

// eachBackend runs fn on memory and on PostgreSQL; open gives a fresh,
// empty store of that kind.
func eachBackend(t *testing.T, fn func(t *testing.T, open func(t *testing.T) backend)) {
	t.Run("memory", func(t *testing.T) {
		fn(t, func(*testing.T) backend {
			m := memory.New()
			return backend{db: store.Bind(m, func(x *memory.Tx) audit.Repo { return x }), tables: memTables{m}}
		})
	})
	t.Run("postgres", func(t *testing.T) {
		fn(t, func(t *testing.T) backend {
			pg := pgtest.NewStore(t)
			return backend{db: store.Bind(pg, func(x *postgres.Tx) audit.Repo { return x }), tables: pgTables{pg}}
		})
	})
}

func newSealer(t testing.TB) *authz.KeySealer {
	kek := make([]byte, 32)
	_, err := rand.Read(kek)
	require.NoError(t, err)
	s, err := authz.NewKeySealer(kek)
	require.NoError(t, err)
	return s
}

func byPos(t *testing.T, tb tables, pos int64) audit.Entry {
	for _, e := range tb.rows(t) {
		if e.ChainPos == pos {
			return e
		}
	}
	t.Fatalf("no entry at chain position %d", pos)
	return audit.Entry{}
}

func byNumber(t *testing.T, tb tables, n int64) audit.Entry {
	for _, e := range tb.rows(t) {
		if e.StripeSeq == n {
			return e
		}
	}
	t.Fatalf("no entry numbered %d", n)
	return audit.Entry{}
}

func sha(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// rewriteAndRelink is the attack of a database writer who knows the
// project's hash functions: it changes the entry at pos, recomputes its
// content hash and re-links every later entry and the head.
func rewriteAndRelink(t *testing.T, tb tables, pos int64, edit func(e *audit.Entry)) {
	var chain []audit.Entry
	for _, e := range tb.rows(t) {
		if e.ChainPos >= pos {
			chain = append(chain, e)
		}
	}
	slices.SortFunc(chain, func(a, b audit.Entry) int { return int(a.ChainPos - b.ChainPos) })
	prev := chain[0].PrevHash
	for i := range chain {
		e := &chain[i]
		if i == 0 {
			edit(e)
			e.ContentHash = audit.ContentHash(e)
		}
		e.PrevHash = prev
		e.Hash = audit.EntryLinkHash(prev, e, e.ChainPos)
		prev = e.Hash
		tb.put(t, *e)
	}
	last := chain[len(chain)-1]
	tb.setHead(t, audit.Anchor{ChainPos: last.ChainPos, Hash: last.Hash})
}

// tamperFixture is 20 sealed charge decisions (positions 1-20), the audit
// key's creation (position 21) and a checkpoint of position 21 exported
// outside the database.
type tamperFixture struct {
	svc    *audit.Service
	export *audit.Export
	opts   audit.VerifyOptions
}

func newFixture(t *testing.T, b backend) tamperFixture {
	ctx := context.Background()
	svc := audit.NewService(b.db, 0, nil)
	for i := 1; i <= 20; i++ {
		require.NoError(t, b.db.InTx(ctx, func(tx audit.Repo) error {
			return audit.Append(ctx, tx, &audit.Entry{ActorType: audit.ActorSystem, Action: "charge.decision",
				Target: fmt.Sprintf("ch_%d", i), Data: []byte(fmt.Sprintf(`{"n":%d,"decision":"deny"}`, i))})
		}))
	}
	_, err := svc.SealAll(ctx)
	require.NoError(t, err)
	require.NoError(t, svc.UseKeys(ctx, newSealer(t)))
	ex, err := svc.ExportCheckpoint(ctx)
	require.NoError(t, err)
	_, ks, err := audit.ParseExport(mustJSON(t, ex))
	require.NoError(t, err)
	f := tamperFixture{svc: svc, export: ex, opts: audit.VerifyOptions{Checkpoint: ex.Checkpoint, Keys: ks}}
	res, err := svc.VerifyWith(ctx, f.opts)
	require.NoError(t, err)
	require.True(t, res.OK, res.Problem)
	require.Equal(t, int64(21), res.Checked)
	require.Equal(t, int64(21), res.CheckpointPos)
	return f
}

func (f tamperFixture) appendFresh(t *testing.T, b backend, n int) {
	for i := range n {
		require.NoError(t, b.db.InTx(context.Background(), func(tx audit.Repo) error {
			return audit.Append(context.Background(), tx, &audit.Entry{ActorType: audit.ActorSystem, Action: "charge.decision",
				Target: fmt.Sprintf("ch_fresh_%d", i), Data: []byte(`{"decision":"deny"}`)})
		}))
	}
}

// TestTamperDetected attacks the log on both stores the way a database
// writer without the audit signing key can, and checks that verification
// with the checkpoint held outside the database names each attack.
func TestTamperDetected(t *testing.T) {
	cases := []struct {
		name    string
		attack  func(t *testing.T, b backend, f tamperFixture)
		badPos  int64 // -1: not checked
		problem string
	}{
		// Edits that leave the chain broken.
		{"edit action", func(t *testing.T, b backend, _ tamperFixture) {
			e := byPos(t, b.tables, 7)
			e.Action = "x"
			b.tables.put(t, e)
		}, 7, "edited"},
		{"edit data", func(t *testing.T, b backend, _ tamperFixture) {
			e := byPos(t, b.tables, 3)
			e.Data = []byte(`{"n":99}`)
			b.tables.put(t, e)
		}, 3, "edited"},
		{"edit time", func(t *testing.T, b backend, _ tamperFixture) {
			e := byPos(t, b.tables, 12)
			e.CreatedAt = e.CreatedAt.Add(-24 * time.Hour)
			b.tables.put(t, e)
		}, 12, "edited"},
		{"delete middle", func(t *testing.T, b backend, _ tamperFixture) {
			b.tables.del(t, byPos(t, b.tables, 9).Seq)
		}, 9, "missing"},
		{"delete tail", func(t *testing.T, b backend, _ tamperFixture) {
			b.tables.del(t, byPos(t, b.tables, 21).Seq)
		}, 21, "deleted"},
		{"relink one", func(t *testing.T, b backend, _ tamperFixture) {
			e := byPos(t, b.tables, 5)
			e.PrevHash = sha(e.PrevHash)
			b.tables.put(t, e)
		}, 5, "prev_hash"},
		{"forge hash", func(t *testing.T, b backend, _ tamperFixture) {
			e := byPos(t, b.tables, 15)
			e.Hash = sha(e.Hash)
			b.tables.put(t, e)
		}, 15, "link hash"},
		{"swap order", func(t *testing.T, b backend, _ tamperFixture) {
			e10, e11 := byPos(t, b.tables, 10), byPos(t, b.tables, 11)
			e10.ChainPos, e11.ChainPos = -10, 10
			b.tables.put(t, e10)
			b.tables.put(t, e11)
			e10.ChainPos = 11
			b.tables.put(t, e10)
		}, 10, "prev_hash does not match"},
		{"renumber a sealed entry", func(t *testing.T, b backend, _ tamperFixture) {
			e := byPos(t, b.tables, 8)
			e.StripeSeq += 100
			b.tables.put(t, e)
		}, 8, "link hash"},

		// Rewrite-and-relink: every hash recomputed, head moved.
		{"rewrite and relink", func(t *testing.T, b backend, _ tamperFixture) {
			rewriteAndRelink(t, b.tables, 5, func(e *audit.Entry) { e.Data = []byte(`{"n":5,"decision":"allow"}`) })
		}, 21, "rewritten"},
		{"rewrite and relink, stored checkpoints deleted", func(t *testing.T, b backend, _ tamperFixture) {
			rewriteAndRelink(t, b.tables, 5, func(e *audit.Entry) { e.Data = []byte(`{"n":5,"decision":"allow"}`) })
			b.tables.deleteCheckpointsFrom(t, 0)
		}, 21, "rewritten"},
		{"rewrite and relink, re-signed with the attacker's own key", func(t *testing.T, b backend, _ tamperFixture) {
			rewriteAndRelink(t, b.tables, 5, func(e *audit.Entry) { e.Data = []byte(`{"n":5,"decision":"allow"}`) })
			b.tables.deleteCheckpointsFrom(t, 0)
			forger := audit.NewService(b.db, 0, nil)
			require.NoError(t, forger.UseKeys(context.Background(), newSealer(t)))
			_, err := forger.Checkpoint(context.Background(), true)
			require.NoError(t, err)
		}, -1, "not among the trusted audit keys"},
		{"rewrite and relink, tail cut below the checkpoint", func(t *testing.T, b backend, _ tamperFixture) {
			b.tables.del(t, byPos(t, b.tables, 21).Seq)
			b.tables.del(t, byPos(t, b.tables, 20).Seq)
			rewriteAndRelink(t, b.tables, 5, func(e *audit.Entry) { e.Data = []byte(`{"n":5,"decision":"allow"}`) })
			b.tables.deleteCheckpointsFrom(t, 0)
			b.tables.setStripe(t, 1, 19, 0)
		}, 20, "truncated"},

		// Prefix deletion with the anchor moved to the last deleted link.
		{"prefix deletion with anchor move", func(t *testing.T, b backend, _ tamperFixture) {
			last := byPos(t, b.tables, 10)
			for _, e := range b.tables.rows(t) {
				if e.ChainPos <= 10 {
					b.tables.del(t, e.Seq)
				}
			}
			b.tables.setAnchor(t, audit.Anchor{ChainPos: 10, Hash: last.Hash})
			b.tables.setStripe(t, 1, 21, 10)
		}, 10, "prefix deleted"},
		{"prefix deletion with anchor move, floors untouched", func(t *testing.T, b backend, _ tamperFixture) {
			last := byPos(t, b.tables, 10)
			for _, e := range b.tables.rows(t) {
				if e.ChainPos <= 10 {
					b.tables.del(t, e.Seq)
				}
			}
			b.tables.setAnchor(t, audit.Anchor{ChainPos: 10, Hash: last.Hash})
		}, 10, "prefix deleted: the chain starts after position 10, but no signed retention record removed those entries"},

		// Entries deleted after they committed, before the sealer linked them.
		{"fresh entry deleted", func(t *testing.T, b backend, f tamperFixture) {
			f.appendFresh(t, b, 5) // numbers 22-26
			b.tables.del(t, byNumber(t, b.tables, 23).Seq)
			_, err := f.svc.SealAll(context.Background())
			require.NoError(t, err)
		}, 23, "fresh entry deleted: entry 23 of stripe 1 is missing"},
		{"fresh entry deleted, not yet sealed", func(t *testing.T, b backend, f tamperFixture) {
			f.appendFresh(t, b, 5)
			b.tables.del(t, byNumber(t, b.tables, 24).Seq)
		}, -1, "fresh entry deleted: entry 24 of stripe 1 is missing"},
		{"newest fresh entry deleted", func(t *testing.T, b backend, f tamperFixture) {
			f.appendFresh(t, b, 5)
			b.tables.del(t, byNumber(t, b.tables, 26).Seq)
		}, -1, "stripe 1 counts 26 entries, but the last one present is 25"},
		{"newest fresh entry deleted, counter rolled back", func(t *testing.T, b backend, f tamperFixture) {
			f.appendFresh(t, b, 5)
			_, err := f.svc.Checkpoint(context.Background(), true) // signs counter 26
			require.NoError(t, err)
			b.tables.del(t, byNumber(t, b.tables, 26).Seq)
			b.tables.setStripe(t, 1, 25, 0)
		}, -1, "fewer than the 26 signed in stored checkpoint"},
	}
	eachBackend(t, func(t *testing.T, open func(t *testing.T) backend) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel() // each case on its own store
				b := open(t)
				f := newFixture(t, b)
				tc.attack(t, b, f)
				res, err := f.svc.VerifyWith(context.Background(), f.opts)
				require.NoError(t, err)
				assert.False(t, res.OK, "attack not detected")
				assert.Contains(t, res.Problem, tc.problem)
				if tc.badPos >= 0 {
					assert.Equal(t, tc.badPos, res.BadPos, res.Problem)
				}
			})
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// TestVerifyWithoutCheckpointTrustsTheDatabase pins the threat model's
// stated limit: without a checkpoint held outside the database, a writer
// who rewrites, relinks and deletes the stored checkpoints is not caught.
// With the exported checkpoint the same attack is (TestTamperDetected).
func TestVerifyWithoutCheckpointTrustsTheDatabase(t *testing.T) {
	eachBackend(t, func(t *testing.T, open func(t *testing.T) backend) {
		b := open(t)
		f := newFixture(t, b)
		rewriteAndRelink(t, b.tables, 5, func(e *audit.Entry) { e.Data = []byte(`{"n":5,"decision":"allow"}`) })
		b.tables.deleteCheckpointsFrom(t, 0)
		res, err := f.svc.Verify(context.Background())
		require.NoError(t, err)
		assert.True(t, res.OK, res.Problem)
		assert.Equal(t, "database", res.TrustedKeys)
		res, err = f.svc.VerifyWith(context.Background(), f.opts)
		require.NoError(t, err)
		assert.False(t, res.OK)
		assert.Contains(t, res.Problem, "rewritten")
	})
}
