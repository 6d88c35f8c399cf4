package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/perfectpay/perfectpay/compliance"
)

// decisionsCmd is `perfectpay decisions`: replay recorded decisions.
func (c *cli) decisionsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "decisions", Short: "Recorded policy decisions"}
	var tenant, since, until, against string
	var maxDiff int
	replay := &cobra.Command{
		Use:   "replay",
		Short: "Evaluate recorded decisions again; list any that come out differently",
		Long: `Evaluates every recorded decision (of --tenant, created in [--since,
--until)) again with its recorded policy input and the kept policy version
that made it, and lists each that comes out differently, whose input no
longer hashes to its digest, or whose policy version is missing or does not
hash to its name. Exits non-zero when any is listed.

With --against DIR (a directory of .rego modules, tests left out) every
input is evaluated with those modules instead: which decisions would a
policy change turn around?`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := compliance.ReplayOptions{Filter: compliance.DecisionFilter{TenantID: tenant}, MaxDifferences: maxDiff}
			for _, t := range []struct {
				flag, v string
				into    *time.Time
			}{{"since", since, &opts.Filter.Since}, {"until", until, &opts.Filter.Until}} {
				if t.v == "" {
					continue
				}
				v, err := time.Parse(time.RFC3339, t.v)
				if err != nil {
					return fmt.Errorf("--%s: want an RFC 3339 time: %w", t.flag, err)
				}
				*t.into = v
			}
			if against != "" {
				mods, err := readModules(against)
				if err != nil {
					return err
				}
				opts.Against = mods
			}
			a, err := c.openShared(cmd.Context(), "decisions replay reads the shared store: configure store.driver postgres")
			if err != nil {
				return err
			}
			defer a.Close()
			rep, err := a.Compliance().Replay(cmd.Context(), opts)
			if err != nil {
				return err
			}
			if err := printJSON(cmd, rep); err != nil {
				return err
			}
			if len(rep.Differences) > 0 {
				return fmt.Errorf("%d of %d decisions do not replay as recorded", len(rep.Differences), rep.Checked)
			}
			return nil
		},
	}
	replay.Flags().StringVar(&tenant, "tenant", "", "only this tenant's decisions")
	replay.Flags().StringVar(&since, "since", "", "only decisions created at or after (RFC 3339)")
	replay.Flags().StringVar(&until, "until", "", "only decisions created before (RFC 3339)")
	replay.Flags().StringVar(&against, "against", "", "directory of Rego modules to evaluate with instead of the recorded versions")
	replay.Flags().IntVar(&maxDiff, "max-differences", 1000, "list at most this many differences (all are counted)")
	cmd.AddCommand(replay)
	return cmd
}

// readModules reads the .rego files of dir, tests left out.
func readModules(dir string) (map[string]string, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.rego"))
	if err != nil {
		return nil, err
	}
	mods := map[string]string{}
	for _, p := range names {
		name := filepath.Base(p)
		if strings.HasSuffix(name, "_test.rego") {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		mods[name] = string(b)
	}
	if len(mods) == 0 {
		return nil, fmt.Errorf("--against: no .rego module in %s", dir)
	}
	return mods, nil
}
