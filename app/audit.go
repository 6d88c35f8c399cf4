package app

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/perfectpay/perfectpay/authz"
)

// wireAudit gives the audit service its signing key, sealed under the
// signing KEK (issuer.signing_kek) the way the token signing keys are,
// and its checkpoint interval. Dev mode without a signing KEK generates
// one for this process, as the issuer does: the audit key it seals is
// unusable after a restart, and a new one is made.
func wireAudit(a *App) error {
	var kek []byte
	if a.Config.Issuer.SigningKEK == "" {
		a.Log.Warn("DEV MODE: generated a KEK for the audit signing key; checkpoints signed before a restart verify only with the keys exported then")
		kek = make([]byte, 32)
		if _, err := rand.Read(kek); err != nil {
			return err
		}
	} else {
		kek, _ = base64.StdEncoding.DecodeString(a.Config.Issuer.SigningKEK) // validated
	}
	sealer, err := authz.NewKeySealer(kek)
	if err != nil {
		return err
	}
	a.Audit.SetCheckpointInterval(a.Config.Audit.CheckpointInterval)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Audit.UseKeys(ctx, sealer); err != nil {
		return fmt.Errorf("audit signing key: %w", err)
	}
	return nil
}
