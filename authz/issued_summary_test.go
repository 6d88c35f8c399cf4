package authz

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestIssuedSummaryEncodesAsTheMapDid: token.issued entries written with
// the struct read exactly as those written with a map before it.
func TestIssuedSummaryEncodesAsTheMapDid(t *testing.T) {
	exp := time.Date(2026, 12, 1, 18, 0, 0, 123456000, time.UTC)
	for _, act := range [][]string{nil, {"agt_b", "agt_a"}} {
		m := map[string]any{"client_id": "agt_a", "grant_type": GrantClientCredentials, "expires_at": exp,
			"scope": "charges:read charges:write", "dpop_bound": true}
		if act != nil {
			m["act"] = act
		}
		want, err := json.Marshal(m)
		require.NoError(t, err)
		got, err := json.Marshal(&issuedSummary{Act: act, ClientID: "agt_a", GrantType: GrantClientCredentials, ExpiresAt: exp,
			Scope: "charges:read charges:write", DPoPBound: true})
		require.NoError(t, err)
		require.Equal(t, string(want), string(got))
	}
}
