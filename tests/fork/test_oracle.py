"""Scenario 6: the oracle goes stale or answers zero mid-deal.

The real feed cannot be moved: its code is saved and the settable PriceFeed swapped in at the
same address (anvil_setCode), restored afterwards (dealvault.kit.upstream.settable_feed checks it).
Every risk-adding leg refuses; repay, redeem, sell, deleverage and close still work.

v2 outcomes asserted here:
* a stale feed: the operator's deleverage is bounded by the feed's last valid answer (the stale
  price) x (1 - maxSlippageBps), not by ethFloorPrice as in v1, and its shortfall against that
  price is an operator loss booked against the budget; the owner's deleverage (a crisis exit) is
  bounded by ethFloorPrice ($1,000) and books no loss.
* a zero answer: the operator's deleverage is refused by the vault itself, InvalidPrice(0), before
  the pool is asked (v1: it reverted inside the pool); the owner's still reverts in the pool, which
  cannot price the collateral either.
* the owner's ``ownerRepay`` pulls the amount it names (the rest comes back): an explicit amount,
  not type(uint256).max.
* the operator's sell is checked against the pair's TWAP; its loss (if any) is booked.
"""

from __future__ import annotations

import pytest

from dealvault.kit.evm import get_storage
from dealvault.kit.funding import fund
from dealvault.kit.mirror import make_feed_stale, set_eth_price
from dealvault.kit.overlay import erc20
from dealvault.kit.upstream import settable_feed

DEADLINE = 2**64
BPS = 10_000
ETH = 10**18
EMPTY_REVERT = b""  # Deal.refused: a revert with no data


@pytest.mark.parametrize("mode", ["stale", "zero"])
def test_oracle_stale_or_zero(fork_vault, make_deal, w3, market, upstream, owner, mode):
    feed_code = w3.eth.get_code(upstream.eth_usd_feed)
    slot0 = get_storage(w3, upstream.eth_usd_feed, 0)
    with settable_feed(w3, upstream.eth_usd_feed) as feed:
        deal = make_deal(fork_vault, f"scenario 6: oracle {mode}")
        v, raw = deal.vault, deal.raw
        pos = deal.position(5_000 * ETH, 2985, keep_working=10 * ETH)
        deal.leg("redeem", deal.cusdt, 50_000 * 10**6, label="redeem r0 50,000")
        max_age = deal.params().oracleMaxAge
        assert max_age == 3600

        if mode == "stale":
            updated = make_feed_stale(w3, feed)
            err, status, err_args = v.StaleOracle, 1, {"updatedAt": updated, "maxAge": max_age}
            pool_err = err  # Aave does not check the feed's age: the vault refuses
        else:
            set_eth_price(w3, feed, 0)
            err, status, err_args = v.InvalidPrice, 2, {"answer": 0}
            # Aave cannot price WETH either (AaveOracle falls back to an unset fallback oracle, a
            # call that reverts with no data): a borrow or a withdrawal with debt reverts inside
            # the pool, before the vault's check
            pool_err = EMPTY_REVERT
        deal.row(f"oracle {mode}")
        s = deal.view()
        assert s.oracleStatus == status
        if mode == "stale":
            assert s.priceUpdatedAt == updated and s.ethPrice == pos["price"]
        else:
            assert s.ethPrice == 0 and s.collateralValue == 0

        # every risk-adding leg refuses, naming the oracle
        deal.refused(err, "supply", deal.weth9, ETH, expect=err_args)
        deal.refused(pool_err, "borrow", deal.cusdt, 10**6, expect=err_args)
        deal.refused(pool_err, "withdrawCollateral", deal.weth9, ETH, expect=err_args)

        # risk-reducing legs work
        deal.leg("redeem", deal.cusdt, 100_000 * 10**6, label="redeem r1 100,000")
        s = deal.view()
        z_before, s_before, loss0 = raw.bal(deal.usdtz), raw.bal(deal.cusdt), s.operatorLoss
        sell_in = 10_000 * 10**6
        cost_out = -(-s.usdtzCost * sell_in // s.usdtzHeld)  # the average cost of what is sold, rounded up
        deal.leg("sell", deal.cusdt, sell_in, 0, DEADLINE)
        got = raw.bal(deal.cusdt) - s_before
        assert z_before - raw.bal(deal.usdtz) == sell_in and got * 10**6 >= 850_000 * sell_in
        # v2: a sale below its average cost is an operator loss (here the pair pays above it: none)
        assert deal.view().operatorLoss == loss0 + max(0, cost_out - got)
        deal.reopen_discount()  # so that a buy is refused for the oracle, not for its price (nor its TWAP)
        deal.refused(err, "buy", deal.cusdt, 1_000 * 10**6, 0, DEADLINE, expect=err_args)
        d_before, t_before, rate = raw.debt(), raw.now(), raw.rate()
        deal.leg("repay", deal.cusdt, 20_000 * 10**6, label="repay 20,000")
        assert d_before - 20_000 * 10**6 <= raw.debt() <= d_before - 20_000 * 10**6 + raw.interest_bound(d_before, t_before, rate)
        lev = 5 * ETH
        floor = deal.params().ethFloorPrice
        assert floor == 1_000 * 10**8
        if mode == "stale":
            # v2: the operator is bounded by the last valid (stale) price minus slippage, not by the
            # floor; the shortfall against that price is an operator loss
            loss_before = deal.view().operatorLoss
            tx = deal.leg("deleverage", deal.weth9, deal.cusdt, lev, 0, DEADLINE)
            ev = [e for e in tx.events if e.event_name == "Deleveraged"][0]
            value = lev * pos["price"] // 10**20
            assert ev.received >= value * (BPS - 100) // BPS > lev * floor * (BPS - 100) // (10**20 * BPS)
            assert ev.repaid == ev.received
            loss = max(0, value - ev.received)
            assert deal.view().operatorLoss == loss_before + loss
            booked = [e for e in tx.events if e.event_name == "OperatorLoss"]
            assert [(e.loss, e.total) for e in booked] == ([(loss, loss_before + loss)] if loss else [])
            # the owner's deleverage (a crisis exit): bounded by ethFloorPrice ($1,000) minus
            # slippage, no loss booked
            tx = deal.leg("deleverage", deal.weth9, deal.cusdt, lev, 0, DEADLINE, sender=owner, label="deleverage (owner)")
            ev = [e for e in tx.events if e.event_name == "Deleveraged"][0]
            assert ev.received >= lev * floor * (BPS - 100) // (10**20 * BPS) and ev.repaid == ev.received
            assert deal.view().operatorLoss == loss_before + loss
            assert not [e for e in tx.events if e.event_name == "OperatorLoss"]
            lev = 2 * lev
        else:
            # v2: the operator has no valid price to bound the sale: the vault refuses before the pool
            deal.refused(v.InvalidPrice, "deleverage", deal.weth9, deal.cusdt, lev, 0, DEADLINE, expect={"answer": 0})
            # the owner's is bounded by ethFloorPrice, but the pool itself cannot price the
            # collateral (AaveOracle falls back to a fallback oracle that is not set): no
            # collateral may leave while debt remains
            deal.refused(EMPTY_REVERT, "deleverage", deal.weth9, deal.cusdt, lev, 0, DEADLINE, sender=owner,
                         label="deleverage (owner)")
            lev = 0

        # unwind: monetize, repay (owner tops up if the books are short), close
        deal.redeem_all()
        deal.leg("repay", deal.cusdt, 2**256 - 1, label="repay all")
        owner_paid = 0
        if raw.debt():
            need = raw.debt() + 10**6
            fund(w3, deal.cusdt, str(owner.address), need)
            w3.eth.wait_for_transaction_receipt(erc20(w3, deal.cusdt).functions.approve(str(v.address), need).transact({"from": str(owner.address)}))  # mined before ape picks this sender's next nonce
            before = raw.bal(deal.cusdt, str(owner.address))
            # v2: ownerRepay pulls the amount named and sends back what the debt did not take
            deal.leg("ownerRepay", deal.cusdt, need, sender=owner)
            owner_paid = before - raw.bal(deal.cusdt, str(owner.address))
            assert 0 < owner_paid < need and deal.view().ownerRepaid == owner_paid
        assert raw.debt() == 0
        tx = deal.leg("close")
        s = deal.view()
        answer, _ = raw.price()
        price = answer if mode == "stale" else 0
        pnl_eth = -lev
        stable = raw.bal(deal.cusdt)
        prod = pnl_eth * price
        pnl_usd = (prod // 10**18 if prod >= 0 else -((-prod) // 10**18)) + (stable - owner_paid) * 100
        assert s.phase == 6 and s.realizedPnlEth == pnl_eth and s.realizedPnlUsd == pnl_usd
        assert s.writtenOffUsdtz == 0 and s.repaidOnBehalf == 0
        ev = [e for e in tx.events if e.event_name == "Closed"][0]
        assert ev.oracleStatus == status  # the PnL says which price it used
        assert ev.collateralLeft == 0
        assert raw.eth() == 5_000 * ETH - lev
    # the real feed is back, code and storage
    assert w3.eth.get_code(upstream.eth_usd_feed) == feed_code
    assert get_storage(w3, upstream.eth_usd_feed, 0) == slot0
