"""Where a leg's caps are checked off-chain, before anything is sent (the vault checks them again).

- :class:`Caps`: the vault's parameters now (``lens.params``), each tightened by the deal spec
  where it has its own; which way is tighter comes from :mod:`dealvault.vault.params`, the math
  from :mod:`dealvault.vault.risk` (RiskLib in Python, pinned to the contract by a parity test);
- :func:`require`: the leg x phase table, paused, and a Fresh oracle for the legs that need one;
- :func:`borrow_amount`: the borrow up to the target LTV, within the LTV cap;
- :func:`buy_within`: a buy's quote within the discount limit and the exposure cap;
- :func:`twap_bound`: the pair's spot price within ``max_slippage_bps`` of its TWAP;
- :func:`sell_floor_out`: what a sale must pay at least (the floor price).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from dealvault.run.errors import CapError
from dealvault.units import BPS, E6, ETH_DECIMALS, STABLE_DECIMALS, STABLE_TO_E26, USD_DECIMALS, from_units
from dealvault.vault import LEG_PHASES, RISK_ADDING, OracleStatus, Params, Phase, RiskView, Twap
from dealvault.vault import risk as risklib
from dealvault.vault.params import BY_NAME

if TYPE_CHECKING:
    from dealvault.spec import DealSpec

__all__ = [
    "DEAL_LEGS", "Caps", "tightest", "require", "borrow_amount", "nav_e26", "buy_within", "twap_bound", "sell_floor_out",
    "eth_text", "units_text",
]

#: The vault functions a deal's steps send (their phases are checked before sending).
DEAL_LEGS = frozenset({"fund", "split", "supply", "borrow", "buy", "redeem", "sell", "repay", "close"})
#: Legs that need a Fresh oracle: the risk-adding ones, and split (it books the capital at the oracle price).
NEEDS_FRESH = RISK_ADDING | {"split"}


def eth_text(wei: int) -> str:
    """Wei as ETH, exactly (``1.5``)."""
    return f"{from_units(wei, ETH_DECIMALS).normalize():f}"


def units_text(v: int) -> str:
    """6-dp units as whole units, exactly (``50000``)."""
    return f"{from_units(v, STABLE_DECIMALS).normalize():f}"


def tightest(name: str, *values: int) -> int:
    """The tightest of ``values`` for the vault parameter ``name`` (its direction from the schema)."""
    spec = BY_NAME[name]
    if spec.higher_is_tighter is None:
        raise ValueError(f"{name} is not ordered: no tighter value")
    return max(values) if spec.higher_is_tighter else min(values)


@dataclass(frozen=True)
class Caps:
    """The caps a deal runs within: the vault's parameters now, each tightened by the spec where
    it has its own. Units as the contract's (bps, priceE6, seconds, 6-dp units)."""

    maxLtvBps: int
    maxExposureBps: int
    minDiscountBps: int
    maxSlippageBps: int
    sellFloorPrice: int
    twapWindow: int
    minTranche: int
    rungs: tuple[int, int, int]
    target_ltv_bps: int  # the spec's target LTV, within maxLtvBps: clamped here, once

    @classmethod
    def of(cls, params: Params, spec: DealSpec) -> Caps:
        ltv = tightest("maxLtvBps", params.maxLtvBps, spec.vault.max_ltv_bps)
        return cls(
            maxLtvBps=ltv,
            maxExposureBps=tightest("maxExposureBps", params.maxExposureBps, spec.vault.max_exposure_bps),
            minDiscountBps=tightest("minDiscountBps", params.minDiscountBps, spec.min_discount_bps),
            maxSlippageBps=tightest("maxSlippageBps", params.maxSlippageBps, spec.max_slippage_bps),
            sellFloorPrice=tightest("sellFloorPrice", params.sellFloorPrice, spec.vault.sell_floor_price_e6),
            twapWindow=params.twapWindow,
            minTranche=params.minTranche,
            rungs=params.rungs,
            target_ltv_bps=tightest("maxLtvBps", spec.target_ltv_bps, ltv),
        )

    def buy_limit_e6(self) -> int:
        """The highest price (1e6 = $1 per USDTz) a buy may pay: par less the minimum discount."""
        return (BPS - self.minDiscountBps) * 100


def require(leg: str, rv: RiskView) -> None:
    """The vault's own preconditions for ``leg``, off-chain: its phase, paused, the oracle."""
    allowed = LEG_PHASES[leg]
    if not allowed.allows(rv.phase):
        names = [p.name for p in Phase if allowed.allows(p)]
        raise CapError(f"{leg}: the vault is in phase {rv.phase.name}; {leg} is allowed only in {', '.join(names)}")
    if leg in RISK_ADDING and rv.paused:
        raise CapError(f"{leg}: the vault is paused (risk-adding legs are blocked); the owner unpauses")
    if leg in NEEDS_FRESH and rv.oracleStatus != OracleStatus.Fresh:
        who = "split needs" if leg == "split" else "risk-adding legs need"
        raise CapError(f"{leg}: the ETH/USD oracle is {rv.oracleStatus.name} (updatedAt {rv.priceUpdatedAt}, "
                       f"answer {rv.ethPrice}); {who} a Fresh price")


def borrow_amount(rv: RiskView, caps: Caps) -> int:
    """The borrow that brings the debt to the target LTV of the collateral at the oracle price;
    CapError if the debt is there already or the result would exceed the LTV cap."""
    coll, price, debt, target = rv.collateralWeth, rv.ethPrice, rv.debt, caps.target_ltv_bps
    want = coll * price * target // (STABLE_TO_E26 * BPS)
    amount = want - debt
    if amount <= 0:
        raise CapError(f"borrow: debt {units_text(debt)} already at or above the target {units_text(want)} ({target} bps of "
                       f"{eth_text(coll)} ETH collateral at ${from_units(price, USD_DECIMALS)})")
    if not risklib.ltv_within(debt + amount, coll, price, caps.maxLtvBps):
        raise CapError(f"borrow {units_text(amount)}: LTV after {risklib.ltv_bps(debt + amount, coll, price)} bps > "
                       f"cap {caps.maxLtvBps} bps")
    return amount


def nav_e26(rv: RiskView) -> int:
    """The vault's NAV as the caps see it (E26 USD; ETH counts for nothing without a Fresh price)."""
    price = rv.ethPrice if rv.oracleStatus == OracleStatus.Fresh else 0
    eth = rv.coreEth + rv.workingEth + rv.opportunisticEth + rv.collateralWeth
    return risklib.nav_e26(eth, price, rv.stableHeld, rv.usdtzCost, rv.debt)


def buy_within(amount_in: int, out: int, *, usdtz: int, nav: int, caps: Caps) -> bool:
    """Whether buying ``out`` USDTz for ``amount_in`` stablecoin keeps the price within the
    discount limit and the exposure within its cap (a buy moves stablecoin to cost: NAV unchanged)."""
    if out <= 0 or amount_in * E6 > caps.buy_limit_e6() * out:
        return False
    return risklib.exposure_within(usdtz + out, nav, caps.maxExposureBps)


def twap_bound(leg: str, pair: str, tw: Twap, slip_bps: int) -> None:
    """The vault's own check, off-chain: spot within ``slip_bps`` above (buy) or below (sell) the TWAP."""
    spot, twap = tw.spotX112, tw.twapX112

    def p(e6: int) -> Decimal:
        return from_units(e6, STABLE_DECIMALS)

    if leg == "buy" and spot * BPS > twap * (BPS + slip_bps):
        raise CapError(f"buy: the {pair} pair's spot price {p(tw.spotE6)} is more than {slip_bps} bps above its TWAP "
                       f"{p(tw.twapE6)} since {tw.observedAt} (at most {p(tw.twapE6 * (BPS + slip_bps) // BPS)}): "
                       "the pair may have been pushed up; nothing sent (the vault would revert PriceAboveTwap)")
    if leg == "sell" and spot * BPS < twap * (BPS - slip_bps):
        raise CapError(f"sell: the {pair} pair's spot price {p(tw.spotE6)} is more than {slip_bps} bps below its TWAP "
                       f"{p(tw.twapE6)} since {tw.observedAt} (at least {p(-(-tw.twapE6 * (BPS - slip_bps) // BPS))}): "
                       "the pair may have been pushed down; nothing sent (the vault would revert PriceBelowTwap)")


def sell_floor_out(amount: int, caps: Caps) -> int:
    """What selling ``amount`` USDTz must pay at least: the floor price, rounded up."""
    return int(-(-caps.sellFloorPrice * amount // E6))
