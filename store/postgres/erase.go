package postgres

import (
	"context"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/store"
)

var _ accounts.ErasureRepo = (*Tx)(nil)

func (t *Tx) SetUserEmail(ctx context.Context, tenantID, id, email string) error {
	tag, err := t.tx.Exec(ctx, `UPDATE users SET email = $3 WHERE id = $1 AND tenant_id = $2`, id, tenantID, email)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

func (t *Tx) DeleteUserPasskeys(ctx context.Context, tenantID, userID string) (int, error) {
	tag, err := t.tx.Exec(ctx, `DELETE FROM user_passkeys WHERE tenant_id = $1 AND user_id = $2`, tenantID, userID)
	if err != nil {
		return 0, mapErr(err)
	}
	return int(tag.RowsAffected()), nil
}

func (t *Tx) DeleteLoginMarks(ctx context.Context, tenantID, userID string) (int, error) {
	tag, err := t.tx.Exec(ctx, `DELETE FROM user_login_marks WHERE tenant_id = $1 AND user_id = $2`, tenantID, userID)
	if err != nil {
		return 0, mapErr(err)
	}
	return int(tag.RowsAffected()), nil
}

// forgetAuditPersonalSQL clears the IP and its salt of a person's entries
// ($1 tenant, $2 the person, $3 the pseudonymous format). The actor types
// are literals, not parameters: the entries by actor are found through the
// partial index of users' entries (audit_events_ip_user), which a generic
// plan can only use when its predicate is in the statement's text; the
// entries by target through audit_events_target.
const forgetAuditPersonalSQL = `UPDATE audit_events SET ip = '', ip_salt = NULL
	WHERE format = $3 AND ip_salt IS NOT NULL AND tenant_id = $1 AND (
		(actor_type = '` + audit.ActorUser + `' AND actor_id = $2) OR
		(actor_type IN ('` + audit.ActorUser + `', '` + audit.ActorSystem + `') AND target = $2))`

// ForgetAuditPersonal clears the IP and its salt of the entries f selects
// (see audit.ForgetPersonal), found through indexes; their hashed content
// does not change.
func (t *Tx) ForgetAuditPersonal(ctx context.Context, f audit.ForgetPersonal) (int, error) {
	if f.Subject == "" {
		return 0, nil
	}
	tag, err := t.tx.Exec(ctx, forgetAuditPersonalSQL, f.TenantID, f.Subject, audit.FormatPseudonymous)
	if err != nil {
		return 0, mapErr(err)
	}
	return int(tag.RowsAffected()), nil
}

// forgetEventIPsSQL removes the address from the person's events. Its
// condition is the predicate and the key of events_ip_user (migration
// 0042), which holds only events with an address, and that the user is a
// JSON string: ->> reads a number, a boolean or an object as text too, and
// an event naming the user 7 is no event of the person "7" (no person's id
// is anything but a string; the memory store asks the same).
const forgetEventIPsSQL = `UPDATE events SET data = data #- '{object,ip}'
		WHERE tenant_id = $1 AND data->'object'->>'user' = $2 AND data->'object' ? 'ip'
			AND jsonb_typeof(data->'object'->'user') = 'string'`

func (t *Tx) ForgetEventIPs(ctx context.Context, tenantID, userID string) (int, error) {
	tag, err := t.tx.Exec(ctx, forgetEventIPsSQL, tenantID, userID)
	if err != nil {
		return 0, mapErr(err)
	}
	return int(tag.RowsAffected()), nil
}
