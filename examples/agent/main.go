// Command agent is PerfectPay's demo: against a running server it registers
// an AI shopping agent, gives it a mandate (a budget, a per-charge cap, an
// approval threshold, the shops it may use), lets it and a sub-agent it
// delegates to make charges — some allowed, some refused with their
// reasons, one approved by a person — revokes the mandate, and verifies the
// signed mandate. It narrates each step and exits non-zero as soon as the
// server does not behave as the story says, so it doubles as an end-to-end
// check.
//
//	perfectpay serve --dev | tee /tmp/pp.out &
//	go run ./examples/agent --url http://127.0.0.1:8080 --server-output /tmp/pp.out
//	go run ./examples/agent --url http://127.0.0.1:8080 --key sk_test_…
//
// `make demo` does both.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:8080", "PerfectPay server base URL")
	key := fs.String("key", os.Getenv("PERFECTPAY_SECRET_KEY"), "the tenant's secret key (sk_test_…)")
	pk := fs.String("publishable-key", "", "the tenant's publishable key (pk_test_…), to tokenize the card as a browser would")
	serverOut := fs.String("server-output", "", "a file holding the output of `perfectpay serve --dev`: the demo keys are read from it")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long")
	person := fs.Bool("person", false, "add the human-present story: print the URLs a payer opens in a browser and wait for them")
	auto := fs.Bool("auto", false, "with --person, play the payer too (no browser needed)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg := Config{URL: *url, SecretKey: *key, PublishableKey: *pk}
	switch {
	case *person && *auto:
		cfg.Person = "auto"
	case *person:
		cfg.Person = "wait"
		if *timeout == 2*time.Minute {
			*timeout = 15 * time.Minute // time for a person
		}
	}
	if *serverOut != "" {
		raw, err := os.ReadFile(*serverOut)
		if err != nil {
			fmt.Fprintln(stderr, "agent:", err)
			return 2
		}
		sk, pk := DemoKeys(string(raw))
		if cfg.SecretKey == "" {
			cfg.SecretKey = sk
		}
		if cfg.PublishableKey == "" {
			cfg.PublishableKey = pk
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := Run(ctx, cfg, stdout); err != nil {
		if errors.Is(err, errStory) {
			fmt.Fprintf(stderr, "\n✗ DEMO FAILED at %v\n", err)
		} else {
			fmt.Fprintf(stderr, "\n✗ demo could not run: %v\n", err)
		}
		return 1
	}
	return 0
}

var (
	secretKeyRE      = regexp.MustCompile(`\bsk_test_[A-Za-z0-9]+`)
	publishableKeyRE = regexp.MustCompile(`\bpk_test_[A-Za-z0-9]+`)
)

// DemoKeys finds the demo tenant's test secret and publishable keys in the
// output of `perfectpay serve --dev`.
func DemoKeys(serverOutput string) (secret, publishable string) {
	return secretKeyRE.FindString(serverOutput), publishableKeyRE.FindString(serverOutput)
}
