"""Scenario 3: USDTz frozen after the second rung (the issuer blacklists the vault).

HOLDING, caps hold; then (a) the issuer unfreezes, the owner resumes, the ladder restarts at
rung 0 and the deal closes with a profit; (b) the freeze is permanent: repay from the books,
deleverage, owner repay, close with the frozen USDTz written off at cost and reported.
"""

from __future__ import annotations

import pytest

from dealvault.funding import fund
from dealvault.overlay import erc20, freeze_usdtz, unfreeze_usdtz
from tests.model import ceil_div

DEADLINE = 2**64
BPS = 10_000
R0, R1, R2 = 50_000 * 10**6, 250_000 * 10**6, 1_000_000 * 10**6


def _two_rungs_then_freeze(deal, w3, market):
    v, raw = deal.vault, deal.raw
    pos = deal.position(5_000 * 10**18, 2985)
    deal.leg("redeem", deal.cusdt, R0, label="redeem r0 50,000")
    deal.leg("redeem", deal.cusdt, R1, label="redeem r1 250,000")
    assert v.riskView().rung == 2
    freeze_usdtz(w3, market, str(v.address))
    deal.note("issuer blacklists the vault on USDTz")
    before = v.riskView()
    z_before, s_before = raw.bal(deal.usdtz), raw.bal(deal.cusdt)
    tx = deal.leg("redeem", deal.cusdt, R2, label="redeem r2 (frozen)")
    assert tx.return_value is False if tx.return_value is not None else True
    failed = [e for e in tx.events if e.event_name == "RedemptionFailed"]
    assert len(failed) == 1 and failed[0].rung == 2 and failed[0].amount == R2
    # FiatToken's approve reverts for a blacklisted holder: the reason is its revert string
    assert b"blacklisted" in bytes(failed[0].reason)
    after = v.riskView()
    assert after.phase == 5 and after.phaseBeforeHolding == 4  # HOLDING, from MONETIZING
    assert (after.rung, after.rungProgress) == (0, 0)
    # nothing moved, nothing lost: USDTz and stablecoin balances and books unchanged
    assert raw.bal(deal.usdtz) == z_before == after.usdtzHeld == before.usdtzHeld
    assert raw.bal(deal.cusdt) == s_before == after.stableHeld
    assert after.debt >= before.debt and after.ltvBps <= 3000 and after.exposureBps <= 2500
    # caps hold: no risk-adding leg runs in HOLDING
    for name, args in (("borrow", (deal.cusdt, 10**6)), ("buy", (deal.cusdt, 10**6, 0, DEADLINE)),
                       ("supply", (deal.weth9, 10**18))):
        deal.refused(v.WrongPhase, name, *args)
    deal.refused(v.WrongPhase, "withdrawCollateral", deal.weth9, 10**18)
    return pos


def test_usdtz_frozen_then_unfrozen_resume_restarts_ladder(fork_vault, make_deal, w3, market, owner):
    deal = make_deal(fork_vault, "scenario 3a: USDTz frozen after rung 2, unfrozen, resumed")
    v, raw = deal.vault, deal.raw
    pos = _two_rungs_then_freeze(deal, w3, market)
    # risk-reducing legs still run but the frozen token cannot move: a retry fails the same way
    assert v.redeem.call(deal.cusdt, R0, sender=deal.operator) is False
    unfreeze_usdtz(w3, market, str(v.address))
    deal.note("issuer unfreezes")
    deal.refused(v.NotOwner, "resume", sender=deal.operator)
    deal.leg("resume", sender=owner)
    s = v.riskView()
    assert s.phase == 4 and (s.rung, s.rungProgress) == (0, 0)
    # the ladder restarts at rung 0: a 1M tranche is above rung 0
    deal.refused(v.TrancheAboveRung, "redeem", deal.cusdt, R2)
    held = s.usdtzHeld
    k, progress, rungs = 0, 0, (R0, R1, R2)
    while held:
        amount = min(held, rungs[k] - progress)
        deal.leg("redeem", deal.cusdt, amount, label=f"redeem r{k} {amount // 10**6:,}")
        held -= amount
        progress += amount
        if progress >= rungs[k]:
            k, progress = min(k + 1, 2), 0
        assert (v.riskView().rung, v.riskView().rungProgress) == (k, progress)
    deal.leg("repay", deal.cusdt, 2**256 - 1, label="repay all")
    assert raw.debt() == 0
    rec = deal.leg("close")
    s = v.riskView()
    assert s.phase == 6 and s.realizedPnlEth == 0 and s.writtenOffUsdtz == 0
    assert s.realizedPnlUsd == raw.bal(deal.cusdt) * 100 > 0
    assert pos["usdtz"] == s.redeemedTotal


def test_usdtz_frozen_permanently_deleverage_owner_repay_write_off(fork_vault, make_deal, w3, market, owner):
    deal = make_deal(fork_vault, "scenario 3b: USDTz frozen for good: repay, deleverage, owner repay, write off")
    v, raw = deal.vault, deal.raw
    pos = _two_rungs_then_freeze(deal, w3, market)
    s = v.riskView()
    cost_left = s.usdtzCost
    # independent average-cost bookkeeping: two redemptions, cost out rounded up each time
    held, cost = pos["usdtz"], pos["borrow"]
    for amount in (R0, R1):
        cost -= ceil_div(cost * amount, held)
        held -= amount
    assert (cost_left, s.usdtzHeld) == (cost, held)

    # 1. repay with what the desk paid
    stable_books = s.stableHeld
    deal.leg("repay", deal.cusdt, 2**256 - 1, label="repay from books")
    assert raw.bal(deal.cusdt) == 0 and v.riskView().stableHeld == 0
    # 2. deleverage 20 ETH of collateral at an oracle-bounded price (risk-reducing, in HOLDING)
    price, _ = raw.price()
    d_before, coll_before = raw.debt(), v.riskView().collateralWeth
    t_before, rate = raw.now(), raw.rate()
    lev = 20 * 10**18
    tx = deal.leg("deleverage", deal.weth9, deal.cusdt, lev, 0, DEADLINE)
    ev = [e for e in tx.events if e.event_name == "Deleveraged"][0]
    bound = lev * price * (BPS - 100) // (10**20 * BPS)
    assert ev.received >= bound and ev.repaid == ev.received
    d_after = raw.debt()
    # the debt fell by what was repaid, plus at most the interest of the seconds between reads
    max_interest = raw.interest_bound(d_before, t_before, rate)
    assert d_before - ev.repaid - 2 <= d_after <= d_before - ev.repaid + max_interest
    assert d_after * coll_before <= d_before * (coll_before - lev)  # LTV not raised
    # 3. the owner repays the rest with its own cUSDT (funded by the helper, never minted)
    debt = raw.debt()
    fund(w3, deal.cusdt, str(owner.address), debt + 10**6)
    w3.eth.wait_for_transaction_receipt(erc20(w3, deal.cusdt).functions.approve(str(v.address), 2**256 - 1).transact({"from": str(owner.address)}))  # mined before ape picks this sender's next nonce
    o_before = raw.bal(deal.cusdt, str(owner.address))
    deal.leg("ownerRepay", deal.cusdt, 2**256 - 1, sender=owner)
    owner_paid = o_before - raw.bal(deal.cusdt, str(owner.address))
    assert raw.debt() == 0 and owner_paid >= debt and v.riskView().ownerRepaid == owner_paid
    # 4. close with the frozen USDTz written off at cost
    rec = deal.leg("close")
    p_close, _ = raw.price()
    pnl_eth = -lev
    stable_left = raw.bal(deal.cusdt)  # deleverage surplus, if any (none: debt > received)
    pnl_usd = int(pnl_eth * p_close / 10**18) + (stable_left - owner_paid) * 100  # Solidity truncates toward 0
    if pnl_eth * p_close < 0 and (pnl_eth * p_close) % 10**18:
        pnl_usd = -((-pnl_eth * p_close) // 10**18) + (stable_left - owner_paid) * 100
    s = v.riskView()
    assert s.phase == 6 and s.realizedPnlEth == pnl_eth and s.realizedPnlUsd == pnl_usd
    assert s.writtenOffUsdtz == cost_left > 0
    ev = [e for e in rec.events if e.event_name == "Closed"][0]
    assert ev.writtenOffUsdtz == cost_left and ev.realizedPnlEth == pnl_eth
    # the frozen USDTz is still in the vault (reported, never counted as value)
    assert raw.bal(deal.usdtz) == held
    deal.note(f"written off {cost_left / 1e6:,.2f} (cost of {held / 1e6:,.2f} frozen USDTz); owner repaid {owner_paid / 1e6:,.2f}")
    assert stable_books > 0
