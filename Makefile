# PerfectPay — see README.md.
GO      ?= go
BIN     ?= bin/perfectpay
ADDR    ?= 127.0.0.1:8080
SKIPPED := $(CURDIR)/.skipped-suites

.PHONY: run test build lint demo bench fuzz clean

run: build
	$(BIN) serve --dev --addr $(ADDR)

build:
	$(GO) build -o $(BIN) ./cmd/perfectpay

# Every test, with the race detector. Postgres suites run against
# PERFECTPAY_TEST_DATABASE_URL (default 127.0.0.1:5432). With CI set they
# fail when Postgres is down; without it they are skipped and named below.
test:
	@rm -rf $(SKIPPED) && mkdir -p $(SKIPPED)
	PERFECTPAY_SKIPPED_DIR=$(SKIPPED) $(GO) test -race -count=1 -timeout 15m ./...
	@if [ -n "$$(ls -A $(SKIPPED))" ]; then \
		echo ""; \
		echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"; \
		echo "!! PostgreSQL was unreachable: these suites did NOT run:"; \
		cat $(SKIPPED)/* | sed 's/^/!!   /'; \
		echo "!! Start PostgreSQL (see README) and run make test again."; \
		echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"; \
	fi
	@rm -rf $(SKIPPED)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# The demo (examples/agent): a dev server on the memory store on a free
# port in the background, the agent story against it with the demo secret
# key read from the server's output, then the server stopped. Exits with
# the story's status, so it is also an end-to-end check.
demo: build
	@$(GO) build -o bin/agent-demo ./examples/agent
	@tmp=$$(mktemp -d); pid=; \
	trap 'if [ -n "$$pid" ]; then kill $$pid 2>/dev/null; wait $$pid 2>/dev/null; fi; rm -rf $$tmp' EXIT; \
	trap 'exit 130' INT TERM; \
	up=; for try in 1 2 3 4 5; do \
		port=$$(( 20000 + $$(od -An -N2 -tu2 /dev/urandom) % 40000 )); \
		PERFECTPAY_STORE_DRIVER=memory $(BIN) serve --dev --addr 127.0.0.1:$$port >$$tmp/out 2>$$tmp/log & pid=$$!; \
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
	echo "demo: server on http://127.0.0.1:$$port (memory store, dev mode)"; echo; \
	status=0; bin/agent-demo --url http://127.0.0.1:$$port --key $$key --server-output $$tmp/out || status=$$?; \
	if [ $$status -ne 0 ]; then echo "demo: server log (last lines):"; tail -n 20 $$tmp/log; fi; \
	exit $$status

clean:
	rm -rf bin $(SKIPPED)
