# DealVault. `make demo` and `make test` are the two commands a new machine needs.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export SOLCX_BINARY_PATH := $(CURDIR)/tools/solcx
export PATH := $(CURDIR)/$(BIN):$(CURDIR)/node_modules/.bin:$(PATH)

.PHONY: setup setup-core lint test test-fork demo mirror clean compile bench fuzz alerts-test test-unit test-fuzz-fast test-slither \
	test-fork-auto test-fork-real test-fork-usdt invariant prove mutate fuzz-harness

# the vault's Solidity (ape copies its npm dependencies under contracts/.cache: not ours)
CONTRACT_SOURCES := $(shell find contracts -name '*.sol' -not -path '*/.cache/*' 2>/dev/null)

setup: setup-core .forge/out/.built
# what a deal needs (make demo, make mirror, make bench): no forge build
setup-core: $(VENV)/.installed node_modules/.installed .build/__local__.json .dealvault/solc-cache/.warm

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

# The solc bridge (tools/solcx/solc-v0.8.28) answers for a native solc; compile once here.
.build/__local__.json: $(VENV)/.installed node_modules/.installed $(CONTRACT_SOURCES) ape-config.yaml
	$(BIN)/ape compile --force
	@touch $@

# deploy_vault's reproducible build (solc bridge, standard JSON) is cached by input hash under
# .dealvault/solc-cache: fill it here so the first `make demo` does not pay for a compile.
.dealvault/solc-cache/.warm: .build/__local__.json
	$(BIN)/python -c "from dealvault.deploy import build_contract; build_contract()"
	@mkdir -p $(@D) && touch $@

# forge's build of contracts/ and tests/forge (foundry.toml's default profile, through the solc bridge),
# which `make invariant` and `make fuzz` then find in forge's cache: compiling is setup, not a test.
.forge/out/.built: node_modules/.installed foundry.toml $(CONTRACT_SOURCES) $(shell find tests/forge -name '*.sol' 2>/dev/null)
	forge build --offline
	@touch $@

compile: setup

# ruff over everything Python; mypy --strict over the library (config in pyproject.toml).
lint: $(VENV)/.installed
	$(BIN)/ruff check dealvault scripts tests bench tools
	$(BIN)/mypy

# make test: setup, then lint, the alert rules and the suites side by side. Each suite starts its own
# chains on free ports and writes only its own temporary files, so they run side by side (TEST_JOBS at
# once, the longest first); each prints its output when it ends, then its wall and CPU time
# ("== stage: N s wall, C s CPU", tools/timed.sh).
# The unit suite itself runs on UNIT_WORKERS pytest-xdist workers, a test file per worker (a
# file's module fixtures, e.g. its kit, are built once).
TEST_JOBS ?= 3
UNIT_WORKERS ?= 2
STAGES := test-unit test-fork-auto test-fork-real invariant test-fork-usdt test-fuzz-fast test-slither lint alerts-test
test: setup
	@tools/timed.sh "make test suites" $(MAKE) --no-print-directory -j$(TEST_JOBS) --output-sync=target $(STAGES)

# Prints "== <stage>: N s wall, C s CPU" when the stage ends, passed or not (its exit status is kept).
TIMED = @tools/timed.sh $@
# The unit suite is make test's critical path; the stages beside it (but the forge invariant suite,
# whose fast profile has its own 2-minute budget) run at a lower priority
# (nice TEST_NICE) and take the CPU its workers leave while they wait on anvil, PostgreSQL and the
# processes they start (alone, its 2 workers keep 1.6 of the 2 cores busy).
TEST_NICE ?= 5
BESIDE = @tools/timed.sh $@ nice -n $(TEST_NICE)

test-unit: setup
	$(TIMED) $(BIN)/ape test tests/unit -q -n $(UNIT_WORKERS) --dist loadfile --no-loadscope-reorder
test-fuzz-fast: setup
	$(BESIDE) $(BIN)/pytest tests/fuzz -p no:ape_test -q
test-slither: setup
	$(BESIDE) $(BIN)/python tools/slither/run.py
test-fork-auto: setup
	$(BESIDE) bash tools/test_fork.sh -q
test-fork-real: setup
	$(BESIDE) bash tools/test_fork.sh --real-upstream -q -k "$(REAL_UPSTREAM_TESTS)"
test-fork-usdt: setup
	$(BESIDE) bash tools/test_fork.sh --usdt-style -q -k "$(USDT_STYLE_TESTS)"

# What the --usdt-style fork run (a Tether-style token at cUSDT) runs: the whole loop, the scenarios of
# the token's own features (blacklist, pause), those that move cUSDT through the kit's helpers (funding,
# approvals, drain_desk, swap_on_pair, the USDTz freeze) and the check that the run got that token.
USDT_STYLE_TESTS := full_loop or blacklist or stable_pause or desk or price_moved or usdtz_freeze or cusdt_is_the_kind

# What the --real-upstream fork run (the upstream started apart, found as on the real chain) runs: the
# mode changes only who starts the upstream, not what the fixtures do with it (tests/fork/conftest.py
# finds and checks it the same way in both modes), so it runs the whole loop, both deals, on it; the
# auto run (test-fork-auto) runs every fork test. `make test-fork` and CHAIN138_RPC_URL runs are not
# filtered.
REAL_UPSTREAM_TESTS := full_loop

# The fork suite alone. Against the real chain: CHAIN138_RPC_URL=https://... make test-fork
# The Prometheus alert rules (ops/prometheus): syntax, then promtool's unit tests of every rule.
# promtool comes with Debian's `prometheus` package (.ci/run installs it).
alerts-test:
	promtool check rules ops/prometheus/alerts.yml
	promtool test rules ops/prometheus/alerts_test.yml
	promtool check config ops/prometheus/prometheus.yml

# The in-process forge invariant suite (tests/forge, foundry.toml): the kit's chain exported once as a
# forge alloc (tools/forge/state.py, cached by input hash in .forge/state), the vault compiled by forge
# from contracts/ and deployed in setUp; 1,002 runs x 32 calls over three base states.
invariant: setup
	$(TIMED) bash tools/forge/run.sh

test-fork: setup
	bash tools/test_fork.sh -q

demo: setup-core
	$(BIN)/ape run demo

mirror: setup-core
	$(BIN)/ape run mirror --overlay

# Gas (vault vs direct EOA loop, tranche scaling), harness speed and the guard's poll over
# 1..1,000 vaults; not part of `make test`. Writes bench/results.json.
bench: setup-core
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.harness
	$(BIN)/python -m bench.guard

# The long invariant-fuzzing profile (not part of make test): forge, 20,001 runs x 32 calls
# (foundry.toml's `long` profile; about 14 min here).
fuzz: setup
	FOUNDRY_PROFILE=long bash tools/forge/run.sh

# The harness's long profile (not part of make test): the Hypothesis machine, 5,000 sequences x 30
# steps over anvil (about an hour here): the Python side's checks (raw reads, the lens, the owner's
# exit dry run) at depth; the vault's properties are forge's (make fuzz).
fuzz-harness: setup
	DEALVAULT_FUZZ_PROFILE=long $(BIN)/pytest tests/fuzz -p no:ape_test -q

# Proofs of the cap math (tests/prove/README.md): halmos over tests/prove (a failed or timed-out
# proof exits 1), then forge fuzzes what the solvers do not close, 1,000,000 runs each. Its own
# venv, pinned: halmos's solvers (z3, yices, cvc5) stay out of the project's .venv. ~4 min here.
PROVE_VENV := .venv-prove
PROVE_SOLVER := $(CURDIR)/$(PROVE_VENV)/bin/python $(CURDIR)/tests/prove/portfolio.py

$(PROVE_VENV)/.installed: tests/prove/requirements.txt
	@test -x $(PROVE_VENV)/bin/python || $(PYTHON) -m venv $(PROVE_VENV)
	$(PROVE_VENV)/bin/pip install -q -r tests/prove/requirements.txt
	@touch $@

prove: $(PROVE_VENV)/.installed node_modules/.installed
	FOUNDRY_PROFILE=prove $(PROVE_VENV)/bin/halmos --forge-build-out .forge/prove-out --solver-command "$(PROVE_SOLVER)"
	FOUNDRY_PROFILE=prove forge test --offline

# Mutation testing (tools/mutate/README.md; not part of `make test`): mutants of the vault's code, each
# compiled and run against the fast forge suite in a worker copy (2 workers); resumes an interrupted
# campaign. ARGS=--survivors re-runs the survivors (after adding tests that kill them), ARGS=--ape adds
# the ape vault unit tests on the forge survivors. Writes tools/mutate/report.json and SUMMARY.md, then
# checks every survivor against tools/mutate/triage.yaml.
mutate: setup
	$(BIN)/python tools/mutate/run.py $(ARGS)
	$(BIN)/python tools/mutate/run.py --check

clean:
	rm -rf .build contracts/.cache .pytest_cache .dealvault deployments/local .forge
