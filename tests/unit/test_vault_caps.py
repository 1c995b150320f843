"""Every DealVault cap at its edge, with the edge computed in the test from raw reads.

LTV: the largest borrow both checks allow (vault: debt*1e24 <= cap*coll*price; pool:
debtBase*1e4 <= cap*collBase) passes, one unit more reverts LtvAboveCap. Exposure: the largest buy
whose Uniswap output keeps USDTz*1e24 <= cap*NAV26 passes, one unit more reverts ExposureAboveCap
(NAV at the pinned block time, with the debt compounded by Aave's formula). Oracle stale / zero /
negative refuses every risk-adding leg; TrancheAboveRung; PriceAboveLimit; PriceBelowFloor;
WrongPhase masks; pause blocks exactly the risk-adding legs.
"""

from __future__ import annotations

import ape
import pytest

from dealvault.evm import advance_time, rpc
from dealvault.mirror import make_feed_stale, set_eth_price
from dealvault.overlay import DEADLINE, swap_on_pair
from helpers_vault import (
    BPS, E6, ETH, MAX_UINT, PH, abal, account_data, assert_books, assert_no_allowances, bal, block_ts,
    coll_wei, debt, debt_at, feed, make_deal, mask, max_buy_exposure, max_debt, nav_e26, reserves, uni_out,
)

ZERO = "0x0000000000000000000000000000000000000000"


@pytest.fixture
def mk(w3, mirror, market, vault_factory, owner, operator):
    def build(**risk):
        return make_deal(vault_factory, w3, mirror, market, owner, operator, **risk)

    return build


def pin_next(w3, seconds: int = 5) -> int:
    """Pins the next block's timestamp (so the test can compute interest for that exact block)."""
    t = block_ts(w3) + seconds
    rpc(w3, "evm_setNextBlockTimestamp", [t])
    return t


def owner_repay_rest(w3, deal) -> None:
    """The interest above the books: the owner repays it with its own cUSDT (ownerRepay)."""
    from dealvault.funding import fund
    from dealvault.overlay import erc20

    v, vault = deal.v, deal.vault
    owed = debt(w3, v, vault)
    if owed:
        fund(w3, v.cusdt, deal.owner.address, owed + 100)
        w3.eth.wait_for_transaction_receipt(erc20(w3, v.cusdt).functions.approve(vault.address, owed + 100).transact({"from": deal.owner.address}))  # mined before ape picks this sender's next nonce
        vault.ownerRepay(v.cusdt, owed + 100, sender=deal.owner)  # capped at the debt, rest refunded
    assert debt(w3, v, vault) == 0


# --- LTV ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("stable_name", ["cusdt", "cusdc"])
def test_borrow_ltv_edge(w3, mk, market, stable_name):
    deal = mk()
    deal.run("split")
    v = deal.v
    deal.supply(30 * ETH - 123_457)  # an odd collateral so that the two checks' roundings differ
    stable = getattr(v, stable_name)
    price, _ = feed(w3, deal.mirror)
    coll = coll_wei(deal.books, abal(w3, v, deal.vault))
    assert coll == 30 * ETH - 123_457
    coll_base = account_data(w3, market, deal.vault)[0]
    assert coll_base == coll * price // ETH
    edge = max_debt(coll, price, 3000, coll_base)
    assert debt(w3, v, deal.vault) == 0
    with ape.reverts(deal.vault.LtvAboveCap, capBps=3000):
        deal.vault.borrow(stable, edge + 1, sender=deal.operator)
    deal.borrow(edge, stable)
    d = debt(w3, v, deal.vault)
    assert d == edge  # the first borrow of the reserve: index 1 ray, no rounding
    assert d * 10**24 <= 3000 * coll * price  # within the cap, exactly
    assert (d + 1) * 10**24 > 3000 * coll * price or (d + 1) * 100 * BPS > 3000 * coll_base
    assert_books(deal.vault, deal.books, v)
    assert_no_allowances(w3, v, deal.vault)


def test_borrow_ltv_edge_after_price_drop_and_tightened_cap(w3, mk, market):
    """A tighter owner cap (2000) and a lower price: the edge follows both."""
    deal = mk()
    deal.run("supply")
    deal.vault.setMaxLtvBps(2000, sender=deal.owner)
    set_eth_price(w3, deal.mirror, 2_345_67 * 10**6)  # $2,345.67
    price, _ = feed(w3, deal.mirror)
    coll = coll_wei(deal.books, abal(w3, deal.v, deal.vault))
    edge = max_debt(coll, price, 2000, account_data(w3, market, deal.vault)[0])
    with ape.reverts(deal.vault.LtvAboveCap, capBps=2000):
        deal.vault.borrow(deal.v.cusdt, edge + 1, sender=deal.operator)
    deal.borrow(edge)
    assert debt(w3, deal.v, deal.vault) == edge


def test_withdraw_collateral_ltv_edge(w3, mk, market):
    """withdrawCollateral with debt: the largest withdrawal that keeps LTV <= cap passes."""
    deal = mk()
    deal.run("supply")
    deal.borrow(20_000 * E6)
    v = deal.v
    price, _ = feed(w3, deal.mirror)
    t = pin_next(w3)
    d = debt_at(w3, market, v.cusdt, v.debt_cusdt, deal.vault, t)
    # largest w such that d*1e24 <= 3000*(C-w)*price and pool: d*100*1e4 <= 3000*floor((C-w)*price/1e18)
    c = deal.books.collateral[v.weth9]
    need = -(-d * 10**24 // (3000 * price))  # minimum collateral wei for the vault check
    need_base = -(-d * 100 * BPS // 3000)  # minimum pool base
    need = max(need, -(-need_base * ETH // price))
    w = c - need
    with ape.reverts(deal.vault.LtvAboveCap, capBps=3000):
        deal.vault.withdrawCollateral(v.weth9, w + 1, sender=deal.operator)
    pin_next(w3)  # same debt is not guaranteed one block later: recompute at the new time
    t = block_ts(w3) + 5
    rpc(w3, "evm_setNextBlockTimestamp", [t])
    d = debt_at(w3, market, v.cusdt, v.debt_cusdt, deal.vault, t)
    need = max(-(-d * 10**24 // (3000 * price)), -(-(-(-d * 100 * BPS // 3000)) * ETH // price))
    deal.withdraw_collateral(c - need)
    assert deal.books.collateral[v.weth9] == need


# --- exposure -----------------------------------------------------------------------------------


@pytest.mark.parametrize("stable_name", ["cusdt", "cusdc"])
def test_buy_exposure_edge(w3, mk, market, stable_name):
    """maxExposureBps 500 (5% of ~$300k NAV = ~$15k face): the exposure cap binds, not LTV."""
    deal = mk(maxExposureBps=500)
    deal.run("supply")
    v = deal.v
    stable = getattr(v, stable_name)
    pair = v.pair_cusdt if stable == v.cusdt else v.pair_cusdc
    deal.borrow(20_000 * E6, stable)
    price, _ = feed(w3, deal.mirror)

    def edge_at(t: int) -> int:
        d = debt_at(w3, market, stable, v.debt_token(stable), deal.vault, t)
        coll = coll_wei(deal.books, abal(w3, v, deal.vault))
        n26 = nav_e26(deal.books, coll, price, d)
        return max_buy_exposure(deal.books.usdtz_held, n26, 500, *reserves(w3, market, pair, stable),
                                deal.books.stable[stable])

    a = edge_at(pin_next(w3))
    assert 10_000 * E6 < a < 20_000 * E6  # below the stable held: the exposure cap binds
    with ape.reverts(deal.vault.ExposureAboveCap, capBps=500):
        deal.vault.buy(stable, a + 1, 0, DEADLINE, sender=deal.operator)
    t = block_ts(w3) + 5
    rpc(w3, "evm_setNextBlockTimestamp", [t])
    a = edge_at(t)
    deal.buy(a, stable)
    assert block_ts(w3) == t
    rv = assert_books(deal.vault, deal.books, v)
    assert rv.exposureBps <= 500
    d = debt(w3, v, deal.vault)
    coll = coll_wei(deal.books, abal(w3, v, deal.vault))
    assert deal.books.usdtz_held * 10**24 <= 500 * nav_e26(deal.books, coll, price, d)
    assert_no_allowances(w3, v, deal.vault)


# --- exposure on supply, borrow and withdrawCollateral (they end within EVERY cap) -----------------


def exposure_bound_after_drop(w3, mk):
    """A 20/60/20 split, maxExposureBps 500, ~4.6% exposure at $3,000 (11k cUSDT buys ~13.7k USDTz);
    then ETH at $2,500 lifts the exposure above 5% while the LTV (20k on 30 ETH = 26.7%) stays
    within 30%."""
    deal = mk(maxExposureBps=500, coreBps=2000, workingBps=6000, opportunisticBps=2000)
    deal.run("split")
    assert deal.books.working == 60 * ETH and deal.books.core == 20 * ETH
    deal.supply(30 * ETH)
    deal.borrow(20_000 * E6)
    deal.buy(11_000 * E6)
    price, _ = feed(w3, deal.mirror)
    d, coll = debt(w3, deal.v, deal.vault), coll_wei(deal.books, abal(w3, deal.v, deal.vault))
    assert deal.books.usdtz_held * 10**24 <= 500 * nav_e26(deal.books, coll, price, d)  # within at $3,000
    set_eth_price(w3, deal.mirror, 2_500 * 10**8)
    return deal


def raw_risk(w3, deal, t: int | None = None) -> tuple[int, int, int, int]:
    """(debt, collateral wei, price, NAV E26) from raw reads (debt compounded to ``t`` if given)."""
    v = deal.v
    price, _ = feed(w3, deal.mirror)
    d = debt(w3, v, deal.vault) if t is None else debt_at(w3, deal.market, v.cusdt, v.debt_cusdt, deal.vault, t)
    coll = coll_wei(deal.books, abal(w3, v, deal.vault))
    return d, coll, price, nav_e26(deal.books, coll, price, d)


def test_exposure_binds_on_borrow_supply_and_withdraw_collateral(w3, mk, market):
    deal = exposure_bound_after_drop(w3, mk)
    v, op, vault = deal.v, deal.operator, deal.vault
    d, coll, price, n26 = raw_risk(w3, deal)
    held = deal.books.usdtz_held
    assert held * 10**24 > 500 * n26  # exposure above its cap, computed from raw reads
    # the LTV after each attempted leg stays within 30% (so the refusal is the exposure's)
    assert (d + 100 * E6 + 10**6) * 10**24 <= 3000 * coll * price
    assert (d + 10**6) * 10**24 <= 3000 * (coll - ETH) * price
    coll_base = account_data(w3, market, vault)[0]
    assert (d + 100 * E6 + 10**6) * 100 * BPS <= 3000 * coll_base
    before = (bal(w3, v.cusdt, vault), bal(w3, v.a_weth9, vault), debt(w3, v, vault))
    with ape.reverts(vault.ExposureAboveCap, capBps=500):
        vault.borrow(v.cusdt, 100 * E6, sender=op)
    with ape.reverts(vault.ExposureAboveCap, capBps=500):
        vault.supply(v.weth9, ETH, sender=op)
    with ape.reverts(vault.ExposureAboveCap, capBps=500):
        vault.withdrawCollateral(v.weth9, ETH, sender=op)
    assert (bal(w3, v.cusdt, vault), bal(w3, v.a_weth9, vault)) == before[:2]
    assert debt(w3, v, vault) >= before[2]  # only interest, no new borrow
    assert_books(vault, deal.books, v)
    # risk-reducing legs still run: repay lowers debt, and the exposure check does not apply
    deal.repay(1_000 * E6)
    # back at $3,000 the exposure is within the cap again and the same legs pass
    set_eth_price(w3, deal.mirror, 3_000 * 10**8)
    deal.supply(ETH)
    deal.borrow(100 * E6)
    deal.withdraw_collateral(ETH)
    d, coll, price, n26 = raw_risk(w3, deal)
    assert deal.books.usdtz_held * 10**24 <= 500 * n26
    assert_no_allowances(w3, v, vault)


def test_supply_exposure_edge_on_price(w3, mk):
    """supply moves working ETH into collateral at the same price (NAV unchanged), so its edge is a
    price: the lowest ETH price with USDTz*1e24 <= 500*NAV26 passes, one unit (1e-8 $) lower reverts."""
    deal = exposure_bound_after_drop(w3, mk)
    v, b = deal.v, deal.books

    def edge_price(t: int) -> int:
        d = debt_at(w3, deal.market, v.cusdt, v.debt_cusdt, deal.vault, t)
        coll = coll_wei(b, abal(w3, v, deal.vault))
        eth = b.eth + coll
        # smallest p with held*1e24 <= 500*(eth*p + (stable + cost - d)*1e20)
        need = b.usdtz_held * 10**24 - 500 * (b.stable_held + b.usdtz_cost - d) * 10**20
        return -(-need // (500 * eth))

    # the price update mines a block first; the leg's block is pinned after it (the debt's time)
    t = block_ts(w3) + 20
    p = edge_price(t)
    assert 2_500 * 10**8 < p < 3_000 * 10**8
    set_eth_price(w3, deal.mirror, p - 1)
    assert block_ts(w3) < t
    rpc(w3, "evm_setNextBlockTimestamp", [t])
    with ape.reverts(deal.vault.ExposureAboveCap, capBps=500):
        deal.vault.supply(v.weth9, ETH, sender=deal.operator)
    rpc(w3, "evm_mine", [])  # the refused leg mined nothing: this block takes the pending pin
    t = block_ts(w3) + 20
    p = edge_price(t)
    set_eth_price(w3, deal.mirror, p)
    assert block_ts(w3) < t
    rpc(w3, "evm_setNextBlockTimestamp", [t])
    deal.supply(ETH)
    assert block_ts(w3) == t
    d, coll, price, n26 = raw_risk(w3, deal)
    assert price == p
    assert b.usdtz_held * 10**24 <= 500 * n26 < b.usdtz_held * 10**24 + 500 * (b.eth + coll)


# --- oracle -------------------------------------------------------------------------------------


def risk_adding_attempts(deal):
    """(name, callable) for every risk-adding leg, from a POSITIONED vault with working ETH left."""
    v, op = deal.v, deal.operator
    return [
        ("supply", lambda: deal.vault.supply(v.weth9, ETH, sender=op)),
        ("borrow", lambda: deal.vault.borrow(v.cusdt, 100 * E6, sender=op)),
        ("buy", lambda: deal.vault.buy(v.cusdt, 100 * E6, 0, DEADLINE, sender=op)),
        ("withdrawCollateral", lambda: deal.vault.withdrawCollateral(v.weth9, ETH, sender=op)),
    ]


def positioned(mk):
    deal = mk()
    deal.run("split")
    deal.supply(20 * ETH)
    deal.borrow(10_000 * E6)
    deal.buy(5_000 * E6)
    assert deal.books.phase == PH["POSITIONED"]
    return deal


def test_stale_oracle_refuses_every_risk_adding_leg(w3, mk):
    deal = positioned(mk)
    updated = make_feed_stale(w3, deal.mirror, 3601)
    for name, attempt in risk_adding_attempts(deal):
        with ape.reverts(deal.vault.StaleOracle, updatedAt=updated, maxAge=3600):
            attempt()
    # a risk-reducing leg needs no oracle
    deal.redeem(1_000 * E6)
    deal.repay(1_000 * E6)
    assert deal.vault.riskView().oracleStatus == 1


def test_feed_aging_past_max_age_is_stale(w3, mk):
    deal = positioned(mk)
    _, updated = feed(w3, deal.mirror)
    advance_time(w3, 3600 + 10)
    for name, attempt in risk_adding_attempts(deal):
        with ape.reverts(deal.vault.StaleOracle, updatedAt=updated, maxAge=3600):
            attempt()


@pytest.mark.parametrize("answer", [0, -1, -3000 * 10**8, 10**16 + 1])
def test_invalid_price_refuses_every_risk_adding_leg(w3, mk, answer):
    deal = positioned(mk)
    set_eth_price(w3, deal.mirror, answer)
    for name, attempt in risk_adding_attempts(deal):
        with ape.reverts(deal.vault.InvalidPrice, answer=answer):
            attempt()
    assert deal.vault.riskView().oracleStatus == 2
    deal.repay(1_000 * E6)  # still runs


# --- ladder, price limits -------------------------------------------------------------------------


def test_tranche_above_rung(w3, mk):
    r0, r1, r2 = 1_000 * E6, 2_000 * E6, 3_000 * E6
    deal = mk(rungs=[r0, r1, r2])
    deal.run("buy")  # ~18,600 USDTz: every check below is TrancheAboveRung, not InsufficientBucket
    vault, op, s = deal.vault, deal.operator, deal.v.cusdt
    with ape.reverts(vault.TrancheAboveRung, amount=r0 + 1, rungSize=r0):
        vault.redeem(s, r0 + 1, sender=op)
    deal.redeem(r0)  # rung 0 complete -> rung 1
    assert vault.riskView().rung == 1
    with ape.reverts(vault.TrancheAboveRung, amount=r1 + 1, rungSize=r1):
        vault.redeem(s, r1 + 1, sender=op)
    deal.redeem(r1)
    with ape.reverts(vault.TrancheAboveRung, amount=r2 + 1, rungSize=r2):
        vault.redeem(s, r2 + 1, sender=op)
    deal.redeem(r2)
    assert vault.riskView().rung == 2  # the top rung repeats
    with ape.reverts(vault.TrancheAboveRung, amount=r2 + 1, rungSize=r2):
        vault.redeem(s, r2 + 1, sender=op)
    assert_books(vault, deal.books, deal.v)


def test_buy_above_price_limit(w3, mk, market):
    deal = mk()
    deal.run("borrow")
    v = deal.v
    # a third party buys USDTz until the pair is near par (0.80 -> ~0.98)
    swap_on_pair(w3, market, v.cusdt, v.usdtz, 900_000 * E6)
    amount = 1_000 * E6
    out = uni_out(amount, *reserves(w3, market, v.pair_cusdt, v.cusdt))
    price_e6 = -(-amount * E6 // out)
    assert price_e6 > 950_000
    with ape.reverts(deal.vault.PriceAboveLimit, priceE6=price_e6, limitE6=950_000):
        deal.vault.buy(v.cusdt, amount, 0, DEADLINE, sender=deal.operator)
    assert_books(deal.vault, deal.books, v)
    assert_no_allowances(w3, v, deal.vault)


def test_buy_price_limit_edge_with_min_discount(w3, mk, market):
    """The limit follows minDiscountBps: a discount exactly at the limit passes, a tighter one refuses."""
    deal = mk()
    deal.run("borrow")
    v = deal.v
    amount = 1_000 * E6
    out = uni_out(amount, *reserves(w3, market, v.pair_cusdt, v.cusdt))
    # the largest minDiscount the current price satisfies: amount*1e6 <= (1e4 - d)*100*out
    d_max = BPS - -(-amount * E6 // (100 * out))
    assert 500 < d_max < BPS
    deal.vault.setMinDiscountBps(d_max + 1, sender=deal.owner)
    with ape.reverts(deal.vault.PriceAboveLimit, limitE6=(BPS - d_max - 1) * 100):
        deal.vault.buy(v.cusdt, amount, 0, DEADLINE, sender=deal.operator)


def test_sell_below_floor_and_above_it(w3, mk, market):
    deal = mk()
    deal.run("buy")
    v = deal.v
    amount = 1_000 * E6
    out = uni_out(amount, *reserves(w3, market, v.pair_cusdt, v.usdtz))
    assert out * E6 < 850_000 * amount  # the pair pays ~0.80 < the $0.85 floor
    with ape.reverts(deal.vault.PriceBelowFloor, priceE6=out * E6 // amount, floorE6=850_000):
        deal.vault.sell(v.cusdt, amount, 0, DEADLINE, sender=deal.operator)
    # the pair moves near par: the sell passes at what the pair pays
    swap_on_pair(w3, market, v.cusdt, v.usdtz, 900_000 * E6)
    out = uni_out(amount, *reserves(w3, market, v.pair_cusdt, v.usdtz))
    s0 = deal.books.stable[v.cusdt]
    deal.vault.sell(v.cusdt, amount, 0, DEADLINE, sender=deal.operator)
    assert deal.vault.stableOf(v.cusdt) == s0 + out
    assert_no_allowances(w3, v, deal.vault)


# --- phases ---------------------------------------------------------------------------------------


def test_wrong_phase_masks(w3, mk):
    deal = mk()
    vault, v, op, own = deal.vault, deal.v, deal.operator, deal.owner
    WP = vault.WrongPhase
    # FUNDED
    with ape.reverts(WP, current=PH["FUNDED"], allowedMask=mask("SPLIT", "WORKING", "POSITIONED", "MONETIZING")):
        vault.supply(v.weth9, ETH, sender=op)
    with ape.reverts(WP, current=PH["FUNDED"], allowedMask=0x3e):
        vault.close(sender=op)
    with ape.reverts(WP, current=PH["FUNDED"], allowedMask=0x20):
        vault.resume(sender=own)
    deal.fund()
    deal.split()
    # SPLIT
    with ape.reverts(WP, current=PH["SPLIT"], allowedMask=0x01):
        vault.fund(value=1, sender=own)
    with ape.reverts(WP, current=PH["SPLIT"], allowedMask=0x01):
        vault.split(sender=op)
    with ape.reverts(WP, current=PH["SPLIT"], allowedMask=mask("WORKING", "POSITIONED", "MONETIZING")):
        vault.borrow(v.cusdt, E6, sender=op)
    with ape.reverts(WP, current=PH["SPLIT"], allowedMask=0x1c):
        vault.buy(v.cusdt, E6, 0, DEADLINE, sender=op)
    with ape.reverts(WP, current=PH["SPLIT"], allowedMask=0x3c):
        vault.repay(v.cusdt, E6, sender=op)
    with ape.reverts(WP, current=PH["SPLIT"], allowedMask=0x3c):
        vault.addCollateral(v.weth9, ETH, sender=op)
    deal.supply(10 * ETH)
    deal.borrow(1_000 * E6)
    # WORKING: no USDTz legs yet
    with ape.reverts(WP, current=PH["WORKING"], allowedMask=mask("POSITIONED", "MONETIZING", "HOLDING")):
        vault.redeem(v.cusdt, E6, sender=op)
    with ape.reverts(WP, current=PH["WORKING"], allowedMask=0x38):
        vault.sell(v.cusdt, E6, 0, DEADLINE, sender=op)
    # HOLDING: no risk-adding leg
    vault.hold(sender=deal.guardian if hasattr(deal, "guardian") else own)
    with ape.reverts(WP, current=PH["HOLDING"], allowedMask=0x1c):
        vault.borrow(v.cusdt, E6, sender=op)
    with ape.reverts(WP, current=PH["HOLDING"], allowedMask=0x1e):
        vault.supply(v.weth9, ETH, sender=op)
    with ape.reverts(WP, current=PH["HOLDING"], allowedMask=0x1c):
        vault.withdrawCollateral(v.weth9, ETH, sender=op)  # with debt: risk-adding
    with ape.reverts(WP, current=PH["HOLDING"], allowedMask=0x1f):
        vault.hold(sender=own)
    vault.resume(sender=own)
    assert vault.phase() == PH["WORKING"]
    vault.repay(v.cusdt, MAX_UINT, sender=op)
    owner_repay_rest(w3, deal)
    vault.close(sender=op)
    # CLOSED: nothing but withdraw
    for attempt, m in [
        (lambda: vault.repay(v.cusdt, E6, sender=op), 0x3c),
        (lambda: vault.supply(v.weth9, ETH, sender=op), 0x1e),
        (lambda: vault.close(sender=op), 0x3e),
        (lambda: vault.hold(sender=own), 0x1f),
        (lambda: vault.fund(value=1, sender=own), 0x01),
    ]:
        with ape.reverts(WP, current=PH["CLOSED"], allowedMask=m):
            attempt()


# --- pause ------------------------------------------------------------------------------------------


def test_pause_blocks_exactly_the_risk_adding_legs(w3, mk, market, guardian):
    deal = mk(rungs=[2_000 * E6, 5_000 * E6, 8_000 * E6])
    vault, v, op = deal.vault, deal.v, deal.operator
    vault.pause(sender=guardian)
    deal.fund()  # fund and split run under pause
    deal.split()
    with ape.reverts(vault.Paused):
        vault.supply(v.weth9, ETH, sender=op)
    vault.unpause(sender=deal.owner)
    deal.supply(20 * ETH)
    deal.borrow(10_000 * E6)
    deal.buy(5_000 * E6)
    vault.pause(sender=guardian)
    assert vault.paused()
    for name, attempt in risk_adding_attempts(deal):
        with ape.reverts(vault.Paused):
            attempt()
    # everything risk-reducing still runs
    deal.redeem(1_000 * E6)
    swap_on_pair(w3, market, v.cusdt, v.usdtz, 900_000 * E6)  # so that a sell clears the floor
    vault.sell(v.cusdt, 500 * E6, 0, DEADLINE, sender=op)
    vault.addCollateral(v.weth9, ETH, sender=op)
    vault.deleverage(v.weth9, v.cusdt, ETH // 10, 0, DEADLINE, sender=op)
    vault.repay(v.cusdt, MAX_UINT, sender=op)
    owner_repay_rest(w3, deal)
    assert debt(w3, v, vault) == 0
    vault.withdrawCollateral(v.weth9, ETH, sender=op)  # without debt: not risk-adding
    vault.hold(sender=guardian)
    vault.resume(sender=deal.owner)
    vault.close(sender=op)
    assert vault.phase() == PH["CLOSED"] and vault.paused()
    assert_no_allowances(w3, v, vault)
