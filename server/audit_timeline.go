package server

import (
	"net/http"

	"github.com/gorilla/mux"

	"github.com/perfectpay/perfectpay/compliance"
)

// TimelineHandlers serve the timeline of a mandate.
type TimelineHandlers struct {
	Timelines *compliance.Timelines
}

// Mount adds the route.
func (h *TimelineHandlers) Mount(api *API) {
	api.Handle(http.MethodGet, "/v1/mandates/{id}/timeline", Access{Scope: "mandates:read"}, h.timeline)
}

// timeline answers the mandate, its ancestors, its delegation tree and a
// page of the history of the tree oldest first:
// ?agent=&payer=&since=&until=&limit=&starting_after=.
func (h *TimelineHandlers) timeline(w http.ResponseWriter, r *http.Request) error {
	pg, err := listPage(r)
	if err != nil {
		return err
	}
	q, err := shortParams(r, "agent", "payer")
	if err != nil {
		return err
	}
	since, until, err := timeRange(r)
	if err != nil {
		return err
	}
	tl, err := h.Timelines.Timeline(r.Context(), compliance.TimelineFilter{
		TenantID: PrincipalFrom(r).TenantID, MandateID: mux.Vars(r)["id"], Agent: q["agent"], Payer: q["payer"],
		Since: since, Until: until, Page: pg,
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, tl)
	return nil
}
