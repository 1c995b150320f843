"""``execute_deal --unwind DEAL_ID``: take a deal to CLOSED from whatever state it is in, with the
operator's legs where they can do it and the owner's Safe batch where they cannot.

In order, each part only if there is something to do (each leg simulated, recorded and checked
like any other, :mod:`dealvault.run.sender`):

1. FUNDED with capital: ``split`` (``close`` needs SPLIT or later);
2. USDTz held, outside HOLDING: the redemption ladder at par (step 3); if a tranche fails the vault
   is in HOLDING and the unwind goes on there;
3. USDTz still held: ``sell`` it if the pair pays at least the vault's sell floor (else ``close``
   writes it off at cost, against the operator's loss budget);
4. debt: ``repay`` from the stablecoin books;
5. debt left: ``deleverage``, collateral sold on [WETH9, stable] sized so that the vault's bound
   (value at the oracle price less the slippage cap) is the debt + :data:`DELEVERAGE_TARGET_BPS`
   (within the vault's ``DELEVERAGE_MARGIN_BPS``), at most :data:`DELEVERAGE_ROUNDS` times;
6. debt still left (no collateral, the pair pays too little): the owner's ``owner-repay`` batch is
   written (simulated from the owner; :func:`dealvault.run.owner.prepare_batch`), exit 4;
7. ``close``; if the vault refuses the operator's close (e.g. ``LossBudgetExceeded`` for a
   write-off), the owner's ``close`` batch is written (the owner's close is not limited by the
   budget), exit 4.

A CLOSED vault keeps the owner's funds until ``withdraw``: the unwind writes that batch too (ETH
and the stablecoin left), for the owner to execute; it is not needed for the unwind to be done.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from dealvault.paths import ROOT
from dealvault.run.caps import require, units_text
from dealvault.run.errors import CapError, ChainError, LegRejected, OwnerActionNeeded
from dealvault.run.steps import DEADLINE_S, MAX_UINT, Holding, monetize, sell_usdtz
from dealvault.units import ETH_DECIMALS, STABLE_DECIMALS, amount_text
from dealvault.vault import Phase, RiskView
from dealvault.vault.risk import DELEVERAGE_MARGIN_BPS, deleverage_bound_wei

if TYPE_CHECKING:
    from dealvault.run.deal import DealRun

__all__ = ["DELEVERAGE_ROUNDS", "DELEVERAGE_TARGET_BPS", "BATCH_DIR", "deleverage_amount", "unwind"]

#: A deleverage's bound is sized to the debt x (1 + this), within the vault's DELEVERAGE_MARGIN_BPS.
DELEVERAGE_TARGET_BPS = 50
assert DELEVERAGE_TARGET_BPS < DELEVERAGE_MARGIN_BPS
DELEVERAGE_ROUNDS = 3
#: Where the unwind writes the owner's batches (DEALVAULT_BATCH_DIR overrides it).
BATCH_DIR = Path(os.environ.get("DEALVAULT_BATCH_DIR") or ROOT / ".dealvault" / "batches")
_STEP_MONETIZE, _STEP_CLOSE = 3, 4


def unwind(run: DealRun) -> None:
    """The unwind (see the module's docstring). Raises OwnerActionNeeded (exit 4) with the batch's path."""
    rv = run.risk()
    if rv.phase == Phase.CLOSED:
        run.say("unwind: the vault is CLOSED already")
        _owner_withdraw(run, rv)
        return
    if rv.phase == Phase.FUNDED:
        if rv.fundedCapital == 0:
            run.say("unwind: the vault is FUNDED with no capital: nothing to unwind")
            return
        require("split", rv)
        run.send(0, "split", (), {}, rv=rv)
    rv = run.risk()
    if rv.usdtzHeld > 0 and rv.phase != Phase.HOLDING:
        try:
            monetize(run)
        except Holding:
            run.say("unwind: a tranche failed and the vault is in HOLDING; unwinding there")
    rv = run.risk()
    if rv.usdtzHeld > 0:
        try:
            sell_usdtz(run, 0, step=_STEP_MONETIZE)
        except (CapError, LegRejected) as exc:
            run.say(f"unwind: {units_text(rv.usdtzHeld)} USDTz not sold ({exc}); close writes it off at cost")
    _repay(run)
    rv = run.risk()
    if rv.debt > 0:
        raise _owner_action(run, "owner-repay", [run.stable, _with_margin(rv.debt)],
                            f"debt {units_text(rv.debt)} {run.spec.stablecoin} is left after repaying from the books and "
                            "deleveraging")
    require("close", rv)
    try:
        run.send(_STEP_CLOSE, "close", (), {}, rv=rv)
    except LegRejected as exc:
        raise _owner_action(run, "close", [], f"the vault refuses the operator's close ({exc}); the owner's close is "
                                               "not limited by the loss budget") from exc
    _owner_withdraw(run, run.risk())


def _repay(run: DealRun) -> None:
    """Repay from the books, then deleverage what is left (at most DELEVERAGE_ROUNDS legs)."""
    stable = run.stable
    rv = run.risk()
    if rv.debt > 0 and run.stable_books(stable) > 0:
        require("repay", rv)
        run.send(_STEP_CLOSE, "repay", (stable, MAX_UINT), {"stable": stable, "amount": "max"}, rv=rv)
    for _ in range(DELEVERAGE_ROUNDS):
        rv = run.risk()
        if rv.debt == 0:
            return
        amount = deleverage_amount(rv, run.caps().maxSlippageBps, rv.collateralWeth)
        if amount == 0:
            run.say("unwind: no collateral left to deleverage")
            return
        wrapper = run.venues.wrapper(run.spec)
        require("deleverage", rv)
        try:
            run.send(_STEP_CLOSE, "deleverage", (wrapper, stable, amount, 0, run.block_time() + DEADLINE_S),
                     {"wrapper": wrapper, "stable": stable, "collateral": amount}, rv=rv)
        except LegRejected as exc:
            run.say(f"unwind: deleverage of {amount_text(amount, ETH_DECIMALS)} collateral refused ({exc})")
            return


def deleverage_amount(rv: RiskView, max_slippage_bps: int, collateral: int) -> int:
    """The collateral (wei) whose sale the vault bounds at debt x (1 + DELEVERAGE_TARGET_BPS): its
    value at the oracle price x (1 - slippage cap) = that; at most ``collateral``. 0 if no price.
    Rounded down, like the vault's bound (never above it); the target's 50 bps over the debt
    absorbs the wei so lost (before the bound was shared, this rounded up by at most 2 wei)."""
    return min(deleverage_bound_wei(rv.debt, rv.ethPrice, max_slippage_bps, DELEVERAGE_TARGET_BPS), collateral)


def _with_margin(debt: int) -> str:
    # the owner repays the debt + 1% (interest accrues between writing and executing; the vault
    # takes only the debt and returns the rest)
    return amount_text(debt * 101 // 100 + 1, STABLE_DECIMALS, grouped=False)


def _owner_action(run: DealRun, action: str, args: list[str], why: str) -> OwnerActionNeeded:
    """Write the owner's batch for ``action`` (simulated from the owner) and the exit-4 error naming it."""
    try:
        path = _write_batch(run, action, args)
    except Exception as exc:  # the simulation refused it (e.g. the owner lacks the funds) or no node
        return OwnerActionNeeded(f"unwind: {why}: the owner must {' '.join([action, *args[1:]])}, but its batch cannot be "
                                 f"written now ({exc}); see `ape run owner_tx --help`")
    return OwnerActionNeeded(f"unwind: {why}: the owner's batch ({' '.join([action, *args[1:]])}) is written to {path}, "
                             f"simulated from the owner; execute it in the Safe, then --unwind {run.spec.deal_id} again")


def _owner_withdraw(run: DealRun, rv: RiskView) -> None:
    eth = rv.coreEth + rv.workingEth + rv.opportunisticEth
    args: list[str] = []
    if eth > 0:
        args += ["withdraw", "ETH", amount_text(eth, ETH_DECIMALS, grouped=False)]
    if rv.stableHeld > 0:
        args += (["+"] if args else []) + ["withdraw", run.stable, amount_text(rv.stableHeld, STABLE_DECIMALS, grouped=False)]
    if not args:
        return
    try:
        path = _write_batch(run, args[0], args[1:])
    except Exception as exc:
        run.say(f"unwind: the owner's withdraw batch could not be written ({exc}); `ape run owner_tx withdraw ...` writes it")
        return
    run.say(f"unwind: the owner's withdraw batch ({' '.join(args)}) is written to {path}: the funds stay in the vault "
            "until the owner executes it")


def _write_batch(run: DealRun, action: str, args: list[str]) -> Path:
    from dealvault.run.owner import prepare_batch, write_batch

    lens = run.venues.lens
    if lens is None:
        raise ChainError("the vault has no lens recorded")
    batch = prepare_batch(run.w3, action, args, vault=run.venues.vault, lens=lens, decimals=STABLE_DECIMALS)
    n = sum(1 for _ in BATCH_DIR.glob(f"{run.spec.deal_id}-unwind-*.json")) if BATCH_DIR.exists() else 0
    return write_batch(batch, BATCH_DIR / f"{run.spec.deal_id}-unwind-{n + 1}-{action}.json")
