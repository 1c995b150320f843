"""Scenario 4: the redemption desk fails mid-ladder (after rungs 0 and 1, at the 1M rung).

Three causes, each a soft failure: ``redeem`` returns false (static call), emits
RedemptionFailed with the desk's reason (decoded here), resets the ladder to rung 0 and enters
HOLDING; caps, core ETH and the books hold (recomputed here from raw reads). Then the recovery:

* desk halted by the issuer -> the issuer resumes the desk, the owner resumes the vault, the
  ladder restarts at rung 0, everything is redeemed, repaid, closed;
* desk out of funds (its stock taken by other redeemers) -> the USDTz is sold on the pair
  (risk-reducing, bounded by the sell floor), the debt repaid from the books, closed;
* desk paying 1 wei short of the fee bound -> the tranche *moved* (the books follow what moved)
  but counts as failed; the desk fee goes back to normal, the owner resumes, redeem, close.

Expectations come from raw reads (desk fee/feeBps, pair reserves, balances, debt token, feed).

v2: the vault's views and parameters are read through the lens; every redeem is sent with a gas
limit above the vault's floor (REDEEM_GAS); a tranche or a sale realizes an operator loss when it
pays less than the average cost of the USDTz it takes, recomputed here and checked against the
books' operatorLoss: no tranche does (bought near 0.94, the desk pays 0.999, the short desk 0.99),
but the second sale of the dry-desk recovery does (the first sale pushed the pair below the
average cost): about $20k, within the deal's budget (50 bps of $15M), so the operator's exit runs.
The operator's sells pass the TWAP check (the pair trades above its TWAP after the vault's buy).
"""

from __future__ import annotations

import pytest

from dealvault.kit.overlay import drain_desk, erc20, halt_desk, resume_desk, set_desk_fee
from tests.model import ceil_div, reserves, uni_out

DEADLINE = 2**64
BPS = 10_000
ETH = 10**18
R0, R1, R2 = 50_000 * 10**6, 250_000 * 10**6, 1_000_000 * 10**6
RUNGS = (R0, R1, R2)
MONETIZING, HOLDING, CLOSED = 4, 5, 6
REDEEM_GAS = 1_000_000  # above the vault's 567,301 floor (as tests/fork/conftest's Deal sends a redeem)


def desk_pays(w3, market, amount: int) -> int:
    """What the desk pays for ``amount`` USDTz, from its raw fee settings (ceil bps + flat)."""
    desk = market.desk_contract(w3)
    return amount - ceil_div(amount * desk.functions.feeBps().call(), BPS) - desk.functions.flatFee().call()


class Books:
    """Independent books of the deal: USDTz held and its average cost, stablecoin held, and the
    operator's realized loss (v2: cost of what left - what it paid, when positive)."""

    def __init__(self, usdtz: int, cost: int, stable: int):
        self.usdtz, self.cost, self.stable = usdtz, cost, stable
        self.loss = 0

    def realize(self, cost_out: int, received: int) -> None:
        self.loss += max(0, cost_out - received)

    def out(self, amount: int) -> int:
        c = self.cost if amount >= self.usdtz else ceil_div(self.cost * amount, self.usdtz)
        self.cost -= c
        self.usdtz -= amount
        return c

    def check(self, deal) -> None:
        s, raw = deal.view(), deal.raw
        assert (s.usdtzHeld, s.usdtzCost, s.stableHeld, s.operatorLoss) == (self.usdtz, self.cost, self.stable, self.loss)
        assert raw.bal(deal.usdtz) == self.usdtz and raw.bal(deal.cusdt) == self.stable


def redeem_ok(deal, books: Books, amount: int) -> int:
    """A tranche that succeeds: received exactly what the desk's fee settings say."""
    w3, market, raw = deal.w3, deal.market, deal.raw
    expected = desk_pays(w3, market, amount)
    s_before = raw.bal(deal.cusdt)
    rung = deal.view().rung
    tx = deal.leg("redeem", deal.cusdt, amount, label=f"redeem r{rung} {amount // 10**6:,}")
    assert not [e for e in tx.events if e.event_name == "RedemptionFailed"]
    assert raw.bal(deal.cusdt) - s_before == expected
    books.stable += expected
    books.realize(books.out(amount), expected)
    books.check(deal)
    return expected


def ladder(deal, books: Books) -> int:
    """Redeem everything up the ladder from rung 0 (independent rung tracking); returns the paid total."""
    k, progress, paid = deal.view().rung, deal.view().rungProgress, 0
    while books.usdtz:
        amount = min(books.usdtz, RUNGS[k] - progress)
        paid += redeem_ok(deal, books, amount)
        progress += amount
        if progress >= RUNGS[k]:
            k, progress = min(k + 1, 2), 0
        s = deal.view()
        assert (s.rung, s.rungProgress) == (k, progress)
    return paid


def mid_ladder(deal) -> tuple[dict, Books]:
    pos = deal.position(5_000 * ETH, 2985)
    books = Books(pos["usdtz"], pos["borrow"], 0)
    books.check(deal)
    redeem_ok(deal, books, R0)
    redeem_ok(deal, books, R1)
    s = deal.view()
    assert (s.phase, s.rung, s.rungProgress) == (MONETIZING, 2, 0)
    return pos, books


def break_desk(deal, cause: str):
    """Break the desk; returns the expected decoded reason for a R2 tranche."""
    w3, market = deal.w3, deal.market
    if cause == "halted":
        halt_desk(w3, market)
        deal.note("the issuer halts the desk")
        return ("RedemptionsHalted", ())
    if cause == "dry":
        taken = drain_desk(w3, market)  # both stablecoins: other redeemers emptied it
        assert taken > 0 and deal.raw.bal(deal.cusdt, market.desk) == 0 == deal.raw.bal(deal.cusdc, market.desk)
        deal.note(f"the desk is out of funds ({taken / 1e6:,.0f} taken by other redeemers)")
        return ("InsufficientLiquidity", (deal.cusdt, 0, desk_pays(w3, market, R2)))
    if cause == "short":
        max_fee = deal.params().maxDeskFeeBps
        minimum = ceil_div(R2 * (BPS - max_fee), BPS)  # the vault's bound, rounded up
        set_desk_fee(w3, market, max_fee, 1)  # the fee bound plus 1 wei flat: pays minimum - 1
        assert desk_pays(w3, market, R2) == minimum - 1
        deal.note(f"the desk charges {max_fee} bps + 1 wei: pays 1 wei short of the bound")
        return ("ShortPayment", (minimum - 1, minimum))
    raise AssertionError(cause)


def fail_into_holding(deal, books: Books, cause: str, reason_of):
    v, raw, w3, market = deal.vault, deal.raw, deal.w3, deal.market
    expected_reason = break_desk(deal, cause)
    before = deal.view()
    eth_before, desk_z = raw.eth(), raw.bal(deal.usdtz, market.desk)
    coll_before = raw.atoken("WETH")
    assert v.redeem.call(deal.cusdt, R2, sender=deal.operator, gas=REDEEM_GAS) is False  # returns false, no revert
    tx = deal.leg("redeem", deal.cusdt, R2, label=f"redeem r2 ({cause})")
    failed = [e for e in tx.events if e.event_name == "RedemptionFailed"]
    assert len(failed) == 1 and (failed[0].rung, failed[0].amount) == (2, R2)
    assert reason_of(failed[0].reason) == expected_reason
    assert not [e for e in tx.events if e.event_name == "Redeemed"]
    held = [e for e in tx.events if e.event_name == "HoldingEntered"]
    assert len(held) == 1 and held[0]["from"] == MONETIZING and held[0].reason == 0
    deal.note(f"RedemptionFailed: {expected_reason[0]}{expected_reason[1]}")

    if cause == "short":  # the tranche moved: 1M USDTz out, minimum - 1 in
        paid = desk_pays(w3, market, R2)
        books.stable += paid
        books.realize(books.out(R2), paid)
        assert raw.bal(deal.usdtz, market.desk) == desk_z + R2
    else:
        assert raw.bal(deal.usdtz, market.desk) == desk_z
    books.check(deal)
    after = deal.view()
    assert after.phase == HOLDING and after.phaseBeforeHolding == MONETIZING
    assert (after.rung, after.rungProgress) == (0, 0) and after.redeemedTotal == before.redeemedTotal
    if cause == "short":
        assert after.feesPaid == before.feesPaid + R2 - paid
    # caps hold, recomputed from raw reads; nothing else moved
    price, _ = raw.price()
    debt, coll = raw.debt(), raw.atoken("WETH")
    assert coll == coll_before and raw.eth() == eth_before >= after.coreEth
    assert after.debt == debt and after.collateralWeth == min(coll, before.collateralWeth)
    p = deal.params()
    assert after.ltvBps == ceil_div(debt * 10**20 * BPS, after.collateralWeth * price) <= p.maxLtvBps
    assert after.exposureBps <= p.maxExposureBps
    assert erc20(w3, deal.usdtz).functions.allowance(str(v.address), market.desk).call() == 0
    # HOLDING: no risk-adding leg runs (WrongPhase names HOLDING and the leg's phase mask)
    active = (1 << 2) | (1 << 3) | (1 << 4)  # WORKING | POSITIONED | MONETIZING
    deal.refused(v.WrongPhase, "borrow", deal.cusdt, 10**6, expect={"current": HOLDING, "allowedMask": active})
    deal.refused(v.WrongPhase, "buy", deal.cusdt, 10**6, 0, DEADLINE, expect={"current": HOLDING, "allowedMask": active})
    deal.refused(v.WrongPhase, "supply", deal.weth9, ETH, expect={"current": HOLDING, "allowedMask": active | (1 << 1)})
    deal.refused(v.WrongPhase, "withdrawCollateral", deal.weth9, ETH, expect={"current": HOLDING, "allowedMask": active})
    if cause != "short":  # still broken: a retry fails the same way and stays in HOLDING
        assert v.redeem.call(deal.cusdt, R0, sender=deal.operator, gas=REDEEM_GAS) is False


def repay_all_and_close(deal, books: Books):
    raw = deal.raw
    s_before = raw.bal(deal.cusdt)
    deal.leg("repay", deal.cusdt, 2**256 - 1, label="repay all")
    repaid = s_before - raw.bal(deal.cusdt)
    assert raw.debt() == 0 and repaid > 0
    books.stable -= repaid
    books.check(deal)
    eth_before = raw.eth()
    tx = deal.leg("close")
    return repaid, tx, eth_before


@pytest.mark.parametrize("cause", ["halted", "short"])
def test_desk_halted_or_paying_short_then_resume(fork_vault, make_deal, w3, market, owner, cause, reason_of):
    deal = make_deal(fork_vault, f"scenario 4: desk {cause} mid-ladder, then resume + redeem")
    v, raw = deal.vault, deal.raw
    pos, books = mid_ladder(deal)
    fail_into_holding(deal, books, cause, reason_of)

    # recovery: the desk is back to normal, the owner resumes, the ladder restarts at rung 0
    if cause == "halted":
        resume_desk(w3, market)
        deal.note("the issuer resumes the desk")
    else:
        set_desk_fee(w3, market, market.params.desk_fee_bps, market.params.desk_flat_fee)
        deal.note("the desk's fee is back to normal")
    deal.refused(v.NotOwner, "resume", sender=deal.operator, expect={"caller": deal.operator.address})
    deal.leg("resume", sender=owner)
    s = deal.view()
    assert s.phase == MONETIZING and (s.rung, s.rungProgress) == (0, 0)
    # rung 0 again: 50k at most
    deal.refused(v.TrancheAboveRung, "redeem", deal.cusdt, R0 + 1, expect={"amount": R0 + 1, "rungSize": R0})
    ladder(deal, books)
    assert deal.view().redeemedTotal == pos["usdtz"] - (R2 if cause == "short" else 0)

    repaid, tx, eth_before = repay_all_and_close(deal, books)
    s = deal.view()
    assert s.phase == CLOSED and s.realizedPnlEth == 0 and raw.eth() == 5_000 * ETH
    assert s.writtenOffUsdtz == 0 and raw.bal(deal.usdtz) == 0
    assert s.realizedPnlUsd == books.stable * 100 > 0 and s.operatorLoss == books.loss == 0
    ev = [e for e in tx.events if e.event_name == "Closed"][0]
    assert ev.realizedPnlUsd == books.stable * 100 and ev.writtenOffUsdtz == 0
    deal.note(f"closed: PnL {books.stable / 1e6:,.2f} USD, debt repaid {repaid / 1e6:,.2f}")


def test_desk_out_of_funds_then_sell_and_close(fork_vault, make_deal, w3, market, reason_of):
    deal = make_deal(fork_vault, "scenario 4: desk out of funds mid-ladder, then sell + repay + close")
    v, raw = deal.vault, deal.raw
    pos, books = mid_ladder(deal)
    fail_into_holding(deal, books, "dry", reason_of)
    # a second stablecoin does not help: the desk has no cUSDC either
    assert v.redeem.call(deal.cusdc, R0, sender=deal.operator, gas=REDEEM_GAS) is False

    # recovery: sell the USDTz on [USDTz, cUSDT] (risk-reducing, runs in HOLDING), in two trades
    floor = deal.params().sellFloorPrice
    for part in (books.usdtz // 2, books.usdtz - books.usdtz // 2):
        r_in, r_out = reserves(w3, market, market.pair_usdtz_cusdt, deal.usdtz)
        expected = uni_out(part, r_in, r_out)
        assert expected * 10**6 >= floor * part, "the pair would pay below the sell floor"
        s_before = raw.bal(deal.cusdt)
        deal.leg("sell", deal.cusdt, part, 0, DEADLINE, label=f"sell {part // 10**6:,}")
        assert raw.bal(deal.cusdt) - s_before == expected
        books.stable += expected
        books.realize(books.out(part), expected)
        books.check(deal)
    assert books.usdtz == 0 and books.cost == 0
    assert deal.view().phase == HOLDING
    assert books.stable > raw.debt(), "the sale covers the debt"

    repaid, tx, eth_before = repay_all_and_close(deal, books)
    s = deal.view()
    assert s.phase == CLOSED and s.realizedPnlEth == 0 and raw.eth() == 5_000 * ETH
    assert s.writtenOffUsdtz == 0 and s.realizedPnlUsd == books.stable * 100
    assert s.operatorLoss == books.loss and 0 < books.loss <= s.lossBudget == pos["split_value"] * 50 // BPS
    deal.note(f"closed: PnL {books.stable / 1e6:,.2f} USD after selling on the pair (operator loss {books.loss / 1e6:,.2f})")
