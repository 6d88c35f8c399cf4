package server

import (
	"context"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/payments"
)

// EvidenceBuilder builds the signed evidence bundle of a charge.
type EvidenceBuilder interface {
	Build(ctx context.Context, o payments.Owner, id string) (string, error)
}

// AuditKeySource returns the audit public keys.
type AuditKeySource interface {
	Keys(ctx context.Context) (*audit.KeySet, error)
}

// EvidenceHandlers serve evidence bundles and the audit public keys that
// verify them.
type EvidenceHandlers struct {
	Evidence  EvidenceBuilder
	AuditKeys AuditKeySource
}

// PathAuditJWKS publishes the audit public keys (checkpoints, evidence).
const PathAuditJWKS = "/.well-known/audit-jwks.json"

// Mount adds the routes.
func (h *EvidenceHandlers) Mount(api *API) {
	api.Handle(http.MethodGet, "/v1/charges/{id}/evidence", Access{Scope: "charges:read"}, h.evidence)
	api.Handle(http.MethodGet, PathAuditJWKS, Access{Public: true}, h.keys)
}

// evidence answers the bundle as a compact JWS (application/jose): the
// file `perfectpay evidence verify` reads, whose signature any JOSE
// library verifies against the audit keys.
func (h *EvidenceHandlers) evidence(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	jws, err := h.Evidence.Build(r.Context(), owner(r), id)
	if err != nil {
		return paymentsError(err, "charge", id)
	}
	w.Header().Set("Content-Type", "application/jose")
	w.Header().Set("Content-Disposition", `attachment; filename="evidence-`+id+`.jws"`)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(jws))
	return nil
}

func (h *EvidenceHandlers) keys(w http.ResponseWriter, r *http.Request) error {
	ks, err := h.AuditKeys.Keys(r.Context())
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(ks.JSON())
	return nil
}
