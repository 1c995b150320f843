#!/usr/bin/env bash
# The in-process forge invariant suite (tests/forge): build the kit's state if needed, then `forge test`.
#   tools/forge/run.sh [forge test args...]
# FOUNDRY_PROFILE picks the profile (foundry.toml): default (make test), long (make fuzz), mutate.
# DV_FORGE_STATE=/abs/dir shares one state between copies of the repo: it is (re)built there if
# stale and copied to .forge/state, where the suite reads it. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
export SOLCX_BINARY_PATH=$ROOT/tools/solcx PATH=$ROOT/.venv/bin:$ROOT/node_modules/.bin:$PATH PYTHONPATH=$ROOT
PROFILE=${FOUNDRY_PROFILE:-default}
fail() { echo "forge invariant suite: FAILED ($1; profile $PROFILE)" >&2; exit 1; }

STATE=${DV_FORGE_STATE:-$ROOT/.forge/state}
python tools/forge/state.py "$STATE" || fail "building the kit state in $STATE"
if [ "$(cd "$STATE" && pwd -P)" != "$(mkdir -p .forge/state && cd .forge/state && pwd -P)" ]; then
    cp "$STATE"/alloc.json "$STATE"/kit.json "$STATE"/inputs.sha256 .forge/state/ || fail "copying $STATE"
fi
start=$(date +%s)
forge test "$@" || fail "forge test $*"
echo "forge invariant suite: passed (profile $PROFILE, $(( $(date +%s) - start )) s)"
