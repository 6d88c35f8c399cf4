package postgres_test

import (
	"testing"

	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/pgtest"
	"github.com/perfectpay/perfectpay/store/postgres"
	"github.com/perfectpay/perfectpay/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Backend[*postgres.Tx] { return pgtest.NewStore(t) })
}
