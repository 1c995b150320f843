"""The whole DealVault loop, leg by leg, on the real market kit (Aave V3, Uniswap V2, desk).

After every leg: the vault's books equal the test's own ledger (helpers_vault.Books, moved by
amounts computed independently: split bps, Uniswap's getAmountOut on the pair reserves, the desk's
fee, Aave's compounded interest on the debt token's scaled balance); the LegCompleted snapshot
equals a model recomputed from raw reads (feed, aTokens, debt tokens); raw token balances equal
the books; core ETH never moves; no allowance is left to the pool, router or desk.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from dealvault.evm import advance_time
from helpers_vault import (
    E6, ETH, LEG, MAX_UINT, PH, Deal, abal, assert_books, assert_no_allowances, assert_unread, bal, coll_wei, debt,
    debt_at, feed, make_deal, nav_e26, print_table, reads_marks, row, risk_view, snapshot,
)
from tests.model import ceil_div

RUNGS = [2_000 * E6, 5_000 * E6, 8_000 * E6]


def check_leg(deal: Deal, receipt, rows: list) -> None:
    """Every per-leg assertion: books, raw balances, snapshot vs the independent model, core,
    allowances."""
    w3, vault, v, b = deal.w3, deal.vault, deal.v, deal.books
    log = deal.receipts[-1][1].decode_logs(vault.LegCompleted)[0]
    snap = snapshot(log.snapshot)
    leg_name = next(k for k, i in LEG.items() if i == log.leg)
    rv = assert_books(vault, b, v)
    # raw balances equal the books
    # ETH balance == core + working + opportunistic (== funded before the split)
    assert bal(w3, None, vault) == (b.funded if b.phase == PH["FUNDED"] else b.eth)
    assert b.core == b.funded * 5000 // 10_000 or b.phase == PH["FUNDED"]
    for s in (v.cusdt, v.cusdc):
        assert bal(w3, s, vault) == b.stable.get(s, 0)
    assert bal(w3, v.usdtz, vault) == b.usdtz_held
    assert bal(w3, v.weth9, vault) == 0 and bal(w3, v.weth10, vault) == 0  # wrapped only in flight
    # the model from raw reads at this block
    price, _ = feed(w3, deal.mirror)
    a = abal(w3, v, vault)
    for wrapper, amt in b.collateral.items():
        if b.phase != PH["CLOSED"]:
            assert a[wrapper] >= amt  # supply interest only ever adds
    coll = coll_wei(b, a)
    d = debt(w3, v, vault)
    n26 = nav_e26(b, coll, price, d)
    assert snap.phase == b.phase
    assert (snap.coreEth, snap.workingEth, snap.opportunisticEth) == (b.core, b.working, b.opportunistic)
    assert (snap.rung, snap.rungProgress, snap.redeemedTotal) == (b.rung, b.rung_progress, b.redeemed_total)
    assert (snap.stableHeld, snap.usdtzHeld) == (b.stable_held, b.usdtz_held)
    if reads_marks(leg_name, d):
        assert snap.collateralWeth == coll
        assert snap.debt == d
        assert snap.ltvBps == (0 if d == 0 else ceil_div(d * 10**24, coll * price))
        assert snap.nav == max(n26, 0) // 10**18
        assert snap.exposureBps == (0 if b.usdtz_held == 0 else ceil_div(b.usdtz_held * 10**24, n26))
        assert snap.ethPrice == price
    else:
        assert_unread(snap)
    assert rv.debt == d and rv.collateralWeth == coll
    assert_no_allowances(w3, v, vault)
    rows.append(row(deal.receipts[-1][0], w3, vault, v, gas=receipt.gas_used))


def run_full_loop(deal: Deal, wrappers: list[str], stable: str, borrow: int, buy: int) -> list:
    rows: list = []
    w3, v, b = deal.w3, deal.v, deal.books

    def leg(r):
        check_leg(deal, r, rows)
        return r

    core0 = None
    leg(deal.fund())
    leg(deal.split())
    core0 = b.core
    assert (b.core, b.working, b.opportunistic) == (50 * ETH, 30 * ETH, 20 * ETH)
    share = b.working // len(wrappers)
    for i, wr in enumerate(wrappers):
        leg(deal.supply(share if i < len(wrappers) - 1 else b.working, wr))
    assert b.phase == PH["WORKING"] and b.working == 0
    # borrow: debt from the variable debt token equals the amount at the borrow's block
    leg(deal.borrow(borrow, stable))
    assert bal(w3, v.debt_token(stable), deal.vault) == borrow
    leg(deal.buy(buy, stable))
    assert b.phase == PH["POSITIONED"]
    # the ladder: rung 0 (2,000) -> rung 1 (3,000 + 2,000) -> rung 2 (8,000) -> rung 2 again
    ladder = [(None, 0, 1), (3_000 * E6, 1, 1), (2_000 * E6, 1, 2), (None, 2, 2), (None, 2, 2)]
    for amount, rung_before, rung_after in ladder:
        assert b.rung == rung_before
        leg(deal.redeem(amount, stable))
        assert b.rung == rung_after
    assert b.phase == PH["MONETIZING"] and b.rung == 2 and b.rung_progress == 0
    assert b.redeemed_total == 2_000 * E6 + 5_000 * E6 + 2 * 8_000 * E6
    # what is left of the USDTz, as a partial top-rung tranche
    rest = b.usdtz_held
    leg(deal.redeem(rest, stable))
    assert b.usdtz_held == 0 and b.rung == 2 and b.rung_progress == rest

    # time passes: interest accrues on the debt token, exactly as Aave's compounding says
    d0 = bal(w3, v.debt_token(stable), deal.vault)
    advance_time(w3, 90 * 86_400)
    ts = w3.eth.get_block("latest")["timestamp"]
    d1 = bal(w3, v.debt_token(stable), deal.vault)
    assert d1 == debt_at(w3, deal.market, stable, v.debt_token(stable), deal.vault, ts)
    assert d1 > d0
    # repay everything including the interest (amount = max: min(books, debt) at the repay block)
    leg(deal.repay(MAX_UINT, stable))
    assert deal.last_repaid > borrow  # principal + interest
    assert debt(w3, v, deal.vault) == 0
    for wr in wrappers:
        leg(deal.withdraw_collateral(None, wr))
    assert b.working == 30 * ETH
    leg(deal.close())
    assert b.core == core0 == 50 * ETH
    return rows


def check_close_and_withdraw(deal: Deal, borrow: int, buy: int, rows: list, stable: str) -> None:
    w3, v, b, vault = deal.w3, deal.v, deal.books, deal.vault
    rv = risk_view(vault)
    # PnL in ETH, exactly: ETH the vault now holds (raw) minus the funded capital
    eth_now = bal(w3, None, vault)
    assert eth_now == b.funded  # every wei of collateral came back; no ETH was spent
    assert rv.realizedPnlEth == eth_now - b.funded == 0
    # PnL in USD: stable left (raw balance) at par, + pnlEth at the feed price (8 dp)
    price, _ = feed(w3, deal.mirror)
    stable_left = bal(w3, stable, vault)
    paid = sum(deal.receipts[i][1].decode_logs(vault.Redeemed)[0].received
               for i in range(len(deal.receipts)) if deal.receipts[i][0] == "redeem")
    assert stable_left == borrow - buy + paid - deal.last_repaid
    want_usd = Decimal(rv.realizedPnlEth) * price / ETH / 10**8 + Decimal(stable_left - b.owner_repaid) / E6
    assert Decimal(rv.realizedPnlUsd) / 10**8 == want_usd
    closed = deal.receipts[-1][1].decode_logs(vault.Closed)[0]
    assert (closed.realizedPnlEth, closed.realizedPnlUsd, closed.stableSurplus, closed.writtenOffUsdtz) == (
        0, rv.realizedPnlUsd, stable_left, 0)
    assert closed.oracleStatus == 1  # 90 days later the feed is stale: the USD figure is flagged
    assert rv.feesPaid == b.fees_paid > 0
    # owner withdraw: to the owner only, everything
    owner = deal.owner
    s0 = bal(w3, stable, owner)
    e0 = bal(w3, None, owner)
    r = vault.withdraw("0x0000000000000000000000000000000000000000", eth_now, sender=owner)
    assert bal(w3, None, owner) == e0 + eth_now - r.gas_used * r.gas_price
    vault.withdraw(stable, stable_left, sender=owner)
    assert bal(w3, stable, owner) == s0 + stable_left
    for wr in deal.books.collateral:  # supply interest stayed as aTokens: surplus after CLOSED
        a_tok = v.a_token(wr)
        left = bal(w3, a_tok, vault)
        if left:
            a0 = bal(w3, a_tok, owner)
            vault.withdraw(a_tok, left, sender=owner)
            assert bal(w3, a_tok, owner) >= a0 + left - 1
    assert bal(w3, None, vault) == 0 and bal(w3, stable, vault) == 0
    print_table(rows)


def test_loop_weth9_cusdt(w3, mirror, market, vault_factory, owner, operator):
    deal = make_deal(vault_factory, w3, mirror, market, owner, operator, rungs=RUNGS)
    borrow, buy = 25_000 * E6, 20_000 * E6
    rows = run_full_loop(deal, [deal.v.weth9], deal.v.cusdt, borrow, buy)
    check_close_and_withdraw(deal, borrow, buy, rows, deal.v.cusdt)


def test_loop_weth10_and_weth9_cusdc(w3, mirror, market, vault_factory, owner, operator):
    deal = make_deal(vault_factory, w3, mirror, market, owner, operator, rungs=RUNGS)
    borrow, buy = 24_000 * E6, 19_500 * E6
    rows = run_full_loop(deal, [deal.v.weth10, deal.v.weth9], deal.v.cusdc, borrow, buy)
    assert bal(w3, deal.v.debt_cusdt, deal.vault) == 0  # only cUSDC was ever borrowed
    check_close_and_withdraw(deal, borrow, buy, rows, deal.v.cusdc)


@pytest.mark.parametrize("upto", ["split", "borrow", "redeem"])
def test_run_builder_stops_at_step(w3, mirror, market, vault_factory, owner, operator, upto):
    """The shared builder runs the loop up to a step and the books agree with the vault there."""
    deal = make_deal(vault_factory, w3, mirror, market, owner, operator, rungs=RUNGS).run(upto)
    assert_books(deal.vault, deal.books, deal.v)
    assert deal.receipts[-1][0] == upto
    assert_no_allowances(w3, deal.v, deal.vault)
