# Cairn — build, generate, test. `make help` lists the targets.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

MODULE  := github.com/cairn-platform/cairn
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo none)
DATE    ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -s -w -X $(MODULE)/internal/version.Version=$(VERSION) -X $(MODULE)/internal/version.Commit=$(COMMIT) -X $(MODULE)/internal/version.Date=$(DATE)

LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_TOOLS_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION    ?= v2.15.0
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
GOLANGCI_LINT  ?= $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)

# Binaries under cmd/; edge-agent is also cross-built for linux/arm64.
COMMANDS := $(notdir $(wildcard cmd/*))
GO_TEST_FLAGS ?= -count=1 -timeout 30m
BENCH ?= .

.PHONY: all
all: build

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs and RBAC (manager, function host) from the API and controller markers.
	$(CONTROLLER_GEN) rbac:roleName=cairn-manager crd:allowDangerousTypes=false paths="./api/..." paths="./controllers/..." paths="./dataplane/edgehub/..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	$(CONTROLLER_GEN) rbac:roleName=cairn-funchost paths="./dataplane/funchost/hostsync/..." output:rbac:artifacts:config=config/funchost/rbac

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

# Go sources we write; controller-gen's output is checked by `verify` instead.
GO_SOURCES = $$(git ls-files -co --exclude-standard '*.go' ':!:**/zz_generated*.go')

.PHONY: fmt
fmt: ## gofmt the tree.
	gofmt -s -w $(GO_SOURCES)

.PHONY: vet
vet: ## go vet.
	go vet ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint.
	$(GOLANGCI_LINT) run ./...

.PHONY: verify
verify: $(CONTROLLER_GEN) ## Fail when generated files (deepcopy, CRDs, RBAC) or formatting are stale.
	@test -z "$$(gofmt -s -l $(GO_SOURCES))" || { gofmt -s -l $(GO_SOURCES); echo "gofmt needed: run make fmt"; exit 1; }
	@before=$$(find api config -type f | sort | xargs sha256sum); \
	$(MAKE) --no-print-directory manifests generate >/dev/null; \
	after=$$(find api config -type f | sort | xargs sha256sum); \
	[ "$$before" = "$$after" ] || { diff <(echo "$$before") <(echo "$$after"); echo "generated files were stale and have been regenerated: review and commit them"; exit 1; }

##@ Test

.PHONY: envtest
envtest: ## Build (once) kube-apiserver + etcd from source and print the assets dir.
	@hack/setup-envtest-from-source.sh

.PHONY: test
test: verify vet ## Run all tests against a real kube-apiserver + etcd.
	KUBEBUILDER_ASSETS="$$(hack/setup-envtest-from-source.sh)" go test $(GO_TEST_FLAGS) ./...

.PHONY: bench
bench: ## Run the benchmarks (BENCH=regexp to select); the fleet benchmark runs 1k devices unless CAIRN_FLEET_SIZES says otherwise.
	KUBEBUILDER_ASSETS="$$(hack/setup-envtest-from-source.sh)" CAIRN_FLEET_SIZES="$${CAIRN_FLEET_SIZES:-1000}" \
		go test -run '^$$' -bench '$(BENCH)' -benchmem -count 6 -timeout 90m ./...

##@ Build

.PHONY: build
build: $(addprefix build-,$(COMMANDS)) ## Build every binary into bin/ (edge-agent also for linux/arm64).
	@if [ -d cmd/edge-agent ]; then \
		echo "edge-agent linux/arm64"; \
		CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build -trimpath -ldflags '$(LDFLAGS)' -o $(LOCALBIN)/linux-arm64/edge-agent ./cmd/edge-agent; \
	fi

build-%:
	CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o $(LOCALBIN)/$* ./cmd/$*

.PHONY: functions
functions: ## Rebuild the example Functions in examples/functions (echo-wat with wat2wasm when installed).
	cd examples/functions/hello-go && GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -ldflags='-s -w' -o hello.wasm .
	@cd examples/functions/echo-wat; \
	if command -v wat2wasm >/dev/null; then \
		echo "wat2wasm echo.wat -o echo.wasm"; wat2wasm echo.wat -o echo.wasm; \
	else \
		echo "wat2wasm not installed (Debian package wabt): echo-wat/echo.wasm left as committed"; \
	fi

##@ Run

.PHONY: dev
dev: build-manager build-cairn ## Run a local control plane (etcd + kube-apiserver), the CRDs, the manager and the samples.
	hack/dev.sh

##@ Tools

$(CONTROLLER_GEN):
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/controller-gen $@

$(GOLANGCI_LINT):
	GOBIN=$(LOCALBIN) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(LOCALBIN)/golangci-lint $@

##@ eBPF

.PHONY: ebpf
ebpf: ## Regenerate the edge-agent eBPF object and Go bindings (needs clang, llvm-strip, libbpf-dev; the outputs are committed).
	go generate ./edge-agent/ebpf/...
