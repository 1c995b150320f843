"""Counterexamples found by the invariant fuzzer (tests/fuzz/test_invariants.py), kept as unit tests.

1. `deleverage` raises the exposure SHARE (USDTz face / NAV): it sells collateral on the
   [WETH9, stable] pair below the oracle price (slippage allowance + price impact), so NAV falls
   while the USDTz held does not move. The NatSpec (IDealVault, "Leg kinds") states exactly what
   holds: exposure is the USDTz amount, which no risk-reducing leg raises; deleverage may raise
   its share of NAV, by at most what the slippage-bounded NAV loss allows. Both tests below check
   that documented behaviour (the first one was a strict xfail on the older wording).
   Fuzzer sequence (minimal): split -> supply(WETH9, 150 ETH) -> borrow(cUSDT, room/2) ->
   buy(cUSDT, half the stable) -> deleverage(WETH9, cUSDT, 10% of the collateral, minOut 0).

v2: the reads come from raw balances and the lens (the vault has no views any more); the buy
waits for the vault's TWAP observation (twap_ready); and the operator's deleverage now also books
its realized loss (collateral at the oracle price - stablecoin received) against the per-deal
loss budget, which the first test checks against the same independent numbers.
"""

from __future__ import annotations

import pytest
from helpers_vault import LEG, collateral_of, risk_view, stable_of, twap_ready

ETH = 10**18
USD6 = 10**6
FAR = 2**64
BPS = 10_000


def _reads(w3, market, mirror, vault):
    """Raw reads (feed, aToken and debt token balances) and the books (lens) ->
    (debt, collateral wei, price, NAV E26, USDTz)."""
    from dealvault.kit.mirror import feed
    from dealvault.kit.overlay import erc20

    v = vault.address
    price = feed(w3, mirror.eth_usd_feed).functions.latestRoundData().call()[1]
    debt = sum(erc20(w3, market.variable_debt_tokens[s]).functions.balanceOf(v).call() for s in ("cUSDT", "cUSDC"))
    coll = 0
    for sym, wrapper in (("WETH", mirror.weth9), ("WETH10", mirror.weth10)):
        booked = collateral_of(vault, wrapper)
        if booked:
            coll += min(booked, erc20(w3, market.a_tokens[sym]).functions.balanceOf(v).call())
    rv = risk_view(vault)
    assert rv.repaidOnBehalf == 0  # nobody else repaid: the caps' debt is the debt tokens'
    stable = stable_of(vault, mirror.cusdt) + stable_of(vault, mirror.cusdc)
    eth = rv.coreEth + rv.workingEth + rv.opportunisticEth + coll
    nav = eth * price + (stable + rv.usdtzCost - debt) * 10**20
    return debt, coll, price, nav, rv.usdtzHeld


@pytest.fixture
def positioned(w3, mirror, market, vault, owner, operator):
    vault.fund(value=1_000 * ETH, sender=owner)
    vault.split(sender=operator)
    vault.supply(mirror.weth9, 150 * ETH, sender=operator)
    vault.borrow(mirror.cusdt, 60_000 * USD6, sender=operator)
    twap_ready(w3, vault, mirror.cusdt)
    vault.buy(mirror.cusdt, 30_000 * USD6, 0, FAR, sender=operator)
    return vault


def test_deleverage_lowers_debt_and_ltv_and_loses_at_most_the_slippage(w3, mirror, market, positioned, operator):
    vault = positioned
    d0, c0, price, nav0, u0 = _reads(w3, market, mirror, vault)
    sold = 15 * ETH
    r = vault.deleverage(mirror.weth9, mirror.cusdt, sold, 0, FAR, sender=operator)
    d1, c1, _, nav1, u1 = _reads(w3, market, mirror, vault)
    assert d1 < d0
    assert d1 * c0 <= d0 * c1  # LTV not raised (exact cross-multiplication)
    assert u1 == u0 > 0
    loss = nav0 - nav1
    assert 0 < loss <= sold * price * 100 // 10_000 + 2 * 10**20  # maxSlippageBps = 100 (+ Aave rounding)
    # v2: the operator's realized loss, against the oracle price, is booked against the budget
    value = sold * price // 10**20  # 6 dp
    received = [e.received for e in r.decode_logs(vault.Deleveraged)]
    assert len(received) == 1 and value * (BPS - 100) // BPS <= received[0] < value
    budget = (1_000 * ETH * price // 10**20) * 50 // BPS  # splitValue x maxOperatorLossBps
    booked = [(e.leg, e.loss, e.total, e.budget) for e in r.decode_logs(vault.OperatorLoss)]
    assert booked == [(LEG["Deleverage"], value - received[0], value - received[0], budget)]
    rv = risk_view(vault)
    assert (rv.operatorLoss, rv.lossBudget) == (value - received[0], budget)


def test_deleverage_never_raises_usdtz_and_share_rises_at_most_by_the_slippage(w3, mirror, market, positioned,
                                                                            operator):
    """The USDTz held never rises; the share of NAV may rise (it does here: the sale is below the
    oracle price), but only as far as the NAV loss bounded by maxSlippageBps (100) allows."""
    vault = positioned
    _, _, price, nav0, u0 = _reads(w3, market, mirror, vault)
    sold = 15 * ETH
    vault.deleverage(mirror.weth9, mirror.cusdt, sold, 0, FAR, sender=operator)
    _, _, _, nav1, u1 = _reads(w3, market, mirror, vault)
    assert u1 == u0 > 0  # the exposure amount (USDTz face) did not rise
    bound = sold * price * 100 // 10_000 + 2 * 10**20  # slippage allowance (E26) + Aave rounding
    assert nav0 - bound <= nav1 < nav0  # NAV fell, within the bound
    assert u1 * nav0 > u0 * nav1  # so the share rose ...
    assert u1 * (nav0 - bound) <= u0 * nav1  # ... to at most u0 / (nav0 - bound)
    rv = risk_view(vault)
    assert rv.exposureBps <= -(-u0 * 10**24 // (nav0 - bound))
