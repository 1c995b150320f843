"""Every DealVault cap at its edge, with the edge computed in the test from raw reads.

LTV: the largest borrow both checks allow (vault: debt*1e24 <= cap*coll*price; pool:
debtBase*1e4 <= cap*collBase) passes, one unit more reverts LtvAboveCap. Exposure: the largest buy
whose Uniswap output keeps USDTz*1e24 <= cap*NAV26 passes, one unit more reverts ExposureAboveCap
(NAV at the pinned block time, with the debt compounded by Aave's formula). Oracle stale / zero /
negative / absurd / (v2) updated in the future refuses every risk-adding leg, and (v2) split;
TrancheAboveRung; PriceAboveLimit; PriceBelowFloor; WrongPhase masks; pause blocks exactly the
risk-adding legs.

v2 edges: the buy's TWAP bound (the pair's spot before the swap exactly at TWAP x (1 + maxSlippageBps)
passes, one unit of the stable reserve more reverts PriceAboveTwap; the spot and the TWAP are
re-derived from the pair's reserves and price accumulators); the TWAP window (a buy one second
before observedAt + twapWindow reverts TwapWindowShort, at it passes); the minimum tranche
(TrancheBelowMinimum at minTranche - 1 unless it is all the USDTz held); deleverage's size bound
(the largest collateral amount whose proceeds bound is within the debt + 1% passes, one wei more
reverts DeleverageTooLarge). Parameters change through setParam (tightening acts at once).
"""

from __future__ import annotations

import ape
import pytest
from helpers_vault import (
    BPS,
    E6,
    ETH,
    INVALID,
    MAX_UINT,
    PH,
    abal,
    account_data,
    assert_books,
    assert_leg,
    assert_no_allowances,
    bal,
    block_ts,
    coll_wei,
    cumulative_at,
    debt,
    debt_at,
    feed,
    loss_budget,
    make_deal,
    mask,
    max_buy_exposure,
    max_debt,
    nav_e26,
    oracle_status,
    pair_prices_x112,
    params,
    reserves,
    risk_view,
    split_value,
    stable_of,
    to_e6,
    twap_ready,
    twap_x112,
    uni_out,
)

from dealvault.kit.evm import advance_time, impersonating, rpc, send
from dealvault.kit.funding import set_token_balance
from dealvault.kit.mirror import make_feed_stale, set_eth_price
from dealvault.kit.overlay import DEADLINE, swap_on_pair

# IDealVault.Param (setParam's first argument)
P = dict(MaxLtvBps=0, MaxExposureBps=1, MaxDeskFeeBps=2, OracleMaxAge=3, MinDiscountBps=4, MaxSlippageBps=5,
         SellFloorPrice=6, EthFloorPrice=7, MaxOperatorLossBps=8, TwapWindow=9, LoosenDelay=10)
TWAP_WINDOW = 60  # tests.model.DEFAULT_RISK
DELEVERAGE_MARGIN_BPS = 100  # IDealVault: the proceeds bound may exceed the debt by at most 1%
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


def owner_repay_rest(w3, deal, book: bool = False) -> int:
    """The interest above the books: the owner repays it with its own cUSDT (ownerRepay, capped at
    the debt token balance at its block, the rest refunded). Returns what it repaid, from Aave's
    compounding at that block; ``book``: also moves deal.books (owner_repaid, legSeq)."""
    from dealvault.kit.funding import fund
    from dealvault.kit.overlay import erc20

    v, vault = deal.v, deal.vault
    owed = debt(w3, v, vault)
    repaid = 0
    if owed:
        fund(w3, v.cusdt, deal.owner.address, owed + 100)
        w3.eth.wait_for_transaction_receipt(erc20(w3, v.cusdt).functions.approve(vault.address, owed + 100).transact({"from": deal.owner.address}))  # mined before ape picks this sender's next nonce
        pre = w3.eth.block_number
        r = vault.ownerRepay(v.cusdt, owed + 100, sender=deal.owner)  # capped at the debt, rest refunded
        repaid = debt_at(w3, deal.market, v.cusdt, v.debt_cusdt, vault, block_ts(w3, r.block_number), block=pre)
        assert [(e.stable, e.amount, e.payer) for e in r.decode_logs(vault.Repaid)] == [
            (v.cusdt, repaid, deal.owner.address)]
        if book:
            assert_leg(vault, r, deal.books, "OwnerRepay")
            deal.books.owner_repaid += repaid
    assert debt(w3, v, vault) == 0
    return repaid


def deleverage(w3, deal, amount: int, stable: str | None = None) -> object:
    """The operator's deleverage of WETH9 collateral, booked from independent expectations: the
    WETH pair pays getAmountOut, Aave takes min(proceeds, debt at the block), the rest is booked
    stable; v2: the proceeds' shortfall against the oracle value is the operator's loss."""
    v, vault, b, m = deal.v, deal.vault, deal.books, deal.market
    stable = stable or v.cusdt
    pair = m.pair_weth_cusdt if stable == v.cusdt else m.pair_weth_cusdc
    price, _ = feed(w3, deal.mirror)
    got = uni_out(amount, *reserves(w3, m, pair, v.weth9))
    pre = w3.eth.block_number
    r = vault.deleverage(v.weth9, stable, amount, 0, DEADLINE, sender=deal.operator)
    owed = debt_at(w3, m, stable, v.debt_token(stable), vault, block_ts(w3, r.block_number), block=pre)
    repaid = min(got, owed)
    ev = [(e.collateralAmount, e.received, e.repaid) for e in r.decode_logs(vault.Deleveraged)]
    assert ev == [(amount, got, repaid)], ev
    assert_leg(vault, r, b, "Deleverage")
    b.collateral[v.weth9] -= amount
    b.stable[stable] += got - repaid
    b.operator_loss += max(amount * price // 10**20 - got, 0)
    return r


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
    """A tighter owner cap (2000, v2: setParam, a tightening acts at once) and a lower price: the
    edge follows both."""
    deal = mk()
    deal.run("supply")
    r = deal.vault.setParam(P["MaxLtvBps"], 2000, sender=deal.owner)
    assert [(e.param, e.oldValue, e.newValue) for e in r.decode_logs(deal.vault.RiskParamSet)] == [(0, 3000, 2000)]
    assert params(deal.vault).maxLtvBps == 2000
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
    pool_edge = -(-d * 100 * BPS // 3000)  # the pool's collateral base the debt needs (rounded up)
    need = max(-(-d * 10**24 // (3000 * price)), -(-pool_edge * ETH // price))
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
    twap_ready(w3, deal.vault, stable)  # v2: the buy's TWAP observation is ready before the pinned blocks
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
    deal.buy(a, stable, wait=False)
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
    rpc(w3, "evm_mine", [])  # the refused leg was mined (reverted) at the pin; one more block
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
    assert risk_view(deal.vault).oracleStatus == oracle_status(*feed(w3, deal.mirror), block_ts(w3)) == 1
    assert_books(deal.vault, deal.books, deal.v)


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
    assert risk_view(deal.vault).oracleStatus == oracle_status(*feed(w3, deal.mirror), block_ts(w3)) == INVALID
    deal.repay(1_000 * E6)  # still runs
    assert_books(deal.vault, deal.books, deal.v)


def test_future_updated_at_is_invalid(w3, mk):
    """v2: a round whose updatedAt is in the future is Invalid (v1 counted it as fresh): every
    risk-adding leg refuses with InvalidPrice(answer), though the answer itself is a normal price."""
    deal = positioned(mk)
    price, _ = feed(w3, deal.mirror)
    future = block_ts(w3) + 3_600
    set_eth_price(w3, deal.mirror, price, updated_at=future)
    assert feed(w3, deal.mirror) == (price, future)
    for name, attempt in risk_adding_attempts(deal):
        with ape.reverts(deal.vault.InvalidPrice, answer=price):
            attempt()
    assert oracle_status(price, future, block_ts(w3)) == INVALID == risk_view(deal.vault).oracleStatus
    deal.repay(1_000 * E6)  # a risk-reducing leg still runs
    assert_books(deal.vault, deal.books, deal.v)
    # one second past it the same round is a normal, fresh one again
    rpc(w3, "evm_setNextBlockTimestamp", [future])
    rpc(w3, "evm_mine", [])
    assert risk_view(deal.vault).oracleStatus == oracle_status(price, future, block_ts(w3)) == 0
    deal.borrow(100 * E6)


def test_split_needs_a_fresh_oracle(w3, mk):
    """v2: split reads the oracle (the loss budget's base: the funded capital at its price), so a
    stale, invalid or future-dated feed refuses it with the same errors as a risk-adding leg;
    nothing is booked until a fresh round comes."""
    deal = mk()
    deal.fund()
    vault, op = deal.vault, deal.operator
    updated = make_feed_stale(w3, deal.mirror, 3_601)
    with ape.reverts(vault.StaleOracle, updatedAt=updated, maxAge=3_600):
        vault.split(sender=op)
    for answer in (0, -1, 10**16 + 1):
        set_eth_price(w3, deal.mirror, answer)
        with ape.reverts(vault.InvalidPrice, answer=answer):
            vault.split(sender=op)
    set_eth_price(w3, deal.mirror, 2_999 * 10**8, updated_at=block_ts(w3) + 600)
    with ape.reverts(vault.InvalidPrice, answer=2_999 * 10**8):
        vault.split(sender=op)
    assert vault.phase() == PH["FUNDED"]
    assert_books(vault, deal.books, deal.v)  # still all core, no split value
    set_eth_price(w3, deal.mirror, 2_500 * 10**8)
    deal.split()
    assert deal.books.split_value == split_value(100 * ETH, 2_500 * 10**8) == 250_000 * E6
    rv = assert_books(vault, deal.books, deal.v)
    assert rv.lossBudget == loss_budget(250_000 * E6, 50) == 1_250 * E6


# --- ladder, price limits -------------------------------------------------------------------------


def test_tranche_above_rung(w3, mk):
    r0, r1, r2 = 1_000 * E6, 2_000 * E6, 3_000 * E6
    deal = mk(rungs=[r0, r1, r2])
    deal.run("buy")  # ~18,600 USDTz: every check below is TrancheAboveRung, not InsufficientBucket
    vault, op, s = deal.vault, deal.operator, deal.v.cusdt
    with ape.reverts(vault.TrancheAboveRung, amount=r0 + 1, rungSize=r0):
        vault.redeem(s, r0 + 1, sender=op)
    deal.redeem(r0)  # rung 0 complete -> rung 1
    assert risk_view(vault).rung == 1
    with ape.reverts(vault.TrancheAboveRung, amount=r1 + 1, rungSize=r1):
        vault.redeem(s, r1 + 1, sender=op)
    deal.redeem(r1)
    with ape.reverts(vault.TrancheAboveRung, amount=r2 + 1, rungSize=r2):
        vault.redeem(s, r2 + 1, sender=op)
    deal.redeem(r2)
    assert risk_view(vault).rung == 2  # the top rung repeats
    with ape.reverts(vault.TrancheAboveRung, amount=r2 + 1, rungSize=r2):
        vault.redeem(s, r2 + 1, sender=op)
    assert_books(vault, deal.books, deal.v)


def test_min_tranche_edge(w3, mk):
    """v2: a tranche below minTranche reverts TrancheBelowMinimum (a dust redemption cannot reset the
    ladder), unless it is all the USDTz held; minTranche itself passes."""
    m = 1_500 * E6
    deal = mk(rungs=[2_000 * E6, 5_000 * E6, 8_000 * E6], minTranche=m)
    assert params(deal.vault).minTranche == m
    deal.run("borrow")
    deal.buy(2_000 * E6)  # ~2,490 USDTz
    vault, op, s = deal.vault, deal.operator, deal.v.cusdt
    held = deal.books.usdtz_held
    assert m < held < 2 * m
    with ape.reverts(vault.TrancheBelowMinimum, amount=m - 1, minTranche=m):
        vault.redeem(s, m - 1, sender=op)
    deal.redeem(m)  # exactly the minimum
    held = deal.books.usdtz_held
    assert 1 < held < m  # the remainder is below the minimum
    with ape.reverts(vault.TrancheBelowMinimum, amount=held - 1, minTranche=m):
        vault.redeem(s, held - 1, sender=op)
    with ape.reverts(vault.TrancheBelowMinimum, amount=1, minTranche=m):
        vault.redeem(s, 1, sender=op)
    deal.redeem(held)  # all of it: allowed below the minimum
    assert deal.books.usdtz_held == 0 and deal.books.phase == PH["MONETIZING"]
    assert_books(vault, deal.books, deal.v)


# --- buy: discount limit and TWAP (v2) ------------------------------------------------------------


def set_pair_reserves(w3, market, pair: str, usdtz_reserve: int, stable_reserve: int, stable: str,
                      at: int | None = None) -> None:
    """Makes a USDTz pair's reserves exactly these: the token balances written, then sync()
    (at block time ``at`` if given), which first accrues the old price into the accumulators."""
    set_token_balance(w3, market.usdtz, pair, usdtz_reserve)
    set_token_balance(w3, stable, pair, stable_reserve)
    if at is not None:
        rpc(w3, "evm_setNextBlockTimestamp", [at])
    with impersonating(w3, w3.eth.accounts[9]) as who:
        send(w3, market.pair_contract(w3, pair).functions.sync(), who)


def test_buy_twap_edge(w3, mk, market):
    """v2: the pair's spot before a buy may be at most TWAP x (1 + maxSlippageBps) (100 bps). The
    reserves are set so both are exact integers: USDTz reserve 2**43 makes spot = stable reserve x
    2**69; the price p0 from the observation for 64 s, then p1 for 64 s, so the TWAP is
    (p0 + p1) / 2. With p0 = 99k x 2**69 and p1 = 101k x 2**69, spot x 10_000 == TWAP x 10_100
    exactly: the buy passes. One unit more of the stable reserve (p1 one step higher) reverts
    PriceAboveTwap(spotE6, twapE6)."""
    deal = mk()
    deal.run("borrow")
    v, vault, pair = deal.v, deal.vault, deal.v.pair_cusdt
    assert params(vault).maxSlippageBps == 100
    rz, k = 2**43, 71_080_000_000  # 8,796,093 USDTz; p0 = 7,036,920 / 8,796,093 = $0.8000
    rs0, rs1 = 99 * k, 101 * k
    set_pair_reserves(w3, market, pair, rz, rs0, v.cusdt)
    t_obs = block_ts(w3, deal.observe().block_number)
    cum_obs = cumulative_at(w3, market, pair, t_obs)  # raw: no trade since the sync
    t_buy = t_obs + 128
    assert t_buy >= t_obs + TWAP_WINDOW
    snap = rpc(w3, "evm_snapshot", [])

    def move_to(rs: int) -> tuple[int, int]:
        """p1 from t_obs + 64 on; returns (spot, TWAP) at t_buy, re-derived from the pair."""
        set_pair_reserves(w3, market, pair, rz, rs, v.cusdt, at=t_obs + 64)
        spot, _, _ = pair_prices_x112(w3, market, pair)
        assert spot == rs * 2**69
        twap = twap_x112(cum_obs, t_obs, cumulative_at(w3, market, pair, t_buy), t_buy)
        assert twap == (rs0 + rs) * 2**68  # exact: (p0 x 64 + p1 x 64) / 128
        rpc(w3, "evm_setNextBlockTimestamp", [t_buy])
        return spot, twap

    # one unit above the edge
    spot, twap = move_to(rs1 + 1)
    assert spot * BPS > twap * (BPS + 100)
    with ape.reverts(vault.PriceAboveTwap, spotE6=to_e6(spot), twapE6=to_e6(twap)):
        vault.buy(v.cusdt, 1_000 * E6, 0, DEADLINE, sender=deal.operator)
    assert rpc(w3, "evm_revert", [snap])
    # exactly at the edge
    spot, twap = move_to(rs1)
    assert spot * BPS == twap * (BPS + 100)
    deal.buy(1_000 * E6, wait=False)
    assert block_ts(w3) == t_buy
    assert_books(vault, deal.books, v)
    assert_no_allowances(w3, v, vault)


def test_buy_before_the_twap_window(w3, mk):
    """v2: a buy needs the stable's observation (split or observe) at least twapWindow old: one
    second before reverts TwapWindowShort(observedAt, twapWindow), at it passes; observe() starts
    the window again."""
    deal = mk()
    deal.run("borrow")
    vault, v, op = deal.vault, deal.v, deal.operator
    t_split = block_ts(w3, deal.receipts[1][1].block_number)
    assert deal.receipts[1][0] == "split" and block_ts(w3) < t_split + TWAP_WINDOW - 1
    rpc(w3, "evm_setNextBlockTimestamp", [t_split + TWAP_WINDOW - 1])
    with ape.reverts(vault.TwapWindowShort, observedAt=t_split, twapWindow=TWAP_WINDOW):
        vault.buy(v.cusdt, 1_000 * E6, 0, DEADLINE, sender=op)
    assert block_ts(w3) == t_split + TWAP_WINDOW - 1  # the refused buy was mined (reverted) at the pin
    rpc(w3, "evm_setNextBlockTimestamp", [t_split + TWAP_WINDOW])
    deal.buy(1_000 * E6, wait=False)
    assert block_ts(w3) == t_split + TWAP_WINDOW
    # a new observation: the window starts over
    t_obs = block_ts(w3, deal.observe().block_number)
    with ape.reverts(vault.TwapWindowShort, observedAt=t_obs, twapWindow=TWAP_WINDOW):
        vault.buy(v.cusdt, 1_000 * E6, 0, DEADLINE, sender=op)
    twap_ready(w3, vault, v.cusdt)
    assert block_ts(w3) == t_obs + TWAP_WINDOW
    deal.buy(1_000 * E6)
    assert_books(vault, deal.books, v)


def test_buy_above_price_limit(w3, mk, market):
    """A third party pumps the pair near par. v2: in that block the spot is far above the pair's
    TWAP, so the buy first reverts PriceAboveTwap; once a new observation is twapWindow old the TWAP
    has caught up and the buy reverts on the discount limit (PriceAboveLimit), as in v1."""
    deal = mk()
    deal.run("borrow")
    v, pair = deal.v, deal.v.pair_cusdt
    twap_ready(w3, deal.vault, v.cusdt)  # the window since the split has passed
    t_split = block_ts(w3, deal.receipts[1][1].block_number)
    cum_split = cumulative_at(w3, market, pair, t_split)  # no trade on the pair since the split
    # a third party buys USDTz until the pair is near par (0.80 -> ~0.98)
    swap_on_pair(w3, market, v.cusdt, v.usdtz, 900_000 * E6)
    amount = 1_000 * E6
    t = block_ts(w3) + 1
    spot, _, _ = pair_prices_x112(w3, market, pair)
    twap = twap_x112(cum_split, t_split, cumulative_at(w3, market, pair, t), t)
    assert spot * BPS > twap * (BPS + 100)
    rpc(w3, "evm_setNextBlockTimestamp", [t])
    with ape.reverts(deal.vault.PriceAboveTwap, spotE6=to_e6(spot), twapE6=to_e6(twap)):
        deal.vault.buy(v.cusdt, amount, 0, DEADLINE, sender=deal.operator)
    deal.observe()
    twap_ready(w3, deal.vault, v.cusdt)  # the TWAP since the new observation is the pumped price
    out = uni_out(amount, *reserves(w3, market, v.pair_cusdt, v.cusdt))
    price_e6 = -(-amount * E6 // out)
    assert price_e6 > 950_000
    with ape.reverts(deal.vault.PriceAboveLimit, priceE6=price_e6, limitE6=950_000):
        deal.vault.buy(v.cusdt, amount, 0, DEADLINE, sender=deal.operator)
    assert_books(deal.vault, deal.books, v)
    assert_no_allowances(w3, v, deal.vault)


def test_buy_price_limit_edge_with_min_discount(w3, mk, market):
    """The limit follows minDiscountBps: a discount exactly at the limit passes, a tighter one
    refuses (v2: set with setParam; raising minDiscountBps tightens, so it acts at once)."""
    deal = mk()
    deal.run("borrow")
    v, vault = deal.v, deal.vault
    twap_ready(w3, vault, v.cusdt)
    amount = 1_000 * E6
    out = uni_out(amount, *reserves(w3, market, v.pair_cusdt, v.cusdt))
    price_e6 = -(-amount * E6 // out)
    # the largest minDiscount the current price satisfies: amount*1e6 <= (1e4 - d)*100*out
    d_max = BPS - -(-amount * E6 // (100 * out))
    assert 500 < d_max < BPS
    snap = rpc(w3, "evm_snapshot", [])
    vault.setParam(P["MinDiscountBps"], d_max + 1, sender=deal.owner)
    assert params(vault).minDiscountBps == d_max + 1
    with ape.reverts(vault.PriceAboveLimit, priceE6=price_e6, limitE6=(BPS - d_max - 1) * 100):
        vault.buy(v.cusdt, amount, 0, DEADLINE, sender=deal.operator)
    assert rpc(w3, "evm_revert", [snap])
    vault.setParam(P["MinDiscountBps"], d_max, sender=deal.owner)
    assert params(vault).minDiscountBps == d_max
    assert amount * E6 <= (BPS - d_max) * 100 * out
    deal.buy(amount)
    assert deal.books.usdtz_held == out
    assert_books(vault, deal.books, v)


def test_sell_below_floor_and_above_it(w3, mk, market):
    deal = mk()
    deal.run("buy")
    v = deal.v
    amount = 1_000 * E6
    out = uni_out(amount, *reserves(w3, market, v.pair_cusdt, v.usdtz))
    assert out * E6 < 850_000 * amount  # the pair pays ~0.80 < the $0.85 floor
    with ape.reverts(deal.vault.PriceBelowFloor, priceE6=out * E6 // amount, floorE6=850_000):
        deal.vault.sell(v.cusdt, amount, 0, DEADLINE, sender=deal.operator)
    # the pair moves near par: the sell passes at what the pair pays (v2: the spot is above its
    # TWAP, which only binds a sell from below)
    swap_on_pair(w3, market, v.cusdt, v.usdtz, 900_000 * E6)
    out = uni_out(amount, *reserves(w3, market, v.pair_cusdt, v.usdtz))
    s0 = deal.books.stable[v.cusdt]
    deal.sell(amount)
    assert stable_of(deal.vault, v.cusdt) == bal(w3, v.cusdt, deal.vault) == s0 + out
    assert deal.books.operator_loss == 0  # sold above the average cost: no loss
    assert_books(deal.vault, deal.books, v)
    assert_no_allowances(w3, v, deal.vault)


# --- deleverage (v2) ------------------------------------------------------------------------------


def test_deleverage_too_large_edge(w3, mk, market):
    """v2: deleverage may sell only what the stable's debt needs: the proceeds bound (collateral x
    oracle price x (1 - maxSlippageBps), compared exactly) may exceed the debt (debt token balance at
    that block) by at most 1%. The largest such amount passes (and repays the whole debt), one wei more reverts
    DeleverageTooLarge(proceedsBound, debt)."""
    deal = mk()
    deal.run("borrow")
    v, vault, op = deal.v, deal.vault, deal.operator
    set_eth_price(w3, deal.mirror, feed(w3, deal.mirror)[0])  # a fresh round: the reference is the oracle
    price, _ = feed(w3, deal.mirror)
    snap = rpc(w3, "evm_snapshot", [])  # both attempts at the same block time (a refused leg is mined too)
    t = pin_next(w3)
    owed = debt_at(w3, market, v.cusdt, v.debt_cusdt, vault, t)
    assert owed > 20_000 * E6  # principal + the interest up to the pinned block

    def bound(amount: int) -> int:
        """The proceeds bound: the collateral's value (6 dp) x (1 - maxSlippageBps), rounded down."""
        return amount * price // 10**20 * (BPS - 100) // BPS

    def fits(amount: int) -> bool:
        """value x (1 - slippage) <= debt x (1 + margin), cross-multiplied (no rounding)."""
        return amount * price // 10**20 * (BPS - 100) <= owed * (BPS + DELEVERAGE_MARGIN_BPS)

    lo, hi = 0, deal.books.collateral[v.weth9]
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    edge = lo
    assert 6 * ETH < edge < 8 * ETH and fits(edge) and not fits(edge + 1)
    with ape.reverts(vault.DeleverageTooLarge, proceedsBound=bound(edge + 1), debt=owed):
        vault.deleverage(v.weth9, v.cusdt, edge + 1, 0, DEADLINE, sender=op)
    # the edge, at the same block time
    assert rpc(w3, "evm_revert", [snap])
    rpc(w3, "evm_setNextBlockTimestamp", [t])
    got = uni_out(edge, *reserves(w3, market, market.pair_weth_cusdt, v.weth9))
    assert got >= bound(edge)
    r = vault.deleverage(v.weth9, v.cusdt, edge, 0, DEADLINE, sender=op)
    assert block_ts(w3) == t
    ev = [(e.collateralAmount, e.received, e.repaid) for e in r.decode_logs(vault.Deleveraged)]
    assert ev == [(edge, got, owed)]  # the proceeds cover the debt: all of it is repaid
    b = deal.books
    assert_leg(vault, r, b, "Deleverage")
    b.collateral[v.weth9] -= edge
    b.stable[v.cusdt] += got - owed
    value = edge * price // 10**20
    b.operator_loss += max(value - got, 0)  # the sale's cost against the oracle: the operator's loss
    assert 0 < b.operator_loss < loss_budget(b.split_value)
    assert debt(w3, v, vault) == 0
    assert_books(vault, b, v)
    assert_no_allowances(w3, v, vault)


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
    with ape.reverts(WP, current=PH["FUNDED"], allowedMask=mask("CLOSED")):  # v2: renounce only once CLOSED
        vault.renounceOwnership(sender=own)
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
        (lambda: vault.split(sender=op), 0x01),
        (lambda: vault.observe(sender=op), 0x3f),  # v2: observe in any phase but CLOSED
    ]:
        with ape.reverts(WP, current=PH["CLOSED"], allowedMask=m):
            attempt()


# --- pause ------------------------------------------------------------------------------------------


def test_pause_blocks_exactly_the_risk_adding_legs(w3, mk, market, guardian):
    """Pause refuses exactly supply, borrow, buy and withdrawCollateral with debt; every other leg
    runs. v2: the operator's close may not write off USDTz past the loss budget
    (LossBudgetExceeded), so the USDTz left is redeemed (under pause) before the close."""
    deal = mk(rungs=[2_000 * E6, 5_000 * E6, 8_000 * E6])
    vault, v, op, b = deal.vault, deal.v, deal.operator, deal.books
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
    deal.sell(500 * E6)
    deal.add_collateral(ETH)
    deleverage(w3, deal, ETH // 10)
    deal.repay(MAX_UINT)
    owner_repay_rest(w3, deal, book=True)
    assert debt(w3, v, vault) == 0
    deal.withdraw_collateral(ETH)  # without debt: not risk-adding
    for leg_name, r in (("Hold", vault.hold(sender=guardian)), ("Resume", vault.resume(sender=deal.owner))):
        assert_leg(vault, r, b, leg_name)
    assert_books(vault, b, v)
    # v2: the operator's close would write the USDTz left off at cost, past the loss budget
    budget = loss_budget(b.split_value)
    assert b.operator_loss + b.usdtz_cost > budget
    with ape.reverts(vault.LossBudgetExceeded, lossAfter=b.operator_loss + b.usdtz_cost, budget=budget):
        vault.close(sender=op)
    deal.redeem(2_000 * E6 - b.rung_progress)  # completes rung 0
    deal.redeem(b.usdtz_held)  # the rest, within rung 1
    deal.close()
    assert vault.phase() == PH["CLOSED"] and vault.paused()
    assert_books(vault, b, v)
    assert_no_allowances(w3, v, vault)
