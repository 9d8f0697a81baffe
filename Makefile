# runbook — build, test and demo targets. Run `make help` for the list.
GO      ?= go
BIN     := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/runbook/runbook/engine/version.Version=$(VERSION)
LABDIR  ?= $(CURDIR)/lab
HOSTS   ?= 3
TIER    ?= systemd
LAYERS  ?=

.PHONY: help helpers build test test-short fuzz lint fmt fmt-hcl demo lab-up lab-down bench bench-compare bench-scale soak clean

help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

HELPER_ARCHES := amd64 arm64

helpers: ## build the static helpers that bin/runbook embeds
	@if [ -d cmd/runbook-helper ]; then for a in $(HELPER_ARCHES); do \
	  echo "helper linux/$$a"; \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$a $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o engine/helperbin/bin/runbook-helper-linux-$$a ./cmd/runbook-helper || exit 1; \
	  f=engine/helperbin/bin/runbook-helper-linux-$$a; gzip -9 -n -c $$f > $$f.gz || exit 1; \
	  echo "$$(sha256sum $$f | cut -d' ' -f1) $$(stat -c %s $$f) $$(sha256sum $$f.gz | cut -d' ' -f1)" > $$f.sha256; \
	done; fi

build: helpers ## build bin/runbook (with the helpers embedded) and bin/testenv
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/runbook ./cmd/runbook
	@if [ -d cmd/testenv ]; then $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/testenv ./cmd/testenv; fi

test: ## all tests (as root this includes the lab tests)
	$(GO) test -count=1 -timeout 45m ./...

test-short: ## unit tests only, no lab
	$(GO) test -count=1 -short ./...

# The fuzz targets that guard a trust boundary: what hosts, dynamic inventories, ssh_config and the
# operator's ssh arguments and known_hosts can feed in, and evaluation with sensitive values.
# `go test` already runs their committed corpora; this also searches for new inputs for
# FUZZTIME each (CI: 10s). A finding is written to testdata/fuzz and fails the target.
FUZZTIME ?= 10s
FUZZ := engine/transport:FuzzProxyCommand engine/transport:FuzzKnownHosts engine/transport:FuzzSSHConfig inventory:FuzzSSHArgs \
	engine/config:FuzzEvalMarked engine/protocol:FuzzDecodeRequest engine/protocol:FuzzDecodeResponse \
	internal/termsafe:FuzzText modules:FuzzClip modules:FuzzRedactor
# Go 1.26's fuzzing coordinator may report a bare "context deadline exceeded" as the
# fuzztime ends, with no input found (go.dev/issue/75804, fixed in Go 1.27): such a run,
# which wrote no failing input, is said and not counted as a finding.
fuzz: ## search the security fuzz targets for new failing inputs (FUZZTIME each)
	@out=$$(mktemp); trap 'rm -f "$$out"' EXIT; \
	for t in $(FUZZ); do pkg=$${t%%:*}; fn=$${t#*:}; echo "fuzz $$pkg $$fn"; \
	  if ! $(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) -parallel 2 ./$$pkg >"$$out" 2>&1; then cat "$$out"; \
	    if grep -q 'context deadline exceeded' "$$out" && ! grep -q 'Failing input written' "$$out" && ! grep -qE '^\s+(--- FAIL: .*/|panic:|[a-z_]+_test\.go:[0-9]+:)' "$$out"; then \
	      echo "fuzz $$pkg $$fn: the fuzzing engine's end-of-fuzztime race (go.dev/issue/75804), no failing input: not a finding"; \
	    else exit 1; fi; \
	  else cat "$$out"; fi; done

lint: ## gofmt check + go vet + runbook fmt --check on the repo's runbooks
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run ./cmd/runbook fmt --check runbooks

fmt: build ## gofmt the Go code and canonicalise the repo's .hcl files
	gofmt -w $$(git ls-files '*.go')
	$(BIN)/runbook fmt runbooks

demo: build ## start lab hosts, run the BIG-IP VE runbook twice, show results
	@./scripts/demo.sh "$(LABDIR)" "$(HOSTS)" "$(TIER)"

lab-up: build ## start the lab (TIER=ns|systemd|vm HOSTS=N LABDIR=dir LAYERS=libvirt)
	$(BIN)/testenv up --tier $(TIER) --hosts $(HOSTS) --dir $(LABDIR) $(if $(LAYERS),--layer $(LAYERS))

lab-down: build ## stop the lab and remove every trace of it
	$(BIN)/testenv down --dir $(LABDIR)

bench: ## benchmarks
	$(MAKE) build
	$(GO) build -o $(BIN)/runbench ./bench/cmd/runbench
	$(BIN)/runbench -repo $(CURDIR) $(BENCHFLAGS)

# bench-compare measures this build beside the build of BASE (a commit), run for run on the same
# 50-host lab: the same-run comparison a change that may cost speed must show.
# BASE's tree is built outside this one (BASE_DIR), so that nothing walking this tree (tests,
# duplicates) reads an older copy of it.
BASE ?= HEAD~1
COMPARE_HOSTS ?= 50
BASE_DIR ?= /tmp/runbook-bench-base
bench-compare: ## this build beside the build of BASE (default HEAD~1), run for run, COMPARE_HOSTS hosts
	$(MAKE) build
	$(GO) build -o $(BIN)/runbench ./bench/cmd/runbench
	rm -rf $(BASE_DIR) && mkdir -p $(BASE_DIR)/src
	git archive $$(git rev-parse --verify '$(BASE)^{commit}') | tar -x -C $(BASE_DIR)/src
	$(MAKE) -C $(BASE_DIR)/src build VERSION=base-$$(git rev-parse --short '$(BASE)')
	$(BIN)/runbench -repo $(CURDIR) -hosts $(COMPARE_HOSTS) -runbook-only -baseline $(BASE_DIR)/src/bin/runbook $(BENCHFLAGS)

# bench-scale brings up ns-tier labs of SCALE_HOSTS hosts, one at a time, and measures the lab
# (up, status, down, memory per host) and runbook on every host (first contact, installed):
# docs/lab.md, "Measured at fleet size". Root; minutes per size.
SCALE_HOSTS ?= 250,500,1000
bench-scale: ## the lab and runbook at fleet size, one lab at a time (SCALE_HOSTS; root)
	$(MAKE) build
	$(GO) build -o $(BIN)/runbench ./bench/cmd/runbench
	$(BIN)/runbench scale -repo $(CURDIR) -hosts $(SCALE_HOSTS) $(SCALEFLAGS)

# soak runs the fault soak (cmd/runbook TestSoak) at fleet size: SOAK_HOSTS ns-tier hosts, a
# tenth of them faulty in every way the lab can make, plus a run interrupted once. The test
# suite runs it with 30 hosts.
SOAK_HOSTS ?= 1000
soak: ## the fault soak at SOAK_HOSTS hosts (default 1000)
	RUNBOOK_SOAK_HOSTS=$(SOAK_HOSTS) $(GO) test -count=1 -timeout 60m -run 'TestSoak$$' -v ./cmd/runbook

clean:
	rm -rf $(BIN) engine/helperbin/bin/runbook-helper-*
