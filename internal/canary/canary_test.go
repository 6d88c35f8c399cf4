package canary_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/internal/canary"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/memory"
	"github.com/perfectpay/perfectpay/store/pgtest"
	"github.com/perfectpay/perfectpay/store/postgres"
)

func secrets(hmacByte, kekByte byte) []canary.Secret {
	return []canary.Secret{
		{Name: "secrets.hmac_key", Key: bytes.Repeat([]byte{hmacByte}, 32), Kind: canary.MAC, Guards: "API keys"},
		{Name: "vault KEK version 1", Key: bytes.Repeat([]byte{kekByte}, 32), Kind: canary.AEAD, Guards: "cards"},
	}
}

func TestCanary(t *testing.T) {
	for _, driver := range []string{"memory", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			var db store.Runner[canary.Tx]
			if driver == "memory" {
				m := memory.New()
				t.Cleanup(m.Close)
				db = store.Bind(m, func(x *memory.Tx) canary.Tx { return x })
			} else {
				pg := pgtest.NewStore(t)
				db = store.Bind(pg, func(x *postgres.Tx) canary.Tx { return x })
			}
			ctx := context.Background()
			first := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
			require.NoError(t, canary.Check(ctx, db, secrets(1, 2), first), "first start writes the canaries")
			require.NoError(t, canary.Check(ctx, db, secrets(1, 2), first.Add(time.Hour)), "the same secrets open them")

			err := canary.Check(ctx, db, secrets(1, 3), first)
			var me *canary.MismatchError
			require.ErrorAs(t, err, &me)
			require.Len(t, me.Secrets, 1)
			assert.Equal(t, "vault KEK version 1", me.Secrets[0].Name)
			assert.Contains(t, err.Error(), "vault KEK version 1 is not the one")
			assert.Contains(t, err.Error(), "2030-01-02T03:04:05Z")
			assert.NotContains(t, err.Error(), "secrets.hmac_key")

			err = canary.Check(ctx, db, secrets(9, 9), first)
			require.ErrorAs(t, err, &me)
			assert.Len(t, me.Secrets, 2, "every wrong secret is named at once")

			// A secret configured later (a new KEK version) gets its canary.
			more := append(secrets(1, 2), canary.Secret{Name: "vault KEK version 2", Key: bytes.Repeat([]byte{4}, 32), Kind: canary.AEAD})
			require.NoError(t, canary.Check(ctx, db, more, first))
			more[2].Key = bytes.Repeat([]byte{5}, 32)
			require.ErrorAs(t, canary.Check(ctx, db, more, first), &me)
			assert.Equal(t, "vault KEK version 2", me.Secrets[0].Name)
		})
	}
}
