# PerfectPay — see README.md.
GO      ?= go
BIN     ?= bin/perfectpay
ADDR    ?= 127.0.0.1:8080
SKIPPED := $(CURDIR)/.skipped-suites

.PHONY: run test test-without-postgres test-long build lint demo bench bench-go fuzz mutants clean chaos

run: build
	$(BIN) serve --dev --addr $(ADDR)

build:
	$(GO) build -o $(BIN) ./cmd/perfectpay

# `make test`: every package except the multi-process suites of e2e, with
# the race detector, in -short mode (a test that runs for minutes skips
# itself there and is listed in LONG_TESTS). PostgreSQL is required:
# .ci/postgres checks it (and starts or installs it where it can) or names
# what to run, and Postgres suites fail rather than skip (CI=1).
# PERFECTPAY_SKIP_POSTGRES=1 make test is a quick memory-only run: it skips
# every Postgres suite, names them, and exits non-zero whatever the result.
#
# `make test-long`: the e2e suites (several server processes, crashes,
# outages, races over HTTP), one round of `make chaos`, the LONG_TESTS, and
# `make fuzz`.
# `.ci/run` runs test, test-long and mutants.
LONG_PKGS  := ./e2e/...
# Packages and -run patterns of tests outside LONG_PKGS that skip under -short.
LONG_TESTS := ./webhooks/=^TestCrashKill9$$
FUZZTIME   ?= 10s

test:
	@if [ "$$PERFECTPAY_SKIP_POSTGRES" = 1 ]; then $(MAKE) --no-print-directory test-without-postgres; exit 1; fi
	@bash .ci/postgres
	CI=$${CI:-1} $(GO) test -race -short -count=1 -timeout 15m $$($(GO) list ./... | grep -v -e '/e2e$$' -e '/e2e/')

test-without-postgres:
	@rm -rf $(SKIPPED) && mkdir -p $(SKIPPED)
	@status=0; env -u CI PERFECTPAY_SKIPPED_DIR=$(SKIPPED) \
		PERFECTPAY_TEST_DATABASE_URL='postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=1' \
		$(GO) test -race -short -count=1 -timeout 15m $$($(GO) list ./... | grep -v -e '/e2e$$' -e '/e2e/') || status=$$?; \
	echo ""; \
	echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"; \
	echo "!! PERFECTPAY_SKIP_POSTGRES=1: these PostgreSQL suites did NOT run:"; \
	cat $(SKIPPED)/* 2>/dev/null | sort | sed 's/^/!!   /'; \
	echo "!! nor did the e2e suites ($(LONG_PKGS)). Memory-only go test exit status: $$status."; \
	echo "!! This run proves nothing about concurrency, nodes, crashes or tampering:"; \
	echo "!! it fails on purpose. Run make test with PostgreSQL (bash .ci/postgres)."; \
	echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"; \
	rm -rf $(SKIPPED); exit 1

test-long:
	@bash .ci/postgres
	CI=$${CI:-1} $(GO) test -race -count=1 -timeout 45m -skip '$(CHAOS_TESTS)' $(LONG_PKGS)
	@$(MAKE) --no-print-directory chaos CHAOS_ROUNDS=1
	@for lt in $(LONG_TESTS); do \
		echo "CI=$${CI:-1} $(GO) test -race -count=1 -run '$${lt#*=}' $${lt%%=*}"; \
		CI=$${CI:-1} $(GO) test -race -count=1 -timeout 15m -run "$${lt#*=}" "$${lt%%=*}" || exit 1; \
	done
	@$(MAKE) --no-print-directory fuzz

# `make chaos`: the fault suites of e2e, printing their figures (charges/s,
# answers by status, recovery and failover times): three nodes under charge
# load through CHAOS_ROUNDS rounds of a node killed, PostgreSQL stopped and
# the acquirer stalled (TestChaos), and the primary of a pg_auto_failover
# formation killed under load (TestFailover; .ci/autofailover installs
# pg_auto_failover as root, or names the package). Without -race: the
# servers under test are separate processes.
CHAOS_TESTS  := ^(TestChaos|TestFailover)$$
CHAOS_ROUNDS ?= 3

chaos:
	@bash .ci/postgres
	@bash .ci/autofailover
	CI=$${CI:-1} PERFECTPAY_CHAOS_ROUNDS=$(CHAOS_ROUNDS) $(GO) test -v -count=1 -timeout 30m -run '$(CHAOS_TESTS)' ./e2e/

# Every fuzz target for FUZZTIME each. New failing inputs land in the
# package's testdata/fuzz and are committed with the fix. go's fuzzer can
# stop with "context deadline exceeded" and no failing input when the time
# runs out mid-input; such a target runs once more, and a real failure
# fails again (its input is then in testdata/fuzz and runs first).
fuzz:
	@set -e; for f in $$(grep -rl --include='*_test.go' '^func Fuzz' .); do \
		pkg=./$$(dirname $${f#./}); \
		for name in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg || \
			{ echo "fuzz $$pkg $$name: once more"; \
			  $(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg; }; \
		done; \
	done

# The mutation suite (tools/mutants/mutants.txt): each named breakage of a
# guard, applied alone to a copy of the committed tree, must make its named
# tests fail; a surviving or stale mutant fails the run.
mutants:
	@bash .ci/postgres
	CI=$${CI:-1} $(GO) run ./tools/mutants

# `make lint`: gofmt, then golangci-lint with .golangci.yml (staticcheck,
# errcheck, govet, gosec's crypto and SQL checks, ...) at the pinned
# version, built once into bin/ by `go install` (a few minutes the first
# time; bin/ is not committed). Zero findings.
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT := bin/golangci-lint-$(GOLANGCI_LINT_VERSION)/golangci-lint

$(GOLANGCI_LINT):
	GOBIN=$(CURDIR)/$(dir $(GOLANGCI_LINT)) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

lint: $(GOLANGCI_LINT)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GOLANGCI_LINT) run --allow-serial-runners ./...

# `make bench`: one side-by-side table in one run (bench/sidebyside, a
# separate module so Ory Hydra's dependencies stay out of ours): tokens/s,
# introspections/s and RSS after BENCH_N tokens of perfectpay vs Hydra v2.3.0
# (in-memory DSN, JWT and opaque), the policy's p50 embedded vs an
# `opa run --server` sidecar (opa at go.mod's version, built in the module
# bench/opa: ours lacks the command's dependencies), agent charges/s vs
# pgbench of the same statements and vs `pgbench -b tpcb-like`. The table
# is also written to bin/bench.md. `make bench-go` runs the Go benchmarks.
BENCH_N    ?= 20000
BENCH_ARGS ?=

bench: build
	cd bench/opa && $(GO) build -o ../../bin/opa github.com/open-policy-agent/opa
	cd bench && CGO_ENABLED=1 $(GO) build -tags sqlite,sqlite_omit_load_extension -o ../bin/hydra github.com/ory/hydra/v2
	@bash .ci/postgres
	cd bench && $(GO) run ./sidebyside -root .. -n $(BENCH_N) -introspections $(BENCH_N) -out ../bin/bench.md $(BENCH_ARGS)

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# The demo (examples/agent): a dev server on the memory store on a free
# port in the background, the agent story against it with the demo secret
# key read from the server's output, then the server stopped. Exits with
# the story's status, so it is also an end-to-end check.
# `make demo`: the agent story, then the human-present one: it prints the
# URLs a payer opens in a browser and waits for them; `make demo DEMO=--auto`
# plays the payer too.
DEMO ?=
demo: build
	@$(GO) build -o bin/agent-demo ./examples/agent
	@tmp=$$(mktemp -d); pid=; \
	trap 'if [ -n "$$pid" ]; then kill $$pid 2>/dev/null; wait $$pid 2>/dev/null; fi; rm -rf $$tmp' EXIT; \
	trap 'exit 130' INT TERM; \
	up=; for try in 1 2 3 4 5; do \
		port=$$(( 20000 + $$(od -An -N2 -tu2 /dev/urandom) % 40000 )); \
		PERFECTPAY_STORE_DRIVER=$${PERFECTPAY_STORE_DRIVER:-memory} $(BIN) serve --dev --addr 127.0.0.1:$$port >$$tmp/out 2>$$tmp/log & pid=$$!; \
		for i in $$(seq 1 100); do \
			if curl -fsS -o /dev/null http://127.0.0.1:$$port/readyz 2>/dev/null; then up=1; break; fi; \
			kill -0 $$pid 2>/dev/null || break; \
			sleep 0.1; \
		done; \
		[ -n "$$up" ] && break; \
		kill $$pid 2>/dev/null; wait $$pid 2>/dev/null; pid=; \
	done; \
	if [ -z "$$up" ]; then echo "demo: the server did not become ready:"; tail -n 20 $$tmp/log; exit 1; fi; \
	key=$$(grep -o 'sk_test_[A-Za-z0-9]*' $$tmp/out | head -n 1); \
	if [ -z "$$key" ]; then echo "demo: no demo secret key in the server's output:"; cat $$tmp/out; exit 1; fi; \
	echo "demo: server on http://127.0.0.1:$$port ($${PERFECTPAY_STORE_DRIVER:-memory} store, dev mode)"; echo; \
	status=0; bin/agent-demo --url http://127.0.0.1:$$port --key $$key --server-output $$tmp/out --person $(DEMO) || status=$$?; \
	if [ $$status -ne 0 ]; then echo "demo: server log (last lines):"; tail -n 20 $$tmp/log; fi; \
	exit $$status

clean:
	rm -rf bin $(SKIPPED)
