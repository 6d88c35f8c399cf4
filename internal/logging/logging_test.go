package logging

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/perfectpay/perfectpay/internal/luhn"
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

// FuzzRedactPAN checks the redaction against its promise, with a detector
// of its own: after RedactPAN no run of 13–19 digits (plain, or with single
// spaces or dashes between digit groups) that passes the Luhn check is left,
// and in a longer run no 13–19 digit window passes. Redaction is also
// idempotent and leaves text without such runs untouched.
func FuzzRedactPAN(f *testing.F) {
	for _, s := range []string{
		"4242424242424242", "a 4242 4242 4242 4242 b", "x-4242-4242-4242-4242-y", "378282246310005",
		"4242424242424241", "12 4242424242424242", "4242 4242 4242 4242 7", "9 4000-0566-5566-5556",
		"order 12345 of 2026-11-27", "00000000000000000000000", "1-2-3-4-5-6-7-8-9-0-1-2-3", "4242  4242 4242 4242",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := RedactPAN(s)
		if pan := luhnRun(out); pan != "" {
			t.Fatalf("RedactPAN(%q) = %q still holds the card number %q", s, out, pan)
		}
		if again := RedactPAN(out); again != out {
			t.Fatalf("not idempotent: %q then %q", out, again)
		}
		if luhnRun(s) == "" && out != s {
			t.Fatalf("RedactPAN(%q) = %q changed text holding no card number", s, out)
		}
	})
}

// luhnRun returns the first card number in s: a run of 13–19 digits that
// passes the Luhn check, the digits written plain or in groups joined by a
// single space or dash, or a 13–19 digit window of a longer run that
// passes. It shares no code with the redactor.
func luhnRun(s string) string {
	for _, run := range digitRuns(s) {
		// Every sequence of whole groups: "12 4242424242424242" holds one.
		for i := range run {
			var digits string
			for _, g := range run[i:] {
				digits += g
				if n := len(digits); n >= 13 && n <= 19 && luhn.Valid(digits) {
					return digits
				}
			}
		}
		all := strings.Join(run, "")
		for n := 13; n <= 19 && len(all) > 19; n++ {
			for i := 0; i+n <= len(all); i++ {
				if luhn.Valid(all[i : i+n]) {
					return all[i : i+n]
				}
			}
		}
	}
	return ""
}

// digitRuns splits s into runs of digit groups, a group being consecutive
// ASCII digits and a run groups joined by exactly one space or dash.
func digitRuns(s string) [][]string {
	var runs [][]string
	var run []string
	i := 0
	for i < len(s) {
		if s[i] < '0' || s[i] > '9' {
			i++
			continue
		}
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		run = append(run, s[i:j])
		if j+1 < len(s) && (s[j] == ' ' || s[j] == '-') && s[j+1] >= '0' && s[j+1] <= '9' {
			i = j + 1
			continue
		}
		runs = append(runs, run)
		run = nil
		i = j
	}
	return runs
}
