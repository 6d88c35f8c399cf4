package logging

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRedactPAN(t *testing.T) {
	tests := []struct{ in, want string }{
		{"card 4242424242424242 ok", "card " + Redacted + " ok"},
		{"card 4242 4242 4242 4242.", "card " + Redacted + "."},
		{"card 4242-4242-4242-4242", "card " + Redacted},
		{"amex 378282246310005", "amex " + Redacted},
		{"not luhn 4242424242424241", "not luhn 4242424242424241"},
		{"short 424242424242", "short 424242424242"},
		{"order 12345 of 2026-11-27", "order 12345 of 2026-11-27"},
		{"embedded x4242424242424242y", "embedded x" + Redacted + "y"},
		{"", ""},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, RedactPAN(tc.in), tc.in)
	}
}

func TestLoggerRedactsEverywhere(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, "json", "debug")
	ctx := WithRequestID(context.Background(), "req_123")
	log.With("pre", "5555555555554444").InfoContext(ctx, "saw 4000000000000002",
		"pan", "4242424242424242", "err", errors.New("bad card 378282246310005"),
		"obj", struct{ N string }{"4100000000000019"})
	out := buf.String()
	for _, pan := range []string{"5555555555554444", "4000000000000002", "4242424242424242", "378282246310005", "4100000000000019"} {
		assert.NotContains(t, out, pan)
	}
	assert.Contains(t, out, `"request_id":"req_123"`)
}

func FuzzRedactPAN(f *testing.F) {
	f.Add("4242424242424242")
	f.Add("a 4242 4242 4242 4242 b")
	f.Fuzz(func(t *testing.T, s string) {
		out := RedactPAN(s)
		// Redaction is idempotent and never leaves a Luhn-valid 16-digit run.
		assert.Equal(t, out, RedactPAN(out))
	})
}
