package server

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/store"
)

// CustomerHandlers serve payers (customers: customers:read/write) and team
// invitations (users:write). A customer's id is what a mandate's payer
// names; the customer sets a password through the invitation link, which
// is shown once, and signs in on the pages.
type CustomerHandlers struct {
	People *accounts.People
	// BaseURL is where the pages are served (the public URL).
	BaseURL string
}

// Mount adds the routes.
func (h *CustomerHandlers) Mount(api *API) {
	api.Handle(http.MethodPost, "/v1/customers", Access{Scope: "customers:write"}, h.create)
	api.Handle(http.MethodGet, "/v1/customers", Access{Scope: "customers:read"}, h.list)
	api.Handle(http.MethodGet, "/v1/customers/{id}", Access{Scope: "customers:read"}, h.get)
	api.Handle(http.MethodPost, "/v1/customers/{id}/invite", Access{Scope: "customers:write"}, h.invite)
	api.Handle(http.MethodPost, "/v1/team_invitations", Access{Scope: "users:write"}, h.inviteMember)
}

// invitationView is an invitation link, shown once.
type invitationView struct {
	Object    string    `json:"object"`
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (h *CustomerHandlers) invitation(inv *accounts.NewInvitation) *invitationView {
	return &invitationView{Object: "invitation", ID: inv.Invitation.ID,
		URL: strings.TrimSuffix(h.BaseURL, "/") + "/invitations/" + inv.Token, ExpiresAt: inv.Invitation.ExpiresAt}
}

type customerWithInvitation struct {
	*accounts.Customer
	Invitation *invitationView `json:"invitation,omitempty"`
}

func (h *CustomerHandlers) create(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Email string `json:"email"`
		Name  string `json:"name"`
	}
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	u, inv, err := h.People.CreateCustomer(r.Context(), PrincipalFrom(r).TenantID, req.Email, req.Name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, customerWithInvitation{Customer: accounts.CustomerView(u), Invitation: h.invitation(inv)})
	return nil
}

func (h *CustomerHandlers) get(w http.ResponseWriter, r *http.Request) error {
	u, err := h.People.GetCustomer(r.Context(), PrincipalFrom(r).TenantID, mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, accounts.CustomerView(u))
	return nil
}

func (h *CustomerHandlers) list(w http.ResponseWriter, r *http.Request) error {
	pg, err := listPage(r)
	if err != nil {
		return err
	}
	users, more, err := h.People.ListUsers(r.Context(), PrincipalFrom(r).TenantID, accounts.UserPayer, pg)
	if errors.Is(err, store.ErrNotFound) {
		return BadRequest(apierr.ResourceMissing, "starting_after", "No such customer: '%s'.", pg.StartingAfter)
	}
	if err != nil {
		return err
	}
	writeList(w, users, accounts.CustomerView, more)
	return nil
}

func (h *CustomerHandlers) invite(w http.ResponseWriter, r *http.Request) error {
	if err := DecodeJSON(r, &struct{}{}); err != nil {
		return err
	}
	u, inv, err := h.People.InviteCustomer(r.Context(), PrincipalFrom(r).TenantID, mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, customerWithInvitation{Customer: accounts.CustomerView(u), Invitation: h.invitation(inv)})
	return nil
}

// inviteMember invites a team member with a role (owner, admin,
// developer, auditor); inviting an invited member again renews the link.
func (h *CustomerHandlers) inviteMember(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Email string `json:"email"`
		Name  string `json:"name"`
		Role  string `json:"role"`
	}
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	u, inv, err := h.People.InviteMember(r.Context(), PrincipalFrom(r).TenantID, req.Email, req.Name, req.Role)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"object": "team_invitation", "user": map[string]any{
		"id": u.ID, "email": u.Email, "name": u.Name, "role": u.Role, "status": u.Status}, "invitation": h.invitation(inv)})
	return nil
}
