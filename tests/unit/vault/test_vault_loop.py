"""The whole DealVault loop, leg by leg, on the real market kit (Aave V3, Uniswap V2, desk).

After every leg: the vault's books (read through the lens) equal the test's own ledger
(helpers_vault.Books, moved by amounts computed independently: split bps and the split's value at the
raw feed price, Uniswap's getAmountOut on the pair reserves, the desk's fee, Aave's compounded
interest on the debt token's scaled balance); the LegCompleted snapshot equals a model recomputed
from raw reads (feed, aTokens, debt tokens) for the legs that read the market, and is Unread with
zero marks for the others; raw token balances equal the books; core ETH never moves; no allowance
is left to the pool, router or desk.

v2: the funded capital is booked as core until split; split reads the oracle (its snapshot carries
marks, oracleStatus Fresh) and books splitValue, the loss budget's base; an honest loop realizes no
operator loss (every redemption pays more than the USDTz cost); close withdraws each wrapper's
whole aToken balance from a liquid reserve (collateralLeft 0) and credits at most the books.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from helpers_vault import (
    E6,
    ETH,
    LEG,
    MAX_UINT,
    PH,
    Deal,
    abal,
    assert_books,
    assert_no_allowances,
    assert_unread,
    bal,
    block_ts,
    coll_wei,
    debt,
    debt_at,
    feed,
    loss_budget,
    make_deal,
    nav_e26,
    oracle_status,
    print_table,
    reads_marks,
    risk_view,
    row,
    snapshot,
    split_value,
)

from dealvault.kit.evm import advance_time
from tests.model import ceil_div

RUNGS = [2_000 * E6, 5_000 * E6, 8_000 * E6]
ZERO = "0x0000000000000000000000000000000000000000"


def check_leg(deal: Deal, receipt, rows: list, debt_before: int) -> None:
    """Every per-leg assertion: books, raw balances, snapshot vs the independent model (or Unread),
    core, the loss budget's books, allowances. ``debt_before``: the raw debt before the leg (whether
    a withdrawCollateral was risk-adding)."""
    w3, vault, v, b = deal.w3, deal.vault, deal.v, deal.books
    log = deal.receipts[-1][1].decode_logs(vault.LegCompleted)[0]
    snap = snapshot(log.snapshot)
    leg_name = next(k for k, i in LEG.items() if i == log.leg)
    rv = assert_books(vault, b, v)
    # raw balances equal the books
    # ETH balance == core + working + opportunistic (v2: core == funded before the split)
    assert bal(w3, None, vault) == b.eth
    assert b.core == (b.funded if b.phase == PH["FUNDED"] else b.funded * 5000 // 10_000)
    for s in (v.cusdt, v.cusdc):
        assert bal(w3, s, vault) == b.stable.get(s, 0)
    assert bal(w3, v.usdtz, vault) == b.usdtz_held
    assert bal(w3, v.weth9, vault) == 0 and bal(w3, v.weth10, vault) == 0  # wrapped only in flight
    # the model from raw reads at this block
    price, updated = feed(w3, deal.mirror)
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
    if reads_marks(leg_name, max(d, debt_before)):
        assert snap.collateralWeth == coll
        assert snap.debt == d
        assert snap.ltvBps == (0 if d == 0 else ceil_div(d * 10**24, coll * price))
        assert snap.nav == max(n26, 0) // 10**18
        assert snap.exposureBps == (0 if b.usdtz_held == 0 else ceil_div(b.usdtz_held * 10**24, n26))
        assert snap.ethPrice == price
        assert snap.oracleStatus == oracle_status(price, updated, block_ts(w3, receipt.block_number))
    else:
        assert_unread(snap)
    # the caps' debt (scaled books x index, nobody repaid for the vault) and the debt tokens agree
    assert rv.debt == rv.poolDebt == d and rv.collateralWeth == coll
    # the loss budget: its base from the split's price, 50 bps of it; an honest loop loses nothing
    if b.phase != PH["FUNDED"]:
        assert rv.splitValue == b.split_value > 0
    assert rv.lossBudget == loss_budget(b.split_value, 50)
    assert rv.operatorLoss == b.operator_loss == 0
    assert_no_allowances(w3, v, vault)
    rows.append(row(deal.receipts[-1][0], w3, vault, v, gas=receipt.gas_used))


def run_full_loop(deal: Deal, wrappers: list[str], stable: str, borrow: int, buy: int) -> list:
    rows: list = []
    w3, v, b = deal.w3, deal.v, deal.books

    def leg(step, *args):
        before = debt(w3, v, deal.vault)
        r = step(*args)
        check_leg(deal, r, rows, before)
        return r

    leg(deal.fund)
    assert (b.core, b.working, b.opportunistic) == (100 * ETH, 0, 0)  # v2: funded capital is core until split
    price, _ = feed(w3, deal.mirror)
    leg(deal.split)
    core0 = b.core
    assert (b.core, b.working, b.opportunistic) == (50 * ETH, 30 * ETH, 20 * ETH)
    assert b.split_value == split_value(100 * ETH, price) == price  # 100 ETH x price (8 dp) / 1e20: 6 dp USD
    assert risk_view(deal.vault).lossBudget == b.split_value * 50 // 10_000
    share = b.working // len(wrappers)
    for i, wr in enumerate(wrappers):
        leg(deal.supply, share if i < len(wrappers) - 1 else b.working, wr)
    assert b.phase == PH["WORKING"] and b.working == 0
    # borrow: debt from the variable debt token equals the amount at the borrow's block
    leg(deal.borrow, borrow, stable)
    assert bal(w3, v.debt_token(stable), deal.vault) == borrow
    leg(deal.buy, buy, stable)
    assert b.phase == PH["POSITIONED"]
    # v2: the buy waited for the TWAP window (60 s) from the split's observation
    split_ts = block_ts(w3, deal.receipts[1][1].block_number)
    assert block_ts(w3, deal.receipts[-1][1].block_number) >= split_ts + 60
    # the ladder: rung 0 (2,000) -> rung 1 (3,000 + 2,000) -> rung 2 (8,000) -> rung 2 again
    ladder = [(None, 0, 1), (3_000 * E6, 1, 1), (2_000 * E6, 1, 2), (None, 2, 2), (None, 2, 2)]
    for amount, rung_before, rung_after in ladder:
        assert b.rung == rung_before
        leg(deal.redeem, amount, stable)
        assert b.rung == rung_after
    assert b.phase == PH["MONETIZING"] and b.rung == 2 and b.rung_progress == 0
    assert b.redeemed_total == 2_000 * E6 + 5_000 * E6 + 2 * 8_000 * E6
    # what is left of the USDTz, as a partial top-rung tranche
    rest = b.usdtz_held
    leg(deal.redeem, rest, stable)
    assert b.usdtz_held == 0 and b.rung == 2 and b.rung_progress == rest

    # time passes: interest accrues on the debt token, exactly as Aave's compounding says
    d0 = bal(w3, v.debt_token(stable), deal.vault)
    advance_time(w3, 90 * 86_400)
    ts = w3.eth.get_block("latest")["timestamp"]
    d1 = bal(w3, v.debt_token(stable), deal.vault)
    assert d1 == debt_at(w3, deal.market, stable, v.debt_token(stable), deal.vault, ts)
    assert d1 > d0
    # repay everything including the interest (amount = max: min(books, debt) at the repay block)
    leg(deal.repay, MAX_UINT, stable)
    assert deal.last_repaid > borrow  # principal + interest
    assert debt(w3, v, deal.vault) == 0
    for wr in wrappers:
        leg(deal.withdraw_collateral, None, wr)
    assert b.working == 30 * ETH
    leg(deal.close)
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
    want_usd = (Decimal(rv.realizedPnlEth) * price / ETH / 10**8
                + Decimal(stable_left - b.owner_repaid - b.repaid_on_behalf) / E6)
    assert Decimal(rv.realizedPnlUsd) / 10**8 == want_usd
    closed = deal.receipts[-1][1].decode_logs(vault.Closed)[0]
    assert (closed.realizedPnlEth, closed.realizedPnlUsd, closed.stableSurplus, closed.writtenOffUsdtz,
            closed.collateralLeft) == (0, rv.realizedPnlUsd, stable_left, 0, 0)
    # 90 days later the feed is stale: the USD figure is flagged
    _, updated = feed(w3, deal.mirror)
    close_ts = block_ts(w3, deal.receipts[-1][1].block_number)
    assert closed.oracleStatus == oracle_status(price, updated, close_ts) == 1
    assert rv.writtenOffUsdtz == 0 and rv.operatorLoss == 0
    assert rv.feesPaid == b.fees_paid > 0
    # owner withdraw: to the owner only, everything
    owner = deal.owner
    s0 = bal(w3, stable, owner)
    e0 = bal(w3, None, owner)
    # after CLOSED the surplus goes first and the books are written down to what is left
    eth_books = rv.coreEth + rv.workingEth + rv.opportunisticEth
    r = vault.withdraw("0x0000000000000000000000000000000000000000", eth_now, sender=owner)
    assert bal(w3, None, owner) == e0 + eth_now - r.gas_used * r.gas_price
    assert [(w.token, w.amount, w.fromBooks) for w in r.decode_logs(vault.Withdrawn)] == [(ZERO, eth_now, eth_books)]
    r = vault.withdraw(stable, stable_left, sender=owner)
    assert bal(w3, stable, owner) == s0 + stable_left
    assert [(w.token, w.amount, w.fromBooks) for w in r.decode_logs(vault.Withdrawn)] == [(stable, stable_left, stable_left)]
    after = risk_view(vault)
    assert (after.coreEth, after.workingEth, after.opportunisticEth, after.stableHeld) == (0, 0, 0, 0)
    assert after.ethReturned == eth_books and after.realizedPnlUsd == rv.realizedPnlUsd
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
