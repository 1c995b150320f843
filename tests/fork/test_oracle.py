"""Scenario 6: the oracle goes stale or answers zero mid-deal.

The real feed cannot be moved: its code is saved and the settable PriceFeed swapped in at the
same address (anvil_setCode), restored afterwards (dealvault.upstream.settable_feed checks it).
Every risk-adding leg refuses; repay, redeem, sell, deleverage (bounded by ethFloorPrice) and
close still work.
"""

from __future__ import annotations

import pytest

from dealvault.evm import get_storage
from dealvault.funding import fund
from dealvault.mirror import make_feed_stale, set_eth_price
from dealvault.overlay import erc20
from dealvault.upstream import settable_feed

DEADLINE = 2**64
BPS = 10_000
ETH = 10**18


@pytest.mark.parametrize("mode", ["stale", "zero"])
def test_oracle_stale_or_zero(fork_vault, make_deal, w3, market, upstream, owner, mode):
    feed_code = w3.eth.get_code(upstream.eth_usd_feed)
    slot0 = get_storage(w3, upstream.eth_usd_feed, 0)
    with settable_feed(w3, upstream.eth_usd_feed) as feed:
        deal = make_deal(fork_vault, f"scenario 6: oracle {mode}")
        v, raw = deal.vault, deal.raw
        pos = deal.position(5_000 * ETH, 2985, keep_working=10 * ETH)
        deal.leg("redeem", deal.cusdt, 50_000 * 10**6, label="redeem r0 50,000")

        if mode == "stale":
            updated = make_feed_stale(w3, feed)
            err, status = v.StaleOracle, 1
            pool_err = err  # Aave does not check the feed's age: the vault refuses
        else:
            set_eth_price(w3, feed, 0)
            err, status = v.InvalidPrice, 2
            # Aave cannot price WETH either (AaveOracle falls back to an unset fallback oracle):
            # a borrow or a withdrawal with debt reverts inside the pool, before the vault's check
            pool_err = None
        deal.row(f"oracle {mode}")
        s = v.riskView()
        assert s.oracleStatus == status
        if mode == "stale":
            assert s.priceUpdatedAt == updated and s.ethPrice == pos["price"]
        else:
            assert s.ethPrice == 0 and s.collateralValue == 0

        # every risk-adding leg refuses, naming the oracle
        deal.refused(err, "supply", deal.weth9, ETH)
        deal.refused(pool_err, "borrow", deal.cusdt, 10**6)
        deal.refused(pool_err, "withdrawCollateral", deal.weth9, ETH)

        # risk-reducing legs work
        deal.leg("redeem", deal.cusdt, 100_000 * 10**6, label="redeem r1 100,000")
        z_before, s_before = raw.bal(deal.usdtz), raw.bal(deal.cusdt)
        sell_in = 10_000 * 10**6
        deal.leg("sell", deal.cusdt, sell_in, 0, DEADLINE)
        got = raw.bal(deal.cusdt) - s_before
        assert z_before - raw.bal(deal.usdtz) == sell_in and got * 10**6 >= 850_000 * sell_in
        deal.reopen_discount()  # so that a buy is refused for the oracle, not for its price
        deal.refused(err, "buy", deal.cusdt, 1_000 * 10**6, 0, DEADLINE)
        d_before, t_before, rate = raw.debt(), raw.now(), raw.rate()
        deal.leg("repay", deal.cusdt, 20_000 * 10**6, label="repay 20,000")
        assert d_before - 20_000 * 10**6 <= raw.debt() <= d_before - 20_000 * 10**6 + raw.interest_bound(d_before, t_before, rate)
        lev = 5 * ETH
        if mode == "stale":
            # bounded by ethFloorPrice ($1,000) minus slippage, not by the stale price
            tx = deal.leg("deleverage", deal.weth9, deal.cusdt, lev, 0, DEADLINE)
            ev = [e for e in tx.events if e.event_name == "Deleveraged"][0]
            assert ev.received >= lev * 1_000 * 10**8 * (BPS - 100) // (10**20 * BPS) and ev.repaid == ev.received
        else:
            # with a zero answer the pool itself cannot price the collateral (AaveOracle falls back
            # to a fallback oracle that is not set): no collateral may leave while debt remains
            deal.refused(None, "deleverage", deal.weth9, deal.cusdt, lev, 0, DEADLINE)
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
            deal.leg("ownerRepay", deal.cusdt, 2**256 - 1, sender=owner)
            owner_paid = before - raw.bal(deal.cusdt, str(owner.address))
        assert raw.debt() == 0
        tx = deal.leg("close")
        s = v.riskView()
        answer, _ = raw.price()
        price = answer if mode == "stale" else 0
        pnl_eth = -lev
        stable = raw.bal(deal.cusdt)
        prod = pnl_eth * price
        pnl_usd = (prod // 10**18 if prod >= 0 else -((-prod) // 10**18)) + (stable - owner_paid) * 100
        assert s.phase == 6 and s.realizedPnlEth == pnl_eth and s.realizedPnlUsd == pnl_usd
        ev = [e for e in tx.events if e.event_name == "Closed"][0]
        assert ev.oracleStatus == status  # the PnL says which price it used
        assert raw.eth() == 5_000 * ETH - lev
    # the real feed is back, code and storage
    assert w3.eth.get_code(upstream.eth_usd_feed) == feed_code
    assert get_storage(w3, upstream.eth_usd_feed, 0) == slot0
