package memory

import (
	"context"
	"time"

	"github.com/perfectpay/perfectpay/internal/canary"
	"github.com/perfectpay/perfectpay/store"
)

var _ canary.Repo = (*Tx)(nil)

type sealedCanary struct {
	sealed  []byte
	written time.Time
}

func (tx *Tx) GetCanary(_ context.Context, name string) ([]byte, time.Time, error) {
	c, ok := tx.d.canaries[name]
	if !ok {
		return nil, time.Time{}, store.ErrNotFound
	}
	return append([]byte(nil), c.sealed...), c.written, nil
}

func (tx *Tx) PutCanary(_ context.Context, name string, sealed []byte, at time.Time) error {
	if _, ok := tx.d.canaries[name]; ok {
		return store.ErrConflict
	}
	put(tx, tx.d.canaries, name, sealedCanary{sealed: append([]byte(nil), sealed...), written: at})
	return nil
}
