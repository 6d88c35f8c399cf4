package canary_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/internal/canary"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/memory"
	"github.com/perfectpay/perfectpay/store/pgtest"
	"github.com/perfectpay/perfectpay/store/postgres"
)

// oldCanaries were sealed by the canary code before internal/seal (nonce |
// ciphertext | tag, no format byte) under a key of 32 bytes of 2. A
// database set up then must still start with the same secrets.
var oldCanaries = map[string]string{
	"vault KEK version 1": "033200dabc522adf1b69c3fea01f48dde89dda43b3fb01061ebb67c1a50d8fb35adb687eb0aa2d18c74e05c0b379e3dfddfd25aeb5e99e",
	"webhooks.secret_key": "c72f5199f991ad75b2356923d61135ba5047a3948814842448e001653211fd1b043be70fc3374ea8a7ab7d3062258a596975031af4e034",
}

func TestCanarySealedBeforeSealPackage(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	run := func(t *testing.T, db store.Runner[canary.Tx]) {
		var secrets []canary.Secret
		require.NoError(t, db.InTx(ctx, func(tx canary.Tx) error {
			for name, h := range oldCanaries {
				sealed, err := hex.DecodeString(h)
				require.NoError(t, err)
				if err := tx.PutCanary(ctx, name, sealed, at); err != nil {
					return err
				}
				secrets = append(secrets, canary.Secret{Name: name, Key: bytes.Repeat([]byte{2}, 32), Kind: canary.AEAD})
			}
			return nil
		}))
		require.NoError(t, canary.Check(ctx, db, secrets, at.Add(time.Hour)), "the same secrets open the old canaries")
		secrets[0].Key = bytes.Repeat([]byte{3}, 32)
		var me *canary.MismatchError
		require.ErrorAs(t, canary.Check(ctx, db, secrets, at.Add(time.Hour)), &me, "another secret still does not")
		require.Len(t, me.Secrets, 1)
	}
	t.Run("memory", func(t *testing.T) { run(t, store.Bind(memory.New(), func(x *memory.Tx) canary.Tx { return x })) })
	t.Run("postgres", func(t *testing.T) {
		run(t, store.Bind(pgtest.NewStore(t), func(x *postgres.Tx) canary.Tx { return x }))
	})
}
