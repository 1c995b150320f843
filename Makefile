# DealVault. `make demo` and `make test` are the two commands a new machine needs.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export SOLCX_BINARY_PATH := $(CURDIR)/tools/solcx
export PATH := $(CURDIR)/$(BIN):$(CURDIR)/node_modules/.bin:$(PATH)

.PHONY: setup lint test test-fork demo mirror clean compile bench fuzz alerts-test mutate

setup: $(VENV)/.installed node_modules/.installed .build/__local__.json .dealvault/solc-cache/.warm

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

# The solc bridge (tools/solcx/solc-v0.8.28) answers for a native solc; compile once here.
.build/__local__.json: $(VENV)/.installed node_modules/.installed $(shell find contracts -name '*.sol' -not -path '*/.cache/*' 2>/dev/null) ape-config.yaml
	$(BIN)/ape compile --force
	@touch $@

# deploy_vault's reproducible build (solc bridge, standard JSON) is cached by input hash under
# .dealvault/solc-cache: fill it here so the first `make demo` does not pay for a compile.
.dealvault/solc-cache/.warm: .build/__local__.json
	$(BIN)/python -c "from dealvault.deploy import build_contract; build_contract()"
	@mkdir -p $(@D) && touch $@

compile: setup

# ruff over everything Python; mypy --strict over the library (config in pyproject.toml).
lint: $(VENV)/.installed
	$(BIN)/ruff check dealvault scripts tests bench tools
	$(BIN)/mypy

test: setup lint alerts-test
	$(BIN)/ape test tests/unit -q
	$(BIN)/pytest tests/fuzz -p no:ape_test -q
	$(BIN)/python tools/slither/run.py
	bash tools/test_fork.sh -q
	bash tools/test_fork.sh --real-upstream -q
	bash tools/test_fork.sh --usdt-style -q -k "$(USDT_STYLE_TESTS)"

# What the --usdt-style fork run (a Tether-style token at cUSDT) runs: the whole loop, the scenarios of
# the token's own features (blacklist, pause), those that move cUSDT through the kit's helpers (funding,
# approvals, drain_desk, swap_on_pair, the USDTz freeze) and the check that the run got that token.
USDT_STYLE_TESTS := full_loop or blacklist or stable_pause or desk or price_moved or usdtz_freeze or cusdt_is_the_kind

# The fork suite alone. Against the real chain: CHAIN138_RPC_URL=https://... make test-fork
# The Prometheus alert rules (ops/prometheus): syntax, then promtool's unit tests of every rule.
# promtool comes with Debian's `prometheus` package (.ci/run installs it).
alerts-test:
	promtool check rules ops/prometheus/alerts.yml
	promtool test rules ops/prometheus/alerts_test.yml
	promtool check config ops/prometheus/prometheus.yml

test-fork: setup
	bash tools/test_fork.sh -q

demo: setup
	$(BIN)/ape run demo

mirror: setup
	$(BIN)/ape run mirror --overlay

# Gas (vault vs direct EOA loop, tranche scaling), harness speed and the guard's poll over
# 1..1,000 vaults; not part of `make test`. Writes bench/results.json.
bench: setup
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.harness
	$(BIN)/python -m bench.guard

# The long invariant-fuzzing profile (5,000 sequences x 30 steps; 51 min here, not part of make test).
fuzz: setup
	DEALVAULT_FUZZ_PROFILE=long $(BIN)/pytest tests/fuzz -p no:ape_test -q

# Mutation testing (tools/mutate/README.md; not part of `make test`): mutants of the vault's code, each
# compiled and run against the fast forge suite in a worker copy (2 workers); resumes an interrupted
# campaign. ARGS=--survivors re-runs the survivors (after adding tests that kill them), ARGS=--ape adds
# the ape vault unit tests on the forge survivors. Writes tools/mutate/report.json and SUMMARY.md, then
# checks every survivor against tools/mutate/triage.yaml.
mutate: setup
	$(BIN)/python tools/mutate/run.py $(ARGS)
	$(BIN)/python tools/mutate/run.py --check

clean:
	rm -rf .build contracts/.cache .pytest_cache .dealvault deployments/local
