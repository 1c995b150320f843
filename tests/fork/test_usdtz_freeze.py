"""Scenario 3: USDTz frozen after the second rung (the issuer blacklists the vault).

HOLDING, caps hold; then (a) the issuer unfreezes, the owner resumes, the ladder restarts at
rung 0 and the deal closes with a profit; (b) the freeze is permanent: repay from the books,
deleverage, owner repay, close with the frozen USDTz written off at cost and reported.

v2 outcomes asserted in (b): the operator's deleverage books its shortfall against the oracle
price as an operator loss; ``ownerRepay`` takes an explicit amount (it pulls what it names and
returns the rest); and the write-off at close counts against the operator's loss budget (50 bps of
the funded value at split, $75,000 here), which the frozen USDTz's cost (about $1.06M) exceeds:
the operator's close is refused with LossBudgetExceeded(operatorLoss + cost, budget), and the
owner closes (its legs are crisis exits, outside the budget).
"""

from __future__ import annotations

from dealvault.kit.funding import fund
from dealvault.kit.overlay import erc20, freeze_usdtz, unfreeze_usdtz
from tests.model import ceil_div

DEADLINE = 2**64
BPS = 10_000
R0, R1, R2 = 50_000 * 10**6, 250_000 * 10**6, 1_000_000 * 10**6
HOLDING = 5
ACTIVE = (1 << 2) | (1 << 3) | (1 << 4)  # WrongPhase mask of the risk-adding legs: WORKING | POSITIONED | MONETIZING
REDEEM_GAS = 1_000_000  # above the vault's 567,301 floor (as tests/fork/conftest's Deal sends a redeem)


def _two_rungs_then_freeze(deal, w3, market):
    v, raw = deal.vault, deal.raw
    pos = deal.position(5_000 * 10**18, 2985)
    deal.leg("redeem", deal.cusdt, R0, label="redeem r0 50,000")
    deal.leg("redeem", deal.cusdt, R1, label="redeem r1 250,000")
    assert deal.view().rung == 2
    freeze_usdtz(w3, market, str(v.address))
    deal.note("issuer blacklists the vault on USDTz")
    before = deal.view()
    z_before, s_before = raw.bal(deal.usdtz), raw.bal(deal.cusdt)
    tx = deal.leg("redeem", deal.cusdt, R2, label="redeem r2 (frozen)")
    assert tx.return_value is False if tx.return_value is not None else True
    failed = [e for e in tx.events if e.event_name == "RedemptionFailed"]
    assert len(failed) == 1 and failed[0].rung == 2 and failed[0].amount == R2
    # FiatToken's approve reverts for a blacklisted holder: the reason is its revert string
    assert b"blacklisted" in bytes(failed[0].reason)
    after = deal.view()
    assert after.phase == 5 and after.phaseBeforeHolding == 4  # HOLDING, from MONETIZING
    assert (after.rung, after.rungProgress) == (0, 0)
    # nothing moved, nothing lost: USDTz and stablecoin balances and books unchanged
    assert raw.bal(deal.usdtz) == z_before == after.usdtzHeld == before.usdtzHeld
    assert raw.bal(deal.cusdt) == s_before == after.stableHeld
    assert after.debt >= before.debt and after.ltvBps <= 3000 and after.exposureBps <= 2500
    # caps hold: no risk-adding leg runs in HOLDING
    for name, args, mask in (("borrow", (deal.cusdt, 10**6), ACTIVE), ("buy", (deal.cusdt, 10**6, 0, DEADLINE), ACTIVE),
                             ("supply", (deal.weth9, 10**18), ACTIVE | (1 << 1))):
        deal.refused(v.WrongPhase, name, *args, expect={"current": HOLDING, "allowedMask": mask})
    deal.refused(v.WrongPhase, "withdrawCollateral", deal.weth9, 10**18, expect={"current": HOLDING, "allowedMask": ACTIVE})
    return pos


def test_usdtz_frozen_then_unfrozen_resume_restarts_ladder(fork_vault, make_deal, w3, market, owner):
    deal = make_deal(fork_vault, "scenario 3a: USDTz frozen after rung 2, unfrozen, resumed")
    v, raw = deal.vault, deal.raw
    pos = _two_rungs_then_freeze(deal, w3, market)
    # risk-reducing legs still run but the frozen token cannot move: a retry fails the same way
    assert v.redeem.call(deal.cusdt, R0, sender=deal.operator, gas=REDEEM_GAS) is False
    unfreeze_usdtz(w3, market, str(v.address))
    deal.note("issuer unfreezes")
    deal.refused(v.NotOwner, "resume", sender=deal.operator, expect={"caller": deal.operator.address})
    deal.leg("resume", sender=owner)
    s = deal.view()
    assert s.phase == 4 and (s.rung, s.rungProgress) == (0, 0)
    # the ladder restarts at rung 0: a 1M tranche is above rung 0
    deal.refused(v.TrancheAboveRung, "redeem", deal.cusdt, R2, expect={"amount": R2, "rungSize": R0})
    held = s.usdtzHeld
    k, progress, rungs = 0, 0, (R0, R1, R2)
    while held:
        amount = min(held, rungs[k] - progress)
        deal.leg("redeem", deal.cusdt, amount, label=f"redeem r{k} {amount // 10**6:,}")
        held -= amount
        progress += amount
        if progress >= rungs[k]:
            k, progress = min(k + 1, 2), 0
        assert (deal.view().rung, deal.view().rungProgress) == (k, progress)
    deal.leg("repay", deal.cusdt, 2**256 - 1, label="repay all")
    assert raw.debt() == 0
    deal.leg("close")
    s = deal.view()
    assert s.phase == 6 and s.realizedPnlEth == 0 and s.writtenOffUsdtz == 0 and s.operatorLoss == 0
    assert s.realizedPnlUsd == raw.bal(deal.cusdt) * 100 > 0
    assert pos["usdtz"] == s.redeemedTotal


def test_usdtz_frozen_permanently_deleverage_owner_repay_write_off(fork_vault, make_deal, w3, market, owner):
    deal = make_deal(fork_vault, "scenario 3b: USDTz frozen for good: repay, deleverage, owner repay, write off")
    v, raw = deal.vault, deal.raw
    pos = _two_rungs_then_freeze(deal, w3, market)
    s = deal.view()
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
    assert raw.bal(deal.cusdt) == 0 and deal.view().stableHeld == 0
    # 2. deleverage 20 ETH of collateral at an oracle-bounded price (risk-reducing, in HOLDING)
    price, _ = raw.price()
    d_before, coll_before = raw.debt(), deal.view().collateralWeth
    assert deal.view().operatorLoss == 0
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
    # v2: the sale's shortfall against the oracle price is the operator's loss
    value = lev * price // 10**20
    loss = max(0, value - ev.received)
    assert deal.view().operatorLoss == loss
    assert [(e.loss, e.total) for e in tx.events if e.event_name == "OperatorLoss"] == ([(loss, loss)] if loss else [])
    # 3. the owner repays the rest with its own cUSDT (funded by the helper, never minted); v2:
    #    ownerRepay pulls the amount named (not type(uint256).max) and sends back the rest
    debt = raw.debt()
    fund(w3, deal.cusdt, str(owner.address), debt + 10**6)
    w3.eth.wait_for_transaction_receipt(erc20(w3, deal.cusdt).functions.approve(str(v.address), 2**256 - 1).transact({"from": str(owner.address)}))  # mined before ape picks this sender's next nonce
    o_before = raw.bal(deal.cusdt, str(owner.address))
    deal.leg("ownerRepay", deal.cusdt, debt + 10**6, sender=owner)
    owner_paid = o_before - raw.bal(deal.cusdt, str(owner.address))
    assert raw.debt() == 0 and debt <= owner_paid < debt + 10**6 and deal.view().ownerRepaid == owner_paid
    # 4. close with the frozen USDTz written off at cost: past the operator's loss budget, so the
    #    operator's close is refused (v2) and the owner closes
    s = deal.view()
    budget = pos["split_value"] * 50 // BPS
    assert (s.splitValue, s.lossBudget) == (pos["split_value"], budget) and loss + cost_left > budget
    deal.refused(v.LossBudgetExceeded, "close", expect={"lossAfter": loss + cost_left, "budget": budget})
    rec = deal.leg("close", sender=owner, label="close (owner)")
    p_close, _ = raw.price()
    pnl_eth = -lev
    stable_left = raw.bal(deal.cusdt)  # deleverage surplus, if any (none: debt > received)
    pnl_usd = int(pnl_eth * p_close / 10**18) + (stable_left - owner_paid) * 100  # Solidity truncates toward 0
    if pnl_eth * p_close < 0 and (pnl_eth * p_close) % 10**18:
        pnl_usd = -((-pnl_eth * p_close) // 10**18) + (stable_left - owner_paid) * 100
    s = deal.view()
    assert s.phase == 6 and s.realizedPnlEth == pnl_eth and s.realizedPnlUsd == pnl_usd
    assert s.writtenOffUsdtz == cost_left > 0 and s.operatorLoss == loss  # the owner's write-off is not the operator's
    ev = [e for e in rec.events if e.event_name == "Closed"][0]
    assert ev.writtenOffUsdtz == cost_left and ev.realizedPnlEth == pnl_eth
    # the frozen USDTz is still in the vault (reported, never counted as value)
    assert raw.bal(deal.usdtz) == held
    deal.note(f"written off {cost_left / 1e6:,.2f} (cost of {held / 1e6:,.2f} frozen USDTz); owner repaid {owner_paid / 1e6:,.2f}")
    assert stable_books > 0
