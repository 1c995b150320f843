"""Which legs read the market, and the debt bit: the gas cuts of the "Measured" issue, checked as
behaviour in the call trace (debug_traceTransaction, callTracer), not as gas numbers.

- A leg that checks no cap (split, redeem, repay ...) calls neither the ETH/USD feed, nor an
  aToken, nor a debt token, nor the pool's getUserAccountData: its LegCompleted snapshot carries
  the books and OracleStatus.Unread. A risk-adding leg (borrow, buy) calls all of them, so every
  cap check keeps both of its reads.
- A repay that clears a stable's whole debt clears its debt bit: the next withdrawCollateral reads
  no debt token and checks no LTV (nothing is owed). The next borrow sets the bit again and the LTV
  cap binds at the same edge as on a fresh vault.
- buy sends the caller's minOut to the router (no getAmountsOut quote: inside the leg the swap pays
  exactly the quote, so a quote-based bound could never bind); a pumped pair still fails the
  discount limit.
- The books' widths: funding beyond a uint80 of wei (1,208,925 ETH) reverts with SafeCast's error
  and changes nothing (the ladder's top rung below 2**63: test_vault_roles).
"""

from __future__ import annotations

from math import isqrt

import ape
import pytest

from dealvault.evm import advance_time, rpc, set_balance
from dealvault.mirror import set_eth_price
from dealvault.overlay import DEADLINE, swap_on_pair
from helpers_vault import (
    E6, ETH, MAX_UINT, PH, abal, account_data, assert_books, assert_unread, coll_wei, debt, feed, make_deal,
    max_debt, reserves, snapshot,
)

SEL_LATEST_ROUND = "0xfeaf968c"  # latestRoundData()
SEL_BALANCE_OF = "0x70a08231"  # balanceOf(address)
SEL_ACCOUNT_DATA = "0xbf92857c"  # getUserAccountData(address)
SEL_AMOUNTS_OUT = "0xd06ca61f"  # getAmountsOut(uint256,address[])


def calls(w3, receipt) -> list[tuple[str, str, str]]:
    """Every call in the transaction as (from, to, 4-byte selector), depth first."""
    tx_hash = receipt.txn_hash if hasattr(receipt, "txn_hash") else receipt["transactionHash"]
    tx_hash = tx_hash if isinstance(tx_hash, str) else "0x" + bytes(tx_hash).hex()
    root = rpc(w3, "debug_traceTransaction", [tx_hash, {"tracer": "callTracer"}])
    out: list[tuple[str, str, str]] = []

    def walk(frame):
        for c in frame.get("calls") or []:
            out.append((c["from"].lower(), (c.get("to") or "").lower(), (c.get("input") or "0x")[:10]))
            walk(c)

    walk(root)
    return out


def vault_calls(w3, receipt, vault) -> set[tuple[str, str]]:
    """(to, selector) of the calls the vault itself made."""
    me = vault.address.lower()
    return {(to, sel) for frm, to, sel in calls(w3, receipt) if frm == me}


def market_reads(v) -> set[tuple[str, str]]:
    """The reads a snapshot's marks and the cap checks need."""
    return {(v.feed.lower(), SEL_LATEST_ROUND), (v.a_weth9.lower(), SEL_BALANCE_OF),
            (v.debt_cusdt.lower(), SEL_BALANCE_OF), (v.pool.lower(), SEL_ACCOUNT_DATA)}


@pytest.fixture
def mk(w3, mirror, market, vault_factory, owner, operator):
    def build(**kw):
        return make_deal(vault_factory, w3, mirror, market, owner, operator, **kw)

    return build


def test_checked_legs_read_everything_light_legs_nothing(w3, mk):
    deal = mk()
    v = deal.v
    deal.run("split")
    split_rx = deal.receipts[-1][1]
    deal.supply()
    borrow_rx = deal.borrow()
    buy_rx = deal.buy()
    redeem_rx = deal.redeem()
    reads = market_reads(v)
    # the risk-adding legs with debt: the vault's own reads and the pool cross-check, all of them
    for rx in (borrow_rx, buy_rx):
        made = vault_calls(w3, rx, deal.vault)
        assert reads <= made, reads - made
        assert snapshot(rx.decode_logs(deal.vault.LegCompleted)[0].snapshot).oracleStatus == 0
    # split and redeem check no cap: none of those reads, anywhere in the transaction
    for rx in (split_rx, redeem_rx):
        everything = {(to, sel) for _, to, sel in calls(w3, rx)}
        assert not (reads & everything), reads & everything
        assert_unread(snapshot(rx.decode_logs(deal.vault.LegCompleted)[0].snapshot))
    # the riskView at that block still has the marks
    rv = deal.vault.riskView()
    assert rv.oracleStatus == 0 and rv.debt == debt(w3, v, deal.vault) > 0 and rv.collateralWeth > 0


def test_buy_sends_the_callers_min_out_and_no_quote(w3, mk, market):
    deal = mk()
    deal.run("borrow")
    v = deal.v
    rx = deal.buy(min_out=1)
    assert (v.router.lower(), SEL_AMOUNTS_OUT) not in vault_calls(w3, rx, deal.vault)
    # a pair pumped to par, past the discount limit: the leg reverts on what arrived (PriceAboveLimit)
    r_z, r_c = reserves(w3, market, market.pair_usdtz_cusdt, v.usdtz)
    swap_on_pair(w3, market, v.cusdt, v.usdtz, isqrt(r_z * r_c) - r_c + 1)
    r_z, r_c = reserves(w3, market, market.pair_usdtz_cusdt, v.usdtz)
    assert r_c * 100 > 95 * r_z  # USDTz now dearer than the $0.95 limit on the pair
    with ape.reverts(deal.vault.PriceAboveLimit):
        deal.vault.buy(v.cusdt, 1_000 * E6, 0, DEADLINE, sender=deal.operator)


def test_full_repay_clears_the_debt_bit_and_the_next_borrow_sets_it(w3, mk, market):
    from test_vault_caps import owner_repay_rest

    deal = mk()
    deal.run("borrow")
    v = deal.v
    advance_time(w3, 30 * 86_400)
    set_eth_price(w3, deal.mirror, feed(w3, deal.mirror)[0])  # a fresh round: withdrawCollateral with debt needs one
    repay_rx = deal.repay()  # repay(max): the books' stable; 30 days of interest stay owed
    assert debt(w3, v, deal.vault) > 0
    assert_unread(snapshot(repay_rx.decode_logs(deal.vault.LegCompleted)[0].snapshot))
    # still owed: withdrawCollateral reads the debt and checks the LTV (both reads)
    rx = deal.withdraw_collateral(ETH)
    assert market_reads(v) <= vault_calls(w3, rx, deal.vault)
    owed = debt(w3, v, deal.vault)
    owner_repay_rest(w3, deal)  # the bit clears in this leg's repay
    deal.books.leg_seq += 1  # ownerRepay ran outside the Deal driver: book it in the test's ledger
    deal.books.owner_repaid += owed
    assert debt(w3, v, deal.vault) == 0
    # withdrawCollateral with nothing owed: no debt-token read, no LTV check, a light snapshot
    rx = deal.withdraw_collateral(ETH)
    made = vault_calls(w3, rx, deal.vault)
    assert (v.debt_cusdt.lower(), SEL_BALANCE_OF) not in made
    assert (v.pool.lower(), SEL_ACCOUNT_DATA) not in made
    assert_unread(snapshot(rx.decode_logs(deal.vault.LegCompleted)[0].snapshot))
    # the next borrow sets the bit again: the LTV cap binds at its edge, and the debt is read
    price, _ = feed(w3, deal.mirror)
    coll = coll_wei(deal.books, abal(w3, v, deal.vault))
    edge = max_debt(coll, price, 3000, account_data(w3, market, deal.vault)[0])
    with ape.reverts(deal.vault.LtvAboveCap, capBps=3000):
        deal.vault.borrow(v.cusdt, edge + 1, sender=deal.operator)
    rx = deal.borrow(edge)
    assert debt(w3, v, deal.vault) == edge == deal.vault.riskView().debt
    assert (v.debt_cusdt.lower(), SEL_BALANCE_OF) in vault_calls(w3, rx, deal.vault)
    assert_books(deal.vault, deal.books, v)


def test_funding_beyond_uint80_reverts_and_changes_nothing(w3, mk):
    deal = mk()
    limit = 2**80 - 1  # 1,208,925.8 ETH: the books' width, written in DealVault
    too_much = 2**80
    set_balance(w3, deal.owner.address, 2 * too_much)
    before = deal.vault.riskView()
    with ape.reverts(deal.vault.SafeCastOverflowedUintDowncast, bits=80, value=too_much):
        deal.vault.fund(value=too_much, sender=deal.owner)
    after = deal.vault.riskView()
    assert after.fundedCapital == before.fundedCapital == 0 and after.legSeq == before.legSeq
    assert w3.eth.get_balance(deal.vault.address) == 0
    deal.vault.fund(value=limit, sender=deal.owner)
    assert deal.vault.riskView().fundedCapital == limit
    assert deal.vault.riskView().phase == PH["FUNDED"]
