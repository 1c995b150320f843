"""Scenario 5: ETH crashes. -40% after a 25% LTV borrow: borrow and buy refused, the
opportunistic bucket posted as collateral cures it, the deal closes. -70% from the start: the
pool liquidates; only supplied WETH is seized, the books reconcile with the pool, the deal closes.

v2: the caps count the debt from the vault's scaled books at the pool's index, so a liquidation is
seen by the vault at its next own debt action (here the repay), which books it: the collateral book
is written down to the aToken balance (CollateralSeized) and nothing is booked as repaid on the
vault's behalf. Until then the lens shows the pool's debt in ``poolDebt`` and the books' in ``debt``.
The PnL counts the collateral booked at that sync (the aToken interest accrued after it stays in
the vault as unbooked surplus).
"""

from __future__ import annotations

from dealvault.kit.funding import fund
from dealvault.kit.mirror import set_eth_price
from dealvault.kit.overlay import erc20
from dealvault.kit.upstream import settable_feed
from tests.model import ceil_div
from tests.unit.vault.helpers_vault import ray_mul

DEADLINE = 2**64
BPS = 10_000
ETH = 10**18


def test_eth_down_40_refuses_then_opportunistic_bucket_cures(fork_vault, make_deal, w3, market, upstream):
    with settable_feed(w3, upstream.eth_usd_feed) as feed:
        deal = make_deal(fork_vault, "scenario 5a: 25% LTV, ETH -40%, cure with the opportunistic bucket")
        v, raw = deal.vault, deal.raw
        pos = deal.position(5_000 * ETH, 2500)
        deal.leg("redeem", deal.cusdt, 50_000 * 10**6, label="redeem r0 50,000")  # stable on the books
        deal.reopen_discount()  # so that a buy would pass on price: the refusal is the LTV's
        p0 = pos["price"]
        p1 = p0 * 60 // 100
        set_eth_price(w3, feed, p1)
        deal.row("ETH -40%")
        debt, coll = raw.debt(), raw.atoken("WETH")
        coll = min(coll, pos["working"])
        ltv = ceil_div(debt * 10**20 * BPS, coll * p1)
        assert deal.view().ltvBps == ltv and ltv > 3000
        cap = deal.params().maxLtvBps
        deal.refused(v.LtvAboveCap, "borrow", deal.cusdt, 10**6, expect={"capBps": cap})
        # v2: the buy passes its TWAP check (the pair is back below its TWAP) and is refused by the LTV
        deal.refused(v.LtvAboveCap, "buy", deal.cusdt, 1_000 * 10**6, 0, DEADLINE, expect={"capBps": cap})
        # the cure: post the opportunistic bucket (risk-reducing, no oracle needed)
        opp = deal.view().opportunisticEth
        deal.leg("addCollateral", deal.weth9, opp)
        coll2 = pos["working"] + opp
        assert raw.atoken("WETH") >= coll2
        ltv2 = ceil_div(raw.debt() * 10**20 * BPS, coll2 * p1)
        assert deal.view().ltvBps == ltv2 and ltv2 <= 3000
        cb, db, *_ = raw.account()
        assert db * BPS <= 3000 * cb
        # cured: a small borrow passes again
        deal.leg("borrow", deal.cusdt, 10**6, label="borrow 1 (cured)")
        # close still works
        deal.redeem_all()
        deal.leg("repay", deal.cusdt, 2**256 - 1, label="repay all")
        assert raw.debt() == 0
        deal.leg("close")
        s = deal.view()
        assert s.phase == 6 and s.realizedPnlEth == 0 and raw.eth() == 5_000 * ETH
        assert s.realizedPnlUsd == raw.bal(deal.cusdt) * 100
        assert (s.operatorLoss, s.repaidOnBehalf, s.writtenOffUsdtz) == (0, 0, 0)


def test_eth_down_70_pool_liquidates_only_supplied_weth(fork_vault, make_deal, w3, market, upstream, whale):
    with settable_feed(w3, upstream.eth_usd_feed) as feed:
        deal = make_deal(fork_vault, "scenario 5b: 25% LTV, ETH -70%: the pool liquidates")
        v, raw = deal.vault, deal.raw
        funded = 5_000 * ETH
        pos = deal.position(funded, 2500)
        s0 = deal.view()
        core, opp = s0.coreEth, s0.opportunisticEth
        eth_before = raw.eth()
        assert eth_before == core + opp
        p2 = pos["price"] * 30 // 100
        set_eth_price(w3, feed, p2)
        deal.row("ETH -70%")
        cb, db, _, _, _, hf = raw.account()
        assert hf < 10**18, "the position should be liquidatable"

        # a liquidator repays part of the debt and seizes collateral
        liq = str(whale.address)
        debt0, a0 = raw.debt(), raw.atoken("WETH")
        scaled_book = raw.scaled_debt()  # the vault's scaled debt book (its last debt action: the borrow)
        cover = debt0 // 2
        fund(w3, deal.cusdt, liq, cover)
        w3.eth.wait_for_transaction_receipt(erc20(w3, deal.cusdt).functions.approve(market.pool, cover).transact({"from": liq}))  # mined before ape picks this sender's next nonce
        weth_before = raw.bal(deal.weth9, liq)
        pool = market.pool_contract(w3)
        w3.eth.wait_for_transaction_receipt(pool.functions.liquidationCall(deal.weth9, deal.cusdt, str(v.address), cover, False).transact({"from": liq}))  # mined before ape picks this sender's next nonce
        seized = raw.bal(deal.weth9, liq) - weth_before
        deal.row("liquidated")
        a1, debt1 = raw.atoken("WETH"), raw.debt()
        assert seized > 0 and a1 < a0
        # the bonus: seized = cover * 1.05 at the oracle price (liquidator's share; the protocol fee is 0)
        expected = cover * 10**20 * 10_500 // (p2 * BPS)
        assert abs(seized - expected) <= expected // 10**6 + 10**12, (seized, expected)
        assert a0 - a1 >= seized
        assert debt0 - cover - 10 <= debt1 <= debt0 - cover + 10**4
        # only supplied WETH was seized: core and opportunistic untouched, in the books and in ETH
        s = deal.view()
        assert (s.coreEth, s.opportunisticEth, s.workingEth) == (core, opp, 0)
        assert raw.eth() == eth_before
        # the books reconcile with the pool: the collateral counted is min(books, aTokens); the
        # pool's debt is in poolDebt, while the caps' debt (v2) stays the scaled book at the pool's
        # index until the vault's next debt action books the liquidation
        assert s.collateralWeth == min(pos["working"], a1) == a1 and s.collateralBooked == pos["working"]
        assert s.poolDebt == debt1
        assert s.debt == ray_mul(scaled_book, raw.debt_index()) > debt1 and s.repaidOnBehalf == 0
        cb, db, *_ = raw.account()
        assert (s.poolCollateralBase, s.poolDebtBase) == (cb, db)
        assert cb == a1 * p2 // ETH  # Aave base currency: USD 8 dp, WETH priced by the same feed

        # the deal still closes
        deal.redeem_all()
        tx = deal.leg("repay", deal.cusdt, 2**256 - 1, label="repay all")
        assert raw.debt() == 0
        # v2: the repay's debt sync found the liquidation: the collateral book written down to the
        # aToken balance at that block, nothing booked as repaid on the vault's behalf
        a_sync = raw.atoken("WETH")  # the repay's block is the latest (nothing touched aWETH since)
        seized_ev = [e for e in tx.events if e.event_name == "CollateralSeized"]
        assert [(e.wrapper, e.amount) for e in seized_ev] == [(deal.weth9, pos["working"] - a_sync)]
        assert not [e for e in tx.events if e.event_name == "RepaidOnBehalf"]
        s = deal.view()
        assert (s.collateralBooked, s.repaidOnBehalf, s.debt, s.poolDebt) == (a_sync, 0, 0, 0)
        tx = deal.leg("close")
        s = deal.view()
        assert s.phase == 6
        # PnL: the ETH buckets and the collateral booked at the sync, against the funded capital
        assert s.realizedPnlEth == core + opp + a_sync - funded < 0
        assert raw.eth() - funded >= s.realizedPnlEth  # + the aToken interest since the sync (unbooked)
        assert -s.realizedPnlEth >= seized  # the liquidation loss is in the PnL
        ev = [e for e in tx.events if e.event_name == "Closed"][0]
        assert (ev.realizedPnlEth, ev.collateralLeft) == (s.realizedPnlEth, 0)
        stable = raw.bal(deal.cusdt)
        prod = s.realizedPnlEth * p2
        assert s.realizedPnlUsd == -((-prod) // 10**18) + stable * 100
