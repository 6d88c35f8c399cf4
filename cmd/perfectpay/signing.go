package main

import (
	"encoding/json"

	"github.com/spf13/cobra"
)

// rotateSigningCmd is `perfectpay keys rotate-signing`: it adds a new token
// signing key, which every node signs with from its next reload (NOTIFY),
// and retires the current one. A retired key stays in the JWKS, verifying
// the tokens it signed, until the longest token lifetime has passed.
func (c *cli) rotateSigningCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rotate-signing",
		Short: "Add a new access token signing key and retire the current one",
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := c.openShared(cmd.Context(), "rotate-signing needs store.driver=postgres: the memory store lives inside `serve`, where issuer.rotation_interval rotates keys")
			if err != nil {
				return err
			}
			defer a.Close()
			kid, err := a.Issuer.RotateSigningKey(cmd.Context())
			if err != nil {
				return err
			}
			var set struct {
				Keys []struct {
					KID string `json:"kid"`
				} `json:"keys"`
			}
			_ = json.Unmarshal(a.Issuer.JWKS(cmd.Context()), &set)
			published := []string{}
			for _, k := range set.Keys {
				published = append(published, k.KID)
			}
			return printJSON(cmd, map[string]any{"signing_kid": kid, "published_kids": published})
		},
	}
}

// attachToKeys adds sub to the root's `keys` command group, creating the
// group when no other file has registered it, so key commands from
// several files end up side by side.
func attachToKeys(root, sub *cobra.Command) {
	for _, cmd := range root.Commands() {
		if cmd.Name() == "keys" {
			cmd.AddCommand(sub)
			return
		}
	}
	keys := &cobra.Command{Use: "keys", Short: "Manage keys (signing keys, key encryption keys)"}
	keys.AddCommand(sub)
	root.AddCommand(keys)
}
