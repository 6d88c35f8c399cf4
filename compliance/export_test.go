package compliance_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/compliance"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/memory"
	"github.com/perfectpay/perfectpay/store/pgtest"
	"github.com/perfectpay/perfectpay/store/postgres"
	"github.com/perfectpay/perfectpay/store/repos"
)

func exporter[X repos.Tx](t testing.TB, b store.Backend[X]) (*compliance.Exporter, *audit.Service) {
	ctx := context.Background()
	as := audit.NewService(store.Bind(b, func(x X) audit.Repo { return x }), 0, nil)
	sealer, err := authz.NewKeySealer(bytes.Repeat([]byte{9}, 32))
	require.NoError(t, err)
	require.NoError(t, as.UseKeys(ctx, sealer))
	svc := compliance.NewService(store.Bind(b, func(x X) compliance.Repo { return x }), nil)
	return &compliance.Exporter{Service: svc, Audit: as}, as
}

// testExport: 2,500 audit entries of two tenants stream to JSONL and CSV
// in batches; the signed manifest describes the file exactly, and a
// changed byte of the file fails its verification.
func testExport[X repos.Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	x, as := exporter(t, b)
	require.NoError(t, b.InTx(ctx, func(tx X) error {
		for i := range 2500 {
			tenant := []string{"ten_a", "ten_b"}[i%2]
			if err := audit.RecordFor(ctx, tx, tenant, "thing.made", fmt.Sprintf("obj_%d", i), map[string]any{"n": i, "note": "=cmd|x"}); err != nil {
				return err
			}
		}
		return audit.RecordFor(ctx, tx, "ten_b", "thing.named", "=HYPERLINK(1)", nil)
	}))
	record(t, b, 1200)
	ks, err := as.Keys(ctx)
	require.NoError(t, err)

	var buf bytes.Buffer
	manifest, m, err := x.Export(ctx, compliance.ExportRequest{Kind: compliance.ExportAudit, Format: compliance.FormatJSONL, TenantID: "ten_a"}, &buf)
	require.NoError(t, err)
	assert.EqualValues(t, 1250, m.Rows)
	assert.EqualValues(t, buf.Len(), m.Bytes)
	assert.Positive(t, m.Checkpoint.ChainPos)
	sc := bufio.NewScanner(bytes.NewReader(buf.Bytes()))
	lines := 0
	for sc.Scan() {
		var e audit.Entry
		require.NoError(t, json.Unmarshal(sc.Bytes(), &e))
		assert.Equal(t, "ten_a", e.TenantID)
		lines++
	}
	assert.Equal(t, 1250, lines)
	got, err := compliance.VerifyExport(ks, manifest, bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	assert.Equal(t, m.SHA256, got.SHA256)
	bad := bytes.Clone(buf.Bytes())
	bad[len(bad)/2] ^= 1
	_, err = compliance.VerifyExport(ks, manifest, bytes.NewReader(bad))
	require.Error(t, err)
	// Change the signature's first character: always a different
	// signature (replacing its tail with a fixed text is not, when the
	// tail already was that text).
	tampered := []byte(manifest)
	sig := strings.LastIndexByte(manifest, '.') + 1
	tampered[sig] = map[bool]byte{true: 'B', false: 'A'}[tampered[sig] == 'A']
	_, err = compliance.VerifyExport(ks, string(tampered), bytes.NewReader(buf.Bytes()))
	require.Error(t, err)

	buf.Reset()
	_, m, err = x.Export(ctx, compliance.ExportRequest{Kind: compliance.ExportAudit, Format: compliance.FormatCSV}, &buf)
	require.NoError(t, err)
	recs, err := csv.NewReader(bytes.NewReader(buf.Bytes())).ReadAll()
	require.NoError(t, err)
	assert.Len(t, recs, int(m.Rows)+1)
	assert.GreaterOrEqual(t, m.Rows, int64(2501))
	assert.Equal(t, "seq", recs[0][0])
	var made, named int
	for _, r := range recs[1:] {
		switch r[6] {
		case "thing.made":
			made++
			assert.Contains(t, r[12], `"note":"=cmd|x"`)
		case "thing.named":
			named++
			assert.Equal(t, "'=HYPERLINK(1)", r[7], "a cell a spreadsheet would run is defused")
		}
	}
	assert.Equal(t, 2500, made)
	assert.Equal(t, 1, named)

	buf.Reset()
	_, m, err = x.Export(ctx, compliance.ExportRequest{Kind: compliance.ExportDecisions, Format: compliance.FormatCSV, TenantID: "ten_1"}, &buf)
	require.NoError(t, err)
	assert.EqualValues(t, 1200, m.Rows)
	_, _, err = x.Export(ctx, compliance.ExportRequest{Kind: "secrets", Format: compliance.FormatCSV}, &buf)
	require.Error(t, err)
	_, _, err = x.Export(ctx, compliance.ExportRequest{Kind: compliance.ExportAudit, Format: "xml"}, &buf)
	require.Error(t, err)
}

func TestExport(t *testing.T) {
	t.Run("memory", func(t *testing.T) { testExport(t, memory.New()) })
	t.Run("postgres", func(t *testing.T) { testExport[*postgres.Tx](t, pgtest.NewStore(t)) })
}
