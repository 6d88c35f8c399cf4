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

// writeList answers a page of a list: {"object":"list","data":[…],"has_more"}
// with view applied to each item (data is [] when there are none).
func writeList[T, V any](w http.ResponseWriter, items []T, view func(*T) V, more bool) {
	data := make([]V, 0, len(items))
	for i := range items {
		data = append(data, view(&items[i]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data, "has_more": more})
}
