"""Scenario 7: the price moves between the operator's quote and the swap.

The operator quotes the buy on the router (``getAmountsOut``) and passes ``minOut`` from that
quote; another account trades the pair first (buys USDTz, so the vault's cUSDT now gets less);
the buy reverts in the router on ``minOut``. Nothing is lost: balances, books, allowances, phase,
the pair's reserves after the other trade. The operator re-quotes and buys at the new price.

v2: the buy is also bounded by the pair's own TWAP since the vault's observation (spot before the
swap <= TWAP x (1 + maxSlippageBps)). The front-run here is 20,000 cUSDT (v1's test used 40,000):
it moves the spot about 0.5%, inside the 1% TWAP band, so the buy still reaches the router and
the router's minOut is what refuses it. A second, larger front-run (the sandwich v2 is built
against) moves the spot past the band: the buy is refused with PriceAboveTwap before any swap,
its spot and TWAP recomputed here from the pair's reserves and accumulator; after a new
observation and a TWAP window at the new price the operator buys.
"""

from __future__ import annotations

from dealvault.kit.overlay import erc20, swap_on_pair
from tests.model import reserves, uni_out

DEADLINE = 2**64
ETH = 10**18
BPS = 10_000
TOLERANCE_BPS = 10  # the operator accepts 0.1% below its quote
WORKING, POSITIONED = 2, 3
MASK192 = 2**192 - 1


def _pair_raw(w3, market, pair: str, usdtz: str) -> tuple[int, int, int]:
    """(spot UQ112x112 of USDTz in the stable, USDTz cumulative price, blockTimestampLast), raw."""
    pc = market.pair_contract(w3, pair)
    r0, r1, last = pc.functions.getReserves().call()
    usdtz_is0 = pc.functions.token0().call().lower() == usdtz.lower()
    rz, rs = (r0, r1) if usdtz_is0 else (r1, r0)
    cum = (pc.functions.price0CumulativeLast() if usdtz_is0 else pc.functions.price1CumulativeLast()).call()
    return (rs << 112) // rz, cum, last


def _e6(x112: int) -> int:
    return x112 * 10**6 >> 112


def test_price_moved_between_quote_and_swap(fork_vault, make_deal, w3, market, stranger):
    deal = make_deal(fork_vault, "scenario 7: price moved between quote and swap")
    v, raw = deal.vault, deal.raw
    pos = deal.position(500 * ETH, 2500, buy=False)
    assert deal.view().phase == WORKING
    deal.twap_ready()  # v2: the split's observation is a TWAP window old
    router = market.router_contract(w3)
    path = [deal.cusdt, deal.usdtz]
    pair = market.pair_usdtz_cusdt
    amount_in = pos["borrow"] * 80 // 100
    # the pair's cumulative at the observation (split), read back from the pair: nothing traded since
    spot0, cum_last, last = _pair_raw(w3, market, pair, deal.usdtz)
    obs_at = deal.observed_at
    cum_obs = (cum_last + spot0 * ((obs_at - last) % 2**32)) & MASK192

    # the operator's quote, checked against the pair's reserves
    quote = router.functions.getAmountsOut(amount_in, path).call()[1]
    r_in, r_out = reserves(w3, market, pair, deal.cusdt)
    assert quote == uni_out(amount_in, r_in, r_out)
    min_out = quote * (10_000 - TOLERANCE_BPS) // 10_000
    deal.note(f"operator quotes {amount_in / 1e6:,.0f} cUSDT -> {quote / 1e6:,.2f} USDTz; minOut {min_out / 1e6:,.2f}")

    # another account trades the pair first: it buys USDTz
    front = 20_000 * 10**6
    got = swap_on_pair(w3, market, deal.cusdt, deal.usdtz, front, trader=str(stranger.address))
    assert got == uni_out(front, r_in, r_out)
    r_in2, r_out2 = reserves(w3, market, pair, deal.cusdt)
    assert (r_in2, r_out2) == (r_in + front, r_out - got)
    now_out = uni_out(amount_in, r_in2, r_out2)
    assert now_out < min_out  # the swap would now pay below the operator's minimum
    # ... while the spot stays inside the TWAP band (the TWAP is at least the old spot)
    spot1 = (r_in2 << 112) // r_out2
    assert spot1 * BPS <= spot0 * (BPS + 100)
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

    # v2: a front-run that moves the spot past the TWAP band refuses the buy before any swap
    rest = s.stableHeld
    swap_on_pair(w3, market, deal.cusdt, deal.usdtz, 150_000 * 10**6, trader=str(stranger.address))
    spot2, cum2, last2 = _pair_raw(w3, market, pair, deal.usdtz)
    r_pair = reserves(w3, market, pair, deal.cusdt)
    # the TWAP since the observation at the second the leg is simulated (now or a second or two later)
    t_now = raw.now()
    twaps = {}
    for t in range(t_now, t_now + 3):
        cum_t = cum2 + spot2 * ((t - last2) % 2**32)
        twaps[t] = _e6(((cum_t - cum_obs) & MASK192) // (t - obs_at))
    err = deal.refused(v.PriceAboveTwap, "buy", deal.cusdt, rest, 0, DEADLINE, expect={"spotE6": _e6(spot2)},
                       expect_fn=lambda e: e["twapE6"] in twaps.values())
    assert err["spotE6"] * BPS > err["twapE6"] * (BPS + deal.params().maxSlippageBps)
    assert reserves(w3, market, pair, deal.cusdt) == r_pair and deal.view().legSeq == s.legSeq
    assert (raw.bal(deal.cusdt), raw.bal(deal.usdtz)) == (rest, s.usdtzHeld)
    deal.note(f"a 150,000 cUSDT front-run: PriceAboveTwap(spot {err['spotE6'] / 1e6:.4f}, TWAP {err['twapE6'] / 1e6:.4f})")

    # a new observation at the moved price, a window later: the TWAP has caught up, the buy passes
    deal.observe_and_wait()
    t = deal.lens.twap(v.address, deal.cusdt)
    assert t.spotE6 == t.twapE6 == _e6(spot2)
    r_in3, r_out3 = reserves(w3, market, pair, deal.cusdt)
    expected = uni_out(rest, r_in3, r_out3)
    deal.leg("buy", deal.cusdt, rest, expected, DEADLINE, label="buy (after observe)")
    s = deal.view()
    assert raw.bal(deal.usdtz) == quote2 + expected == s.usdtzHeld and s.usdtzCost == pos["borrow"] == amount_in + rest
    assert s.stableHeld == 0 == raw.bal(deal.cusdt)
