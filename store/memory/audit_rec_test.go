package memory

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/audit"
)

// TestAuditRecRoundTrip packs entries and reads every field back as it was,
// a nil byte field as nil and an empty one as empty.
func TestAuditRecRoundTrip(t *testing.T) {
	full := audit.Entry{
		Seq: 42, ID: "aud_1", TenantID: "ten_1", ActorType: audit.ActorUser, ActorID: "usr_1", IP: "203.0.113.9",
		Action: "token.issued", Target: "sig", RequestID: "req_1", Method: "POST", Route: "/oauth2/token", Status: 200,
		Data: []byte(`{"a":1}`), CreatedAt: time.Date(2026, 12, 2, 4, 5, 6, 789000, time.UTC), Format: audit.FormatPseudonymous,
		IPSalt: []byte{1, 2, 3}, IPDigest: []byte{4, 5}, Stripe: 3, StripeSeq: 1 << 40, ContentHash: []byte{6},
		ChainPos: 1<<62 + 5, PrevHash: []byte{7, 8}, Hash: []byte{9},
	}
	empty := audit.Entry{Seq: 1, Data: []byte{}, IPSalt: []byte{}, CreatedAt: time.Time{}, StripeSeq: -3}
	negative := audit.Entry{Seq: 3, ChainPos: -10, StripeSeq: -1, Status: -2, CreatedAt: time.Date(1960, 1, 2, 3, 4, 5, 6000, time.UTC)}
	for name, e := range map[string]audit.Entry{"full": full, "zero": {Seq: 7}, "empty fields": empty, "negative": negative} {
		t.Run(name, func(t *testing.T) {
			r := packAudit(&e)
			require.Equal(t, e, r.entry(e.Seq, true))
			require.Equal(t, e.ChainPos, r.chainPos())
			require.Equal(t, audit.Pending{Seq: e.Seq, ContentHash: e.ContentHash, Stripe: e.Stripe, StripeSeq: e.StripeSeq}, r.pending(e.Seq))
			light := e
			light.Data, light.IPSalt, light.IPDigest, light.ContentHash, light.PrevHash, light.Hash = nil, nil, nil, nil, nil, nil
			require.Equal(t, light, r.entry(e.Seq, false))
		})
	}

	// What a reader does to an entry it was given stays out of the store.
	r := packAudit(&full)
	got := r.entry(full.Seq, true)
	got.Data[0], got.Hash[0] = 'x', 0
	require.Equal(t, full, r.entry(full.Seq, true))
}
