// Package logging builds the slog logger: JSON or text, with the request id
// from the context on every line and card numbers redacted wherever they
// appear in a message or attribute.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/perfectpay/perfectpay/internal/luhn"
)

type ctxKey struct{}

// WithRequestID returns ctx carrying the request id for log lines.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// RequestID returns the request id in ctx, if any.
func RequestID(ctx context.Context) string {
	s, _ := ctx.Value(ctxKey{}).(string)
	return s
}

// New returns a logger writing to w in format "json" or "text" at level.
func New(w io.Writer, format, level string) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	if format == "text" {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(&handler{next: h})
}

// handler redacts PANs and adds the request id.
type handler struct{ next slog.Handler }

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, RedactPAN(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	if id := RequestID(ctx); id != "" {
		out.AddAttrs(slog.String("request_id", id))
	}
	return h.next.Handle(ctx, out)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = redactAttr(a)
	}
	return &handler{next: h.next.WithAttrs(red)}
}

func (h *handler) WithGroup(name string) slog.Handler { return &handler{next: h.next.WithGroup(name)} }

func redactAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, RedactPAN(v.String()))
	case slog.KindGroup:
		g := v.Group()
		red := make([]any, len(g))
		for i, x := range g {
			red[i] = redactAttr(x)
		}
		return slog.Group(a.Key, red...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, RedactPAN(x.Error()))
		case fmt.Stringer:
			return slog.String(a.Key, RedactPAN(x.String()))
		default:
			s := fmt.Sprintf("%+v", x)
			return slog.String(a.Key, RedactPAN(s))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// Redacted replaces a card number found in a log line.
const Redacted = "[REDACTED-PAN]"

// RedactPAN masks every run of digit groups (single spaces or dashes
// between groups) in which whole groups adding up to 13–19 digits pass the
// Luhn check, so a card number next to another number is still found.
// Runs longer than 19 digits are masked when any 13–19 digit window inside
// them passes.
func RedactPAN(s string) string {
	if !hasDigitRun(s) {
		return s
	}
	var b strings.Builder
	i := 0
	for i < len(s) {
		if !isDigit(s[i]) {
			b.WriteByte(s[i])
			i++
			continue
		}
		// Extend the run: digits with single separators between them.
		j := i
		var digits []byte
		var groups []int // where each group of the run starts in digits
		end := i
		for j < len(s) {
			if isDigit(s[j]) {
				if j == i || !isDigit(s[j-1]) {
					groups = append(groups, len(digits))
				}
				digits = append(digits, s[j])
				j++
				end = j
				continue
			}
			if (s[j] == ' ' || s[j] == '-') && j+1 < len(s) && isDigit(s[j+1]) && len(digits) > 0 {
				j++
				continue
			}
			break
		}
		if containsPAN(digits, groups) {
			b.WriteString(Redacted)
		} else {
			b.WriteString(s[i:end])
		}
		i = end
	}
	return b.String()
}

func hasDigitRun(s string) bool {
	n := 0
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			n++
			if n >= 13 {
				return true
			}
		} else if s[i] != ' ' && s[i] != '-' {
			n = 0
		}
	}
	return false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// containsPAN reports whether the digits d of a run whose groups start at
// groups hold a card number: whole groups adding up to 13–19 digits that
// pass the Luhn check ("12 4242424242424242" and "4242 4242 4242 4242 7"
// hold one), or, in a run longer than 19 digits, any 13–19 digit window.
func containsPAN(d []byte, groups []int) bool {
	if len(d) < 13 {
		return false
	}
	for a, from := range groups {
		for b := a + 1; b <= len(groups); b++ {
			to := len(d)
			if b < len(groups) {
				to = groups[b]
			}
			if n := to - from; n > 19 {
				break
			} else if n >= 13 && luhn.Valid(d[from:to]) {
				return true
			}
		}
	}
	if len(d) <= 19 {
		return false
	}
	for n := 13; n <= 19; n++ {
		for i := 0; i+n <= len(d); i++ {
			if luhn.Valid(d[i : i+n]) {
				return true
			}
		}
	}
	return false
}
