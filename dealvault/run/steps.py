"""The deal's five steps, by name. Each decides from the vault's state (its risk view and its
logs) what is left to do, checks the caps off-chain (:mod:`dealvault.run.caps`) and sends the
legs through the run's :class:`~dealvault.run.sender.LegSender`; so a re-run continues from the
first leg not done.

====  ==========  =====================================================================
0     split       (owner funds the vault on local chains) -> ``split``
1     position    ``supply`` the working bucket as collateral -> ``borrow`` to the target LTV
2     buy         ``buy`` USDTz below par, sized so the price stays within the discount limit
3     monetize    the redemption ladder, tranche by tranche (``redeem``; or ``sell``)
4     close       ``repay`` the debt from the books -> ``close`` (PnL)
====  ==========  =====================================================================

A vault in HOLDING (a tranche failed) stops the steps with :class:`Holding`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dealvault.run.caps import (
    borrow_amount,
    buy_within,
    eth_text,
    nav_e26,
    require,
    sell_floor_out,
    twap_bound,
    units_text,
)
from dealvault.run.errors import CapError, InputError, OwnerActionNeeded
from dealvault.run.twap import twap_ready
from dealvault.units import BPS, E6, STABLE_DECIMALS, from_units
from dealvault.vault import Leg, Phase, RiskView, rung_number

if TYPE_CHECKING:
    from dealvault.run.caps import Caps
    from dealvault.run.deal import DealRun

__all__ = ["STEPS", "STEP_ORDER", "Holding", "split", "position", "buy", "monetize", "close", "plan_buy", "parse_until", "sell_usdtz",
           "MAX_UINT"]

MAX_UINT = 2**256 - 1
DEADLINE_S = 1800  # a buy's or a sell's deadline: the latest block's time + this


class Holding(Exception):  # noqa: N818 - a signal between the steps and the driver, never raised to a caller
    """The vault is in HOLDING: the steps stop; the report lists the safe options."""


def _not_holding(rv: RiskView) -> None:
    if rv.phase == Phase.HOLDING:
        raise Holding()


def split(run: DealRun) -> None:
    """Step 0: the owner funds the vault (local chains only; else an owner action), then split."""
    rv = run.risk()
    if rv.phase != Phase.FUNDED:
        return
    spec = run.spec
    need = spec.capital_wei - rv.fundedCapital
    if need > 0:
        if run.owner is None or not (spec.network.local or run.dry):
            raise OwnerActionNeeded(
                f"the vault holds {eth_text(rv.fundedCapital)} of the deal's {eth_text(spec.capital_wei)} ETH: the owner must fund "
                f"{eth_text(need)} ETH (`ape run owner_tx fund {eth_text(need)} --vault {run.venues.vault} "
                + (f"--lens {run.venues.lens} " if run.venues.lens else "")
                + f"--rpc <node URL> --out fund.json` writes the Safe transaction, simulated from the owner), then re-run with "
                f"--resume {spec.deal_id}")
        require("fund", rv)
        run.send(0, "fund", (), {"value_wei": need}, rv=rv, sender=run.owner, value=need)
        rv = run.risk()
    require("split", rv)
    run.send(0, "split", (), {}, rv=rv)


def position(run: DealRun) -> None:
    """Step 1: supply the working bucket as collateral, then borrow to the target LTV."""
    rv = run.risk()
    _not_holding(rv)
    wrapper, stable = run.venues.wrapper(run.spec), run.stable
    if rv.workingEth > 0 and run.history().done(Leg.Borrow) == 0:
        amount = rv.workingEth
        require("supply", rv)
        run.send(1, "supply", (wrapper, amount), {"wrapper": wrapper, "amount": amount}, rv=rv)
        rv = run.risk()
    if run.history().done(Leg.Borrow) == 0:
        require("borrow", rv)
        caps = run.caps()
        amount = borrow_amount(rv, caps)
        run.send(1, "borrow", (stable, amount), {"stable": stable, "amount": amount, "target_ltv_bps": caps.target_ltv_bps}, rv=rv)


def plan_buy(run: DealRun, rv: RiskView, caps: Caps) -> tuple[int, int, dict[str, Any]]:
    """The largest amountIn <= the stablecoin held whose quote keeps the price within the
    discount limit and the exposure within its cap. Returns (amountIn, quote, info)."""
    stable = run.stable
    path = [stable, run.venues.usdtz]
    limit_e6 = caps.buy_limit_e6()
    held = run.stable_books(stable)
    nav, usdtz = nav_e26(rv), rv.usdtzHeld

    # The binary search below, with its next SEARCH_DEPTH levels of midpoints quoted in one
    # batch: the same amounts as one quote per step, in about 20 / SEARCH_DEPTH round trips.
    quoted: dict[int, int] = {}

    def quote_all(amounts: list[int]) -> None:
        todo = [a for a in dict.fromkeys(amounts) if a > 0 and a not in quoted]
        if todo:
            quoted.update(zip(todo, run.quotes(todo, path)))

    def ok(a: int) -> bool:
        return a <= 0 or buy_within(a, quoted[a], usdtz=usdtz, nav=nav, caps=caps)

    stop = max(held // E6, 1)
    lo, hi = 0, held
    quote_all([held, *midpoints(lo, hi, SEARCH_DEPTH, stop)])
    if ok(held):
        return held, quoted.get(held, 0), {"limit_e6": limit_e6, "bounded_by": "stable held"}
    while hi - lo > stop:
        quote_all(midpoints(lo, hi, SEARCH_DEPTH, stop))
        for _ in range(SEARCH_DEPTH):
            if hi - lo <= stop:
                break
            mid = (lo + hi) // 2
            if ok(mid):
                lo = mid
            else:
                hi = mid
    lo = lo // E6 * E6 if lo > E6 else lo  # whole stablecoin units
    if lo:
        quote_all([lo])
    return lo, (quoted[lo] if lo else 0), {"limit_e6": limit_e6, "bounded_by": "price limit / exposure cap"}


#: Levels of the buy's binary search quoted per JSON-RPC batch: 2**5 - 1 = 31 quotes, four round
#: trips for the ~20 levels instead of ~20 (nodes cap batches far above: geth 1,000, Besu 1,024).
SEARCH_DEPTH = 5


def midpoints(lo: int, hi: int, depth: int, stop: int) -> list[int]:
    """Every midpoint the binary search over (lo, hi) can visit in its next ``depth`` steps."""
    if depth == 0 or hi - lo <= stop:
        return []
    mid = (lo + hi) // 2
    return [mid, *midpoints(lo, mid, depth - 1, stop), *midpoints(mid, hi, depth - 1, stop)]


def buy(run: DealRun) -> None:
    """Step 2: once the TWAP observation is ready and the pair is not pushed up, buy USDTz below par."""
    rv = run.risk()
    _not_holding(rv)
    if run.history().done(Leg.Buy) > 0:
        return
    require("buy", rv)
    stable = run.stable
    tw = twap_ready(run, stable, "buy")
    rv = run.risk()  # the clock may have moved: the oracle's age, the debt's interest
    require("buy", rv)
    caps = run.caps()
    twap_bound("buy", f"{run.venues.stable_name(stable)}/USDTz", tw, caps.maxSlippageBps)
    amount, quote, info = plan_buy(run, rv, caps)
    if amount <= 0:
        raise CapError(f"buy: no amount of {run.spec.stablecoin} buys USDTz at <= {from_units(info['limit_e6'], STABLE_DECIMALS)} "
                       f"(min discount {caps.minDiscountBps} bps) within the exposure cap; nothing sent")
    min_out = quote * (BPS - caps.maxSlippageBps) // BPS
    deadline = run.block_time() + DEADLINE_S
    run.send(2, "buy", (stable, amount, min_out, deadline),
             {"stable": stable, "amount_in": amount, "min_out": min_out, "quote": quote, "deadline": deadline,
              "price_e6": amount * E6 // max(quote, 1), "spot_e6": tw.spotE6, "twap_e6": tw.twapE6, **info}, rv=rv)


def monetize(run: DealRun) -> None:
    """Step 3: the redemption ladder, tranche by tranche (and/or a sale on the router); Holding
    when a tranche failed."""
    spec = run.spec
    keep = run.history().bought - run.history().bought * spec.monetize.monetize_bps // BPS
    via = spec.monetize.via
    if via in ("redeem", "redeem-then-sell"):
        _ladder(run, keep)
    if via in ("sell", "redeem-then-sell"):
        sell_usdtz(run, keep, after_ladder=via == "redeem-then-sell")


def _ladder(run: DealRun, keep: int) -> None:
    spec, stable = run.spec, run.stable
    caps = run.caps()  # rungs and the minimum tranche are fixed at deployment
    while True:
        rv = run.risk()
        _not_holding(rv)
        left = rv.usdtzHeld - keep
        if left <= 0:
            break
        if len(run.record.tranches(spec.deal_id)) >= spec.ladder.max_tranches:
            run.say(f"ladder: max_tranches {spec.ladder.max_tranches} reached")
            break
        k = rv.rung
        if k >= spec.ladder.rungs:
            run.say(f"ladder: rung {rung_number(k)} is above the deal's ladder.rungs {spec.ladder.rungs}")
            break
        size = min(caps.rungs[min(k, 2)], spec.vault.rungs[k])
        amount = min(size * spec.ladder.tranche_bps // BPS, left)
        if amount <= 0:
            break
        # the vault refuses a tranche below minTranche unless it is all the USDTz held
        # (TrancheBelowMinimum); minTranche <= every rung, so raising it stays within the rung
        held, min_tranche = rv.usdtzHeld, caps.minTranche
        if amount < min_tranche and amount != held:
            if left < min_tranche:
                run.say(f"ladder: the {units_text(left)} USDTz left to monetize is below the vault's minimum tranche "
                        f"{units_text(min_tranche)} (and not all the {units_text(held)} held): not redeemed")
                break
            amount = min_tranche
        require("redeem", rv)
        res = run.send(3, "redeem", (stable, amount), {"stable": stable, "amount": amount, "rung": k}, rv=rv)
        if res.event("RedemptionFailed") is not None:
            raise Holding()


def sell_usdtz(run: DealRun, keep: int, *, after_ladder: bool = False, step: int = 3) -> None:
    """Sell the USDTz held above ``keep`` on [stable, USDTz] (the operator's sell: the TWAP bound, at
    least the vault's sell floor; CapError, nothing sent, where the router pays less)."""
    stable = run.stable
    rv = run.risk()
    if rv.phase == Phase.HOLDING and after_ladder:
        raise Holding()
    left = rv.usdtzHeld - keep
    if left <= 0:
        return
    require("sell", rv)
    caps = run.caps()
    # the operator's sell: the observation twapWindow old, spot at most maxSlippageBps below the TWAP
    twap_bound("sell", f"{run.venues.stable_name(stable)}/USDTz", twap_ready(run, stable, "sell"), caps.maxSlippageBps)
    quote = run.quote(left, [run.venues.usdtz, stable])
    floor_out = sell_floor_out(left, caps)
    if quote < floor_out:
        raise CapError(f"sell {units_text(left)} USDTz: the router pays {units_text(quote)} "
                       f"({from_units(quote * E6 // left, STABLE_DECIMALS)} per USDTz), "
                       f"below the floor {from_units(caps.sellFloorPrice, STABLE_DECIMALS)}; nothing sent")
    min_out = max(quote * (BPS - caps.maxSlippageBps) // BPS, floor_out)
    deadline = run.block_time() + DEADLINE_S
    run.send(step, "sell", (stable, left, min_out, deadline),
             {"stable": stable, "amount_in": left, "min_out": min_out, "quote": quote}, rv=rv)


def close(run: DealRun) -> None:
    """Step 4: repay the debt from the books, then close (an owner action if debt remains)."""
    rv = run.risk()
    if rv.phase == Phase.CLOSED:
        return
    _not_holding(rv)
    stable = run.stable
    if rv.debt > 0:
        if run.stable_books(stable) == 0:
            raise OwnerActionNeeded(f"repay: debt {units_text(rv.debt)} and no {run.spec.stablecoin} on the books: "
                                    "owner repay (`ape run owner_tx owner-repay STABLE AMOUNT`) or `--unwind`")
        require("repay", rv)
        run.send(4, "repay", (stable, MAX_UINT), {"stable": stable, "amount": "max"}, rv=rv)
        rv = run.risk()
    if rv.debt > 0:
        raise OwnerActionNeeded(f"close: debt {units_text(rv.debt)} remains after repaying from the books: owner repay "
                                "(`ape run owner_tx owner-repay STABLE AMOUNT`) or `--unwind`")
    require("close", rv)
    run.send(4, "close", (), {}, rv=rv)


#: The steps by number, as ``--until`` takes them (the number or the name).
STEPS: dict[int, str] = {0: "split", 1: "position", 2: "buy", 3: "monetize", 4: "close"}
STEP_ORDER: tuple[Callable[[DealRun], None], ...] = (split, position, buy, monetize, close)


def parse_until(until: Any) -> int | None:
    """``--until``: a step's number or name -> its number (None: run every step)."""
    if until is None:
        return None
    allowed = f"--until {until!r}: allowed: 0..4 or {' | '.join(STEPS.values())}"
    if isinstance(until, int) and not isinstance(until, bool):
        n = until
    else:
        s = str(until).strip().lower()
        names = {v: k for k, v in STEPS.items()}
        if s in names:
            n = names[s]
        elif s.isdigit():
            n = int(s)
        else:
            raise InputError(allowed)
    if n not in STEPS:
        raise InputError(allowed)
    return n
