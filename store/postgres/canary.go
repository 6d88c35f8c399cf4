package postgres

import (
	"context"
	"time"

	"github.com/perfectpay/perfectpay/internal/canary"
)

var _ canary.Repo = (*Tx)(nil)

func (t *Tx) GetCanary(ctx context.Context, name string) ([]byte, time.Time, error) {
	var sealed []byte
	var written time.Time
	err := t.tx.QueryRow(ctx, `SELECT sealed, created_at FROM secret_canaries WHERE name = $1`, name).Scan(&sealed, &written)
	if err != nil {
		return nil, time.Time{}, mapErr(err)
	}
	return sealed, written.UTC(), nil
}

func (t *Tx) PutCanary(ctx context.Context, name string, sealed []byte, at time.Time) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO secret_canaries (name, sealed, created_at) VALUES ($1, $2, $3)`, name, sealed, at)
	return mapErr(err)
}
