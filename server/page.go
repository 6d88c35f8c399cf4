package server

import (
	"net/http"

	"github.com/perfectpay/perfectpay/internal/page"
)

// listPage reads the page a list request asks for: ?limit= (1 to 100,
// default 10; anything else is refused naming limit) and ?starting_after=.
func listPage(r *http.Request) (page.Page, error) {
	q := r.URL.Query()
	limit, err := page.ParseLimit(q.Get("limit"))
	if err != nil {
		return page.Page{}, err
	}
	return page.Page{Limit: limit, StartingAfter: q.Get("starting_after")}, nil
}
