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

clean:
	rm -rf bin $(SKIPPED)
