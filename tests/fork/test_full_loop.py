"""Scenarios 1 and 2: the whole loop on the fork, large deal, PnL checked independently.

Every expectation is computed here from raw reads (feed, reserves, desk fee, debt and aTokens,
token balances) with Python ints / Decimal, never from the vault's own math; the vault's views
are read through the lens of its deployment record.

v2: the buy waits a TWAP window after split (the pair did not trade in between, so its spot equals
its TWAP exactly, recomputed here from the pair's reserves); the split books the loss budget's base
(funded x the oracle price), and the honest loop realizes no operator loss (every tranche pays
above its average cost).
"""

from __future__ import annotations

from decimal import Decimal, getcontext

from dealvault.kit.evm import advance_time
from tests.model import ceil_div, reserves, uni_out

DEADLINE = 2**64

getcontext().prec = 60

BPS = 10_000
RAY = 10**27
SECONDS_PER_YEAR = 365 * 86_400


def aave_compound_factor(rate_ray: int, seconds: int) -> Decimal:
    """Aave V3 MathUtils.calculateCompoundedInterest (3-term binomial), as a Decimal factor."""
    r = Decimal(rate_ray) / Decimal(RAY) / SECONDS_PER_YEAR
    t = Decimal(seconds)
    return 1 + r * t + t * (t - 1) * r * r / 2 + t * (t - 1) * (t - 2) * r * r * r / 6


def run_loop(deal, market, *, funded: int, wrapper: str, stable: str, wsym: str, ssym: str, days: int = 30):
    """fund -> split -> supply -> borrow (just under 30%) -> (TWAP window) buy -> ladder -> time ->
    repay -> withdraw -> close -> owner withdraw; returns a dict of what was measured."""
    w3, raw = deal.w3, deal.raw
    pair = market.pair_usdtz_cusdt if ssym == "cUSDT" else market.pair_usdtz_cusdc
    owner_eth0 = raw.eth(str(deal.owner.address))

    deal.open(funded)
    split_price, _ = raw.price()
    core, working = funded * 5000 // BPS, funded * 3000 // BPS
    opp = funded - core - working
    s = deal.view()
    assert (s.coreEth, s.workingEth, s.opportunisticEth) == (core, working, opp)
    # v2: the loss budget's base, the funded capital at the oracle price (6 dp), and 50 bps of it
    split_value = funded * split_price // 10**20
    assert (s.splitValue, s.lossBudget, s.operatorLoss) == (split_value, split_value * 50 // BPS, 0)

    # supply the whole working bucket
    deal.leg("supply", wrapper, working)
    assert raw.atoken(wsym) >= working and raw.eth() == core + opp

    # borrow just under the 30% cap, from the raw feed price
    price, _ = raw.price()
    max_debt = working * price * 3000 // (10**20 * BPS)  # 6 dp, floor
    borrow = max_debt * 995 // 1000  # 29.85 %
    deal.leg("borrow", stable, borrow)
    debt = raw.debt(ssym)
    assert borrow <= debt <= borrow + 1
    assert raw.bal(stable) == borrow
    ltv = ceil_div(debt * 10**20 * BPS, working * price)
    assert deal.view().ltvBps == ltv and 2980 <= ltv < 3000
    coll_base, debt_base, *_ = raw.account()
    assert debt_base * BPS <= 3000 * coll_base

    # v2: the buy waits until the split's TWAP observation is a window old; nothing traded the
    # pair since, so its spot equals its TWAP (the buy is within maxSlippageBps of it)
    deal.twap_ready(stable)
    r_in, r_out = reserves(w3, market, pair, stable)
    t = deal.lens.twap(deal.vault.address, stable)
    spot_e6 = (r_in << 112) // r_out * 10**6 >> 112  # UQ112x112 spot of USDTz in the stable, to 6 dp
    assert t.spotE6 == t.twapE6 == spot_e6, (t.spotE6, t.twapE6, spot_e6)

    # buy USDTz with everything borrowed, at the pool's discount
    expected_out = uni_out(borrow, r_in, r_out)
    assert borrow * 10**6 <= 950_000 * expected_out, "the pool is not at a 5% discount for this size"
    deal.leg("buy", stable, borrow, expected_out, DEADLINE)
    assert raw.bal(deal.usdtz) == expected_out and raw.bal(stable) == 0
    bought_price = Decimal(borrow) / Decimal(expected_out)
    deal.note(f"bought {expected_out / 1e6:,.2f} USDTz for {borrow / 1e6:,.2f} {ssym} at {bought_price:.4f}")
    s = deal.view()
    nav26 = funded * price + (0 + borrow - debt) * 10**20
    assert s.exposureBps == ceil_div(expected_out * 10**20 * BPS, nav26) and s.exposureBps <= 2500

    # the ladder: 50k, 250k, then 1M repeating, until nothing is left
    desk = market.desk_contract(w3)
    fee_bps, flat = desk.functions.feeBps().call(), desk.functions.flatFee().call()
    rungs = [50_000 * 10**6, 250_000 * 10**6, 1_000_000 * 10**6]
    held, k, progress = expected_out, 0, 0
    received_total, tranches = 0, []
    while held:
        amount = min(held, rungs[k] - progress)
        before = raw.bal(stable)
        deal.leg("redeem", stable, amount, label=f"redeem r{k} {amount // 10**6:,}")
        got = raw.bal(stable) - before
        paid = amount - ceil_div(amount * fee_bps, BPS) - flat
        assert got == paid, (got, paid)
        received_total += got
        tranches.append((k, amount))
        held -= amount
        progress += amount
        if progress >= rungs[k]:
            k, progress = min(k + 1, 2), 0
        s = deal.view()
        assert (s.rung, s.rungProgress, s.usdtzHeld) == (k, progress, held)
    assert [t[0] for t in tranches][:2] == [0, 1] or held == 0
    s = deal.view()
    assert s.phase == 4 and s.redeemedTotal == expected_out and s.stableHeld == received_total
    # every tranche paid more than its share of the cost (bought below 0.95, paid 0.999): no loss
    assert s.operatorLoss == 0

    # time passes: the debt accrues interest at the pool's variable rate
    d0 = raw.debt(ssym)
    t0 = w3.eth.get_block("latest")["timestamp"]
    rate = market.pool_contract(w3).functions.getReserveData(stable).call()[4]  # currentVariableBorrowRate
    advance_time(w3, days * 86_400)
    d1 = raw.debt(ssym)
    t1 = w3.eth.get_block("latest")["timestamp"]
    factor = aave_compound_factor(rate, t1 - t0)
    assert d1 > d0
    assert abs(Decimal(d1) / Decimal(d0) - factor) < Decimal("1e-6"), (d1, d0, factor)
    deal.row(f"+{days} days")

    # repay everything, including interest (debt read in the repay's own block)
    before = raw.bal(stable)
    deal.leg("repay", stable, 2**256 - 1, label="repay all")
    repaid = before - raw.bal(stable)
    assert raw.debt(ssym) == 0 and repaid >= d1
    interest = repaid - borrow
    assert interest > 0

    # withdraw the collateral, unwrap, close
    deal.leg("withdrawCollateral", wrapper, working, label="withdraw+unwrap")
    assert raw.eth() == funded  # every wei of ETH is back in the vault
    receipt = deal.leg("close")
    price_close, updated_close = raw.price()
    # the feed's status at close, from the raw round (30 days passed: the round is stale)
    status_close = 1 if raw.now() - updated_close > 3600 else 0

    # PnL, independently: ETH buckets unchanged; stablecoin = desk payouts - repaid
    stable_final = received_total - repaid
    assert raw.bal(stable) == stable_final
    pnl_eth = 0
    pnl_usd8 = int(Decimal(pnl_eth) * price_close / Decimal(10**18)) + stable_final * 100
    s = deal.view()
    assert s.phase == 6
    assert s.realizedPnlEth == pnl_eth
    assert s.realizedPnlUsd == pnl_usd8
    assert s.writtenOffUsdtz == 0
    assert (s.ownerRepaid, s.repaidOnBehalf, s.operatorLoss, s.collateralBooked) == (0, 0, 0, 0)
    ev = [e for e in receipt.events if e.event_name == "Closed"][0]
    assert (ev.realizedPnlEth, ev.realizedPnlUsd, ev.stableSurplus, ev.writtenOffUsdtz) == (pnl_eth, pnl_usd8, stable_final, 0)
    assert (ev.collateralLeft, ev.oracleStatus) == (0, status_close)  # all collateral withdrawn
    expected_profit = Decimal(expected_out - sum(ceil_div(a * fee_bps, BPS) + flat for _k, a in tranches) - borrow - interest) / Decimal(10**6)
    assert Decimal(stable_final) / Decimal(10**6) == expected_profit
    deal.note(f"profit {expected_profit:,.6f} {ssym} (interest {interest / 1e6:,.6f}); PnL ETH {pnl_eth}")

    # the owner takes everything back: ETH (core never moved) and the profit
    deal.leg("withdraw", "0x0000000000000000000000000000000000000000", funded, sender=deal.owner, label="owner withdraw ETH")
    deal.leg("withdraw", stable, stable_final, sender=deal.owner, label="owner withdraw profit")
    assert raw.bal(stable, str(deal.owner.address)) >= stable_final
    assert deal.core_checks >= 10
    return {"profit": stable_final, "interest": interest, "tranches": tranches, "owner_eth0": owner_eth0}


def test_full_loop_large_deal_weth9_cusdt(fork_vault, make_deal, market):
    deal = make_deal(fork_vault, "scenario 1: full loop, 5,000 ETH, WETH9 + cUSDT")
    out = run_loop(deal, market, funded=5_000 * 10**18, wrapper=deal.weth9, stable=deal.cusdt, wsym="WETH", ssym="cUSDT")
    # all three rungs, the 1M rung repeating until monetized
    assert [k for k, _a in out["tranches"][:3]] == [0, 1, 2] and out["tranches"][2][1] == 1_000_000 * 10**6
    assert len(out["tranches"]) >= 4 and out["profit"] > 0


def test_full_loop_weth10_cusdc(fork_vault, make_deal, market):
    deal = make_deal(fork_vault, "scenario 2: full loop, 1,000 ETH, WETH10 + cUSDC")
    out = run_loop(deal, market, funded=1_000 * 10**18, wrapper=deal.weth10, stable=deal.cusdc, wsym="WETH10", ssym="cUSDC")
    assert out["profit"] > 0
    # nothing touched the WETH9 / cUSDT side
    assert deal.raw.atoken("WETH") == 0 and deal.raw.debt("cUSDT") == 0
