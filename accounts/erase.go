package accounts

import (
	"context"
	"errors"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/store"
)

// ErasedEmail is the address an erased customer's email becomes: unique
// in the tenant, naming only the customer's id.
func ErasedEmail(id string) string { return "erased+" + id + "@erased.invalid" }

// ErasureRepo changes what a user's record otherwise never changes.
type ErasureRepo interface {
	// SetUserEmail replaces a user's email (store.ErrNotFound).
	SetUserEmail(ctx context.Context, tenantID, id, email string) error
	// DeleteUserPasskeys deletes every passkey of the user and returns
	// how many.
	DeleteUserPasskeys(ctx context.Context, tenantID, userID string) (int, error)
	// DeleteLoginMarks forgets the user's login marks (digests of the
	// addresses and browsers they signed in from) and returns how many.
	DeleteLoginMarks(ctx context.Context, tenantID, userID string) (int, error)
	// ForgetAuditPersonal deletes the IP and its salt from the audit
	// entries f selects that hold them outside their hashed content
	// (audit.FormatPseudonymous); the chain still verifies. Entries
	// written in audit.FormatClear are left as they are. It returns how
	// many entries it changed.
	ForgetAuditPersonal(ctx context.Context, f audit.ForgetPersonal) (int, error)
	// ForgetEventIPs removes the address ("ip") from the tenant's events
	// about the user (their object's "user" is the user's id) and returns
	// how many.
	ForgetEventIPs(ctx context.Context, tenantID, userID string) (int, error)
}

// EraseTx is what erasing a customer touches.
type EraseTx interface {
	UserRepo
	ErasureRepo
	audit.Writer
}

// EraseCustomer scrubs a customer's personal fields (email, name, password,
// second factors: TOTP, passkeys, recovery codes), forgets their login
// marks and the IP addresses of their audit entries, and ends their
// sessions in tx, audited
// as customer.erased under the customer's id alone, with summary. The id
// stays: mandates and audit entries name the payer by it, a pseudonym
// once nothing links it to a person. Erasing again changes nothing more.
func EraseCustomer(ctx context.Context, tx EraseTx, tenantID, id string, summary map[string]any) (*User, error) {
	u, err := tx.GetUser(ctx, tenantID, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && u.Kind != UserPayer) {
		return nil, &apierr.NotFound{Kind: "customer", ID: id}
	}
	if err != nil {
		return nil, err
	}
	u.Email, u.Name, u.PasswordHash = ErasedEmail(u.ID), "", ""
	u.TOTPSealed, u.TOTPPending, u.TOTPLastStep = nil, nil, 0
	u.Status, u.LastLoginAt, u.LockedUntil, u.FailedLogins = UserDisabled, nil, nil, 0
	if err := tx.UpdateUser(ctx, u); err != nil {
		return nil, err
	}
	if err := tx.SetUserEmail(ctx, tenantID, u.ID, u.Email); err != nil {
		return nil, err
	}
	if err := tx.SetRecoveryCodes(ctx, tenantID, u.ID, nil); err != nil {
		return nil, err
	}
	n, err := tx.DeleteUserSessions(ctx, tenantID, u.ID)
	if err != nil {
		return nil, err
	}
	keys, err := tx.DeleteUserPasskeys(ctx, tenantID, u.ID)
	if err != nil {
		return nil, err
	}
	if _, err := tx.DeleteLoginMarks(ctx, tenantID, u.ID); err != nil {
		return nil, err
	}
	ips, err := tx.ForgetAuditPersonal(ctx, audit.ForgetPersonal{TenantID: tenantID, Subject: u.ID})
	if err != nil {
		return nil, err
	}
	if _, err := tx.ForgetEventIPs(ctx, tenantID, u.ID); err != nil {
		return nil, err
	}
	data := map[string]any{"sessions_ended": n, "passkeys_deleted": keys, "audit_ips_forgotten": ips}
	for k, v := range summary {
		data[k] = v
	}
	return u, audit.RecordFor(ctx, tx, tenantID, "customer.erased", u.ID, data)
}
