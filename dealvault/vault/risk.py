"""The vault's cap math, once in Python: the same integer arithmetic as contracts/libraries/RiskLib.sol
(and Aave's rayMul), for the harness's off-chain checks, the status flags and the reports.

Pinned to the contract by ``tests/unit/vault/test_risk_parity.py``: every function against RiskLib
itself (a harness contract exposes it) by ``eth_call`` over random inputs and the edges.
Units: ETH in wei, stablecoin and USDTz in 6 dp, the price in 8-dp USD per ETH; E26 = USD x 1e26.
Inputs are as bounded as the vault's (price <= 1e16, amounts < 1e30), where nothing overflows."""

from __future__ import annotations

from dealvault.units import BPS, RAY, STABLE_TO_E26

__all__ = [
    "MAX_UINT", "DELEVERAGE_MARGIN_BPS", "deleverage_bound_wei", "eth_value", "ltv_within", "ltv_bps", "pool_ltv_bps", "nav_e26", "exposure_within", "exposure_bps",
    "nav_usd", "cost_out", "ray_mul",
]

MAX_UINT = 2**256 - 1
#: DealVaultBase.DELEVERAGE_MARGIN_BPS: a deleverage's bound (the collateral's value at the price
#: x (1 - maxSlippage)) may exceed the stable's debt by at most this (else DeleverageTooLarge).
DELEVERAGE_MARGIN_BPS = 100
_HALF_RAY = RAY // 2


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def deleverage_bound_wei(debt: int, price: int, max_slippage_bps: int, margin_bps: int = DELEVERAGE_MARGIN_BPS) -> int:
    """The most collateral (wei) a deleverage may sell: its value at ``price`` x (1 - slippage cap)
    is at most ``debt`` x (1 + ``margin_bps``), rounded down (the vault's DeleverageTooLarge bound
    at the default margin); 0 without a price."""
    if price <= 0:
        return 0
    return debt * (BPS + margin_bps) * STABLE_TO_E26 // (price * (BPS - max_slippage_bps))


def eth_value(wei: int, price: int) -> int:
    """USD 8 dp of ``wei`` at ``price``, rounded down."""
    return wei * price // 10**18


def ltv_within(debt: int, collateral_wei: int, price: int, cap_bps: int) -> bool:
    """debt / collateral value <= cap, exactly (cross-multiplied)."""
    return debt * STABLE_TO_E26 * BPS <= cap_bps * collateral_wei * price


def ltv_bps(debt: int, collateral_wei: int, price: int) -> int:
    """LTV in bps rounded up; 0 without debt; MAX_UINT without collateral value."""
    if debt == 0:
        return 0
    den = collateral_wei * price
    if den == 0:
        return MAX_UINT
    return _ceil_div(debt * STABLE_TO_E26 * BPS, den)


def pool_ltv_bps(debt_base: int, collateral_base: int) -> int:
    """The pool's LTV in bps (its base currency), rounded up."""
    if debt_base == 0:
        return 0
    if collateral_base == 0:
        return MAX_UINT
    return _ceil_div(debt_base * BPS, collateral_base)


def nav_e26(eth_wei: int, price: int, stable: int, usdtz_cost: int, debt: int) -> int:
    """NAV in E26 USD: ETH (buckets + collateral) at price + stablecoin at par + USDTz at cost - debt."""
    return eth_wei * price + (stable + usdtz_cost - debt) * STABLE_TO_E26


def exposure_within(usdtz: int, nav: int, cap_bps: int) -> bool:
    """USDTz at face / NAV <= cap, exactly; False with USDTz held and NAV <= 0."""
    if usdtz == 0:
        return True
    if nav <= 0:
        return False
    return usdtz * STABLE_TO_E26 * BPS <= cap_bps * nav


def exposure_bps(usdtz: int, nav: int) -> int:
    """Exposure in bps rounded up; 0 without USDTz; MAX_UINT when NAV <= 0."""
    if usdtz == 0:
        return 0
    if nav <= 0:
        return MAX_UINT
    return _ceil_div(usdtz * STABLE_TO_E26 * BPS, nav)


def nav_usd(nav: int) -> int:
    """E26 NAV -> 8 dp, rounded down, 0 if negative."""
    return 0 if nav <= 0 else nav // 10**18


def cost_out(cost: int, amount: int, held: int) -> int:
    """The cost basis leaving with ``amount`` of ``held`` (average cost), rounded up; all of it
    when ``amount >= held``."""
    if amount >= held:
        return cost
    return _ceil_div(cost * amount, held)


def ray_mul(a: int, b: int) -> int:
    """Aave's WadRayMath.rayMul (half up): a scaled debt balance times the index."""
    return (a * b + _HALF_RAY) // RAY
