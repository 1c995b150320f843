#!/usr/bin/env bash
# The fork suite: the whole loop on a fork of Chain 138.
#
#   tools/test_fork.sh                  # offline: tests/fork starts an embedded upstream mirror itself
#   tools/test_fork.sh --real-upstream  # "real upstream" mode: a separate mirror is started HERE and
#                                       # CHAIN138_RPC_URL points at it, so the tests take the upstream
#                                       # as found and start nothing (the code path used against the
#                                       # real chain)
#   CHAIN138_RPC_URL=https://... tools/test_fork.sh   # fork the real Chain 138 as it is now
#   tools/test_fork.sh --usdt-style [--real-upstream] -k ...
#                                       # the upstream mirror has a Tether-style token at cUSDT instead of
#                                       # Circle's FiatToken (DEALVAULT_FORK_CUSDT=tether; no bool returns,
#                                       # USDT's approve rule, an owner who pauses and blacklists)
#
# Extra arguments go to `ape test` (e.g. -s for the risk tables, -x). Called by `make test` and
# `make test-fork`. Prints the suite's wall time.
set -euo pipefail
cd "$(dirname "$0")/.."
export SOLCX_BINARY_PATH="$PWD/tools/solcx" PATH="$PWD/.venv/bin:$PWD/node_modules/.bin:$PATH"

mode=auto
while [[ $# -gt 0 ]]; do
    case "$1" in
        --real-upstream) mode=real-upstream; shift ;;
        --usdt-style) export DEALVAULT_FORK_CUSDT=tether; shift ;;
        *) break ;;
    esac
done
if [[ -n "${DEALVAULT_FORK_CUSDT:-}" && -n "${CHAIN138_RPC_URL:-}" ]]; then
    echo "--usdt-style (DEALVAULT_FORK_CUSDT=${DEALVAULT_FORK_CUSDT}) changes the mirror this script starts; the chain at CHAIN138_RPC_URL is taken as found" >&2
    exit 2
fi

pid=""
cleanup() { if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi; }
trap cleanup EXIT

if [[ "$mode" == real-upstream ]]; then
    if [[ -n "${CHAIN138_RPC_URL:-}" ]]; then
        echo "--real-upstream starts its own mirror; unset CHAIN138_RPC_URL (it is ${CHAIN138_RPC_URL})" >&2
        exit 2
    fi
    urlfile="$(mktemp)"
    # A separate upstream: anvil (chain id 138) + the mirror contracts only, stopped on exit.
    python - "$urlfile" <<'PY' &
import os, signal, sys, time
from dealvault.kit import start_kit
kit = start_kit(overlay=False, cusdt_kind=os.environ.get("DEALVAULT_FORK_CUSDT", "fiattoken"))
def stop(*_):
    kit.stop(); sys.exit(0)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
open(sys.argv[1], "w").write(kit.node.url)
while True:
    time.sleep(1)
PY
    pid=$!
    for _ in $(seq 1 300); do [[ -s "$urlfile" ]] && break; kill -0 "$pid" 2>/dev/null || { echo "the upstream mirror did not start" >&2; exit 1; }; sleep 0.1; done
    [[ -s "$urlfile" ]] || { echo "the upstream mirror did not start within 30 s" >&2; exit 1; }
    export CHAIN138_RPC_URL="$(cat "$urlfile")"
    rm -f "$urlfile"
    echo "real-upstream mode: separate mirror at $CHAIN138_RPC_URL (pid $pid)"
fi

start=$(date +%s)
status=0
ape test --network chain138:mainnet-fork:foundry tests/fork "$@" || status=$?
echo "fork suite ($mode${DEALVAULT_FORK_CUSDT:+, cUSDT ${DEALVAULT_FORK_CUSDT}}${CHAIN138_RPC_URL:+, upstream ${CHAIN138_RPC_URL}}): $(( $(date +%s) - start )) s wall time"
exit $status
