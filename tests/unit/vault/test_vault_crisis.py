"""DealVault (v2) in a crisis: freeze resistance, the four recoveries, a permanent freeze, ETH -40 %.

Every scenario runs the real loop on the kit (real Aave V3, Uniswap V2, FiatToken USDTz, desk),
breaks a venue, and checks that the redemption leg does not revert but records the failure and
puts the deal in HOLDING with its caps, core ETH and books intact; then it leaves HOLDING one way
or another and closes, with the PnL (and any USDTz written off) checked against numbers computed
here from raw reads (feed, pool, debt token, pair reserves, balances), never the vault's own math.
The vault's state is read through the lens (helpers_vault.risk_view / params / collateral_of).

What v2 changes here (each test's docstring says where):
- a buy needs the vault's TWAP observation to be ``twapWindow`` old (``_twap_ready`` below);
- the operator's legs are bounded by the per-deal loss budget (splitValue x maxOperatorLossBps =
  $1,500 on 100 ETH at $3,000): a close by the operator that writes off USDTz counts the write-off,
  so a deal with a large write-off is closed by the owner (its legs are crisis exits, never
  counted), and the operator's close is refused with LossBudgetExceeded(total, budget);
- deleverage may not sell more than the stable's debt needs (DeleverageTooLarge), and with a stale
  feed the operator's is bounded by the feed's last answer (the owner's by ethFloorPrice); with an
  Invalid feed the operator's reverts InvalidPrice.

Run with ``-s`` to see a risk snapshot table after each leg of the longer scenarios.
"""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, Decimal

import ape
import pytest
from eth_abi import decode
from eth_utils import keccak
from helpers_vault import collateral_of, compounded, lens_call, params, ray_div, ray_mul, risk_view

from dealvault.kit import overlay as ov
from dealvault.kit.evm import impersonating, rpc, send
from dealvault.kit.funding import balance_of, fund
from dealvault.kit.mirror import make_feed_stale, set_eth_price
from tests.model import ceil_div, reserves, uni_out

ETH = 10**18
USD = 10**6
DEADLINE = 2**63
BPS = 10_000
MAX = 2**256 - 1

# Phase / OracleStatus / Leg enums (IDealVault)
FUNDED, SPLIT, WORKING, POSITIONED, MONETIZING, HOLDING, CLOSED = range(7)
FRESH, STALE, INVALID = range(3)
LEG_REDEEM, LEG_SELL, LEG_DELEVERAGE, LEG_CLOSE = 4, 5, 10, 11
M_ACTIVE = (1 << WORKING) | (1 << POSITIONED) | (1 << MONETIZING)  # borrow / buy allowedMask (0x1c)

FUNDING = 100 * ETH
SUPPLY = 30 * ETH  # the whole working bucket (30 %)
BORROW = 22_500 * USD  # 25 % LTV at $3,000
BUY = 20_000 * USD
TRANCHE = 5_000 * USD


# --- local helpers (independent of the vault's math) -------------------------------------------


def sel(sig: str) -> bytes:
    return keccak(text=sig)[:4]


def price_now(w3, mirror) -> int:
    from dealvault.kit.mirror import feed

    return feed(w3, mirror.eth_usd_feed).functions.latestRoundData().call()[1]


def feed_round(w3, mirror) -> tuple[int, int]:
    from dealvault.kit.mirror import feed

    _, answer, _, updated, _ = feed(w3, mirror.eth_usd_feed).functions.latestRoundData().call()
    return answer, updated


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


def next_block_at(w3, seconds: int = 1) -> int:
    """Pins the next block's timestamp (latest + seconds) and returns it."""
    ts = w3.eth.get_block("latest")["timestamp"] + seconds
    rpc(w3, "evm_setNextBlockTimestamp", [ts])
    return ts


_SCALED_ABI = [{"type": "function", "name": "scaledBalanceOf", "stateMutability": "view",
                "inputs": [{"type": "address", "name": "u"}], "outputs": [{"type": "uint256", "name": ""}]}]


def debt_index_at(w3, market, stable: str, ts: int) -> int:
    """The stable reserve's normalized variable debt (borrow index) at ``ts``, from the reserve's
    stored index and rate (Aave's MathUtils, re-derived in helpers_vault)."""
    rd = market.pool_contract(w3).functions.getReserveData(stable).call()
    index, rate, last = rd[3], rd[4], rd[6]
    return ray_mul(compounded(rate, last, ts), index) if ts > last else index


def debt_at_ts(w3, market, vault, stable: str, symbol: str, ts: int, borrow: int = 0) -> int:
    """The vault's variable debt at ``ts`` (its scaled balance x the index then), after a borrow of
    ``borrow`` at that index (Aave mints rayDiv(amount, index) scaled units)."""
    scaled = w3.eth.contract(address=market.variable_debt_tokens[symbol], abi=_SCALED_ABI).functions.scaledBalanceOf(
        vault.address).call()
    index = debt_index_at(w3, market, stable, ts)
    if borrow:
        scaled += ray_div(borrow, index)
    return ray_mul(scaled, index)


def twap_ready(w3, vault, stable: str) -> None:
    """Moves the clock until a buy may use the vault's TWAP observation of ``stable``'s pair:
    observedAt (the lens's twap) + twapWindow (the lens's params). (helpers_vault.twap_ready reads
    twap().readyAt, which the lens computes from the wrong storage word: it equals observedAt.)"""
    observed_at = lens_call("twap", vault.address, stable)[2]
    assert observed_at > 0
    ready = observed_at + params(vault).twapWindow
    now = w3.eth.get_block("latest")["timestamp"]
    if ready > now:
        rpc(w3, "evm_increaseTime", [ready - now])
        rpc(w3, "evm_mine")  # a block at that time: an evm_revert to a later snapshot keeps it


def assert_reverts_in_aave_oracle(w3, market, sender, vault, data: str, asset: str) -> None:
    """The call reverts with empty data, and the call that failed first (the deepest failing frame)
    is the Aave oracle's getAssetPrice(asset): the pool cannot price it (a feed answering 0 and no
    fallback oracle)."""
    tx = {"from": str(sender.address), "to": str(vault.address), "data": data, "gas": hex(5_000_000)}
    trace = rpc(w3, "debug_traceCall", [tx, "latest", {"tracer": "callTracer"}])
    assert trace.get("error") and trace.get("output", "0x") in ("0x", None), trace.get("output")
    frame = trace
    while True:
        failing = [c for c in frame.get("calls", []) if c.get("error")]
        if not failing:
            break
        frame = failing[-1]
    want = "0x" + sel("getAssetPrice(address)").hex() + asset.lower()[2:].rjust(64, "0")
    assert frame["to"].lower() == market.aave_oracle.lower(), frame
    assert frame["input"].lower() == want and frame.get("output", "0x") in ("0x", None), frame


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
        "exposureBps", "rung", "rungProgress", "stableHeld", "usdtzHeld", "oracleStatus", "operatorLoss")


def print_table(title: str, rows: list[tuple[str, object]]) -> None:
    """A short risk snapshot table (ETH in ETH, 6-dp amounts in units, NAV in USD)."""

    def fmt(k, v):
        v = int(v)
        if k in ("coreEth", "workingEth", "opportunisticEth", "collateralWeth"):
            return f"{Decimal(v) / ETH:.4f}"
        if k in ("debt", "stableHeld", "usdtzHeld", "rungProgress", "operatorLoss"):
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
    """A vault run to MONETIZING (one tranche redeemed), with the raw facts of each leg and the
    test's own books: stablecoin, USDTz and its cost, what the owner put in, and the operator's
    realized loss against the budget."""

    def __init__(self, w3, mirror, market, vault, owner, operator):
        self.w3, self.mirror, self.market, self.vault = w3, mirror, market, vault
        self.owner, self.operator = owner, operator
        self.cusdt, self.weth9, self.usdtz = mirror.cusdt, mirror.weth9, market.usdtz
        self.rows: list[tuple[str, object]] = []
        self.usdtz_cost = 0  # independent cost basis of the booked USDTz
        self.usdtz_held = 0
        self.stable = 0  # independent cUSDT books
        self.owner_repaid = 0
        self.loss = 0  # the operator's realized loss so far (6 dp USD)
        self.budget = 0  # splitValue x maxOperatorLossBps / 1e4, from the feed at split

    def snap(self, label):
        rv = risk_view(self.vault)
        self.rows.append((label, rv))
        return rv

    def run_to_monetizing(self, first_tranche=TRANCHE):
        v, op = self.vault, self.operator
        v.fund(value=FUNDING, sender=self.owner)
        self.snap("fund")
        price = price_now(self.w3, self.mirror)
        v.split(sender=op)
        split_value = FUNDING * price // 10**20
        self.budget = split_value * params(v).maxOperatorLossBps // BPS
        rv = self.snap("split")
        assert (rv.splitValue, rv.lossBudget, rv.operatorLoss) == (split_value, self.budget, 0)
        assert self.budget == 1_500 * USD  # 100 ETH at $3,000, 50 bps
        v.supply(self.weth9, SUPPLY, sender=op)
        self.snap("supply 30 WETH9")
        v.borrow(self.cusdt, BORROW, sender=op)
        self.stable += BORROW
        self.snap("borrow 22,500")
        twap_ready(self.w3, v, self.cusdt)
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
        cost = self._usdtz_out(amount)
        assert cost <= received  # redeemed above cost: no realized loss, nothing counted
        assert not events(self.vault, tx, "OperatorLoss")
        self.snap(f"redeem {amount // USD:,}")
        return tx

    def _usdtz_out(self, amount):
        out_cost = self.usdtz_cost if amount >= self.usdtz_held else ceil_div(self.usdtz_cost * amount, self.usdtz_held)
        self.usdtz_cost -= out_cost
        self.usdtz_held -= amount
        return out_cost

    def desk_fee(self, amount):
        desk = self.market.desk_contract(self.w3)
        return ceil_div(amount * desk.functions.feeBps().call(), BPS) + desk.functions.flatFee().call()

    def assert_books_match_raw(self):
        """Books == raw balances (no donation in these scenarios) == the independent books."""
        rv = risk_view(self.vault)
        assert rv.usdtzHeld == self.usdtz_held == balance_of(self.w3, self.usdtz, self.vault.address)
        assert rv.usdtzCost == self.usdtz_cost
        assert rv.stableHeld == self.stable == balance_of(self.w3, self.cusdt, self.vault.address)
        assert (rv.operatorLoss, rv.lossBudget, rv.ownerRepaid) == (self.loss, self.budget, self.owner_repaid)
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
        max_fee = params(d.vault).maxDeskFeeBps
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
    assert not events(v, tx, "OperatorLoss")  # nothing lost, nothing counted against the budget
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
    assert after.debt == after.poolDebt == raw_debt and after.repaidOnBehalf == 0
    assert after.ltvBps == ltv_bps_ceil(raw_debt, after.collateralWeth, price_now(d.w3, d.mirror))
    p = params(v)
    assert after.ltvBps <= p.maxLtvBps
    assert after.exposureBps <= p.maxExposureBps
    d.assert_books_match_raw()
    # no allowance outlives the leg
    assert ov.erc20(d.w3, d.usdtz).functions.allowance(v.address, d.market.desk).call() == 0
    # HOLDING: no risk-adding leg runs
    with ape.reverts(v.WrongPhase, current=HOLDING, allowedMask=M_ACTIVE):
        v.borrow(d.cusdt, 1, sender=d.operator)
    with ape.reverts(v.WrongPhase, current=HOLDING, allowedMask=M_ACTIVE):
        v.buy(d.cusdt, USD, 0, DEADLINE, sender=d.operator)
    return tx


@pytest.mark.parametrize("cause", CAUSES)
def test_failed_redemption_enters_holding_with_nothing_lost(deal, cause):
    deal.run_to_monetizing()
    _fail_into_holding(deal, cause)
    # a second failing attempt in HOLDING stays in HOLDING, still no revert
    if cause != "desk_short_1wei":
        tx = deal.vault.redeem(deal.cusdt, TRANCHE, sender=deal.operator)
        assert tx.return_value is False and risk_view(deal.vault).phase == HOLDING
        assert not events(deal.vault, tx, "HoldingEntered")
        deal.assert_books_match_raw()
    print_table(f"freeze resistance: {cause}", deal.rows)


def test_desk_paying_exactly_the_fee_bound_passes(deal):
    deal.run_to_monetizing()
    max_fee = params(deal.vault).maxDeskFeeBps
    ov.set_desk_fee(deal.w3, deal.market, max_fee, 0)
    minimum = ceil_div(TRANCHE * (BPS - max_fee), BPS)
    assert TRANCHE - deal.desk_fee(TRANCHE) == minimum
    tx = deal.redeem_ok(TRANCHE)
    assert not events(deal.vault, tx, "RedemptionFailed")
    rv = deal.assert_books_match_raw()
    assert rv.phase == MONETIZING and rv.rungProgress == 2 * TRANCHE
    assert rv.feesPaid == (TRANCHE - ceil_div(TRANCHE * (BPS - 10), BPS) + 0) + (TRANCHE - minimum)


# --- recovery --------------------------------------------------------------------------------


def _repay_all_and_close(d, by=None):
    """repay(max) from the books, then close; returns (pnl_eth, pnl_usd) expected independently."""
    v, w3 = d.vault, d.w3
    debt = debt_of(w3, d.market, v)
    assert d.stable >= debt, "not enough stable on the books to repay"
    assert d.stable >= debt + one_block_interest(debt)
    tx = v.repay(d.cusdt, MAX, sender=d.operator)
    repaid = events(v, tx, "Repaid")[0].amount
    assert debt <= repaid <= debt + one_block_interest(debt)
    d.stable -= repaid
    assert debt_of(w3, d.market, v) == 0
    d.snap("repay max")
    return _close(d, by)


def _operator_close_refused(d):
    """v2: the operator may not write off USDTz past the loss budget; the refusal changes nothing."""
    v = d.vault
    total = d.loss + d.usdtz_cost
    assert total > d.budget
    seq = risk_view(v).legSeq
    with ape.reverts(v.LossBudgetExceeded, lossAfter=total, budget=d.budget):
        v.close(sender=d.operator)
    rv = risk_view(v)
    assert rv.phase != CLOSED and rv.legSeq == seq and rv.operatorLoss == d.loss


def _close(d, by=None):
    """close by ``by`` (default: the operator); checks the Closed event, the PnL, the write-off and
    what the operator's close counts against the budget (the owner's counts nothing)."""
    v, w3 = d.vault, d.w3
    by = by or d.operator
    rv = risk_view(v)
    buckets = rv.coreEth + rv.workingEth + rv.opportunisticEth
    a_bal = a_weth(w3, d.market, v)
    booked = collateral_of(v, d.weth9)
    credited = min(a_bal, booked) if booked else 0
    price = price_now(w3, d.mirror)
    cost_left = d.usdtz_cost
    ledger_eth_before = w3.eth.get_balance(v.address)
    tx = v.close(sender=by)
    pnl_eth = buckets + credited - FUNDING
    status = rv.oracleStatus
    px = 0 if status == INVALID else price
    stable_term = (d.stable - d.owner_repaid) * 100
    # Solidity's signed division truncates toward zero
    pnl_usd = (pnl_eth * px // ETH if pnl_eth >= 0 else -((-pnl_eth) * px // ETH)) + stable_term
    closed = events(v, tx, "Closed")[0]
    after = d.snap(f"close ({'owner' if by == d.owner else 'operator'})")
    assert after.phase == CLOSED and after.debt == after.poolDebt == 0 and after.repaidOnBehalf == 0
    assert closed.realizedPnlEth == after.realizedPnlEth == pnl_eth
    assert closed.realizedPnlUsd == after.realizedPnlUsd == pnl_usd
    assert closed.writtenOffUsdtz == after.writtenOffUsdtz == cost_left
    assert closed.stableSurplus == d.stable
    assert closed.collateralLeft == 0  # the WETH reserve paid everything out
    assert closed.oracleStatus == status
    assert after.ownerRepaid == d.owner_repaid
    # the loss budget: an operator's write-off counts, the owner's does not
    losses = events(v, tx, "OperatorLoss")
    if by == d.operator and cost_left:
        d.loss += cost_left
        assert d.loss <= d.budget
        assert [(e.leg, e.loss, e.total, e.budget) for e in losses] == [(LEG_CLOSE, cost_left, d.loss, d.budget)]
    else:
        assert not losses
    assert after.operatorLoss == d.loss
    # the collateral really came home (all of it, interest included, as ETH)
    assert a_weth(w3, d.market, v) == 0
    assert w3.eth.get_balance(v.address) == ledger_eth_before + a_bal
    # written-off USDTz is never counted as value: the PnL has no USDTz term at all
    return pnl_eth, pnl_usd


def test_recovery_a_resume_and_redeem_after_cause_cleared(deal):
    """(a) desk halted -> HOLDING; the issuer resumes the desk; owner resume(); the ladder climbs
    again from rung 0; all USDTz redeemed; repay; the operator closes (nothing written off, nothing
    counted against the budget) with a positive USD PnL."""
    d = deal.run_to_monetizing()
    _fail_into_holding(d, "desk_halted")
    with ape.reverts(d.vault.NotOwner, caller=d.operator.address):
        d.vault.resume(sender=d.operator)
    _clear("desk_halted", d)
    d.vault.resume(sender=d.owner)
    rv = d.snap("owner resume")
    assert rv.phase == MONETIZING and rv.rung == 0
    d.redeem_ok(d.usdtz_held)  # < rung 0 size (50,000)
    assert risk_view(d.vault).usdtzHeld == 0
    pnl_eth, pnl_usd = _repay_all_and_close(d)
    assert pnl_eth == 0 and pnl_usd > 0 and d.loss == 0
    # the profit: USDTz bought at ~0.80 and redeemed at 0.999, minus borrow interest (~0)
    print_table("recovery (a): resume + redeem", d.rows)


@pytest.mark.parametrize("cause", CAUSES)
def test_recovery_a_every_cause(deal, cause):
    d = deal.run_to_monetizing()
    _fail_into_holding(d, cause)
    _clear(cause, d)
    d.vault.resume(sender=d.owner)
    assert risk_view(d.vault).phase == MONETIZING
    d.redeem_ok(d.usdtz_held)
    pnl_eth, pnl_usd = _repay_all_and_close(d)
    assert pnl_eth == 0 and pnl_usd > 0 and d.loss == 0


def test_recovery_b_sell_above_floor(deal, w3, market):
    """(b) desk halted for good; the router market is below the floor (sell refused); a third party
    lifts the pair above the floor; the vault sells all its USDTz there (still in HOLDING), repays,
    closes.

    v2: the operator's sell also needs the pair's spot within maxSlippageBps below the TWAP since
    the vault's observation (a lifted pair is above it: no bound), and counts a sale below cost
    against the budget (this one is above cost: nothing counted)."""
    d = deal.run_to_monetizing()
    _fail_into_holding(d, "desk_halted")
    v = d.vault
    floor = params(v).sellFloorPrice
    amount = d.usdtz_held
    r_in, r_out = reserves(w3, market, market.pair_usdtz_cusdt, d.usdtz)
    low = uni_out(amount, r_in, r_out)
    assert low * 10**6 < floor * amount
    with ape.reverts(v.PriceBelowFloor, priceE6=low * 10**6 // amount, floorE6=floor):
        v.sell(d.cusdt, amount, 0, DEADLINE, sender=d.operator)
    ov.swap_on_pair(w3, market, d.cusdt, d.usdtz, 600_000 * USD)
    r_in, r_out = reserves(w3, market, market.pair_usdtz_cusdt, d.usdtz)
    expected = uni_out(amount, r_in, r_out)
    assert expected * 10**6 >= floor * amount  # the sell is above the floor
    assert expected > d.usdtz_cost  # and above cost
    tx = v.sell(d.cusdt, amount, expected, DEADLINE, sender=d.operator)
    sold = events(v, tx, "Sold")[0]
    assert sold.amountOut == expected
    assert not events(v, tx, "OperatorLoss")
    d.stable += expected
    d._usdtz_out(amount)
    d.snap("sell above floor")
    d.assert_books_match_raw()
    assert risk_view(v).phase == HOLDING  # selling does not leave HOLDING
    pnl_eth, pnl_usd = _repay_all_and_close(d)
    assert pnl_eth == 0 and pnl_usd == d.stable * 100 and risk_view(d.vault).writtenOffUsdtz == 0
    print_table("recovery (b): sell above floor", d.rows)


def _ref_price(d, by) -> int:
    """deleverage's reference price (v2): the oracle if Fresh; else the operator's is the feed's
    last answer (Stale), the owner's ethFloorPrice."""
    answer, updated = feed_round(d.w3, d.mirror)
    now = d.w3.eth.get_block("latest")["timestamp"]
    p = params(d.vault)
    fresh = now - updated <= p.oracleMaxAge  # the next block is at most a few seconds later
    if fresh:
        return answer
    return p.ethFloorPrice if by == d.owner else answer


def _deleverage_to_cover(d, extra_eth=0):
    """The operator sells just enough collateral (plus extra) on [WETH9, cUSDT] to cover the
    shortfall; checks the reference-price minimum, the Uniswap output and the realized loss counted
    against the budget, independently."""
    v, w3, m = d.vault, d.w3, d.market
    debt = debt_of(w3, m, v)
    shortfall = debt - d.stable
    price = price_now(w3, d.mirror)
    bound_price = _ref_price(d, d.operator)
    # ETH to sell: the shortfall at the price plus 2 % for fees and price impact, plus extra
    amount = ceil_div(max(shortfall, 0) * 100 * ETH * 102 // 100, price) + extra_eth
    slip = params(v).maxSlippageBps
    value = amount * bound_price // 10**20
    bound = value * (BPS - slip) // BPS
    assert bound * BPS <= debt * (BPS + 100)  # within what the debt needs (else DeleverageTooLarge)
    r_in, r_out = reserves(w3, m, m.pair_weth_cusdt, d.weth9)
    expected_out = uni_out(amount, r_in, r_out)
    assert expected_out >= bound
    coll_before = collateral_of(v, d.weth9)
    tx = v.deleverage(d.weth9, d.cusdt, amount, 0, DEADLINE, sender=d.operator)
    ev = events(v, tx, "Deleveraged")[0]
    assert ev.received == expected_out
    # the debt at the leg's block is the read plus one block of interest
    debt_after = debt_of(w3, m, v)
    assert debt - 1 <= debt_after + ev.repaid <= debt + one_block_interest(debt)  # Aave reads 1 wei high
    assert ev.repaid == min(expected_out, debt_after + ev.repaid)
    repaid = ev.repaid
    d.stable += expected_out - repaid
    assert collateral_of(v, d.weth9) == coll_before - amount
    # the operator's realized loss: the collateral at the reference price less what the sale paid
    loss = max(value - expected_out, 0)
    losses = [(e.leg, e.loss, e.total, e.budget) for e in events(v, tx, "OperatorLoss")]
    if loss:
        d.loss += loss
        assert losses == [(LEG_DELEVERAGE, loss, d.loss, d.budget)]
    else:
        assert losses == []
    d.snap(f"deleverage {Decimal(amount) / ETH:.3f}")
    return amount, expected_out, repaid


def test_recovery_c_deleverage(deal, w3, market):
    """(c) desk dry for good, USDTz stays on the books; deleverage sells collateral for the missing
    cUSDT and repays in one leg; close writes the unsold USDTz off at cost.

    v2: the deleverage's loss against the oracle (fee and price impact) counts against the budget;
    the write-off (~$16k) would take the operator past the $1,500 budget, so the operator's close is
    refused (LossBudgetExceeded) and the owner closes (a crisis exit: nothing counted)."""
    d = deal.run_to_monetizing()
    _fail_into_holding(d, "desk_dry")
    v = d.vault
    # first repay what the books hold, then deleverage the rest
    v.repay(d.cusdt, d.stable, sender=d.operator)
    d.stable = 0
    d.snap("repay books")
    price = price_now(w3, d.mirror)
    sold_eth, received, repaid = _deleverage_to_cover(d)
    assert 0 < d.loss < d.budget
    assert debt_of(w3, market, v) == 0
    ltv_after = risk_view(v).ltvBps
    assert ltv_after == 0
    cost_left = d.usdtz_cost
    _operator_close_refused(d)
    pnl_eth, pnl_usd = _close(d, by=d.owner)
    assert pnl_eth == -sold_eth
    assert risk_view(d.vault).writtenOffUsdtz == cost_left > 0
    assert pnl_usd == -(sold_eth * price // ETH) + (received - repaid) * 100
    print_table("recovery (c): deleverage", d.rows)


def test_recovery_d_owner_repay(deal, w3, market, owner, stranger):
    """(d) USDTz frozen for good; the owner repays the whole debt with its own cUSDT; close reports
    a USD PnL net of what the owner put in and writes the frozen USDTz off at cost.

    v2: the write-off is past the operator's budget, so the owner closes (the operator's close is
    refused with LossBudgetExceeded)."""
    d = deal.run_to_monetizing()
    _fail_into_holding(d, "usdtz_frozen")
    v = d.vault
    debt = debt_of(w3, market, v)
    fund(w3, d.cusdt, owner.address, debt + 1_000 * USD)
    cusdt = ov.erc20(w3, d.cusdt)
    owner_before = balance_of(w3, d.cusdt, owner.address)
    with impersonating(w3, owner.address):
        send(w3, cusdt.functions.approve(v.address, MAX), owner.address)
    with ape.reverts(v.NotOwner, caller=d.operator.address):
        v.ownerRepay(d.cusdt, debt, sender=d.operator)
    # ask for more than the debt: capped at the debt, nothing else pulled
    tx = v.ownerRepay(d.cusdt, debt + 1_000 * USD, sender=owner)
    repaid = events(v, tx, "Repaid")[0]
    assert repaid.payer == owner.address
    assert debt <= repaid.amount <= debt + one_block_interest(debt)
    debt = repaid.amount
    assert balance_of(w3, d.cusdt, owner.address) == owner_before - debt  # the rest refunded
    assert debt_of(w3, market, v) == 0
    d.owner_repaid += debt
    rv = d.snap("ownerRepay")
    assert rv.ownerRepaid == debt and rv.stableHeld == d.stable
    assert cusdt.functions.allowance(v.address, market.pool).call() == 0
    cost_left = d.usdtz_cost
    _operator_close_refused(d)
    pnl_eth, pnl_usd = _close(d, by=owner)
    assert pnl_eth == 0
    assert pnl_usd == (d.stable - debt) * 100 < 0
    assert risk_view(v).writtenOffUsdtz == cost_left
    print_table("recovery (d): owner repay", d.rows)


def test_permanent_freeze_closes_with_write_off(deal, w3, market, owner):
    """USDTz frozen for good: redeem fails softly, sell reverts (the USDTz cannot move), the desk
    path never comes back; deleverage covers the debt, close writes the frozen USDTz off at cost
    and reports it apart from the PnL; the owner then takes the ETH back. The frozen USDTz stays
    in the vault, booked as written off, never counted as value.

    v2: the write-off (~$16k at cost) is past the operator's $1,500 budget: the operator's close is
    refused (LossBudgetExceeded(total, budget)), the owner closes. (The operator closes a freeze
    whose write-off fits the budget: the next test.)"""
    d = deal.run_to_monetizing()
    _fail_into_holding(d, "usdtz_frozen")
    v = d.vault
    before = risk_view(v)
    # FiatToken lets a blacklisted holder approve; the router's transferFrom then fails
    with ape.reverts("TransferHelper: TRANSFER_FROM_FAILED"):
        v.sell(d.cusdt, d.usdtz_held, 0, DEADLINE, sender=d.operator)
    with ape.reverts("TransferHelper: TRANSFER_FROM_FAILED"):  # the owner's sell alike
        v.sell(d.cusdt, d.usdtz_held, 0, DEADLINE, sender=owner)
    assert risk_view(v).usdtzHeld == before.usdtzHeld
    v.repay(d.cusdt, d.stable, sender=d.operator)
    d.stable = 0
    d.snap("repay books")
    sold_eth, received, repaid = _deleverage_to_cover(d)
    frozen_face, frozen_cost = d.usdtz_held, d.usdtz_cost
    price = price_now(w3, d.mirror)
    _operator_close_refused(d)
    pnl_eth, pnl_usd = _close(d, by=owner)
    rv = risk_view(v)
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
    with ape.reverts("Blacklistable: account is blacklisted"):
        v.withdraw(d.usdtz, frozen_face, sender=owner)
    print_table("permanent freeze: write-off", d.rows)


def test_permanent_freeze_small_write_off_closed_by_operator_within_budget(deal, w3, market):
    """v2: a permanent freeze that leaves little USDTz behind: the operator may close it itself,
    the write-off (at cost) fits the loss budget and is counted against it (OperatorLoss for Close,
    operatorLoss = the write-off)."""
    d = deal.run_to_monetizing()
    v = d.vault
    # redeem all but 1,500 USDTz (whose cost, ~$1,200 at ~0.80, fits the $1,500 budget)
    d.redeem_ok(d.usdtz_held - 1_500 * USD)
    left_cost = d.usdtz_cost
    assert 0 < left_cost <= d.budget
    ov.freeze_usdtz(w3, market, v.address)
    tx = v.redeem(d.cusdt, d.usdtz_held, sender=d.operator)  # all of it (>= minTranche anyway)
    assert tx.return_value is False and risk_view(v).phase == HOLDING
    d.snap("redeem fails (frozen)")
    pnl_eth, pnl_usd = _repay_all_and_close(d)  # the operator closes
    assert d.loss == left_cost
    rv = risk_view(v)
    assert rv.writtenOffUsdtz == left_cost and rv.operatorLoss == left_cost
    assert pnl_eth == 0 and pnl_usd == d.stable * 100
    assert balance_of(w3, d.usdtz, v.address) == 1_500 * USD  # still there, frozen
    print_table("permanent freeze: small write-off, operator close", d.rows)


# --- 2. ETH falls 40 % after borrowing at 25 % LTV -------------------------------------------------


def test_eth_falls_40pct_then_cure_and_close_with_stale_oracle(deal, w3, mirror, market, owner):
    """ETH falls 40 %: the LTV (41.7 %) is above the cap, risk-adding legs are refused; the
    opportunistic bucket cures it; then the feed goes stale and the debt is cleared by deleverage
    and repay, and the deal closes with the stale flag.

    v2 outcomes: with the feed stale, the operator's deleverage is bounded by the feed's last answer
    ($1,800), not ethFloorPrice; it may not sell more than the debt needs (13 ETH: DeleverageTooLarge);
    the owner's is bounded by ethFloorPrice ($1,000) and its loss against the reference is not
    counted; the USDTz still held is written off at close, past the operator's budget, so the owner
    closes."""
    d = deal.run_to_monetizing(first_tranche=0)  # POSITIONED, USDTz held
    v = d.vault
    p = params(v)
    p0 = price_now(w3, mirror)
    assert ltv_dec(BORROW, SUPPLY, p0) == Decimal("0.25")
    assert BORROW <= debt_of(w3, market, v) <= BORROW + one_block_interest(BORROW) * 5
    p1 = p0 * 60 // 100
    set_eth_price(w3, mirror, p1)
    rv = d.snap("ETH -40%")
    debt = debt_of(w3, market, v)
    ltv = ltv_dec(debt, SUPPLY, p1)
    assert ltv > Decimal(p.maxLtvBps) / BPS  # 41.7 % > 30 %
    assert rv.ltvBps == int((ltv * BPS).to_integral_value(rounding=ROUND_CEILING))
    assert rv.ltvBps == ltv_bps_ceil(debt, SUPPLY, p1)
    # risk-adding legs refused, with the LTV at the leg's block (the debt then, from the pool's index)
    ts = next_block_at(w3)
    want = ltv_bps_ceil(debt_at_ts(w3, market, v, d.cusdt, "cUSDT", ts, borrow=1), SUPPLY, p1)
    with ape.reverts(v.LtvAboveCap, ltvBps=want, capBps=p.maxLtvBps):
        v.borrow(d.cusdt, 1, sender=d.operator)
    ts = next_block_at(w3)
    want = ltv_bps_ceil(debt_at_ts(w3, market, v, d.cusdt, "cUSDT", ts), SUPPLY, p1)
    with ape.reverts(v.LtvAboveCap, ltvBps=want, capBps=p.maxLtvBps):
        v.buy(d.cusdt, 100 * USD, 0, DEADLINE, sender=d.operator)
    # the opportunistic bucket as collateral: no oracle check needed, LTV only falls
    opp = rv.opportunisticEth
    v.addCollateral(d.weth9, opp, sender=d.operator)
    rv = d.snap("addCollateral opp")
    coll = SUPPLY + opp
    debt = debt_of(w3, market, v)
    cured = ltv_dec(debt, coll, p1)
    assert cured <= Decimal(p.maxLtvBps) / BPS
    assert rv.ltvBps == int((cured * BPS).to_integral_value(rounding=ROUND_CEILING))
    assert rv.opportunisticEth == 0 and rv.collateralWeth == coll and rv.coreEth == FUNDING // 2
    # risk-adding works again, and the pool agrees (getUserAccountData)
    pool = market.pool_contract(w3)
    cb, db, *_ = pool.functions.getUserAccountData(v.address).call()
    assert db * BPS <= p.maxLtvBps * cb
    v.borrow(d.cusdt, 1 * USD, sender=d.operator)
    d.stable += 1 * USD
    d.snap("borrow 1 (cured)")

    # the feed goes stale: riskView still answers, flags it
    updated_at = make_feed_stale(w3, mirror)
    rv = d.snap("feed stale")
    assert rv.oracleStatus == STALE and rv.ethPrice == p1
    with ape.reverts(v.StaleOracle, updatedAt=updated_at, maxAge=p.oracleMaxAge):
        v.borrow(d.cusdt, 1, sender=d.operator)
    slip = p.maxSlippageBps
    floor = p.ethFloorPrice
    # deleverage with a stale oracle: the operator's reference is the last answer ($1,800)
    assert _ref_price(d, d.operator) == p1 and _ref_price(d, owner) == floor
    # 13 ETH would be bounded at 13 x $1,782 = $23,166 > the debt x 1.01: more than the debt needs
    too_much = 13 * ETH
    ts = next_block_at(w3)
    debt_then = debt_at_ts(w3, market, v, d.cusdt, "cUSDT", ts)
    bound13 = (too_much * p1 // 10**20) * (BPS - slip) // BPS
    assert bound13 * BPS > debt_then * (BPS + 100)
    with ape.reverts(v.DeleverageTooLarge, proceedsBound=bound13, debt=debt_then):
        v.deleverage(d.weth9, d.cusdt, too_much, 0, DEADLINE, sender=d.operator)

    # the pair is dumped to ~$900 spot, below both references: both refused by the router
    r_eth, r_usd = reserves(w3, market, market.pair_weth_cusdt, d.weth9)
    target_eth = math.isqrt(r_eth * r_usd * 10**12 // 900)  # reserve of WETH at a $900 spot: sqrt(k / p)
    ov.swap_on_pair(w3, market, d.weth9, d.cusdt, target_eth * 10_035 // 10_000 - r_eth)
    spot = ov.pair_price(w3, market, market.pair_weth_cusdt, d.weth9)
    assert spot < Decimal(floor) / 10**8
    amount = 12 * ETH
    op_bound = (amount * p1 // 10**20) * (BPS - slip) // BPS
    owner_bound = (amount * floor // 10**20) * (BPS - slip) // BPS
    r_in, r_out = reserves(w3, market, market.pair_weth_cusdt, d.weth9)
    assert uni_out(amount, r_in, r_out) < owner_bound < op_bound
    for who in (d.operator, owner):
        with ape.reverts("UniswapV2Router: INSUFFICIENT_OUTPUT_AMOUNT"):
            v.deleverage(d.weth9, d.cusdt, amount, 0, DEADLINE, sender=who)

    # the pair recovers to ~$1,500: between the floor and the last answer. The operator is still
    # refused (bound $1,782/ETH); the owner's crisis exit passes (bound $990/ETH), uncounted.
    ov.swap_on_pair(w3, market, d.cusdt, d.weth9, 3_600_000 * USD)
    spot = ov.pair_price(w3, market, market.pair_weth_cusdt, d.weth9)
    assert Decimal(floor) / 10**8 < spot < Decimal(p1) / 10**8
    r_in, r_out = reserves(w3, market, market.pair_weth_cusdt, d.weth9)
    assert uni_out(amount, r_in, r_out) < op_bound
    with ape.reverts("UniswapV2Router: INSUFFICIENT_OUTPUT_AMOUNT"):
        v.deleverage(d.weth9, d.cusdt, amount, 0, DEADLINE, sender=d.operator)
    owner_amount = 2 * ETH
    owner_out = uni_out(owner_amount, r_in, r_out)
    assert owner_out >= (owner_amount * floor // 10**20) * (BPS - slip) // BPS
    assert owner_out < owner_amount * p1 // 10**20  # a loss at the last answer, but the owner's
    debt = debt_of(w3, market, v)
    tx = v.deleverage(d.weth9, d.cusdt, owner_amount, 0, DEADLINE, sender=owner)
    ev = events(v, tx, "Deleveraged")[0]
    assert ev.received == owner_out and ev.repaid == owner_out  # all of it repays the debt
    assert debt - 1 <= debt_of(w3, market, v) + ev.repaid <= debt + one_block_interest(debt)
    assert not events(v, tx, "OperatorLoss") and risk_view(v).operatorLoss == d.loss == 0
    d.snap("owner deleverage (stale)")

    # arbitrage lifts the pair to ~$1,850: the operator's deleverage passes, paid at least its bound
    r_eth, r_usd = reserves(w3, market, market.pair_weth_cusdt, d.weth9)
    target_usd = math.isqrt(r_eth * r_usd * 1_850 // 10**12)  # reserve of cUSDT at a $1,850 spot
    ov.swap_on_pair(w3, market, d.cusdt, d.weth9, target_usd * 10_035 // 10_000 - r_usd)
    spot = ov.pair_price(w3, market, market.pair_weth_cusdt, d.weth9)
    assert spot > Decimal(p1) / 10**8
    amount = 10 * ETH
    value = amount * p1 // 10**20
    op_bound = value * (BPS - slip) // BPS
    r_in, r_out = reserves(w3, market, market.pair_weth_cusdt, d.weth9)
    out = uni_out(amount, r_in, r_out)
    debt = debt_of(w3, market, v)
    assert op_bound * BPS <= debt * (BPS + 100)
    tx = v.deleverage(d.weth9, d.cusdt, amount, 0, DEADLINE, sender=d.operator)
    ev = events(v, tx, "Deleveraged")[0]
    assert ev.received == out >= op_bound
    assert debt - 1 <= debt_of(w3, market, v) + ev.repaid <= debt + one_block_interest(debt)
    losses = [(e.leg, e.loss, e.total, e.budget) for e in events(v, tx, "OperatorLoss")]
    if out < value:
        d.loss += value - out
        assert losses == [(LEG_DELEVERAGE, value - out, d.loss, d.budget)]
    else:
        assert losses == []
    d.stable += out - ev.repaid
    d.snap("deleverage (stale)")
    assert risk_view(v).oracleStatus == STALE
    # repay and close with the oracle stale
    remaining = debt_of(w3, market, v)
    if remaining:
        assert d.stable >= remaining
        tx = v.repay(d.cusdt, MAX, sender=d.operator)
        d.stable -= events(v, tx, "Repaid")[0].amount
        assert debt_of(w3, market, v) == 0
        d.snap("repay (stale)")
    # USDTz still held (POSITIONED): written off at cost at close, past the operator's budget, so
    # the owner closes; the USD PnL is at the stale answer, flagged stale
    _operator_close_refused(d)
    pnl_eth, pnl_usd = _close(d, by=owner)
    assert pnl_eth == -(owner_amount + amount)
    assert risk_view(v).oracleStatus == STALE
    print_table("ETH -40%, cure, stale close", d.rows)


def test_invalid_oracle_never_locks_the_deal(deal, w3, mirror, market, owner):
    """A zero answer (Invalid): riskView still answers (collateral value 0, LTV max), risk-adding
    legs are refused, repay and ownerRepay and close work, and the USD PnL is reported at price 0
    with the Invalid flag.

    v2: the operator's deleverage reverts InvalidPrice(0) (no reference price at all); the owner's
    would use ethFloorPrice, but Aave prices WETH with the same feed, so the *pool* refuses any
    collateral withdrawal while debt remains (its fallback oracle is unset): it reverts inside
    Aave, nothing changes. The way out with a dead feed is repay from the books + ``ownerRepay``,
    after which close withdraws without any price. The USDTz left is written off: past the
    operator's budget, so the owner closes."""
    d = deal.run_to_monetizing()
    v = d.vault
    set_eth_price(w3, mirror, 0)
    rv = d.snap("feed answers 0")
    assert rv.oracleStatus == INVALID and rv.collateralValue == 0 and rv.ltvBps == MAX
    assert rv.ethPrice == 0 and rv.debt == rv.poolDebt == debt_of(w3, market, v)
    # the pool cannot price WETH: its oracle's getAssetPrice(WETH9) reverts without data
    assert_reverts_in_aave_oracle(w3, market, d.operator, v, v.borrow.encode_input(d.cusdt, 1), d.weth9)
    with ape.reverts():
        v.borrow(d.cusdt, 1, sender=d.operator)
    with ape.reverts(v.InvalidPrice, answer=0):
        v.deleverage(d.weth9, d.cusdt, 2 * ETH, 0, DEADLINE, sender=d.operator)
    owner_delev = v.deleverage.encode_input(d.weth9, d.cusdt, 2 * ETH, 0, DEADLINE)
    assert_reverts_in_aave_oracle(w3, market, owner, v, owner_delev, d.weth9)
    with ape.reverts():
        v.deleverage(d.weth9, d.cusdt, 2 * ETH, 0, DEADLINE, sender=owner)
    assert risk_view(v).collateralWeth == SUPPLY and risk_view(v).legSeq == rv.legSeq
    tx = v.repay(d.cusdt, MAX, sender=d.operator)
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
    d.owner_repaid += put_in
    d.snap("ownerRepay (invalid)")
    _operator_close_refused(d)
    pnl_eth, pnl_usd = _close(d, by=owner)
    assert pnl_eth == 0
    assert pnl_usd == (d.stable - put_in) * 100  # price 0: stable surplus less the owner's money
    assert risk_view(v).oracleStatus == INVALID
    print_table("invalid oracle", d.rows)

