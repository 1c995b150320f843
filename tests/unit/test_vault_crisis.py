"""DealVault in a crisis: freeze resistance, the four recoveries, a permanent freeze, ETH -40 %.

Every scenario runs the real loop on the kit (real Aave V3, Uniswap V2, FiatToken USDTz, desk),
breaks a venue, and checks that the redemption leg does not revert but records the failure and
puts the deal in HOLDING with its caps, core ETH and books intact; then it leaves HOLDING one way
or another and closes, with the PnL (and any USDTz written off) checked against numbers computed
here from raw reads (feed, pool, debt token, pair reserves, balances), never the vault's own math.

Run with ``-s`` to see a risk snapshot table after each leg of the longer scenarios.
"""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, Decimal

import ape
import pytest
from eth_abi import decode
from eth_utils import keccak

from dealvault import overlay as ov
from dealvault.evm import impersonating, send
from dealvault.funding import balance_of, fund
from dealvault.mirror import make_feed_stale, set_eth_price
from tests.model import ceil_div, reserves, uni_out

ETH = 10**18
USD = 10**6
DEADLINE = 2**63
BPS = 10_000

# Phase / OracleStatus enums (IDealVault)
FUNDED, SPLIT, WORKING, POSITIONED, MONETIZING, HOLDING, CLOSED = range(7)
FRESH, STALE, INVALID = range(3)

FUNDING = 100 * ETH
SUPPLY = 30 * ETH  # the whole working bucket (30 %)
BORROW = 22_500 * USD  # 25 % LTV at $3,000
BUY = 20_000 * USD
TRANCHE = 5_000 * USD


# --- local helpers (independent of the vault's math) -------------------------------------------


def sel(sig: str) -> bytes:
    return keccak(text=sig)[:4]


def price_now(w3, mirror) -> int:
    from dealvault.mirror import feed

    return feed(w3, mirror.eth_usd_feed).functions.latestRoundData().call()[1]


def debt_of(w3, market, vault, symbol="cUSDT") -> int:
    return balance_of(w3, market.variable_debt_tokens[symbol], vault.address)


def a_weth(w3, market, vault) -> int:
    return balance_of(w3, market.a_tokens["WETH"], vault.address)


def ltv_dec(debt: int, coll_wei: int, price: int) -> Decimal:
    """LTV as a Decimal fraction: debt (6 dp, at par) / (collateral wei * price 8 dp)."""
    return (Decimal(debt) / USD) / (Decimal(coll_wei) / ETH * Decimal(price) / 10**8)


def ltv_bps_ceil(debt: int, coll_wei: int, price: int) -> int:
    """LTV in bps rounded up, from raw reads (debt 6 dp, collateral wei, price 8 dp)."""
    return 0 if debt == 0 else ceil_div(debt * 10**20 * BPS, coll_wei * price)


def one_block_interest(debt: int) -> int:
    """Upper bound of a variable debt's growth between a read and the next block (< 1e-6)."""
    return debt // 10**6 + 1


def revert_reason(reason: bytes) -> tuple[str, tuple]:
    """Decode RedemptionFailed.reason: Error(string), or a custom error with its arguments."""
    reason = bytes(reason)
    head, body = reason[:4], reason[4:]
    known = {
        sel("Error(string)"): ("Error", ["string"]),
        sel("RedemptionsHalted()"): ("RedemptionsHalted", []),
        sel("InsufficientLiquidity(address,uint256,uint256)"): ("InsufficientLiquidity", ["address", "uint256", "uint256"]),
        sel("ShortPayment(uint256,uint256)"): ("ShortPayment", ["uint256", "uint256"]),
        sel("ApproveFailed(address)"): ("ApproveFailed", ["address"]),
        sel("ReentrancyGuardReentrantCall()"): ("ReentrancyGuardReentrantCall", []),
    }
    name, types = known[head]
    return name, tuple(decode(types, body)) if types else ()


def events(contract, tx, name):
    return list(getattr(contract, name).from_receipt(tx))


COLS = ("phase", "coreEth", "workingEth", "opportunisticEth", "collateralWeth", "debt", "ltvBps", "nav",
        "exposureBps", "rung", "rungProgress", "stableHeld", "usdtzHeld", "oracleStatus")


def print_table(title: str, rows: list[tuple[str, object]]) -> None:
    """A short risk snapshot table (ETH in ETH, 6-dp amounts in units, NAV in USD)."""

    def fmt(k, v):
        v = int(v)
        if k in ("coreEth", "workingEth", "opportunisticEth", "collateralWeth"):
            return f"{Decimal(v) / ETH:.4f}"
        if k in ("debt", "stableHeld", "usdtzHeld", "rungProgress"):
            return f"{Decimal(v) / USD:.2f}"
        if k == "nav":
            return f"{Decimal(v) / 10**8:.2f}"
        if v >= 2**255:
            return "max"
        return str(v)

    print(f"\n== {title}")
    print(" | ".join(["leg".ljust(22)] + [c[:10].rjust(10) for c in COLS]))
    for label, rv in rows:
        print(" | ".join([label[:22].ljust(22)] + [fmt(c, getattr(rv, c)).rjust(10) for c in COLS]))


class Deal:
    """A vault run to MONETIZING (one tranche redeemed), with the raw facts of each leg."""

    def __init__(self, w3, mirror, market, vault, owner, operator):
        self.w3, self.mirror, self.market, self.vault = w3, mirror, market, vault
        self.owner, self.operator = owner, operator
        self.cusdt, self.weth9, self.usdtz = mirror.cusdt, mirror.weth9, market.usdtz
        self.rows: list[tuple[str, object]] = []
        self.usdtz_cost = 0  # independent cost basis of the booked USDTz
        self.usdtz_held = 0
        self.stable = 0  # independent cUSDT books

    def snap(self, label):
        rv = self.vault.riskView()
        self.rows.append((label, rv))
        return rv

    def run_to_monetizing(self, first_tranche=TRANCHE):
        v, op = self.vault, self.operator
        v.fund(value=FUNDING, sender=self.owner)
        self.snap("fund")
        v.split(sender=op)
        self.snap("split")
        v.supply(self.weth9, SUPPLY, sender=op)
        self.snap("supply 30 WETH9")
        v.borrow(self.cusdt, BORROW, sender=op)
        self.stable += BORROW
        self.snap("borrow 22,500")
        z_before = balance_of(self.w3, self.usdtz, v.address)
        r_in, r_out = reserves(self.w3, self.market, self.market.pair_usdtz_cusdt, self.cusdt)
        v.buy(self.cusdt, BUY, 0, DEADLINE, sender=op)
        got = balance_of(self.w3, self.usdtz, v.address) - z_before
        assert got == uni_out(BUY, r_in, r_out)
        self.stable -= BUY
        self.usdtz_held, self.usdtz_cost = got, BUY
        self.snap("buy 20,000")
        if first_tranche:
            self.redeem_ok(first_tranche)
        return self

    def redeem_ok(self, amount):
        s_before = balance_of(self.w3, self.cusdt, self.vault.address)
        fee = self.desk_fee(amount)
        tx = self.vault.redeem(self.cusdt, amount, sender=self.operator)
        assert tx.return_value is True
        received = balance_of(self.w3, self.cusdt, self.vault.address) - s_before
        assert received == amount - fee
        self.stable += received
        self._usdtz_out(amount)
        self.snap(f"redeem {amount // USD:,}")
        return tx

    def _usdtz_out(self, amount):
        out_cost = self.usdtz_cost if amount >= self.usdtz_held else ceil_div(self.usdtz_cost * amount, self.usdtz_held)
        self.usdtz_cost -= out_cost
        self.usdtz_held -= amount

    def desk_fee(self, amount):
        desk = self.market.desk_contract(self.w3)
        return ceil_div(amount * desk.functions.feeBps().call(), BPS) + desk.functions.flatFee().call()

    def assert_books_match_raw(self):
        """Books == raw balances (no donation in these scenarios) == the independent books."""
        rv = self.vault.riskView()
        assert rv.usdtzHeld == self.usdtz_held == balance_of(self.w3, self.usdtz, self.vault.address)
        assert rv.usdtzCost == self.usdtz_cost
        assert rv.stableHeld == self.stable == balance_of(self.w3, self.cusdt, self.vault.address)
        return rv


@pytest.fixture
def deal(w3, mirror, market, vault, owner, operator):
    return Deal(w3, mirror, market, vault, owner, operator)


# --- 1. freeze resistance -----------------------------------------------------------------------


def _cause(name, d):
    """Breaks the venue; returns a check of the decoded RedemptionFailed reason."""
    w3, m = d.w3, d.market
    if name == "usdtz_frozen":
        ov.freeze_usdtz(w3, m, d.vault.address)
        return lambda r: r == ("Error", ("Blacklistable: account is blacklisted",))
    if name == "usdtz_paused":
        ov.pause_usdtz(w3, m)
        return lambda r: r == ("Error", ("Pausable: paused",))
    if name == "desk_halted":
        ov.halt_desk(w3, m)
        return lambda r: r == ("RedemptionsHalted", ())
    if name == "desk_dry":
        ov.drain_desk(w3, m)
        fee = d.desk_fee(TRANCHE)
        return lambda r: r[0] == "InsufficientLiquidity" and r[1][0].lower() == d.cusdt.lower() and r[1][1:] == (0, TRANCHE - fee)
    if name == "desk_short_1wei":
        max_fee = d.vault.maxDeskFeeBps()
        minimum = ceil_div(TRANCHE * (BPS - max_fee), BPS)
        # desk fee = ceil(amount * max_fee / 1e4) + 1 -> pays exactly minimum - 1
        ov.set_desk_fee(w3, m, max_fee, 1)
        assert TRANCHE - d.desk_fee(TRANCHE) == minimum - 1
        return lambda r: r == ("ShortPayment", (minimum - 1, minimum))
    raise AssertionError(name)


def _clear(name, d):
    w3, m = d.w3, d.market
    {
        "usdtz_frozen": lambda: ov.unfreeze_usdtz(w3, m, d.vault.address),
        "usdtz_paused": lambda: ov.unpause_usdtz(w3, m),
        "desk_halted": lambda: ov.resume_desk(w3, m),
        "desk_dry": lambda: fund(w3, d.cusdt, m.desk, 1_000_000 * USD),
        "desk_short_1wei": lambda: ov.set_desk_fee(w3, m, m.params.desk_fee_bps, 0),
    }[name]()


CAUSES = ["usdtz_frozen", "usdtz_paused", "desk_halted", "desk_dry", "desk_short_1wei"]


def _fail_into_holding(d, cause):
    """Mid-ladder (rung 0, one tranche done) the venue breaks; the next tranche fails softly."""
    v = d.vault
    before = d.snap("before failure")
    assert (before.phase, before.rung, before.rungProgress) == (MONETIZING, 0, TRANCHE)
    eth_before = d.w3.eth.get_balance(v.address)
    desk_usdtz_before = balance_of(d.w3, d.usdtz, d.market.desk)
    check_reason = _cause(cause, d)

    tx = v.redeem(d.cusdt, TRANCHE, sender=d.operator)  # no revert
    assert tx.return_value is False
    failed = events(v, tx, "RedemptionFailed")
    assert len(failed) == 1 and failed[0].rung == 0 and failed[0].amount == TRANCHE
    decoded = revert_reason(failed[0].reason)
    assert check_reason(decoded), decoded
    assert not events(v, tx, "Redeemed")
    held = events(v, tx, "HoldingEntered")
    assert len(held) == 1 and held[0]["from"] == MONETIZING and held[0].reason == 0

    if cause == "desk_short_1wei":
        # the desk did take the tranche and paid 1 wei below the bound: the books follow what moved
        d.stable += TRANCHE - d.desk_fee(TRANCHE)
        d._usdtz_out(TRANCHE)
        assert balance_of(d.w3, d.usdtz, d.market.desk) == desk_usdtz_before + TRANCHE
    else:
        assert balance_of(d.w3, d.usdtz, d.market.desk) == desk_usdtz_before

    after = d.snap(f"redeem fails ({cause})")
    assert after.phase == HOLDING and after.phaseBeforeHolding == MONETIZING
    assert (after.rung, after.rungProgress) == (0, 0)  # the ladder restarts at rung 0
    assert after.redeemedTotal == before.redeemedTotal  # a failed tranche never counts
    # caps and core intact; nothing lost
    assert after.coreEth == before.coreEth == FUNDING // 2
    assert d.w3.eth.get_balance(v.address) == eth_before >= after.coreEth
    assert after.collateralWeth == before.collateralWeth and after.debt >= before.debt
    # LTV moved only by the borrow interest: recomputed from the raw debt token and feed
    raw_debt = debt_of(d.w3, d.market, v)
    assert after.debt == raw_debt
    assert after.ltvBps == ltv_bps_ceil(raw_debt, after.collateralWeth, price_now(d.w3, d.mirror))
    assert after.ltvBps <= v.maxLtvBps()
    assert after.exposureBps <= v.maxExposureBps()
    d.assert_books_match_raw()
    # no allowance outlives the leg
    assert ov.erc20(d.w3, d.usdtz).functions.allowance(v.address, d.market.desk).call() == 0
    # HOLDING: no risk-adding leg runs
    with ape.reverts(v.WrongPhase):
        v.borrow(d.cusdt, 1, sender=d.operator)
    with ape.reverts(v.WrongPhase):
        v.buy(d.cusdt, USD, 0, DEADLINE, sender=d.operator)
    return tx


@pytest.mark.parametrize("cause", CAUSES)
def test_failed_redemption_enters_holding_with_nothing_lost(deal, cause):
    deal.run_to_monetizing()
    _fail_into_holding(deal, cause)
    # a second failing attempt in HOLDING stays in HOLDING, still no revert
    if cause != "desk_short_1wei":
        tx = deal.vault.redeem(deal.cusdt, TRANCHE, sender=deal.operator)
        assert tx.return_value is False and deal.vault.riskView().phase == HOLDING
        assert not events(deal.vault, tx, "HoldingEntered")
    print_table(f"freeze resistance: {cause}", deal.rows)


def test_desk_paying_exactly_the_fee_bound_passes(deal):
    deal.run_to_monetizing()
    max_fee = deal.vault.maxDeskFeeBps()
    ov.set_desk_fee(deal.w3, deal.market, max_fee, 0)
    minimum = ceil_div(TRANCHE * (BPS - max_fee), BPS)
    assert TRANCHE - deal.desk_fee(TRANCHE) == minimum
    tx = deal.redeem_ok(TRANCHE)
    assert not events(deal.vault, tx, "RedemptionFailed")
    rv = deal.assert_books_match_raw()
    assert rv.phase == MONETIZING and rv.rungProgress == 2 * TRANCHE
    assert rv.feesPaid == (TRANCHE - ceil_div(TRANCHE * (BPS - 10), BPS) + 0) + (TRANCHE - minimum)


# --- recovery --------------------------------------------------------------------------------


def _repay_all_and_close(d, label=""):
    """repay(max) from the books, then close; returns (pnl_eth, pnl_usd) expected independently."""
    v, w3 = d.vault, d.w3
    debt = debt_of(w3, d.market, v)
    assert d.stable >= debt, "not enough stable on the books to repay"
    assert d.stable >= debt + one_block_interest(debt)
    tx = v.repay(d.cusdt, 2**256 - 1, sender=d.operator)
    repaid = events(v, tx, "Repaid")[0].amount
    assert debt <= repaid <= debt + one_block_interest(debt)
    d.stable -= repaid
    assert debt_of(w3, d.market, v) == 0
    d.snap("repay max")
    return _close(d)


def _close(d):
    v, w3 = d.vault, d.w3
    rv = v.riskView()
    buckets = rv.coreEth + rv.workingEth + rv.opportunisticEth
    a_bal = a_weth(w3, d.market, v)
    booked = v.collateralOf(d.weth9)
    credited = min(a_bal, booked) if booked else 0
    price = price_now(w3, d.mirror)
    cost_left = d.usdtz_cost
    ledger_eth_before = w3.eth.get_balance(v.address)
    tx = v.close(sender=d.operator)
    pnl_eth = buckets + credited - FUNDING
    status = rv.oracleStatus
    px = 0 if status == INVALID else price
    pnl_usd = pnl_eth * px // ETH + (d.stable - v.riskView().ownerRepaid) * 100
    # Solidity's signed division truncates toward zero
    if pnl_eth < 0:
        pnl_usd = -((-pnl_eth) * px // ETH) + (d.stable - v.riskView().ownerRepaid) * 100
    closed = events(v, tx, "Closed")[0]
    after = d.snap("close")
    assert after.phase == CLOSED and after.debt == 0
    assert closed.realizedPnlEth == after.realizedPnlEth == pnl_eth
    assert closed.realizedPnlUsd == after.realizedPnlUsd == pnl_usd
    assert closed.writtenOffUsdtz == after.writtenOffUsdtz == cost_left
    assert closed.stableSurplus == d.stable
    assert closed.oracleStatus == status
    # the collateral really came home (all of it, interest included, as ETH)
    assert a_weth(w3, d.market, v) == 0
    assert w3.eth.get_balance(v.address) == ledger_eth_before + a_bal
    # written-off USDTz is never counted as value: the PnL has no USDTz term at all
    return pnl_eth, pnl_usd


def test_recovery_a_resume_and_redeem_after_cause_cleared(deal):
    """(a) desk halted -> HOLDING; the issuer resumes the desk; owner resume(); the ladder climbs
    again from rung 0; all USDTz redeemed; repay; close with a positive USD PnL."""
    d = deal.run_to_monetizing()
    _fail_into_holding(d, "desk_halted")
    with ape.reverts(d.vault.NotOwner):
        d.vault.resume(sender=d.operator)
    _clear("desk_halted", d)
    d.vault.resume(sender=d.owner)
    rv = d.snap("owner resume")
    assert rv.phase == MONETIZING and rv.rung == 0
    d.redeem_ok(d.usdtz_held)  # < rung 0 size (50,000)
    assert d.vault.riskView().usdtzHeld == 0
    pnl_eth, pnl_usd = _repay_all_and_close(d)
    assert pnl_eth == 0 and pnl_usd > 0
    # the profit: USDTz bought at ~0.80 and redeemed at 0.999, minus borrow interest (~0)
    print_table("recovery (a): resume + redeem", d.rows)


@pytest.mark.parametrize("cause", CAUSES)
def test_recovery_a_every_cause(deal, cause):
    d = deal.run_to_monetizing()
    _fail_into_holding(d, cause)
    _clear(cause, d)
    d.vault.resume(sender=d.owner)
    assert d.vault.riskView().phase == MONETIZING
    d.redeem_ok(d.usdtz_held)
    pnl_eth, pnl_usd = _repay_all_and_close(d)
    assert pnl_eth == 0


def test_recovery_b_sell_above_floor(deal, w3, market):
    """(b) desk halted for good; the router market is below the floor (sell refused); a third party
    lifts the pair above the floor; the vault sells all its USDTz there (still in HOLDING), repays,
    closes."""
    d = deal.run_to_monetizing()
    _fail_into_holding(d, "desk_halted")
    v = d.vault
    floor = v.sellFloorPrice()
    amount = d.usdtz_held
    with ape.reverts(v.PriceBelowFloor):
        v.sell(d.cusdt, amount, 0, DEADLINE, sender=d.operator)
    ov.swap_on_pair(w3, market, d.cusdt, d.usdtz, 600_000 * USD)
    r_in, r_out = reserves(w3, market, market.pair_usdtz_cusdt, d.usdtz)
    expected = uni_out(amount, r_in, r_out)
    assert expected * 10**6 >= floor * amount  # the sell is above the floor
    tx = v.sell(d.cusdt, amount, expected, DEADLINE, sender=d.operator)
    sold = events(v, tx, "Sold")[0]
    assert sold.amountOut == expected
    d.stable += expected
    d._usdtz_out(amount)
    d.snap("sell above floor")
    d.assert_books_match_raw()
    assert v.riskView().phase == HOLDING  # selling does not leave HOLDING
    pnl_eth, pnl_usd = _repay_all_and_close(d)
    assert pnl_eth == 0 and pnl_usd == d.stable * 100 and d.vault.riskView().writtenOffUsdtz == 0
    print_table("recovery (b): sell above floor", d.rows)


def _deleverage_to_cover(d, extra_eth=0):
    """Sell just enough collateral (plus extra) on [WETH9, cUSDT] to cover the shortfall; checks the
    oracle-bounded minimum and the Uniswap output independently."""
    v, w3, m = d.vault, d.w3, d.market
    debt = debt_of(w3, m, v)
    shortfall = debt - d.stable
    price = price_now(w3, d.mirror)
    status = v.riskView().oracleStatus
    bound_price = price if status == FRESH else v.ethFloorPrice()
    # ETH to sell: the shortfall at the price plus 2 % for fees and price impact, plus extra
    amount = ceil_div(max(shortfall, 0) * 100 * ETH * 102 // 100, price) + extra_eth
    slip = v.maxSlippageBps()
    bound = amount * bound_price * (BPS - slip) // (10**20 * BPS)
    r_in, r_out = reserves(w3, m, m.pair_weth_cusdt, d.weth9)
    expected_out = uni_out(amount, r_in, r_out)
    assert expected_out >= bound
    coll_before = v.collateralOf(d.weth9)
    tx = v.deleverage(d.weth9, d.cusdt, amount, 0, DEADLINE, sender=d.operator)
    ev = events(v, tx, "Deleveraged")[0]
    assert ev.received == expected_out
    # the debt at the leg's block is the read plus one block of interest
    debt_after = debt_of(w3, m, v)
    assert debt - 1 <= debt_after + ev.repaid <= debt + one_block_interest(debt)  # Aave reads 1 wei high
    assert ev.repaid == min(expected_out, debt_after + ev.repaid)
    repaid = ev.repaid
    d.stable += expected_out - repaid
    assert v.collateralOf(d.weth9) == coll_before - amount
    d.snap(f"deleverage {Decimal(amount) / ETH:.3f}")
    return amount, expected_out, repaid


def test_recovery_c_deleverage(deal, w3, market):
    """(c) desk dry for good, USDTz stays on the books; deleverage sells collateral for the missing
    cUSDT and repays in one leg; close writes the unsold USDTz off at cost."""
    d = deal.run_to_monetizing()
    _fail_into_holding(d, "desk_dry")
    v = d.vault
    # first repay what the books hold, then deleverage the rest
    v.repay(d.cusdt, d.stable, sender=d.operator)
    d.stable = 0
    d.snap("repay books")
    price = price_now(w3, d.mirror)
    sold_eth, received, repaid = _deleverage_to_cover(d)
    assert debt_of(w3, market, v) == 0
    ltv_after = v.riskView().ltvBps
    assert ltv_after == 0
    cost_left = d.usdtz_cost
    pnl_eth, pnl_usd = _close(d)
    assert pnl_eth == -sold_eth
    assert d.vault.riskView().writtenOffUsdtz == cost_left > 0
    assert pnl_usd == -(sold_eth * price // ETH) + (received - repaid) * 100
    print_table("recovery (c): deleverage", d.rows)


def test_recovery_d_owner_repay(deal, w3, market, owner, stranger):
    """(d) USDTz frozen for good; the owner repays the whole debt with its own cUSDT; close reports
    a USD PnL net of what the owner put in and writes the frozen USDTz off at cost."""
    d = deal.run_to_monetizing()
    _fail_into_holding(d, "usdtz_frozen")
    v = d.vault
    debt = debt_of(w3, market, v)
    fund(w3, d.cusdt, owner.address, debt + 1_000 * USD)
    cusdt = ov.erc20(w3, d.cusdt)
    owner_before = balance_of(w3, d.cusdt, owner.address)
    with impersonating(w3, owner.address):
        send(w3, cusdt.functions.approve(v.address, 2**256 - 1), owner.address)
    with ape.reverts(v.NotOwner):
        v.ownerRepay(d.cusdt, debt, sender=d.operator)
    # ask for more than the debt: capped at the debt, nothing else pulled
    tx = v.ownerRepay(d.cusdt, debt + 1_000 * USD, sender=owner)
    repaid = events(v, tx, "Repaid")[0]
    assert repaid.payer == owner.address
    assert debt <= repaid.amount <= debt + one_block_interest(debt)
    debt = repaid.amount
    assert balance_of(w3, d.cusdt, owner.address) == owner_before - debt  # the rest refunded
    assert debt_of(w3, market, v) == 0
    rv = d.snap("ownerRepay")
    assert rv.ownerRepaid == debt and rv.stableHeld == d.stable
    assert cusdt.functions.allowance(v.address, market.pool).call() == 0
    cost_left = d.usdtz_cost
    pnl_eth, pnl_usd = _close(d)
    assert pnl_eth == 0
    assert pnl_usd == (d.stable - debt) * 100 < 0
    assert v.riskView().writtenOffUsdtz == cost_left
    print_table("recovery (d): owner repay", d.rows)


def test_permanent_freeze_closes_with_write_off(deal, w3, market, owner):
    """USDTz frozen for good: redeem fails softly, sell reverts (the USDTz cannot move), the desk
    path never comes back; deleverage covers the debt, close writes the frozen USDTz off at cost
    and reports it apart from the PnL; the owner then takes the ETH back. The frozen USDTz stays
    in the vault, booked as written off, never counted as value."""
    d = deal.run_to_monetizing()
    _fail_into_holding(d, "usdtz_frozen")
    v = d.vault
    before = v.riskView()
    with ape.reverts():
        v.sell(d.cusdt, d.usdtz_held, 0, DEADLINE, sender=d.operator)
    assert v.riskView().usdtzHeld == before.usdtzHeld
    v.repay(d.cusdt, d.stable, sender=d.operator)
    d.stable = 0
    d.snap("repay books")
    sold_eth, received, repaid = _deleverage_to_cover(d)
    frozen_face, frozen_cost = d.usdtz_held, d.usdtz_cost
    price = price_now(w3, d.mirror)
    pnl_eth, pnl_usd = _close(d)
    rv = v.riskView()
    assert rv.writtenOffUsdtz == frozen_cost > 0
    assert rv.usdtzCost == 0  # never counted as value after close
    assert balance_of(w3, d.usdtz, v.address) == frozen_face  # still there, frozen
    assert pnl_usd == -(sold_eth * price // ETH) + (received - repaid) * 100
    # the owner takes everything it can back (the ETH); the frozen USDTz cannot move
    eth = w3.eth.get_balance(v.address)
    owner_eth = w3.eth.get_balance(owner.address)
    tx = v.withdraw("0x0000000000000000000000000000000000000000", eth, sender=owner)
    gas = tx.gas_used * tx.gas_price
    assert w3.eth.get_balance(owner.address) == owner_eth + eth - gas
    with ape.reverts():
        v.withdraw(d.usdtz, frozen_face, sender=owner)
    print_table("permanent freeze: write-off", d.rows)


# --- 2. ETH falls 40 % after borrowing at 25 % LTV -------------------------------------------------


def test_eth_falls_40pct_then_cure_and_close_with_stale_oracle(deal, w3, mirror, market):
    d = deal.run_to_monetizing(first_tranche=0)  # POSITIONED, USDTz held
    v = d.vault
    p0 = price_now(w3, mirror)
    assert ltv_dec(BORROW, SUPPLY, p0) == Decimal("0.25")
    assert BORROW <= debt_of(w3, market, v) <= BORROW + one_block_interest(BORROW) * 5
    p1 = p0 * 60 // 100
    set_eth_price(w3, mirror, p1)
    rv = d.snap("ETH -40%")
    debt = debt_of(w3, market, v)
    ltv = ltv_dec(debt, SUPPLY, p1)
    assert ltv > Decimal(v.maxLtvBps()) / BPS  # 41.7 % > 30 %
    assert rv.ltvBps == int((ltv * BPS).to_integral_value(rounding=ROUND_CEILING))
    assert rv.ltvBps == ltv_bps_ceil(debt, SUPPLY, p1)
    # risk-adding legs refused
    with ape.reverts(v.LtvAboveCap):
        v.borrow(d.cusdt, 1, sender=d.operator)
    with ape.reverts(v.LtvAboveCap):
        v.buy(d.cusdt, 100 * USD, 0, DEADLINE, sender=d.operator)
    # the opportunistic bucket as collateral: no oracle check needed, LTV only falls
    opp = rv.opportunisticEth
    v.addCollateral(d.weth9, opp, sender=d.operator)
    rv = d.snap("addCollateral opp")
    coll = SUPPLY + opp
    debt = debt_of(w3, market, v)
    cured = ltv_dec(debt, coll, p1)
    assert cured <= Decimal(v.maxLtvBps()) / BPS
    assert rv.ltvBps == int((cured * BPS).to_integral_value(rounding=ROUND_CEILING))
    assert rv.opportunisticEth == 0 and rv.collateralWeth == coll and rv.coreEth == FUNDING // 2
    # risk-adding works again, and the pool agrees (getUserAccountData)
    pool = market.pool_contract(w3)
    cb, db, *_ = pool.functions.getUserAccountData(v.address).call()
    assert db * BPS <= v.maxLtvBps() * cb
    v.borrow(d.cusdt, 1 * USD, sender=d.operator)
    d.stable += 1 * USD
    d.snap("borrow 1 (cured)")

    # the feed goes stale: riskView still answers, flags it
    make_feed_stale(w3, mirror)
    rv = d.snap("feed stale")
    assert rv.oracleStatus == STALE
    with ape.reverts(v.StaleOracle):
        v.borrow(d.cusdt, 1, sender=d.operator)
    # deleverage with a stale oracle: bounded by ethFloorPrice; a pair dumped below the floor is refused
    floor = v.ethFloorPrice()
    r_eth, r_usd = reserves(w3, market, market.pair_weth_cusdt, d.weth9)
    # dump WETH into the pair until its spot is ~$900 < floor ($1,000)
    target_eth = math.isqrt(r_eth * r_usd * 10**12 // 900)  # reserve of WETH at a $900 spot: sqrt(k / p)
    ov.swap_on_pair(w3, market, d.weth9, d.cusdt, target_eth * 10_035 // 10_000 - r_eth)
    spot = ov.pair_price(w3, market, market.pair_weth_cusdt, d.weth9)
    assert spot < Decimal(floor) / 10**8
    amount = 13 * ETH  # covers the debt at ~$1,800
    bound = amount * floor * (BPS - v.maxSlippageBps()) // (10**20 * BPS)
    r_in, r_out = reserves(w3, market, market.pair_weth_cusdt, d.weth9)
    assert uni_out(amount, r_in, r_out) < bound
    with ape.reverts("UniswapV2Router: INSUFFICIENT_OUTPUT_AMOUNT"):
        v.deleverage(d.weth9, d.cusdt, amount, 0, DEADLINE, sender=d.operator)
    # arbitrage lifts the pair back to ~$1,800: the same deleverage passes, paid at least the bound
    ov.swap_on_pair(w3, market, d.cusdt, d.weth9, 4_600_000 * USD)
    spot = ov.pair_price(w3, market, market.pair_weth_cusdt, d.weth9)
    assert spot > Decimal(floor) / 10**8
    r_in, r_out = reserves(w3, market, market.pair_weth_cusdt, d.weth9)
    out = uni_out(amount, r_in, r_out)
    debt = debt_of(w3, market, v)
    tx = v.deleverage(d.weth9, d.cusdt, amount, 0, DEADLINE, sender=d.operator)
    ev = events(v, tx, "Deleveraged")[0]
    assert ev.received == out >= bound
    assert debt - 1 <= debt_of(w3, market, v) + ev.repaid <= debt + one_block_interest(debt)
    d.stable += out - ev.repaid
    d.snap("deleverage (stale)")
    assert v.riskView().oracleStatus == STALE
    # repay and close with the oracle stale
    remaining = debt_of(w3, market, v)
    if remaining:
        assert d.stable >= remaining
        tx = v.repay(d.cusdt, 2**256 - 1, sender=d.operator)
        d.stable -= events(v, tx, "Repaid")[0].amount
        assert debt_of(w3, market, v) == 0
        d.snap("repay (stale)")
    # USDTz still held (POSITIONED): written off at cost at close; the USD PnL is flagged stale
    pnl_eth, pnl_usd = _close(d)
    assert pnl_eth == -amount
    assert v.riskView().oracleStatus == STALE
    print_table("ETH -40%, cure, stale close", d.rows)


def test_invalid_oracle_never_locks_the_deal(deal, w3, mirror, market, owner):
    """A zero answer (Invalid): riskView still answers (collateral value 0, LTV max), risk-adding
    legs are refused, repay and ownerRepay and close work, and the USD PnL is reported at price 0
    with the Invalid flag.

    Finding: Aave prices WETH with the same feed, so with an Invalid answer the *pool* refuses any
    collateral withdrawal while debt remains (its fallback oracle is unset): ``deleverage`` cannot
    run until the feed answers again (it reverts, nothing changes). The way out with a dead feed is
    repay from the books + ``ownerRepay``, after which close withdraws without any price."""
    d = deal.run_to_monetizing()
    v = d.vault
    set_eth_price(w3, mirror, 0)
    rv = d.snap("feed answers 0")
    assert rv.oracleStatus == INVALID and rv.collateralValue == 0 and rv.ltvBps == 2**256 - 1
    assert rv.ethPrice == 0 and rv.debt == debt_of(w3, market, v)
    with ape.reverts():
        v.borrow(d.cusdt, 1, sender=d.operator)
    with ape.reverts():
        v.deleverage(d.weth9, d.cusdt, 2 * ETH, 0, DEADLINE, sender=d.operator)  # the pool cannot price WETH
    assert v.riskView().collateralWeth == SUPPLY and v.riskView().legSeq == rv.legSeq
    tx = v.repay(d.cusdt, 2**256 - 1, sender=d.operator)
    d.stable -= events(v, tx, "Repaid")[0].amount
    assert d.stable == 0
    d.snap("repay books (invalid)")
    remaining = debt_of(w3, market, v)
    fund(w3, d.cusdt, owner.address, remaining + 1_000 * USD)
    with impersonating(w3, owner.address):
        send(w3, ov.erc20(w3, d.cusdt).functions.approve(v.address, remaining + 1_000 * USD), owner.address)
    tx = v.ownerRepay(d.cusdt, remaining + 1_000 * USD, sender=owner)
    put_in = events(v, tx, "Repaid")[0].amount
    assert remaining <= put_in <= remaining + one_block_interest(remaining)
    assert debt_of(w3, market, v) == 0
    d.snap("ownerRepay (invalid)")
    pnl_eth, pnl_usd = _close(d)
    assert pnl_eth == 0
    assert pnl_usd == (d.stable - put_in) * 100  # price 0: stable surplus less the owner's money
    assert v.riskView().oracleStatus == INVALID
    print_table("invalid oracle", d.rows)
