package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/store"
)

// TenantVerifications keeps tenants' business verification.
type TenantVerifications interface {
	Set(ctx context.Context, v accounts.Verification) (*accounts.Verification, error)
	Get(ctx context.Context, tenantID string) (*accounts.Verification, error)
	RequireVerified(ctx context.Context, tenantID string) error
}

// KYBHandlers serve tenant verification: the platform operator sets it,
// the tenant reads its own.
type KYBHandlers struct {
	Verifications TenantVerifications
}

// Mount adds the routes.
func (h *KYBHandlers) Mount(api *API) {
	op := &tenantHandlers{s: api.s}
	api.Handle(http.MethodPost, "/v1/tenants/{id}/verification", Access{Public: true}, op.operator(h.set))
	api.Handle(http.MethodGet, "/v1/tenants/{id}/verification", Access{Public: true}, op.operator(h.get))
	api.Handle(http.MethodGet, "/v1/tenant/verification", Access{Scope: ""}, h.own)
}

type verificationRequest struct {
	Status             string `json:"status"`
	LegalName          string `json:"legal_name"`
	RegistrationNumber string `json:"registration_number"`
	Country            string `json:"country"`
	EvidenceReference  string `json:"evidence_reference"`
	Notes              string `json:"notes"`
	ReviewedBy         string `json:"reviewed_by"`
}

type verificationView struct {
	Object string `json:"object"`
	*accounts.Verification
}

func (h *KYBHandlers) set(w http.ResponseWriter, r *http.Request) error {
	var req verificationRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	id := mux.Vars(r)["id"]
	v, err := h.Verifications.Set(r.Context(), accounts.Verification{TenantID: id, Status: req.Status, LegalName: req.LegalName,
		RegistrationNumber: req.RegistrationNumber, Country: req.Country, EvidenceReference: req.EvidenceReference,
		Notes: req.Notes, ReviewedBy: req.ReviewedBy})
	if errors.Is(err, store.ErrNotFound) {
		return NotFound("tenant", id)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, verificationView{Object: "tenant_verification", Verification: v})
	return nil
}

func (h *KYBHandlers) get(w http.ResponseWriter, r *http.Request) error {
	v, err := h.Verifications.Get(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, verificationView{Object: "tenant_verification", Verification: v})
	return nil
}

func (h *KYBHandlers) own(w http.ResponseWriter, r *http.Request) error {
	v, err := h.Verifications.Get(r.Context(), PrincipalFrom(r).TenantID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, verificationView{Object: "tenant_verification", Verification: v})
	return nil
}

// VerifiedCharges is the payment core with live-mode charges refused
// until the tenant is verified (tenant_unverified).
type VerifiedCharges struct {
	ChargeCore
	Verifications TenantVerifications
}

// Create refuses a live-mode charge of a tenant not verified, then makes it.
func (v *VerifiedCharges) Create(ctx context.Context, p payments.ChargeParams) (*payments.Charge, error) {
	if p.Owner.Livemode {
		if err := v.Verifications.RequireVerified(ctx, p.Owner.TenantID); err != nil {
			return nil, err
		}
	}
	return v.ChargeCore.Create(ctx, p)
}
