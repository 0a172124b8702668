# Outbox Hub. `make dev` runs the hub; `make test` runs every test. Both install what they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Tools are built once per machine into a cache outside the clone, one folder per tool and
# version (a fresh clone on the same machine, as CI makes, reuses them); .tools/bin and
# .tools/lib in the clone hold links to the versions this Makefile pins.
TOOLS      := $(CURDIR)/.tools
TOOLS_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/outbox-hub/tools
FERRETDB_VERSION := v1.24.2
FERRETDB_BUILT := $(TOOLS_CACHE)/ferretdb-$(FERRETDB_VERSION)/ferretdb
FERRETDB   := $(TOOLS)/bin/ferretdb
# SecantusDB (crates.io `secantus-mdb`, server `secantusd-rs`): MongoDB's wire protocol over
# WiredTiger, a single-node replica set with transactions and change streams. The embedded
# default and primary test server. GPL-2.0: a development and test tool only, never shipped.
SECANTUS_VERSION := 0.5.3-beta.196
SECANTUS_HOME := $(TOOLS_CACHE)/secantus-mdb-$(SECANTUS_VERSION)
SECANTUS_BUILT := $(SECANTUS_HOME)/bin/secantusd-rs
SECANTUS   := $(TOOLS)/bin/secantusd-rs
HELM_VERSION := v3.19.0
HELM_BUILT := $(TOOLS_CACHE)/helm-$(HELM_VERSION)/helm
HELM       := $(TOOLS)/bin/helm
ETCD_VERSION := v3.6.16
ETCD_BUILT := $(TOOLS_CACHE)/etcd-$(ETCD_VERSION)/etcd
ETCD       := $(TOOLS)/bin/etcd
KUBE_VERSION := v1.36.3
KUBE_APISERVER_BUILT := $(TOOLS_CACHE)/kube-apiserver-$(KUBE_VERSION)/kube-apiserver
KUBE_APISERVER := $(TOOLS)/bin/kube-apiserver
PROM_OPERATOR_VERSION := v0.85.0
PROM_CRDS_BUILT := $(TOOLS_CACHE)/crds/prometheus-operator-$(PROM_OPERATOR_VERSION)
PROM_CRDS  := $(TOOLS)/crds/prometheus-operator-$(PROM_OPERATOR_VERSION)
# The jar's name carries a hash of its sources (test/harness/server.ts computes the same one), so
# an edit builds a new jar and worktrees sharing the cache never run a stale one.
MJS_DIR    := test/harness/mongo-java-server
MJS_HASH   := $(shell cd $(MJS_DIR) && cat pom.xml $$(find src -type f | LC_ALL=C sort) | sha256sum | cut -c1-12)
MJS_NAME   := outbox-hub-mongo-java-server-$(MJS_HASH).jar
MJS_BUILT  := $(TOOLS_CACHE)/lib/$(MJS_NAME)
MJS_JAR    := $(TOOLS)/lib/$(MJS_NAME)
CENTRIFUGO_VERSION := v6.9.1
CENTRIFUGO_BUILT := $(TOOLS_CACHE)/centrifugo-$(CENTRIFUGO_VERSION)/centrifugo
CENTRIFUGO := $(TOOLS)/bin/centrifugo
# Jaeger v2 (module tag v1.75.0 = Jaeger v2.12: the OpenTelemetry-Collector-based binary), the
# tracing backend of test/tracing.process.test.ts: OTLP in, in-memory storage, its query API out.
JAEGER_VERSION := v1.75.0
JAEGER_BUILT := $(TOOLS_CACHE)/jaeger-$(JAEGER_VERSION)/jaeger
JAEGER     := $(TOOLS)/bin/jaeger
NODE_DEPS  := node_modules/.installed
JEST       := node --experimental-vm-modules node_modules/jest/bin/jest.js
export GOTOOLCHAIN := local
export GOFLAGS := -mod=mod

.PHONY: help deps tools kube-tools cluster-tools cluster cluster-down chromium prometheus build typecheck lint image image-for-tests test test-unit dev bench bench-drain bench-gateway bench-groups bench-ops bench-retention bench-tracing centrifugo tracing-tools clean

help:
	@echo "make dev    - run the hub on MONGO_URL or an embedded SecantusDB"
	@echo "make test   - type-check and run the whole suite against real MongoDB-wire servers (and a real single-node Kubernetes)"
	@echo "make cluster / cluster-down - a local single-node Kubernetes with the hub installed by helm, and its removal"
	@echo "make test-unit - the tests that need no server, process or build (seconds; no database started)"
	@echo "make lint   - ESLint and Prettier on the sources"
	@echo "make bench  - drain, gateway (beside Centrifugo) and group-dispatch benchmarks (numbers in README)"

$(NODE_DEPS): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

deps: $(NODE_DEPS)

# A link in .tools to a tool in the cache (made again when the pinned version changes).
define link-tool
	@mkdir -p $(dir $@)
	@ln -sfn $< $@
endef

# FerretDB from the Go module proxy. Its version check wants build/version/version.txt,
# which only its release tooling writes, so we build from a writable copy of the module.
$(FERRETDB_BUILT):
	@mkdir -p $(dir $@) $(TOOLS_CACHE)/src
	@dir=$$(go mod download -json github.com/FerretDB/FerretDB@$(FERRETDB_VERSION) | sed -n 's/^\s*"Dir": "\(.*\)",\?$$/\1/p'); \
	  test -n "$$dir" || { echo "cannot download FerretDB $(FERRETDB_VERSION)"; exit 1; }; \
	  src=$$(mktemp -d $(TOOLS_CACHE)/src/ferretdb.XXXXXX) && trap 'rm -rf "$$src"' EXIT && \
	  cp -r "$$dir"/. "$$src" && chmod -R u+w "$$src" && \
	  echo $(FERRETDB_VERSION) > "$$src/build/version/version.txt" && \
	  (cd "$$src" && go build -trimpath -o $@.tmp ./cmd/ferretdb) && mv $@.tmp $@
	@$@ --version | head -1
$(FERRETDB): $(FERRETDB_BUILT)
	$(link-tool)

# SecantusDB from crates.io with the machine's stable Rust (the crate declares a newer
# rust-version than it needs). Installed into a scratch root, then renamed into place, so an
# interrupted build leaves nothing that looks finished. Fails loudly: never a silent fallback.
$(SECANTUS_BUILT):
	@command -v cargo >/dev/null || { echo "!!! cargo (Rust) is needed to build SecantusDB $(SECANTUS_VERSION), the test and dev server" >&2; exit 1; }
	@mkdir -p $(TOOLS_CACHE)
	@root=$$(mktemp -d $(TOOLS_CACHE)/secantus-build.XXXXXX) && trap 'rm -rf "$$root"' EXIT && \
	  echo "building SecantusDB $(SECANTUS_VERSION) from crates.io (about 4 minutes on 2 cores, once per machine)" && \
	  nice -n 10 cargo install --quiet secantus-mdb --version $(SECANTUS_VERSION) --ignore-rust-version --root "$$root" && \
	  rm -rf $(SECANTUS_HOME) && mv "$$root" $(SECANTUS_HOME)
	@$@ --version
$(SECANTUS): $(SECANTUS_BUILT)
	$(link-tool)

# Helm from the Go module proxy (it is not packaged here).
$(HELM_BUILT):
	@mkdir -p $(dir $@)
	GOBIN=$(dir $@) go install -trimpath helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	@$@ version --short
$(HELM): $(HELM_BUILT)
	$(link-tool)

# mongo-java-server 1.47.0 (in-memory backend) from Maven Central, a wire server of the test
# matrix. Built in a scratch copy, then renamed into place, so concurrent builds from several
# worktrees cannot leave a half-written jar.
$(MJS_BUILT):
	@mkdir -p $(dir $@) $(TOOLS_CACHE)/src
	@tmp=$$(mktemp -d $(TOOLS_CACHE)/src/mongo-java-server.XXXXXX) && trap 'rm -rf "$$tmp"' EXIT && \
	  cp -r $(MJS_DIR)/pom.xml $(MJS_DIR)/src "$$tmp"/ && \
	  mvn -B -q -f "$$tmp/pom.xml" package && \
	  mv "$$tmp/target/outbox-hub-mongo-java-server.jar" $@
	@echo "mongo-java-server jar: $@"
$(MJS_JAR): $(MJS_BUILT)
	$(link-tool)

tools: $(SECANTUS) $(FERRETDB) $(HELM) $(MJS_JAR)

# A real Kubernetes API server for the chart, Lease backend and lease-mode process tests
# (no controller-manager, scheduler or kubelet). Both built from the Go module proxy by
# scripts/build-kube-tools.sh, one after the other (kube-apiserver alone peaks at ~2.3 GB
# and takes ~6 CPU-minutes the first time), niced to leave the machine usable.
$(ETCD_BUILT):
	nice -n 10 scripts/build-kube-tools.sh etcd $(ETCD_VERSION) $@
	@$@ --version | head -1
$(ETCD): $(ETCD_BUILT)
	$(link-tool)

$(KUBE_APISERVER_BUILT): | $(ETCD_BUILT)
	nice -n 10 scripts/build-kube-tools.sh kube-apiserver $(KUBE_VERSION) $@
	@$@ --version
$(KUBE_APISERVER): $(KUBE_APISERVER_BUILT)
	$(link-tool)

# The node components for the cluster tests (test/harness/cluster.ts): kubelet, controller
# manager, scheduler, kube-proxy, kubectl from the same module as kube-apiserver (~2 CPU-minutes
# with its build cache warm), the pause binary from the module's pause.c, and CoreDNS.
KUBE_NODE_DIR := $(TOOLS_CACHE)/kube-node-$(KUBE_VERSION)
KUBE_NODE_BINS := kubelet kube-controller-manager kube-scheduler kube-proxy kubectl pause
COREDNS_VERSION := v1.14.7
COREDNS_BUILT := $(TOOLS_CACHE)/coredns-$(COREDNS_VERSION)/coredns
$(KUBE_NODE_DIR)/kubelet: | $(KUBE_APISERVER_BUILT)
	nice -n 10 scripts/build-kube-tools.sh kube-node $(KUBE_VERSION) $@
$(COREDNS_BUILT):
	@mkdir -p $(dir $@)
	cd $(TOOLS_CACHE) && GOBIN=$(dir $@) CGO_ENABLED=0 GOFLAGS=-mod=mod nice -n 10 go install -trimpath github.com/coredns/coredns@$(COREDNS_VERSION)
# Prometheus with Kubernetes service discovery (Debian's is built without it) for the cluster test.
PROM_K8S_VERSION := v0.316.0
PROM_K8S_BUILT := $(TOOLS_CACHE)/prometheus-$(PROM_K8S_VERSION)/prometheus
$(PROM_K8S_BUILT):
	@mkdir -p $(dir $@)
	cd $(TOOLS_CACHE) && GOBIN=$(dir $@) CGO_ENABLED=0 GOFLAGS=-mod=mod nice -n 10 go install -trimpath github.com/prometheus/prometheus/cmd/prometheus@$(PROM_K8S_VERSION)
# containerd (with its CRI plugin), runc, the CNI plugins and conntrack from Debian.
CLUSTER_APT := containerd runc containernetworking-plugins conntrack iptables iproute2
cluster-tools:
	@$(MAKE) --no-print-directory $(KUBE_NODE_DIR)/kubelet $(COREDNS_BUILT) $(PROM_K8S_BUILT) && \
	  mkdir -p $(TOOLS)/bin && for b in $(KUBE_NODE_BINS); do ln -sfn $(KUBE_NODE_DIR)/$$b $(TOOLS)/bin/$$b; done && \
	  ln -sfn $(COREDNS_BUILT) $(TOOLS)/bin/coredns && ln -sfn $(PROM_K8S_BUILT) $(TOOLS)/bin/prometheus && \
	  { command -v containerd >/dev/null && test -x /usr/lib/cni/bridge && command -v conntrack >/dev/null || \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(CLUSTER_APT) >/dev/null; }; } || \
	  echo "!!! could not build or install the cluster's components: the cluster tests will be SKIPPED" >&2

# A cluster left running with the hub installed (make image first), and its removal.
cluster: $(NODE_DEPS) tools kube-tools cluster-tools build
	@podman image exists $(IMAGE) || $(MAKE) --no-print-directory image
	node dist/test/harness/cluster-cli.js up
cluster-down: build
	node dist/test/harness/cluster-cli.js down

# ServiceMonitor, PodMonitor and PrometheusRule CRDs, which values-all.yaml needs installed.
$(PROM_CRDS_BUILT):
	@dir=$$(go mod download -json github.com/prometheus-operator/prometheus-operator@$(PROM_OPERATOR_VERSION) | sed -n 's/^\s*"Dir": "\(.*\)",\?$$/\1/p'); \
	  test -n "$$dir" || { echo "cannot download prometheus-operator $(PROM_OPERATOR_VERSION)"; exit 1; }; \
	  rm -rf $@.tmp && mkdir -p $@.tmp && \
	  for kind in servicemonitors podmonitors prometheusrules; do \
	    cp "$$dir/example/prometheus-operator-crd/monitoring.coreos.com_$$kind.yaml" $@.tmp/ || exit 1; done; \
	  chmod -R u+w $@.tmp && mv $@.tmp $@
$(PROM_CRDS): $(PROM_CRDS_BUILT)
	$(link-tool)

# Never fails: without these the Kubernetes tests are reported as skipped, naming what is missing.
kube-tools:
	@$(MAKE) --no-print-directory $(ETCD) $(KUBE_APISERVER) $(PROM_CRDS) || \
	  echo "!!! could not build etcd $(ETCD_VERSION) / kube-apiserver $(KUBE_VERSION) / CRDs: the Kubernetes tests will be SKIPPED" >&2

# Centrifugo from the Go module proxy, only for the gateway benchmark's side-by-side run.
# Built once into the tools cache, niced: the build takes minutes on two cores.
$(CENTRIFUGO_BUILT):
	@mkdir -p $(dir $@)
	GOBIN=$(dir $@) nice -n 10 go install -trimpath \
	  -ldflags "-X github.com/centrifugal/centrifugo/v6/internal/build.Version=$(CENTRIFUGO_VERSION:v%=%)" \
	  github.com/centrifugal/centrifugo/v6@$(CENTRIFUGO_VERSION)
	@$@ version
$(CENTRIFUGO): $(CENTRIFUGO_BUILT)
	$(link-tool)

centrifugo: $(CENTRIFUGO)

# Jaeger from the Go module proxy. Its go.mod has a replace directive, so `go install pkg@v`
# refuses it: it is built as a tool of a scratch module (`go get -tool`), then renamed into place.
$(JAEGER_BUILT):
	@mkdir -p $(dir $@) $(TOOLS_CACHE)/src
	@src=$$(mktemp -d $(TOOLS_CACHE)/src/jaeger.XXXXXX) && trap 'rm -rf "$$src"' EXIT && \
	  echo "building Jaeger $(JAEGER_VERSION) from the Go module proxy (several minutes on 2 cores, once per machine)" && \
	  cd "$$src" && go mod init outbox-hub-tools/jaeger >/dev/null 2>&1 && \
	  go get -tool github.com/jaegertracing/jaeger/cmd/jaeger@$(JAEGER_VERSION) && \
	  CGO_ENABLED=0 nice -n 10 go build -trimpath \
	    -ldflags "-X github.com/jaegertracing/jaeger/internal/version.latestVersion=$(JAEGER_VERSION)" \
	    -o $@.tmp github.com/jaegertracing/jaeger/cmd/jaeger && mv $@.tmp $@
	@echo "jaeger $$($@ version 2>/dev/null)"
$(JAEGER): $(JAEGER_BUILT)
	$(link-tool)

# Never fails: without Jaeger the tracing test is reported as skipped, naming what is missing.
tracing-tools:
	@$(MAKE) --no-print-directory $(JAEGER) || \
	  echo "!!! could not build Jaeger $(JAEGER_VERSION): the tracing test will be SKIPPED" >&2

# Browser tests drive Debian's chromium through playwright-core (a browser download cannot work here).
CHROMIUM_PATH ?= /usr/bin/chromium
chromium:
	@test -x $(CHROMIUM_PATH) || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; }
	@$(CHROMIUM_PATH) --version

# promtool (alert rule unit tests) and prometheus (the dashboard's and rules' queries against a real
# server scraping the binaries) from Debian's prometheus package. Its service must not start:
# policy-rc.d denies it (a denying one is put in place for the install where none exists), and
# a daemon the package started anyway (it runs as the `prometheus` user) is stopped by pid.
PROMTOOL_PATH ?= /usr/bin/promtool
PROMETHEUS_PATH ?= /usr/bin/prometheus
prometheus:
	@test -x $(PROMTOOL_PATH) -a -x $(PROMETHEUS_PATH) || { \
	  if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
	  policy=; if [ ! -e /usr/sbin/policy-rc.d ]; then policy=1; \
	    printf '#!/bin/sh\nexit 101\n' | $$sudo tee /usr/sbin/policy-rc.d >/dev/null && $$sudo chmod 755 /usr/sbin/policy-rc.d; fi; \
	  $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	  rc=$$?; [ -z "$$policy" ] || $$sudo rm -f /usr/sbin/policy-rc.d; \
	  daemons=$$(pgrep -u prometheus -x prometheus || true); \
	  if [ -n "$$daemons" ]; then echo "stopping the packaged prometheus service ($$daemons)"; $$sudo kill $$daemons; fi; \
	  exit $$rc; }
	@set -o pipefail; $(PROMTOOL_PATH) --version | head -1 && test -x $(PROMETHEUS_PATH)

# dist is rebuilt from scratch: a file left from a source that moved would be packed and shipped.
build: $(NODE_DEPS)
	rm -rf dist
	npx tsc -p tsconfig.build.json
	npm run --silent build:sdk-browser
	@node -e 'const b=require("fs").readFileSync("dist/sdk/outbox-hub-sdk.min.js"); console.log(`sdk browser bundle: $${b.length} B, $${require("zlib").gzipSync(b,{level:9}).length} B gzipped`)'

typecheck: $(NODE_DEPS)
	npx tsc -p tsconfig.json --noEmit

# ESLint (typescript-eslint, type-checked) and Prettier: a lint error fails make test.
PRETTIER_FILES := 'internal/**/*.ts' 'cmd/**/*.ts' 'test/**/*.ts' 'bench/**/*.ts' eslint.config.js jest.config.js jest.unit.config.js
lint: $(NODE_DEPS)
	npx eslint --max-warnings 0 .
	npx prettier --check --log-level warn $(PRETTIER_FILES)

test: $(NODE_DEPS) tools kube-tools cluster-tools tracing-tools chromium prometheus build typecheck lint image-for-tests
	@mkdir -p test-artifacts
	$(JEST) --ci --json --outputFile=test-artifacts/jest.json
	@node -e 'const r=require("./test-artifacts/jest.json"); console.log(`jest: $${r.numPassedTests} passed, $${r.numFailedTests} failed, $${r.numPendingTests} skipped`)'

# The image, built from the Dockerfile with podman and nothing pulled from a registry
# (scripts/build-image.sh makes the base from Debian packages and Node from the npm registry).
IMAGE := localhost/outbox-hub:dev
CHART_APP_VERSION := $(shell sed -n 's/^appVersion: "\(.*\)"/\1/p' helm/outbox-hub/Chart.yaml)
image:
	bash scripts/build-image.sh $(IMAGE) localhost/outbox-hub:$(CHART_APP_VERSION)

# For make test: a failed build does not stop the run; the image tests then report themselves
# skipped with the reason left in test-artifacts/image-build.log.
image-for-tests:
	@mkdir -p test-artifacts
	@start=$$(date +%s); if bash scripts/build-image.sh $(IMAGE) localhost/outbox-hub:$(CHART_APP_VERSION) >test-artifacts/image-build.log 2>&1; \
	  then echo "image: $(IMAGE) built in $$(( $$(date +%s) - start )) s"; \
	  else echo "image: NOT BUILT (test-artifacts/image-build.log); the podman image tests will report as skipped"; tail -5 test-artifacts/image-build.log; fi

# The fast loop: test/**/*.unit.test.ts (no database, process or dist/; make test runs them too).
test-unit: $(NODE_DEPS)
	$(JEST) -c jest.unit.config.js

dev: $(NODE_DEPS) tools build
	node dist/test/harness/dev.js

bench: bench-drain bench-gateway bench-groups bench-ops bench-retention bench-tracing

bench-drain: $(NODE_DEPS) tools build
	node dist/bench/drain.js

bench-gateway: $(NODE_DEPS) tools $(CENTRIFUGO) build
	CENTRIFUGO=$(CENTRIFUGO) node dist/bench/gateway.js

# 100,000 events and 20 groups on the test server (or MONGO_URL); times every ops read endpoint.
bench-ops: $(NODE_DEPS) tools build
	node dist/bench/ops.js

# Trimming 1,000,000 events, and draining while trimming runs (BENCH_SERVER picks the server).
bench-retention: $(NODE_DEPS) tools build
	node dist/bench/retention.js

# Drain throughput and publish-to-deliver with tracing off, on but unsampled, and sampled.
bench-tracing: $(NODE_DEPS) tools build
	node dist/bench/tracing.js

# In memory: no database needed.
bench-groups: $(NODE_DEPS) build
	node dist/bench/groups.js

clean:
	rm -rf dist .tools/src
