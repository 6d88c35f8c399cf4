package events_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/events"
)

type outbox struct {
	got []events.Event
	err error
}

func (o *outbox) EnqueueEvent(_ context.Context, e *events.Event) error {
	if o.err != nil {
		return o.err
	}
	o.got = append(o.got, *e)
	return nil
}

func TestEmitWritesTheObjectToTheOutbox(t *testing.T) {
	o := &outbox{}
	require.NoError(t, events.Emit(context.Background(), o, "acct_1", "thing.created", map[string]any{"id": "thg_1"}))
	require.NoError(t, events.Emit(context.Background(), o, "acct_1", "thing.updated", map[string]any{"id": "thg_1"}))
	require.Len(t, o.got, 2)
	e := o.got[0]
	assert.True(t, strings.HasPrefix(e.ID, "evt_"), e.ID)
	assert.NotEqual(t, e.ID, o.got[1].ID, "each event has its own id")
	assert.Equal(t, "acct_1", e.TenantID)
	assert.Equal(t, "thing.created", e.Type)
	assert.JSONEq(t, `{"object":{"id":"thg_1"}}`, string(e.Data))
	assert.Equal(t, "UTC", e.CreatedAt.Location().String())
	assert.Zero(t, e.CreatedAt.Nanosecond()%1000, "microsecond precision, as both stores keep it")
}

func TestEmitReturnsTheOutboxError(t *testing.T) {
	boom := errors.New("boom")
	err := events.Emit(context.Background(), &outbox{err: boom}, "acct_1", "thing.created", map[string]any{})
	require.ErrorIs(t, err, boom)
}

func TestEmitRefusesAnObjectThatIsNotJSON(t *testing.T) {
	o := &outbox{}
	require.Error(t, events.Emit(context.Background(), o, "acct_1", "thing.created", make(chan int)))
	assert.Empty(t, o.got, "nothing written")
}
