// Package page is the one shape of a list request — at most Limit items
// after the one named StartingAfter — and the rules every list follows: a
// limit outside 1..MaxLimit is refused the same way everywhere, and a page
// is read one row long to tell whether more follow.
package page

import (
	"strconv"

	"github.com/perfectpay/perfectpay/internal/apierr"
)

const (
	// DefaultLimit is the limit of a request that names none.
	DefaultLimit = 10
	// MaxLimit bounds every page.
	MaxLimit = 100
)

// Page is one page request.
type Page struct {
	Limit         int
	StartingAfter string
}

// Check refuses a limit outside 1..MaxLimit with an *apierr.Invalid naming
// limit, the one answer every list gives.
func Check(limit int) error {
	if limit < 1 || limit > MaxLimit {
		return badLimit()
	}
	return nil
}

// ParseLimit reads a request's raw limit ("" is DefaultLimit).
func ParseLimit(raw string) (int, error) {
	if raw == "" {
		return DefaultLimit, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil {
		return 0, badLimit()
	}
	return n, Check(n)
}

func badLimit() error {
	return apierr.BadParam("limit", "limit must be an integer between 1 and %d.", MaxLimit)
}

// Fetch is the number of rows to read for a page of limit: one more, to
// tell whether more follow.
func Fetch(limit int) int { return limit + 1 }

// Trim cuts rows read with Fetch(limit) to the page and reports whether
// more follow.
func Trim[T any](rows []T, limit int) ([]T, bool) {
	if len(rows) > limit {
		return rows[:limit], true
	}
	return rows, false
}
