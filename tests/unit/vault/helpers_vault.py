"""Shared helpers for the DealVault unit tests (test_vault_loop/caps/roles and the teammates' files).

Everything here is independent of the vault's own math: it reads the raw truth (the ETH/USD feed,
the Aave pool and its a/debt tokens, the Uniswap pair reserves, the desk's fee, token balances)
and recomputes LTV, NAV, exposure, cap edges, swap outputs, desk payouts and Aave interest with
Python ``int``/``Decimal``. The vault's ``riskView`` is only ever the thing being checked.

Pieces (small, stable; import what you need):

- ``V``: the venue addresses (``venues(mirror, market)``); ``PH`` / ``LEG``: enum values.
- raw reads: ``bal``, ``allowance``, ``feed``, ``debt``, ``abal``, ``account_data``, ``reserves``.
- Aave math: ``ray_mul``, ``ray_div``, ``compounded``, ``debt_at`` (a debt token balance at a
  given timestamp, from the reserve's index and rate).
- the model: ``Books`` (the test's own ledger of what the vault should have booked), ``coll_wei``,
  ``ltv``, ``nav_e26``, ``nav_usd``, ``exposure``, ``max_debt``, ``uni_out``, ``max_buy_exposure``,
  ``desk_paid``.
- ``Deal``: drives one vault leg by leg, keeping ``Books`` in step from independent expectations
  (``deal.run("buy")`` runs the default loop up to and including that step).
- checks: ``legs_of`` (LegCompleted logs), ``snapshot`` (its struct by field name), ``risk_view``
  / ``params`` (the lens's riskView / params of a vault, by field name), ``assert_books`` (riskView books == Books),
  ``reads_marks`` / ``assert_unread`` (which legs' snapshots carry marks), ``oracle_status`` (the feed's
  Fresh/Stale/Invalid from a raw read), ``split_value`` / ``loss_budget`` (the loss budget's base and size),
- TWAP: ``twap_ready`` (advance the clock until a buy may use the vault's TWAP observation),
  ``pair_prices_x112`` / ``twap_x112`` / ``to_e6`` (the pair's spot and the TWAP re-derived from its
  reserves and accumulators), ``assert_no_allowances``; ``table`` / ``print_table``: a snapshot table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, getcontext
from types import SimpleNamespace
from typing import Any

from eth_utils import to_checksum_address

from dealvault.kit.overlay import DEADLINE, erc20
from tests.model import LENS, reserves, uni_out

getcontext().prec = 80

RAY = 10**27
HALF_RAY = RAY // 2
SECONDS_PER_YEAR = 365 * 86_400
BPS = 10_000
MAX_UINT = 2**256 - 1
E6 = 10**6
ETH = 10**18

PH = dict(FUNDED=0, SPLIT=1, WORKING=2, POSITIONED=3, MONETIZING=4, HOLDING=5, CLOSED=6)
PH_NAME = {v: k for k, v in PH.items()}
LEG = dict(Split=0, Supply=1, Borrow=2, Buy=3, Redeem=4, Sell=5, Repay=6, OwnerRepay=7, AddCollateral=8,
           WithdrawCollateral=9, Deleverage=10, Close=11, Hold=12, Resume=13, Fund=14)


def mask(*phases: str) -> int:
    """WrongPhase's allowedMask for the named phases (bit i = phase i)."""
    return sum(1 << PH[p] for p in phases)


# --- venues -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class V:
    """Addresses of every venue and token the vault touches (checksummed)."""

    weth9: str
    weth10: str
    cusdt: str
    cusdc: str
    usdtz: str
    pool: str
    router: str
    desk: str
    feed: str
    a_weth9: str
    a_weth10: str
    debt_cusdt: str
    debt_cusdc: str
    pair_cusdt: str  # USDTz/cUSDT
    pair_cusdc: str

    def debt_token(self, stable: str) -> str:
        return self.debt_cusdt if stable == self.cusdt else self.debt_cusdc

    def a_token(self, wrapper: str) -> str:
        return self.a_weth9 if wrapper == self.weth9 else self.a_weth10


def venues(mirror: Any, market: Any) -> V:
    c = to_checksum_address
    return V(
        weth9=c(mirror.weth9), weth10=c(mirror.weth10), cusdt=c(mirror.cusdt), cusdc=c(mirror.cusdc),
        usdtz=c(market.usdtz), pool=c(market.pool), router=c(market.uniswap_router), desk=c(market.desk),
        feed=c(mirror.eth_usd_feed), a_weth9=c(market.a_tokens["WETH"]), a_weth10=c(market.a_tokens["WETH10"]),
        debt_cusdt=c(market.variable_debt_tokens["cUSDT"]), debt_cusdc=c(market.variable_debt_tokens["cUSDC"]),
        pair_cusdt=c(market.pair_usdtz_cusdt), pair_cusdc=c(market.pair_usdtz_cusdc),
    )


# --- raw reads --------------------------------------------------------------------------------


def bal(w3, token: str | None, who: Any) -> int:
    """ERC-20 balance (token None = ETH) of ``who`` (address or ape account/contract)."""
    who = to_checksum_address(str(getattr(who, "address", who)))
    if token is None:
        return w3.eth.get_balance(who)
    return erc20(w3, token).functions.balanceOf(who).call()


def allowance(w3, token: str, owner: Any, spender: str) -> int:
    owner = to_checksum_address(str(getattr(owner, "address", owner)))
    return erc20(w3, token).functions.allowance(owner, to_checksum_address(spender)).call()


def feed(w3, mirror: Any) -> tuple[int, int]:
    """(answer, updatedAt) of the ETH/USD feed, read raw (latestRoundData)."""
    from dealvault.kit.mirror import feed as feed_contract

    _, answer, _, updated, _ = feed_contract(w3, mirror.eth_usd_feed).functions.latestRoundData().call()
    return answer, updated


def debt(w3, v: V, who: Any) -> int:
    """Sum of the variable debt token balances (cUSDT + cUSDC) of ``who``."""
    return bal(w3, v.debt_cusdt, who) + bal(w3, v.debt_cusdc, who)


def abal(w3, v: V, who: Any) -> dict[str, int]:
    """aToken balances by wrapper address."""
    return {v.weth9: bal(w3, v.a_weth9, who), v.weth10: bal(w3, v.a_weth10, who)}


def account_data(w3, market: Any, who: Any) -> tuple[int, ...]:
    """pool.getUserAccountData: (collBase, debtBase, availableBase, liqThreshold, ltv, healthFactor)."""
    who = to_checksum_address(str(getattr(who, "address", who)))
    return tuple(market.pool_contract(w3).functions.getUserAccountData(who).call())


def block_ts(w3, block: Any = "latest") -> int:
    return w3.eth.get_block(block)["timestamp"]


FRESH, STALE, INVALID = 0, 1, 2  # IDealVault.OracleStatus (UNREAD = 3 below)
MAX_PRICE = 10**16  # OracleLib: answers above are Invalid


def oracle_status(answer: int, updated_at: int, now: int, max_age: int = 3600) -> int:
    """IDealVault.OracleStatus of a feed read at ``now``, from the raw round: Invalid for an answer
    <= 0 or > 1e16 or an updatedAt in the future (v2), Stale when older than ``max_age``."""
    if answer <= 0 or answer > MAX_PRICE or updated_at > now:
        return INVALID
    return STALE if now - updated_at > max_age else FRESH


def split_value(funded: int, price: int) -> int:
    """The loss budget's base (6 dp USD): the funded capital at the oracle price, rounded down."""
    return funded * price // 10**20


def loss_budget(split_value_6: int, max_operator_loss_bps: int = 50) -> int:
    """The deal's operator loss budget (6 dp USD): splitValue x maxOperatorLossBps / 10_000."""
    return split_value_6 * max_operator_loss_bps // BPS


# --- Aave V3 (1.19.3) math, re-derived ----------------------------------------------------------


def ray_mul(a: int, b: int) -> int:
    return (a * b + HALF_RAY) // RAY


def ray_div(a: int, b: int) -> int:
    return (a * RAY + b // 2) // b


def compounded(rate: int, last: int, now: int) -> int:
    """MathUtils.calculateCompoundedInterest (the 3-term binomial expansion), in ray."""
    exp = now - last
    if exp == 0:
        return RAY
    em1, em2 = exp - 1, (exp - 2 if exp > 2 else 0)
    p2 = ray_mul(rate, rate) // (SECONDS_PER_YEAR * SECONDS_PER_YEAR)
    p3 = ray_mul(p2, rate) // SECONDS_PER_YEAR
    return RAY + rate * exp // SECONDS_PER_YEAR + exp * em1 * p2 // 2 + exp * em1 * em2 * p3 // 6


def debt_at(w3, market: Any, stable: str, debt_token: str, who: Any, ts: int, block: Any = "latest") -> int:
    """The variable debt of ``who`` at timestamp ``ts``: scaledBalance x the borrow index
    compounded from the reserve's last update (state read at ``block``, before any later update)."""
    who = to_checksum_address(str(getattr(who, "address", who)))
    rd = market.pool_contract(w3).functions.getReserveData(to_checksum_address(stable)).call(block_identifier=block)
    # ReserveData: (config, liquidityIndex, currentLiquidityRate, variableBorrowIndex,
    #               currentVariableBorrowRate, currentStableBorrowRate, lastUpdateTimestamp, ...)
    index, rate, last = rd[3], rd[4], rd[6]
    abi = [{"type": "function", "name": "scaledBalanceOf", "stateMutability": "view",
            "inputs": [{"type": "address", "name": "u"}], "outputs": [{"type": "uint256", "name": ""}]}]
    scaled = w3.eth.contract(address=to_checksum_address(debt_token), abi=abi).functions.scaledBalanceOf(who).call(
        block_identifier=block)
    return ray_mul(scaled, ray_mul(compounded(rate, last, ts), index) if ts > last else index)


# --- the model --------------------------------------------------------------------------------


@dataclass
class Books:
    """What the vault should have booked, kept by the test from independent expectations."""

    funded: int = 0
    core: int = 0
    working: int = 0
    opportunistic: int = 0
    collateral: dict = field(default_factory=dict)  # wrapper -> wei
    stable: dict = field(default_factory=dict)  # stable -> 6 dp
    usdtz_held: int = 0
    usdtz_cost: int = 0
    rung: int = 0
    rung_progress: int = 0
    redeemed_total: int = 0
    fees_paid: int = 0
    owner_repaid: int = 0
    leg_seq: int = 0
    phase: int = PH["FUNDED"]
    # v2: the loss budget's books (6 dp USD), repayments by others, the owner's ETH exit in HOLDING
    split_value: int = 0  # funded x the oracle price at split / 1e20
    operator_loss: int = 0  # what the operator legs realized against the reference prices
    repaid_on_behalf: int = 0
    eth_returned: int = 0

    @property
    def eth(self) -> int:
        return self.core + self.working + self.opportunistic

    @property
    def stable_held(self) -> int:
        return sum(self.stable.values())


def coll_wei(books: Books, a_balances: dict[str, int]) -> int:
    """Sum over wrappers of min(booked, aToken balance)."""
    return sum(min(amt, a_balances.get(w, 0)) for w, amt in books.collateral.items() if amt)


def ltv(debt_6: int, coll: int, price: int) -> Decimal:
    """debt (USD at par) / collateral value (USD at the feed price), as a Decimal fraction."""
    if debt_6 == 0:
        return Decimal(0)
    return (Decimal(debt_6) / E6) / (Decimal(coll) / ETH * Decimal(price) / 10**8)


def nav_e26(books: Books, coll: int, price: int, debt_6: int) -> int:
    """NAV in USD x 1e26, exactly: ETH buckets + collateral at price + stable + USDTz cost - debt."""
    return (books.eth + coll) * price + (books.stable_held + books.usdtz_cost - debt_6) * 10**20


def nav_usd(books: Books, coll: int, price: int, debt_6: int) -> Decimal:
    return Decimal(nav_e26(books, coll, price, debt_6)) / Decimal(10**26)


def exposure(usdtz_6: int, nav26: int) -> Decimal:
    """USDTz at face / NAV, as a Decimal fraction (inf when NAV <= 0 with USDTz held)."""
    if usdtz_6 == 0:
        return Decimal(0)
    return Decimal("Infinity") if nav26 <= 0 else Decimal(usdtz_6 * 10**20) / Decimal(nav26)


def max_debt(coll: int, price: int, cap_bps: int, pool_coll_base: int) -> int:
    """The largest total debt (6 dp) both LTV checks allow: the vault's (debt*1e24 <= cap*coll*price)
    and the pool's (debt*100*1e4 <= cap*collBase; stables priced at $1 = 1e8 base)."""
    vault_edge = cap_bps * coll * price // 10**24
    pool_edge = cap_bps * pool_coll_base // (BPS * 100)
    return min(vault_edge, pool_edge)


def max_buy_exposure(held: int, nav26: int, cap_bps: int, r_in: int, r_out: int, limit: int) -> int:
    """The largest amountIn whose swap output keeps (held + out) * 1e24 <= cap * nav26 (NAV does
    not move on a buy: stable at par becomes USDTz at cost). Binary search on the pair formula."""
    top = cap_bps * nav26 // 10**24 - held  # USDTz that may still come in
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if uni_out(mid, r_in, r_out) <= top:
            lo = mid
        else:
            hi = mid - 1
    return lo


def desk_paid(w3, market: Any, amount: int) -> int:
    """What the desk pays for ``amount`` USDTz: amount - (ceil(amount*feeBps/1e4) + flatFee)."""
    d = market.desk_contract(w3).functions
    fee_bps, flat = d.feeBps().call(), d.flatFee().call()
    return amount - (-(-amount * fee_bps // BPS) + flat)


def cost_out(cost: int, amount: int, held: int) -> int:
    """Average-cost basis leaving with ``amount`` of ``held``, rounded up (all of it at the end)."""
    return cost if amount >= held else -(-cost * amount // held)


# --- logs and checks ----------------------------------------------------------------------------


SNAPSHOT_FIELDS = ("phase", "coreEth", "workingEth", "opportunisticEth", "collateralWeth", "debt", "ltvBps", "nav",
                   "exposureBps", "rung", "rungProgress", "redeemedTotal", "stableHeld", "usdtzHeld", "ethPrice",
                   "oracleStatus")


# IDealVault.OracleStatus.Unread: the LegCompleted snapshot of a leg that read no market data
UNREAD = 3
MARK_FIELDS = ("collateralWeth", "debt", "ltvBps", "nav", "exposureBps", "ethPrice")


def reads_marks(leg: str, debt_now: int) -> bool:
    """Whether ``leg``'s LegCompleted snapshot carries marks (it read the oracle): the risk-adding
    legs for their caps (withdrawCollateral only while debt remains: ``debt_now`` is the debt
    around it, which a withdrawal does not move), deleverage, close, and (v2) split, which reads the
    oracle for the loss budget's base. Every other leg's snapshot has the books only, oracleStatus
    Unread (IDealVault.Snapshot)."""
    return (leg in ("Split", "Supply", "Borrow", "Buy", "Deleverage", "Close")
            or (leg == "WithdrawCollateral" and debt_now > 0))


def assert_unread(snap: Any) -> None:
    """A light leg's snapshot: OracleStatus.Unread and every mark zero."""
    assert snap.oracleStatus == UNREAD, snap
    assert all(getattr(snap, f) == 0 for f in MARK_FIELDS), snap


def snapshot(s: Any) -> SimpleNamespace:
    """LegCompleted.snapshot (ape decodes it as a list) with the Snapshot struct's field names."""
    if hasattr(s, "phase"):
        return s
    return SimpleNamespace(**dict(zip(SNAPSHOT_FIELDS, s, strict=True)))


def legs_of(vault: Any, receipt: Any) -> list[Any]:
    """The LegCompleted logs of a receipt (attributes legSeq, leg, snapshot)."""
    return list(receipt.decode_logs(vault.LegCompleted))


def assert_leg(vault: Any, receipt: Any, books: Books, leg: str) -> Any:
    """Exactly one LegCompleted, legSeq = previous + 1 (books.leg_seq is advanced), right leg id."""
    logs = legs_of(vault, receipt)
    assert len(logs) == 1, logs
    books.leg_seq += 1
    assert logs[0].legSeq == books.leg_seq, (logs[0].legSeq, books.leg_seq)
    assert logs[0].leg == LEG[leg], (logs[0].leg, leg)
    return snapshot(logs[0].snapshot)


def lens_call(fn: str, *args: Any) -> Any:
    """A DealVaultLens view through a plain eth_call (ape's --gas mode cannot decode structs)."""
    from ape import chain

    from dealvault.artifacts import own

    w3 = chain.provider.web3
    c = w3.eth.contract(address=LENS["address"], abi=own("DealVaultLens").abi)
    return getattr(c.functions, fn)(*args).call()


def _named(fn: str, value: Any) -> SimpleNamespace:
    from dealvault.artifacts import own

    abi = next(a for a in own("DealVaultLens").abi if a.get("name") == fn)
    names = [c["name"] for c in abi["outputs"][0]["components"]]
    return SimpleNamespace(**dict(zip(names, value, strict=True)))


def risk_view(vault: Any) -> SimpleNamespace:
    """The lens's riskView of ``vault``, with the RiskView field names."""
    return _named("riskView", lens_call("riskView", str(getattr(vault, "address", vault))))


def params(vault: Any) -> SimpleNamespace:
    """The lens's params of ``vault`` (IDealVaultLens.Params field names)."""
    return _named("params", lens_call("params", str(getattr(vault, "address", vault))))


def rung_size(vault: Any, k: int) -> int:
    return params(vault).rungs[min(k, 2)]


def collateral_of(vault: Any, wrapper: str) -> int:
    return lens_call("collateralOf", str(getattr(vault, "address", vault)), wrapper)


def stable_of(vault: Any, stable: str) -> int:
    return lens_call("stableOf", str(getattr(vault, "address", vault)), stable)


def twap_ready(w3, vault: Any, stable: str) -> None:
    """Mines a block at the first second a buy may use the vault's observation of the ``stable``
    pair (observedAt + twapWindow), if that is still ahead; split and observe take the observation.

    The time is computed here from the observation's timestamp and the twapWindow parameter, and
    the lens's ``Twap.readyAt`` must agree (before 07dc182 it read the window from storage slot 2
    instead of slot 0 and equalled observedAt). The block is mined (rather than evm_increaseTime)
    so that a timestamp pinned afterwards with evm_setNextBlockTimestamp cannot undo it."""
    from dealvault.kit.evm import rpc

    t = lens_call("twap", str(getattr(vault, "address", vault)), stable)
    observed, lens_ready = t[2], t[3]  # Twap.observedAt, Twap.readyAt
    ready = observed + params(vault).twapWindow
    assert observed == 0 or lens_ready == ready, (observed, lens_ready, ready)
    if ready > block_ts(w3):
        rpc(w3, "evm_setNextBlockTimestamp", [ready])
        rpc(w3, "evm_mine", [])


Q112 = 2**112
MASK192 = 2**192 - 1


def pair_prices_x112(w3, market: Any, pair: str) -> tuple[int, int, int]:
    """(spot, cumulativeLast, blockTimestampLast) of USDTz in the stablecoin on a USDTz pair, read
    raw: spot = (stableReserve << 112) // usdtzReserve, the pair's own UQ112x112 encoding."""
    pc = market.pair_contract(w3, pair)
    r0, r1, last = pc.functions.getReserves().call()
    usdtz_is0 = pc.functions.token0().call().lower() == str(market.usdtz).lower()
    rz, rs = (r0, r1) if usdtz_is0 else (r1, r0)
    cum = (pc.functions.price0CumulativeLast() if usdtz_is0 else pc.functions.price1CumulativeLast()).call()
    return (rs << 112) // rz, cum, last


def cumulative_at(w3, market: Any, pair: str, ts: int) -> int:
    """The pair's USDTz cumulative price at ``ts`` (counterfactual since its last update, as
    UniswapV2OracleLibrary computes it), from a raw read now (no trade between now and ``ts``)."""
    spot, cum, last = pair_prices_x112(w3, market, pair)
    return cum + spot * ((ts - last) % 2**32)


def twap_x112(cum_then: int, t_then: int, cum_now: int, t_now: int) -> int:
    """The time-weighted price between two cumulative readings (UQ112x112, rounded down)."""
    return ((cum_now - cum_then) & MASK192) // (t_now - t_then)


def to_e6(price_x112: int) -> int:
    """UQ112x112 -> priceE6 (1e6 = $1), rounded down (TwapLib.toE6)."""
    return price_x112 * E6 >> 112


def assert_books(vault: Any, books: Books, v: V) -> Any:
    """riskView's books equal the test's ledger; returns the riskView."""
    rv = risk_view(vault)
    got = dict(phase=rv.phase, core=rv.coreEth, working=rv.workingEth, opp=rv.opportunisticEth,
               stable=rv.stableHeld, usdtz=rv.usdtzHeld, cost=rv.usdtzCost, rung=rv.rung,
               progress=rv.rungProgress, redeemed=rv.redeemedTotal, fees=rv.feesPaid, seq=rv.legSeq,
               funded=rv.fundedCapital, owner_repaid=rv.ownerRepaid, split_value=rv.splitValue,
               operator_loss=rv.operatorLoss, repaid_on_behalf=rv.repaidOnBehalf, eth_returned=rv.ethReturned)
    want = dict(phase=books.phase, core=books.core, working=books.working, opp=books.opportunistic,
                stable=books.stable_held, usdtz=books.usdtz_held, cost=books.usdtz_cost, rung=books.rung,
                progress=books.rung_progress, redeemed=books.redeemed_total, fees=books.fees_paid,
                seq=books.leg_seq, funded=books.funded, owner_repaid=books.owner_repaid,
                split_value=books.split_value, operator_loss=books.operator_loss,
                repaid_on_behalf=books.repaid_on_behalf, eth_returned=books.eth_returned)
    assert got == want, {k: (got[k], want[k]) for k in got if got[k] != want[k]}
    assert rv.collateralBooked == sum(books.collateral.values()), (rv.collateralBooked, books.collateral)
    for w, amt in books.collateral.items():
        assert collateral_of(vault, w) == amt, (w, collateral_of(vault, w), amt)
    for s, amt in books.stable.items():
        assert stable_of(vault, s) == amt, (s, stable_of(vault, s), amt)
    return rv


def assert_no_allowances(w3, v: V, vault: Any) -> None:
    """No allowance from the vault to the pool, router or desk on any token it handles."""
    left = {(t, s): a for t in (v.usdtz, v.cusdt, v.cusdc, v.weth9, v.weth10)
            for s in (v.pool, v.router, v.desk) if (a := allowance(w3, t, vault, s))}
    assert not left, left


# --- the loop builder -----------------------------------------------------------------------------

#: The default loop, in order; ``Deal.run(step)`` runs up to and including ``step``.
STEPS = ("fund", "split", "supply", "borrow", "buy", "redeem", "repay", "withdraw_collateral", "close")


class Deal:
    """One vault driven leg by leg; each method sends the leg, checks its LegCompleted (seq, id)
    and moves ``books`` by the independently expected amounts. Returns the receipt.

    Defaults (``run``): fund 100 ETH, split, supply all working ETH as WETH9, borrow 20,000 cUSDT,
    buy with 15,000 cUSDT, redeem one rung-0-sized tranche (or what is held), repay all, withdraw
    all collateral, close.

    v2: fund books the capital as core until split; split needs a Fresh feed and books splitValue
    (its snapshot has marks); a buy first waits for the TWAP observation (``twap_ready``); the
    operator's realized losses (redeem / sell below cost, close's write-off) go to
    ``books.operator_loss``. ``sell``, ``add_collateral`` and ``observe`` are extra steps.
    """

    def __init__(self, w3, vault, mirror, market, owner, operator, funded: int = 100 * ETH):
        self.w3, self.vault, self.mirror, self.market = w3, vault, mirror, market
        self.owner, self.operator = owner, operator
        self.v = venues(mirror, market)
        self.books = Books()
        self.funded_default = funded
        self.receipts: list[tuple[str, Any]] = []

    # legs
    def _done(self, name: str, leg: str, receipt: Any) -> Any:
        assert_leg(self.vault, receipt, self.books, leg)
        self.receipts.append((name, receipt))
        return receipt

    def fund(self, amount: int | None = None) -> Any:
        amount = self.funded_default if amount is None else amount
        r = self.vault.fund(value=amount, sender=self.owner)
        self.books.funded += amount
        self.books.core += amount  # booked as core until split
        return self._done("fund", "Fund", r)

    def split(self) -> Any:
        """v2: needs a Fresh oracle; books splitValue = funded x price / 1e20 (the loss budget's
        base, from the raw feed) and takes the TWAP observations; its snapshot carries marks."""
        price, _ = feed(self.w3, self.mirror)
        r = self.vault.split(sender=self.operator)
        risk = self.risk()
        f = self.books.funded
        b = self.books
        b.core, b.working = f * risk["coreBps"] // BPS, f * risk["workingBps"] // BPS
        b.opportunistic = f - b.core - b.working
        b.split_value = split_value(f, price)
        b.phase = PH["SPLIT"]
        ev = [(e.coreEth, e.workingEth, e.opportunisticEth, e.splitValue) for e in r.decode_logs(self.vault.Split)]
        assert ev == [(b.core, b.working, b.opportunistic, b.split_value)], ev
        return self._done("split", "Split", r)

    def supply(self, amount: int | None = None, wrapper: str | None = None) -> Any:
        wrapper = wrapper or self.v.weth9
        amount = self.books.working if amount is None else amount
        r = self.vault.supply(wrapper, amount, sender=self.operator)
        self.books.working -= amount
        self.books.collateral[wrapper] = self.books.collateral.get(wrapper, 0) + amount
        if self.books.phase == PH["SPLIT"]:
            self.books.phase = PH["WORKING"]
        return self._done("supply", "Supply", r)

    def borrow(self, amount: int = 20_000 * E6, stable: str | None = None) -> Any:
        stable = stable or self.v.cusdt
        r = self.vault.borrow(stable, amount, sender=self.operator)
        self.books.stable[stable] = self.books.stable.get(stable, 0) + amount
        return self._done("borrow", "Borrow", r)

    def buy(self, amount_in: int = 15_000 * E6, stable: str | None = None, min_out: int = 0,
            wait: bool = True) -> Any:
        """``wait``: first move the clock to when the TWAP observation is ready (``twap_ready``);
        False when the test pinned the block's time itself."""
        stable = stable or self.v.cusdt
        pair = self.v.pair_cusdt if stable == self.v.cusdt else self.v.pair_cusdc
        if wait:
            twap_ready(self.w3, self.vault, stable)
        out = uni_out(amount_in, *reserves(self.w3, self.market, pair, stable))
        r = self.vault.buy(stable, amount_in, min_out, DEADLINE, sender=self.operator)
        b = self.books
        b.stable[stable] -= amount_in
        b.usdtz_held += out
        b.usdtz_cost += amount_in
        if b.phase == PH["WORKING"]:
            b.phase = PH["POSITIONED"]
        return self._done("buy", "Buy", r)

    def redeem(self, amount: int | None = None, stable: str | None = None) -> Any:
        """A tranche expected to succeed; the ladder moves by the rung unlock rule."""
        stable = stable or self.v.cusdt
        b = self.books
        size = rung_size(self.vault, b.rung)
        amount = min(size, b.usdtz_held) if amount is None else amount
        paid = desk_paid(self.w3, self.market, amount)
        r = self.vault.redeem(stable, amount, sender=self.operator)
        out = cost_out(b.usdtz_cost, amount, b.usdtz_held)
        b.operator_loss += max(out - paid, 0)  # v2: a redemption below cost is the operator's loss
        b.usdtz_cost -= out
        b.usdtz_held -= amount
        b.stable[stable] = b.stable.get(stable, 0) + paid
        b.fees_paid += amount - paid
        b.redeemed_total += amount
        b.rung_progress += amount
        if b.rung_progress >= size:
            b.rung, b.rung_progress = min(b.rung + 1, 2), 0
        if b.phase == PH["POSITIONED"]:
            b.phase = PH["MONETIZING"]
        return self._done("redeem", "Redeem", r)

    def repay(self, amount: int = MAX_UINT, stable: str | None = None) -> Any:
        """Repays; the repaid amount is checked against debt_at(block time of the repay)."""
        stable = stable or self.v.cusdt
        pre_block = self.w3.eth.block_number
        r = self.vault.repay(stable, amount, sender=self.operator)
        ts = block_ts(self.w3, r.block_number)
        owed = debt_at(self.w3, self.market, stable, self.v.debt_token(stable), self.vault, ts, block=pre_block)
        want = min(self.books.stable[stable], owed) if amount == MAX_UINT else min(amount, owed)
        got = [log.amount for log in r.decode_logs(self.vault.Repaid)]
        assert got == [want], (got, want, owed)
        self.books.stable[stable] -= want
        self.last_repaid = want
        return self._done("repay", "Repay", r)

    def withdraw_collateral(self, amount: int | None = None, wrapper: str | None = None) -> Any:
        wrapper = wrapper or self.v.weth9
        amount = self.books.collateral.get(wrapper, 0) if amount is None else amount
        r = self.vault.withdrawCollateral(wrapper, amount, sender=self.operator)
        self.books.collateral[wrapper] -= amount
        self.books.working += amount
        return self._done("withdraw_collateral", "WithdrawCollateral", r)

    def sell(self, amount: int, stable: str | None = None, min_out: int = 0, sender: Any = None) -> Any:
        """Sells ``amount`` USDTz on the pair (operator by default: its sell needs the TWAP
        observation ready, see ``twap_ready``); a sale below the average cost is the operator's
        realized loss (the owner's is not counted)."""
        stable = stable or self.v.cusdt
        pair = self.v.pair_cusdt if stable == self.v.cusdt else self.v.pair_cusdc
        sender = sender or self.operator
        b = self.books
        got = uni_out(amount, *reserves(self.w3, self.market, pair, self.v.usdtz))
        r = self.vault.sell(stable, amount, min_out, DEADLINE, sender=sender)
        out = cost_out(b.usdtz_cost, amount, b.usdtz_held)
        if str(sender.address) != str(self.owner.address):
            b.operator_loss += max(out - got, 0)
        b.usdtz_cost -= out
        b.usdtz_held -= amount
        b.stable[stable] = b.stable.get(stable, 0) + got
        return self._done("sell", "Sell", r)

    def add_collateral(self, amount: int, wrapper: str | None = None) -> Any:
        wrapper = wrapper or self.v.weth9
        r = self.vault.addCollateral(wrapper, amount, sender=self.operator)
        self.books.opportunistic -= amount
        self.books.collateral[wrapper] = self.books.collateral.get(wrapper, 0) + amount
        return self._done("add_collateral", "AddCollateral", r)

    def observe(self) -> Any:
        """A new TWAP observation of both pairs (not a leg: no LegCompleted, legSeq unchanged)."""
        r = self.vault.observe(sender=self.operator)
        assert not legs_of(self.vault, r)
        assert len(list(r.decode_logs(self.vault.Observed))) == 2
        return r

    def close(self) -> Any:
        b = self.books
        # close credits each wrapper's collateral at most at its booked amount
        b.working += sum(b.collateral.values())
        b.collateral = {w: 0 for w in b.collateral}
        r = self.vault.close(sender=self.operator)
        b.operator_loss += b.usdtz_cost  # v2: the operator's write-off counts against the budget
        b.usdtz_cost = 0
        b.phase = PH["CLOSED"]
        return self._done("close", "Close", r)

    # plumbing
    def risk(self) -> dict:
        from tests.conftest import DEFAULT_RISK  # the vault's own params are read where public

        r = dict(DEFAULT_RISK)
        r.update(getattr(self, "risk_overrides", {}))
        return r

    def run(self, upto: str) -> Deal:
        """Runs the default loop (STEPS) up to and including ``upto``."""
        for step in STEPS[: STEPS.index(upto) + 1]:
            getattr(self, step)()
        return self


def make_deal(vault_factory, w3, mirror, market, owner, operator, funded: int = 100 * ETH, **risk) -> Deal:
    """Deploys a vault with ``risk`` overrides and wraps it in a Deal (books know the split bps)."""
    deal = Deal(w3, vault_factory(**risk), mirror, market, owner, operator, funded)
    deal.risk_overrides = risk
    return deal


# --- snapshot table -------------------------------------------------------------------------------


def row(name: str, w3, vault: Any, v: V, gas: int | None = None) -> dict:
    """One table row from raw reads plus riskView: leg, gas, phase, buckets, collateral, debt, LTV,
    NAV, exposure, rung."""
    rv = risk_view(vault)
    return dict(leg=name, gas=gas, phase=PH_NAME[rv.phase], core=rv.coreEth / Decimal(ETH),
                working=rv.workingEth / Decimal(ETH), opp=rv.opportunisticEth / Decimal(ETH),
                coll=rv.collateralWeth / Decimal(ETH), debt=Decimal(debt(w3, v, vault)) / E6,
                ltv_bps=rv.ltvBps, nav=Decimal(rv.nav) / 10**8, usdtz=Decimal(rv.usdtzHeld) / E6,
                exp_bps=rv.exposureBps if rv.exposureBps < MAX_UINT else "inf", rung=f"{rv.rung}:{rv.rungProgress}")


def table(rows: list[dict]) -> str:
    """A Markdown table of rows (dicts with the same keys)."""
    if not rows:
        return ""
    keys = list(rows[0])

    def fmt(x: Any) -> str:
        return "" if x is None else (f"{x:,.6f}".rstrip("0").rstrip(".") if isinstance(x, Decimal) else str(x))

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def print_table(rows: list[dict]) -> None:
    print("\n" + table(rows))
