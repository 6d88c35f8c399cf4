package compliance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/policies"
	"github.com/perfectpay/perfectpay/store"
)

// Service keeps policy versions and replays recorded decisions.
type Service struct {
	db  store.Runner[Repo]
	log *slog.Logger
	now func() time.Time
}

// NewService returns the compliance service.
func NewService(db store.Runner[Repo], log *slog.Logger) *Service {
	return &Service{db: db, log: log, now: time.Now}
}

// KeepPolicy keeps the policy modules sources under their version (a
// version already kept is left as it is) and returns the version. Every
// node keeps the policy it decides with when it starts.
func (s *Service) KeepPolicy(ctx context.Context, sources map[string]string) (string, error) {
	v := &PolicyVersion{Version: policies.VersionOf(sources), Modules: sources, CreatedAt: s.now().UTC().Truncate(time.Microsecond)}
	err := s.db.InTx(ctx, func(tx Repo) error { return tx.PutPolicyVersion(ctx, v) })
	return v.Version, err
}

// PolicyVersion returns a kept policy version.
func (s *Service) PolicyVersion(ctx context.Context, version string) (*PolicyVersion, error) {
	var v *PolicyVersion
	err := s.db.InTx(ctx, func(tx Repo) error {
		var err error
		v, err = tx.GetPolicyVersion(ctx, version)
		return err
	})
	return v, notFound(err, "policy_version", version)
}

// Outcome is a decision's result and reasons.
type Outcome struct {
	Result  string            `json:"result"`
	Reasons []policies.Reason `json:"reasons"`
}

// Difference is a decision that replays differently, or cannot be replayed.
type Difference struct {
	Decision      string    `json:"decision"`
	TenantID      string    `json:"tenant,omitempty"`
	Created       time.Time `json:"created"`
	PolicyVersion string    `json:"policy_version"`
	// Problem is "outcome_differs", "input_digest_mismatch",
	// "policy_version_missing" or "policy_version_corrupt".
	Problem  string   `json:"problem"`
	Recorded Outcome  `json:"recorded"`
	Replayed *Outcome `json:"replayed,omitempty"`
}

// ReplayReport is the outcome of a replay.
type ReplayReport struct {
	Object string `json:"object"`
	// Checked decisions were evaluated again; Skipped ones were refused
	// before the policy saw them (no input to replay).
	Checked     int          `json:"checked"`
	Skipped     int          `json:"skipped"`
	Versions    []string     `json:"versions"`
	Against     string       `json:"against,omitempty"`
	Differences []Difference `json:"differences"`
	// Truncated is set when more differences were found than are listed.
	Truncated bool `json:"truncated"`
}

// ReplayOptions select what to replay and with what.
type ReplayOptions struct {
	Filter DecisionFilter
	// Against, when set, evaluates every input with these modules instead
	// of the version that decided: which decisions would a policy change
	// turn around?
	Against map[string]string
	// MaxDifferences bounds the list (default 1000); counting goes on.
	MaxDifferences int
}

// replayBatch is how many decisions one read returns.
const replayBatch = 500

// Replay evaluates recorded decisions again, each with its recorded input
// and (unless opts.Against) the kept policy version that made it, and
// reports every one that comes out differently, whose input no longer
// matches its digest, or whose policy version is missing or does not hash
// to its name.
func (s *Service) Replay(ctx context.Context, opts ReplayOptions) (*ReplayReport, error) {
	rep := &ReplayReport{Object: "decision_replay", Versions: []string{}, Differences: []Difference{}}
	maxDiff := opts.MaxDifferences
	if maxDiff <= 0 {
		maxDiff = 1000
	}
	replayers := map[string]*policies.Replayer{}
	broken := map[string]string{} // version -> problem
	var against *policies.Replayer
	if opts.Against != nil {
		var err error
		if against, err = policies.NewReplayer(ctx, opts.Against); err != nil {
			return nil, apierr.BadParam("policy", "The policy to replay against does not compile: %v", err)
		}
		rep.Against = against.Version()
	}
	add := func(d *charging.Decision, problem string, replayed *Outcome) {
		if len(rep.Differences) >= maxDiff {
			rep.Truncated = true
			return
		}
		rep.Differences = append(rep.Differences, Difference{Decision: d.ID, TenantID: d.TenantID, Created: d.CreatedAt.UTC(),
			PolicyVersion: d.PolicyVersion, Problem: problem, Recorded: Outcome{Result: d.Result, Reasons: d.Reasons}, Replayed: replayed})
	}
	f := opts.Filter
	f.Limit = replayBatch
	for {
		var batch []charging.Decision
		err := s.db.InTx(ctx, func(tx Repo) error {
			var err error
			batch, err = tx.DecisionRecords(ctx, f)
			return err
		})
		if err != nil {
			return nil, err
		}
		for i := range batch {
			d := &batch[i]
			if len(d.Input) == 0 {
				rep.Skipped++
				continue
			}
			rep.Checked++
			if policies.DigestJSON(d.Input) != d.InputDigest {
				add(d, "input_digest_mismatch", nil)
				continue
			}
			r := against
			if r == nil {
				if problem, bad := broken[d.PolicyVersion]; bad {
					add(d, problem, nil)
					continue
				}
				if r = replayers[d.PolicyVersion]; r == nil {
					r, err = s.replayer(ctx, d.PolicyVersion)
					var problem string
					switch {
					case errors.Is(err, errVersionMissing):
						problem = "policy_version_missing"
					case errors.Is(err, errVersionCorrupt):
						problem = "policy_version_corrupt"
					case err != nil:
						return nil, err
					}
					if problem != "" {
						broken[d.PolicyVersion] = problem
						add(d, problem, nil)
						continue
					}
					replayers[d.PolicyVersion] = r
					rep.Versions = append(rep.Versions, d.PolicyVersion)
				}
			}
			// An evaluation error denies, as it did when deciding.
			got, err := r.Decide(ctx, d.Input)
			if got.Result == "" {
				return nil, err
			}
			if got.Result != d.Result || !slices.Equal(got.Reasons, d.Reasons) {
				add(d, "outcome_differs", &Outcome{Result: got.Result, Reasons: got.Reasons})
			}
		}
		if len(batch) < replayBatch {
			slices.Sort(rep.Versions)
			return rep, nil
		}
		last := batch[len(batch)-1]
		f.AfterTime, f.AfterID = last.CreatedAt, last.ID
	}
}

var (
	errVersionMissing = errors.New("compliance: policy version not kept")
	errVersionCorrupt = errors.New("compliance: kept policy modules do not hash to their version")
)

func (s *Service) replayer(ctx context.Context, version string) (*policies.Replayer, error) {
	var v *PolicyVersion
	err := s.db.InTx(ctx, func(tx Repo) error {
		var err error
		v, err = tx.GetPolicyVersion(ctx, version)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, errVersionMissing
	}
	if err != nil {
		return nil, err
	}
	if policies.VersionOf(v.Modules) != version {
		return nil, errVersionCorrupt
	}
	r, err := policies.NewReplayer(ctx, v.Modules)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errVersionCorrupt, err)
	}
	return r, nil
}
