"""The TWAP window: a buy (and an operator's sell) needs the vault's observation of the pair
(taken at ``split``, or by ``observe()``) to be ``twapWindow`` old.

On a local chain (the spec's network is local, or a dry run's fork) the run advances the chain's
clock (``evm_increaseTime`` + ``evm_mine``) and says so; on a real network it waits until then,
printing the wait, at most ``max_wait`` seconds (else :class:`WaitNeeded`, exit 4, nothing sent:
re-run with ``--resume`` once the time has come).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from dealvault.run.chain import increase_time, latest_timestamp, mine, rpc_guard
from dealvault.run.errors import CapError, WaitNeeded
from dealvault.vault import Twap

if TYPE_CHECKING:
    from dealvault.run.deal import DealRun

__all__ = ["twap_ready"]


def twap_ready(run: DealRun, stable: str, leg: str) -> Twap:
    """The vault's TWAP observation of the [stable, USDTz] pair, made ready for ``leg``: at least
    twapWindow old. Returns ``lens.twap`` (read again if the clock moved)."""
    tw = run.reading(twap=True).twaps[stable]
    pair = f"{run.venues.stable_name(stable)}/USDTz"
    if tw.observedAt == 0:
        raise CapError(f"{leg}: the vault has no TWAP observation of the {pair} pair (split takes one; the operator or the "
                       "owner can call observe()); nothing sent")
    window = run.caps().twapWindow
    # IDealVaultLens: readyAt = observedAt + twapWindow; taken from both, so that a lens reporting it
    # early cannot make the leg revert TwapWindowShort
    ready = max(tw.readyAt, tw.observedAt + window)
    w3, spec = run.w3, run.spec
    local = spec.network.local or run.dry
    with rpc_guard("eth_getBlockByNumber"):
        if local:
            # the local node's clock, from a new (empty) block: anvil restarted from a state dump
            # stamps new blocks with the wall clock, which may be behind the last block's time
            mine(w3)
            run.invalidate()
        now = latest_timestamp(w3)
    if ready <= now:
        return tw
    wait = ready - now
    if local:
        with rpc_guard("evm_increaseTime"):
            increase_time(w3, wait)
        where = "fork" if run.dry and not spec.network.local else "local chain"
        run.say(f"{leg}: the TWAP observation of the {pair} pair (taken at {tw.observedAt}) is ready at {ready} "
                f"(twapWindow {window} s): advanced the {where}'s clock by {wait} s (evm_increaseTime + evm_mine)")
    else:
        _wait_for_clock(run, leg, pair, ready, now, window)
    run.invalidate()
    return run.reading(twap=True).twaps[stable]


def _wait_for_clock(run: DealRun, leg: str, pair: str, ready: int, now: int, window: int) -> None:
    """A real network: wait for a block stamped ``ready`` or later, at most ``run.max_wait`` s."""
    wait = ready - now
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ready))
    deal = run.spec.deal_id
    if wait > run.max_wait:
        raise WaitNeeded(f"{leg}: the TWAP observation of the {pair} pair is ready at {when} (block time {ready}, "
                         f"twapWindow {window} s), in {wait} s: longer than the maximum wait {int(run.max_wait)} s; "
                         f"nothing sent: re-run with --resume {deal} after {when}")
    run.say(f"{leg}: waiting {wait} s for the TWAP observation of the {pair} pair (ready at {when}, twapWindow {window} s; "
            f"max wait {int(run.max_wait)} s)")
    deadline = time.monotonic() + wait + max(120.0, wait / 10)
    slow = run.sender.poll >= 1
    while now < ready:
        if time.monotonic() > deadline:
            raise WaitNeeded(f"{leg}: the chain's clock has not reached {when} (block time {ready}; latest block {now}); "
                             f"nothing sent: re-run with --resume {deal}")
        time.sleep(min(max(ready - now, 1), 15) if slow else min(max(ready - now, 0.2), 1.0))
        with rpc_guard("eth_getBlockByNumber"):
            now = latest_timestamp(run.w3)
    run.say(f"{leg}: the TWAP observation is ready (block time {now})")
