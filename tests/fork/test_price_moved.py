"""Scenario 7: the price moves between the operator's quote and the swap.

The operator quotes the buy on the router (``getAmountsOut``) and passes ``minOut`` from that
quote; another account trades the pair first (buys USDTz, so the vault's cUSDT now gets less);
the buy reverts in the router on ``minOut``. Nothing is lost: balances, books, allowances, phase,
the pair's reserves after the other trade. The operator re-quotes and buys at the new price.
"""

from __future__ import annotations

from dealvault.overlay import erc20, swap_on_pair
from tests.model import reserves, uni_out

DEADLINE = 2**64
ETH = 10**18
TOLERANCE_BPS = 10  # the operator accepts 0.1% below its quote
WORKING, POSITIONED = 2, 3


def test_price_moved_between_quote_and_swap(fork_vault, make_deal, w3, market, stranger):
    deal = make_deal(fork_vault, "scenario 7: price moved between quote and swap")
    v, raw = deal.vault, deal.raw
    pos = deal.position(500 * ETH, 2500, buy=False)
    assert deal.view().phase == WORKING
    router = market.router_contract(w3)
    path = [deal.cusdt, deal.usdtz]
    pair = market.pair_usdtz_cusdt
    amount_in = pos["borrow"] * 80 // 100

    # the operator's quote, checked against the pair's reserves
    quote = router.functions.getAmountsOut(amount_in, path).call()[1]
    r_in, r_out = reserves(w3, market, pair, deal.cusdt)
    assert quote == uni_out(amount_in, r_in, r_out)
    min_out = quote * (10_000 - TOLERANCE_BPS) // 10_000
    deal.note(f"operator quotes {amount_in / 1e6:,.0f} cUSDT -> {quote / 1e6:,.2f} USDTz; minOut {min_out / 1e6:,.2f}")

    # another account trades the pair first: it buys USDTz
    front = 40_000 * 10**6
    got = swap_on_pair(w3, market, deal.cusdt, deal.usdtz, front, trader=str(stranger.address))
    assert got == uni_out(front, r_in, r_out)
    r_in2, r_out2 = reserves(w3, market, pair, deal.cusdt)
    assert (r_in2, r_out2) == (r_in + front, r_out - got)
    now_out = uni_out(amount_in, r_in2, r_out2)
    assert now_out < min_out  # the swap would now pay below the operator's minimum
    deal.note(f"another account buys first with {front / 1e6:,.0f} cUSDT: the same buy now pays {now_out / 1e6:,.2f}")

    before = deal.view()
    bal = (raw.bal(deal.cusdt), raw.bal(deal.usdtz), raw.eth(), raw.atoken("WETH"))
    debt, t0, rate = raw.debt(), raw.now(), raw.rate()
    deal.refused("UniswapV2Router: INSUFFICIENT_OUTPUT_AMOUNT", "buy", deal.cusdt, amount_in, min_out, DEADLINE)

    # nothing lost, nothing moved
    after = deal.view()
    assert (raw.bal(deal.cusdt), raw.bal(deal.usdtz), raw.eth(), raw.atoken("WETH")) == bal
    assert bal[0] == pos["borrow"] and bal[1] == 0
    assert after.phase == WORKING and after.legSeq == before.legSeq
    assert (after.stableHeld, after.usdtzHeld, after.usdtzCost) == (before.stableHeld, 0, 0) == (pos["borrow"], 0, 0)
    assert debt <= raw.debt() <= debt + raw.interest_bound(debt, t0, rate)  # interest only
    assert erc20(w3, deal.cusdt).functions.allowance(str(v.address), market.uniswap_router).call() == 0
    assert reserves(w3, market, pair, deal.cusdt) == (r_in2, r_out2)

    # the operator re-quotes at the new price and buys
    quote2 = router.functions.getAmountsOut(amount_in, path).call()[1]
    assert quote2 == now_out
    min2 = quote2 * (10_000 - TOLERANCE_BPS) // 10_000
    deal.leg("buy", deal.cusdt, amount_in, min2, DEADLINE, label="buy (re-quoted)")
    s = deal.view()
    assert raw.bal(deal.usdtz) == quote2 == s.usdtzHeld and s.usdtzCost == amount_in
    assert raw.bal(deal.cusdt) == pos["borrow"] - amount_in == s.stableHeld
    assert s.phase == POSITIONED
    deal.note(f"paid {amount_in * 10**6 // quote2 / 1e6:.4f} per USDTz instead of {amount_in * 10**6 // quote / 1e6:.4f}")
