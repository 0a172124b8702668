# Outbox Hub. `make dev` runs the hub; `make test` runs every test. Both install what they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help

TOOLS      := $(CURDIR)/.tools
FERRETDB_VERSION := v1.24.2
FERRETDB   := $(TOOLS)/bin/ferretdb
HELM_VERSION := v3.19.0
HELM       := $(TOOLS)/bin/helm
CENTRIFUGO_VERSION := v6.9.1
CENTRIFUGO := $(TOOLS)/bin/centrifugo
NODE_DEPS  := node_modules/.installed
JEST       := node --experimental-vm-modules node_modules/jest/bin/jest.js
export GOTOOLCHAIN := local
export GOFLAGS := -mod=mod

.PHONY: help deps tools chromium build typecheck test dev bench bench-drain bench-gateway centrifugo clean

help:
	@echo "make dev    - run the hub (drainers) on MONGO_URL or an embedded FerretDB"
	@echo "make test   - type-check and run the whole suite against a real MongoDB-wire server"
	@echo "make bench  - drain and gateway benchmarks, the gateway's beside Centrifugo (numbers in README)"

$(NODE_DEPS): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

deps: $(NODE_DEPS)

# FerretDB from the Go module proxy. Its version check wants build/version/version.txt,
# which only its release tooling writes, so we build from a writable copy of the module.
$(FERRETDB):
	@mkdir -p $(TOOLS)/bin $(TOOLS)/src
	@dir=$$(go mod download -json github.com/FerretDB/FerretDB@$(FERRETDB_VERSION) | sed -n 's/^\s*"Dir": "\(.*\)",\?$$/\1/p'); \
	  test -n "$$dir" || { echo "cannot download FerretDB $(FERRETDB_VERSION)"; exit 1; }; \
	  rm -rf $(TOOLS)/src/ferretdb && cp -r "$$dir" $(TOOLS)/src/ferretdb && chmod -R u+w $(TOOLS)/src/ferretdb && \
	  echo $(FERRETDB_VERSION) > $(TOOLS)/src/ferretdb/build/version/version.txt && \
	  cd $(TOOLS)/src/ferretdb && go build -trimpath -o $(FERRETDB) ./cmd/ferretdb
	@$(FERRETDB) --version | head -1

# Helm from the Go module proxy (it is not packaged here).
$(HELM):
	@mkdir -p $(TOOLS)/bin
	GOBIN=$(TOOLS)/bin go install -trimpath helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	@$(HELM) version --short

tools: $(FERRETDB) $(HELM)

# Centrifugo from the Go module proxy, only for the gateway benchmark's side-by-side run.
# Built once into the shared tools folder, niced: the build takes minutes on two cores.
$(CENTRIFUGO):
	@mkdir -p $(TOOLS)/bin
	GOBIN=$(TOOLS)/bin nice -n 10 go install -trimpath \
	  -ldflags "-X github.com/centrifugal/centrifugo/v6/internal/build.Version=$(CENTRIFUGO_VERSION:v%=%)" \
	  github.com/centrifugal/centrifugo/v6@$(CENTRIFUGO_VERSION)
	@$(CENTRIFUGO) version

centrifugo: $(CENTRIFUGO)

# Browser tests drive Debian's chromium through playwright-core (a browser download cannot work here).
CHROMIUM_PATH ?= /usr/bin/chromium
chromium:
	@test -x $(CHROMIUM_PATH) || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; }
	@$(CHROMIUM_PATH) --version

build: $(NODE_DEPS)
	npx tsc -p tsconfig.build.json
	npm run --silent build:sdk-browser
	@node -e 'const b=require("fs").readFileSync("dist/sdk/outbox-hub-sdk.min.js"); console.log(`sdk browser bundle: $${b.length} B, $${require("zlib").gzipSync(b,{level:9}).length} B gzipped`)'

typecheck: $(NODE_DEPS)
	npx tsc -p tsconfig.json --noEmit

test: $(NODE_DEPS) tools chromium build typecheck
	@mkdir -p test-artifacts
	$(JEST) --ci --json --outputFile=test-artifacts/jest.json
	@node -e 'const r=require("./test-artifacts/jest.json"); console.log(`jest: $${r.numPassedTests} passed, $${r.numFailedTests} failed, $${r.numPendingTests} skipped`)'

dev: $(NODE_DEPS) tools build
	node dist/test/harness/dev.js

bench: bench-drain bench-gateway

bench-drain: $(NODE_DEPS) tools build
	node dist/bench/drain.js

bench-gateway: $(NODE_DEPS) tools $(CENTRIFUGO) build
	CENTRIFUGO=$(CENTRIFUGO) node dist/bench/gateway.js

clean:
	rm -rf dist .tools/src
