"""Issue 12's review findings, each run against the landed vault (v1: tests/fixtures/dealvault_v1.json,
the build of contracts/DealVault.sol at commit 1996093) and against v2, with the numbers.

Every test here shows the finding on v1 (the test would fail if v1 did not have it) and that v2 closes
it. Expectations come from raw reads: token balances, the pair's reserves with the Uniswap V2 formula,
the feed, the debt tokens; the vaults' own views are only ever what is checked.

Run with `-s` to see the tables.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import ape
import pytest
from ape.contracts import ContractContainer
from ape.exceptions import ContractLogicError, VirtualMachineError
from ethpm_types import ContractType
from helpers_vault import lens_call, risk_view

from dealvault.kit import overlay as ov
from dealvault.kit.evm import impersonating, role_address, rpc, send
from dealvault.kit.funding import balance_of, fund
from tests.model import DEFAULT_RISK, TWAP_WINDOW, reserves, uni_out

ETH = 10**18
USD = 10**6
BPS = 10_000
DEADLINE = 2**63
MAX = 2**256 - 1
FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "dealvault_v1.json"
V1_RISK_FIELDS = ("maxLtvBps", "maxExposureBps", "coreBps", "workingBps", "opportunisticBps", "rungs", "maxDeskFeeBps",
                  "oracleMaxAge", "minDiscountBps", "maxSlippageBps", "sellFloorPrice", "ethFloorPrice")
HOLDING, CLOSED = 5, 6


# --- the two vaults -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def v1_container():
    data = json.loads(FIXTURE.read_text())
    ct = ContractType.model_validate({"contractName": "DealVaultV1", "abi": data["abi"],
                                      "deploymentBytecode": {"bytecode": data["bytecode"]}})
    return ContractContainer(ct)


@dataclass
class Subject:
    """One vault under test: v1 (the landed build) or v2, with one way to read its risk view."""

    version: str
    vault: Any
    w3: Any

    def rv(self) -> SimpleNamespace:
        if self.version == "v2":
            return risk_view(self.vault)
        c = self.w3.eth.contract(address=self.vault.address, abi=[a.model_dump(mode="json", by_alias=True)
                                 for a in self.vault.contract_type.view_methods if a.name == "riskView"])
        out = c.functions.riskView().call()
        names = [x["name"] for x in c.abi[0]["outputs"][0]["components"]]
        return SimpleNamespace(**dict(zip(names, out, strict=True)))


@pytest.fixture
def make_vault(w3, v1_container, vault_factory, vault_config, deployer):
    """``make_vault("v1" | "v2", **risk)``: a fresh vault of that version with the tests' default
    risk parameters (v1 gets the twelve it knows)."""

    def make(version: str, *, desk: str | None = None, **risk) -> Subject:
        if version == "v2":
            if desk is None:
                return Subject("v2", vault_factory(**risk), w3)
            cfg = list(vault_config(**risk))
            cfg[7] = desk
            core = ape.project.DealVault.deploy(tuple(cfg), sender=deployer)
            return Subject("v2", ape.project.IDealVault.at(core.address), w3)
        cfg = list(vault_config(**risk))
        if desk is not None:
            cfg[7] = desk
        full = dict(zip(tuple(DEFAULT_RISK), cfg[12]))
        cfg[12] = tuple(full[k] for k in V1_RISK_FIELDS)
        return Subject("v1", v1_container.deploy(tuple(cfg), sender=deployer), w3)

    return make


def error_name(exc: ContractLogicError) -> str:
    """The custom error's name (ape decodes it for calls, not for a constructor's revert: there the
    selector is matched against DealVault's ABI), else the revert message."""
    name = type(exc).__name__
    if name != "ContractLogicError":
        return name
    msg = str(exc.message or exc)
    if msg.startswith("0x") and len(msg) >= 10:
        from eth_utils import keccak

        for e in ape.project.DealVault.contract_type.errors:
            sig = f"{e.name}({','.join(i.canonical_type for i in e.inputs)})"
            if keccak(text=sig)[:4].hex() == msg[2:10]:
                return e.name
    return msg


def leg(fn, *args, **kw) -> str | None:
    """Sends a leg; returns None if it went through, else the custom error's name (or the revert
    message) that refused it."""
    try:
        fn(*args, **kw)
        return None
    except ContractLogicError as exc:
        return error_name(exc)
    except VirtualMachineError as exc:  # a panic inside a venue (Aave's arithmetic on a drained reserve)
        return str(exc)


def advance(w3, seconds: int) -> None:
    rpc(w3, "evm_increaseTime", [seconds])
    rpc(w3, "evm_mine")


def nav_usd(rv) -> Decimal:
    return Decimal(rv.nav) / 10**8


# --- the attacker's trades ---------------------------------------------------------------------


@dataclass
class Attacker:
    """A second account with a large balance trading the USDTz/cUSDT pair around the operator's legs.
    Its result is the change of its cUSDT plus its USDTz valued at the pair's price before the attack."""

    w3: Any
    market: Any
    mirror: Any
    who: str = field(default_factory=lambda: role_address("attacker.trader"))
    usdtz_in: int = 0
    usdtz_out: int = 0
    cusdt_in: int = 0
    cusdt_out: int = 0

    def pair(self):
        return self.market.pair_usdtz_cusdt

    def buy_usdtz(self, stable_in: int) -> int:
        if stable_in <= 0:
            return 0
        got = ov.swap_on_pair(self.w3, self.market, self.mirror.cusdt, self.market.usdtz, stable_in, trader=self.who)
        self.cusdt_out += stable_in
        self.usdtz_in += got
        return got

    def sell_usdtz(self, usdtz_in: int) -> int:
        if usdtz_in <= 0:
            return 0
        got = ov.swap_on_pair(self.w3, self.market, self.market.usdtz, self.mirror.cusdt, usdtz_in, trader=self.who)
        self.usdtz_out += usdtz_in
        self.cusdt_in += got
        return got

    def result(self, usdtz_price: Decimal) -> Decimal:
        """USD: cUSDT gained + USDTz gained x price (the funding helper's mints are the trades' inputs)."""
        return (Decimal(self.cusdt_in - self.cusdt_out) + Decimal(self.usdtz_in - self.usdtz_out) * usdtz_price) / USD

    def pump_for_buy(self, amount_in: int, limit_e6: int) -> int:
        """Buys USDTz until the vault's buy of ``amount_in`` clears just inside ``limit_e6``."""
        rs, rz = reserves(self.w3, self.market, self.pair(), self.mirror.cusdt)

        def price_after(p: int) -> Decimal:
            out = uni_out(p, rs, rz)
            got = uni_out(amount_in, rs + p, rz - out)
            return Decimal(amount_in) * 10**6 / Decimal(got)

        lo, hi = 0, 20_000_000 * USD
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if price_after(mid) <= limit_e6 - 500:
                lo = mid
            else:
                hi = mid - 1
        return self.buy_usdtz(lo)

    def dump_for_sell(self, amount_in: int, floor_e6: int) -> int:
        """Sells USDTz until the vault's sale of ``amount_in`` USDTz clears just inside ``floor_e6``."""
        rs, rz = reserves(self.w3, self.market, self.pair(), self.mirror.cusdt)

        def price_after(d: int) -> Decimal:
            out = uni_out(d, rz, rs)
            got = uni_out(amount_in, rz + d, rs - out)
            return Decimal(got) * 10**6 / Decimal(amount_in)

        lo, hi = 0, 40_000_000 * USD
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if price_after(mid) >= floor_e6 + 500:
                lo = mid
            else:
                hi = mid - 1
        return self.sell_usdtz(lo)


def spot_e6(w3, market, mirror) -> Decimal:
    rs, rz = reserves(w3, market, market.pair_usdtz_cusdt, mirror.cusdt)
    return Decimal(rs) * 10**6 / Decimal(rz)


# --- 1. the round-trip drain -------------------------------------------------------------------


def _position(s: Subject, mirror, owner, operator) -> None:
    """Issue 12's setup: 100 ETH at $3,000 (50/30/20), an honest supply of 30 ETH, a 20k cUSDT borrow."""
    v = s.vault
    v.fund(value=100 * ETH, sender=owner)
    v.split(sender=operator)
    v.supply(mirror.weth9, 30 * ETH, sender=operator)
    v.borrow(mirror.cusdt, 20_000 * USD, sender=operator)
    advance(s.w3, TWAP_WINDOW)  # the attacker waits for split's TWAP observation to be usable


def _drain(s: Subject, att: Attacker, mirror, market, operator, cycles: int = 12) -> dict:
    """The leaked operator's plan: turn ETH into stablecoin with deleverage, then buy high and sell
    low around a sandwiching trader, ``cycles`` times."""
    v, w3 = s.vault, s.w3
    refused: dict[str, int] = {}
    worst_buy_bps = 0
    r = leg(v.addCollateral, mirror.weth9, 20 * ETH, sender=operator)
    if r:
        refused[r] = refused.get(r, 0) + 1
    r = leg(v.deleverage, mirror.weth9, mirror.cusdt, 40 * ETH, 0, DEADLINE, sender=operator)
    if r:
        refused[r] = refused.get(r, 0) + 1
    stable_after_deleverage = s.rv().stableHeld
    for _ in range(cycles):
        rv = s.rv()
        amount = min(rv.stableHeld, int(nav_usd(rv) * Decimal("0.23")) * USD)
        if amount <= 0:
            break
        market_e6 = spot_e6(w3, market, mirror)
        att.pump_for_buy(amount, 950_000)
        before = rv.usdtzHeld
        r = leg(v.buy, mirror.cusdt, amount, 0, DEADLINE, sender=operator)
        if r:
            refused[r] = refused.get(r, 0) + 1
        else:
            got = s.rv().usdtzHeld - before
            eff = Decimal(amount) * 10**6 / Decimal(got)
            worst_buy_bps = max(worst_buy_bps, int((eff - market_e6) * BPS / market_e6))
        held = s.rv().usdtzHeld
        if held:
            att.dump_for_sell(held, 850_000)
            r = leg(v.sell, mirror.cusdt, held, 0, DEADLINE, sender=operator)
            if r:
                refused[r] = refused.get(r, 0) + 1
    return {"refused": refused, "worst_buy_bps": worst_buy_bps, "stable_after_deleverage": stable_after_deleverage}


def test_round_trip_drain_is_unbounded_on_v1_and_bounded_by_the_budget_on_v2(make_vault, w3, mirror, market, owner, operator):
    """Finding 1 (high). v1: deleverage turns working + opportunistic ETH into stablecoin at zero
    debt, then 12 sandwiched buy-high / sell-low cycles drain the stablecoin books, each leg within
    its own bound. v2: deleverage sells no more than the debt needs (DeleverageTooLarge), a buy after
    a same-block pump is refused against the pair's TWAP (PriceAboveTwap); what the operator can lose
    over the whole deal is at most the loss budget."""
    rows = {}
    for version in ("v1", "v2"):
        snap = rpc(w3, "evm_snapshot")
        s = make_vault(version)
        _position(s, mirror, owner, operator)
        att = Attacker(w3, market, mirror)
        p0 = spot_e6(w3, market, mirror) / 10**6
        nav0 = nav_usd(s.rv())
        res = _drain(s, att, mirror, market, operator)
        rv = s.rv()
        rows[version] = dict(
            nav_before=nav0, nav_after=nav_usd(rv), stable_after_deleverage=Decimal(res["stable_after_deleverage"]) / USD,
            stable_after=Decimal(rv.stableHeld) / USD, attacker=att.result(p0), refused=res["refused"],
            worst_buy_bps=res["worst_buy_bps"], operator_loss=getattr(rv, "operatorLoss", None),
            budget=getattr(rv, "lossBudget", None))
        assert rpc(w3, "evm_revert", [snap])
    print("\n| | v1 (landed) | v2 |\n|---|---:|---:|")
    for k in ("nav_before", "nav_after", "stable_after_deleverage", "stable_after", "attacker", "worst_buy_bps",
              "refused", "operator_loss", "budget"):
        print(f"| {k} | {rows['v1'][k]} | {rows['v2'][k]} |")

    a, b = rows["v1"], rows["v2"]
    # v1: the drain happens, every leg passing its own check
    assert a["refused"] == {}, a["refused"]
    assert a["stable_after_deleverage"] > 110_000  # 40 ETH became stablecoin at zero debt
    assert a["nav_before"] - a["nav_after"] > 50_000  # NAV fell by more than $50k
    assert a["attacker"] > 30_000  # and the trader around the legs made more than $30k
    assert a["worst_buy_bps"] > 1_000  # a single buy paid > 10% over the market (maxSlippageBps is 100)
    # v2: the same plan is refused leg by leg, and nothing is lost beyond the budget
    assert b["refused"].get("DeleverageTooLarge") == 1
    assert b["refused"].get("PriceAboveTwap") == 12
    budget = Decimal(b["budget"]) / USD
    assert budget == Decimal(300_000) * 50 / BPS  # 50 bps of the $300k split value
    assert b["nav_before"] - b["nav_after"] <= budget
    assert b["operator_loss"] <= b["budget"]
    assert b["attacker"] <= budget


def test_operator_patient_attacker_is_stopped_by_the_budget(make_vault, w3, mirror, market, owner, operator):
    """Finding 1, the patient attacker: it resets the observation (observe, with the operator key)
    and holds the pumped price for a whole TWAP window, so the buy passes the TWAP check; then holds
    a dumped price for another window so the sell passes too. The sale below cost realizes a loss,
    and the budget stops it: the full sell is refused (LossBudgetExceeded naming both numbers), the
    largest sell within the budget goes through, and the operator's total loss ends <= the budget."""
    s = make_vault("v2")
    v = s.vault
    _position(s, mirror, owner, operator)
    att = Attacker(w3, market, mirror)
    nav0 = nav_usd(s.rv())
    v.observe(sender=operator)
    att.pump_for_buy(20_000 * USD, 950_000)
    advance(w3, TWAP_WINDOW + 5)
    before = s.rv().usdtzHeld
    v.buy(mirror.cusdt, 20_000 * USD, 0, DEADLINE, sender=operator)
    held = s.rv().usdtzHeld - before
    assert held > 0
    v.observe(sender=operator)
    att.dump_for_sell(held, 850_000)
    advance(w3, TWAP_WINDOW + 5)
    rv = s.rv()
    budget = rv.lossBudget
    # the whole position sold at the dumped price would lose ~10% of $20k: past the budget
    cost_all = rv.usdtzCost
    out_all = uni_out(held, *reserves(w3, market, market.pair_usdtz_cusdt, market.usdtz))
    loss_all = cost_all - out_all
    assert loss_all > budget
    with ape.reverts(v.LossBudgetExceeded, lossAfter=loss_all, budget=budget):
        v.sell(mirror.cusdt, held, 0, DEADLINE, sender=operator)
    # the largest sell that fits the budget: binary search on the pair formula and the cost basis
    lo, hi = 0, held
    while lo < hi:
        mid = (lo + hi + 1) // 2
        out = uni_out(mid, *reserves(w3, market, market.pair_usdtz_cusdt, market.usdtz))
        cost = -(-cost_all * mid // held)
        if cost - out <= budget:
            lo = mid
        else:
            hi = mid - 1
    assert 0 < lo < held
    v.sell(mirror.cusdt, lo, 0, DEADLINE, sender=operator)
    rv = s.rv()
    assert 0 < rv.operatorLoss <= budget
    # any further sale below cost is refused: the trader lifts the pair back above the floor (and
    # above the TWAP, so the TWAP check passes) and a sale of 1,000 USDTz, at a price still below
    # the cost basis, names the loss it would make and the budget
    rs, rz = reserves(w3, market, market.pair_usdtz_cusdt, mirror.cusdt)
    lift = 0
    while Decimal(rs + lift) / Decimal(rz - uni_out(lift, rs, rz)) < Decimal("0.88"):
        lift += 50_000 * USD
    att.buy_usdtz(lift)
    small = 1_000 * USD
    out = uni_out(small, *reserves(w3, market, market.pair_usdtz_cusdt, market.usdtz))
    cost = -(-rv.usdtzCost * small // rv.usdtzHeld)
    assert out * 10**6 >= 850_000 * small and cost > out
    with ape.reverts(v.LossBudgetExceeded, lossAfter=rv.operatorLoss + cost - out, budget=budget):
        v.sell(mirror.cusdt, small, 0, DEADLINE, sender=operator)
    # the vault lost at most the budget (NAV at the oracle, USDTz at cost) plus the interest accrued
    interest = Decimal(rv.debt - 20_000 * USD) / USD
    assert nav0 - nav_usd(rv) <= Decimal(budget) / USD + interest + Decimal("0.01")
    print(f"\npatient attacker: operator loss {Decimal(rv.operatorLoss) / USD} of budget {Decimal(budget) / USD}; "
          f"NAV {nav0} -> {nav_usd(rv)}; attacker {att.result(Decimal('0.8'))}")


# --- 2. stale-oracle deleverage ------------------------------------------------------------------


def _dump_weth(w3, market, mirror, to_price_usd: int) -> None:
    """A trader sells WETH on the WETH9/cUSDT pair until it trades at ``to_price_usd``."""
    pc = market.pair_contract(w3, market.pair_weth_cusdt)
    r0, r1, _ = pc.functions.getReserves().call()
    weth_is0 = pc.functions.token0().call().lower() == mirror.weth9.lower()
    rw, rs = (r0, r1) if weth_is0 else (r1, r0)
    # the WETH reserve at which rs' / rw' = price, on k = rw * rs: rw' = sqrt(k * 1e12 / price)
    k = rw * rs
    target_rw = int((Decimal(k) * 10**12 / Decimal(to_price_usd)).sqrt())
    ov.swap_on_pair(w3, market, mirror.weth9, mirror.cusdt, int((target_rw - rw) * 1000 // 997), trader=role_address("attacker.trader"))


def test_stale_oracle_deleverage_sells_at_the_floor_on_v1_and_at_the_last_price_on_v2(make_vault, w3, mirror, market, owner, operator):
    """Finding 2 (medium). The feed is stale at $3,000 while a trader dumps WETH to $2,000. v1: the
    operator's deleverage is bounded only by the fixed ethFloorPrice ($1,000 here): 40 ETH sold at
    about $2,000, about $40k below the last oracle price. v2: the operator is bound by the feed's last
    answer, so the same sale (sized to the debt) is refused; the owner's crisis exit still works
    (bounded by its floor); with an Invalid feed the operator is refused (InvalidPrice) and the owner
    is not."""
    from dealvault.kit.mirror import make_feed_stale

    out = {}
    for version in ("v1", "v2"):
        snap = rpc(w3, "evm_snapshot")
        s = make_vault(version)
        _position(s, mirror, owner, operator)
        s.vault.addCollateral(mirror.weth9, 20 * ETH, sender=operator)
        make_feed_stale(w3, mirror)
        _dump_weth(w3, market, mirror, 2_000)
        cusdt = balance_of(w3, mirror.cusdt, s.vault.address)
        debt = balance_of(w3, market.variable_debt_tokens["cUSDT"], s.vault.address)
        if version == "v1":
            s.vault.deleverage(mirror.weth9, mirror.cusdt, 40 * ETH, 0, DEADLINE, sender=operator)
            got = balance_of(w3, mirror.cusdt, s.vault.address) - cusdt + debt  # repaid the debt, kept the rest
            out["v1_loss_usd"] = Decimal(40 * 3_000 * USD - got) / USD
        else:
            # a sale sized to the debt: value x (1 - 1%) <= debt x 1.01 at $3,000
            amount = debt * (BPS + 100) * 10**20 // (3_000 * 10**8 * (BPS - 100))
            r = leg(s.vault.deleverage, mirror.weth9, mirror.cusdt, amount, 0, DEADLINE, sender=operator)
            out["v2_operator"] = r
            out["v2_too_large"] = leg(s.vault.deleverage, mirror.weth9, mirror.cusdt, 40 * ETH, 0, DEADLINE, sender=operator)
            before = s.rv()
            s.vault.deleverage(mirror.weth9, mirror.cusdt, amount, 0, DEADLINE, sender=owner)  # the owner's exit
            after = s.rv()
            out["v2_owner_debt"] = (before.debt, after.debt)
            out["v2_owner_loss_counted"] = after.operatorLoss
            # an Invalid feed (a round dated in the future; Aave, which reads latestAnswer, still
            # prices the collateral): the operator has no reference price, the owner has its floor
            from dealvault.kit.mirror import set_eth_price
            set_eth_price(w3, mirror, 3_000 * 10**8, w3.eth.get_block("latest")["timestamp"] + 3_600)
            out["v2_operator_invalid"] = leg(s.vault.deleverage, mirror.weth9, mirror.cusdt, 10**15, 0, DEADLINE, sender=operator)
            out["v2_owner_invalid"] = leg(s.vault.deleverage, mirror.weth9, mirror.cusdt, 10**15, 0, DEADLINE, sender=owner)
        assert rpc(w3, "evm_revert", [snap])
    print(f"\nstale deleverage: {out}")
    assert out["v1_loss_usd"] > 35_000  # v1 sold 40 ETH near $2,000 against a $3,000 last price
    assert out["v2_operator"] == "UniswapV2Router: INSUFFICIENT_OUTPUT_AMOUNT"  # bound at $3,000 x 99%
    assert out["v2_too_large"] == "DeleverageTooLarge"
    assert out["v2_owner_debt"][1] < out["v2_owner_debt"][0]
    assert out["v2_owner_loss_counted"] == 0  # the owner's exits are not the operator's loss
    assert out["v2_operator_invalid"] == "InvalidPrice"
    assert out["v2_owner_invalid"] is None


# --- 3. a drained WETH reserve -----------------------------------------------------------------------


def _drain_weth_reserve(w3, market, mirror) -> int:
    """A third party borrows the Aave WETH9 reserve dry (WETH10 as its collateral); returns what it took."""
    conf = market.configurator_contract(w3).functions
    with impersonating(w3, market.aave_admin):
        send(w3, conf.setReserveBorrowing(mirror.weth9, True), market.aave_admin)
    who = role_address("attacker.drainer")
    pool = market.pool_contract(w3).functions
    liquidity = balance_of(w3, mirror.weth9, market.a_tokens["WETH"])
    with impersonating(w3, who, fund_wei=10_000 * ETH):
        w10 = w3.eth.contract(address=mirror.weth10, abi=ov.erc20(w3, mirror.weth10).abi + [
            {"type": "function", "name": "deposit", "stateMutability": "payable", "inputs": [], "outputs": []}])
        send(w3, w10.functions.deposit(), who, value=5_000 * ETH)
        send(w3, ov.erc20(w3, mirror.weth10).functions.approve(market.pool, 5_000 * ETH), who)
        send(w3, pool.supply(mirror.weth10, 5_000 * ETH, who, 0), who)
        send(w3, pool.borrow(mirror.weth9, liquidity, 2, 0, who), who)
    assert balance_of(w3, mirror.weth9, market.a_tokens["WETH"]) == 0
    return liquidity


def test_drained_weth_reserve_locks_v1_but_never_the_owners_eth_on_v2(make_vault, w3, mirror, market, owner, operator):
    """Finding 3 (medium). Someone borrows the WETH reserve dry. v1: close and withdrawCollateral
    revert inside Aave and the owner's withdraw allows only surplus: the 70 ETH of idle buckets are
    stuck with the collateral. v2: close works partially (the collateral stays booked as aTokens,
    `collateralLeft`), the owner takes every idle wei, then the aTokens, and redeems them at Aave once
    the reserve has liquidity again. With debt outstanding, the owner's HOLDING exit returns the idle
    ETH too (ethReturned)."""
    res = {}
    for version in ("v1", "v2"):
        snap = rpc(w3, "evm_snapshot")
        s = make_vault(version)
        v = s.vault
        v.fund(value=100 * ETH, sender=owner)
        v.split(sender=operator)
        v.supply(mirror.weth9, 30 * ETH, sender=operator)
        _drain_weth_reserve(w3, market, mirror)
        res[f"{version}_withdraw_collateral"] = leg(v.withdrawCollateral, mirror.weth9, 30 * ETH, sender=operator)
        res[f"{version}_close"] = leg(v.close, sender=operator)
        eth0 = w3.eth.get_balance(owner.address)
        idle = w3.eth.get_balance(v.address)
        r = leg(v.withdraw, ape.utils.ZERO_ADDRESS, idle, sender=owner, gas_price=0)
        res[f"{version}_owner_idle"] = r
        if version == "v2":
            assert r is None
            assert w3.eth.get_balance(owner.address) - eth0 == 70 * ETH  # core 50 + opportunistic 20
            rv = s.rv()
            assert rv.phase == CLOSED and rv.collateralBooked == 30 * ETH and rv.realizedPnlEth == 0
            a = market.a_tokens["WETH"]
            a_bal = balance_of(w3, a, v.address)
            v.withdraw(a, a_bal, sender=owner)
            assert balance_of(w3, a, owner.address) == a_bal >= 30 * ETH
        assert rpc(w3, "evm_revert", [snap])

    # with debt: the owner holds the deal and takes the idle ETH back; the books say so
    s = make_vault("v2")
    _position(s, mirror, owner, operator)
    _drain_weth_reserve(w3, market, mirror)
    s.vault.hold(sender=owner)
    eth0 = w3.eth.get_balance(owner.address)
    s.vault.withdraw(ape.utils.ZERO_ADDRESS, 70 * ETH, sender=owner, gas_price=0)
    rv = s.rv()
    assert w3.eth.get_balance(owner.address) - eth0 == 70 * ETH
    assert (rv.coreEth, rv.workingEth, rv.opportunisticEth, rv.ethReturned) == (0, 0, 0, 70 * ETH)
    print(f"\ndrained reserve: {res}")
    assert res["v1_withdraw_collateral"] and res["v1_close"]  # both revert inside Aave
    assert res["v1_owner_idle"] == "InsufficientBucket"
    assert res["v2_withdraw_collateral"]  # an explicit withdrawal still waits for liquidity
    assert res["v2_close"] is None and res["v2_owner_idle"] is None


# --- 4. the lows -----------------------------------------------------------------------------------


def test_hold_in_funded_then_close_books_zero_pnl(make_vault, w3, owner, operator, guardian):
    """Low: v1 booked realizedPnlEth = -fundedCapital after hold in FUNDED; v2 books 0 (the funded
    capital is core until split) and the owner gets every wei back."""
    pnl = {}
    for version in ("v1", "v2"):
        snap = rpc(w3, "evm_snapshot")
        s = make_vault(version)
        s.vault.fund(value=10 * ETH, sender=owner)
        s.vault.hold(sender=guardian)
        s.vault.close(sender=owner)
        pnl[version] = s.rv().realizedPnlEth
        if version == "v2":
            eth0 = w3.eth.get_balance(owner.address)
            s.vault.withdraw(ape.utils.ZERO_ADDRESS, 10 * ETH, sender=owner, gas_price=0)
            assert w3.eth.get_balance(owner.address) - eth0 == 10 * ETH
        assert rpc(w3, "evm_revert", [snap])
    assert pnl == {"v1": -10 * ETH, "v2": 0}


def test_operator_cannot_write_off_redeemable_usdtz_but_the_owner_can(make_vault, w3, mirror, market, owner, operator):
    """Low: v1 let the operator close while redeemable USDTz was held, writing all of it off. v2
    counts an operator's write-off against the loss budget (LossBudgetExceeded with both numbers);
    the owner may still close and write off."""
    results = {}
    for version in ("v1", "v2"):
        snap = rpc(w3, "evm_snapshot")
        s = make_vault(version)
        v = s.vault
        _position(s, mirror, owner, operator)
        v.buy(mirror.cusdt, 15_000 * USD, 0, DEADLINE, sender=operator)
        v.repay(mirror.cusdt, MAX, sender=operator)  # the 5k left
        debt = balance_of(w3, market.variable_debt_tokens["cUSDT"], v.address)
        fund(w3, mirror.cusdt, owner.address, debt + USD)
        with impersonating(w3, owner.address):
            send(w3, ov.erc20(w3, mirror.cusdt).functions.approve(v.address, debt + USD), owner.address)
        v.ownerRepay(mirror.cusdt, debt + USD, sender=owner)
        cost = s.rv().usdtzCost
        if version == "v1":
            v.close(sender=operator)
            results["v1"] = s.rv().writtenOffUsdtz
        else:
            budget = s.rv().lossBudget
            with ape.reverts(v.LossBudgetExceeded, lossAfter=cost, budget=budget):
                v.close(sender=operator)
            v.close(sender=owner)
            rv = s.rv()
            results["v2"] = rv.writtenOffUsdtz
            assert rv.phase == CLOSED and rv.operatorLoss == 0
        assert rpc(w3, "evm_revert", [snap])
    assert results == {"v1": 15_000 * USD, "v2": 15_000 * USD}


def test_dust_tranche_cannot_force_holding_on_v2(make_vault, w3, mirror, market, owner, operator):
    """Low: on v1 the operator forced HOLDING and reset the ladder with redeem(stable, 1) (the desk
    refuses an amount not above its fee); v2 refuses a tranche below minTranche unless it is all the
    USDTz held (TrancheBelowMinimum)."""
    phases = {}
    for version in ("v1", "v2"):
        snap = rpc(w3, "evm_snapshot")
        s = make_vault(version)
        _position(s, mirror, owner, operator)
        s.vault.buy(mirror.cusdt, 15_000 * USD, 0, DEADLINE, sender=operator)
        phases[version] = leg(s.vault.redeem, mirror.cusdt, 1, sender=operator), s.rv().phase
        assert rpc(w3, "evm_revert", [snap])
    assert phases["v1"] == (None, HOLDING)
    assert phases["v2"][0] == "TrancheBelowMinimum" and phases["v2"][1] != HOLDING


def test_setters_could_never_loosen_on_v1_and_queue_on_v2(make_vault, w3, mirror, owner, operator):
    """Low: an owner slip (maxSlippageBps = 0) disabled deleverage for good on v1 (every setter only
    tightens); on v2 the owner queues the way back to the constructor's value and it applies after
    loosenDelay."""
    s1 = make_vault("v1")
    s1.vault.setMaxSlippageBps(0, sender=owner)
    assert leg(s1.vault.setMaxSlippageBps, 100, sender=owner) == "NotTighter"
    s2 = make_vault("v2")
    p = 5  # Param.MaxSlippageBps
    s2.vault.setParam(p, 0, sender=owner)
    tx = s2.vault.setParam(p, 100, sender=owner)
    delay = DEFAULT_RISK["loosenDelay"]
    q = tx.decode_logs(s2.vault.RiskParamQueued)[0]
    assert (q.param, q.value, q.validAt) == (p, 100, w3.eth.get_block(tx.block_number)["timestamp"] + delay)
    advance(w3, delay)
    s2.vault.acceptParam(p, sender=operator)  # anyone may accept once due
    assert lens_call("params", s2.vault.address)[5] == 100


def test_repayment_on_behalf_loosened_v1_caps_and_pnl_but_not_v2(make_vault, w3, mirror, market, owner, operator, stranger):
    """Low: a third party's pool.repay(onBehalfOf = vault) was an unbooked donation on v1: it raised
    NAV, loosened the exposure cap (a buy refused before it passes after it) and inflated
    realizedPnlUsd. v2 keeps counting that debt in its caps until its next own debt action books it
    as repaidOnBehalf, which the PnL subtracts like ownerRepaid."""
    out = {}
    for version in ("v1", "v2"):
        snap = rpc(w3, "evm_snapshot")
        s = make_vault(version, maxExposureBps=600)
        v = s.vault
        _position(s, mirror, owner, operator)
        # a buy whose USDTz is just above 6% of NAV now, and below 6% of NAV + the donation
        donation = 15_000 * USD
        nav = s.rv().nav // 100  # 6 dp
        want = 600 * (nav + donation // 2) // BPS
        r_in, r_out = reserves(w3, market, market.pair_usdtz_cusdt, mirror.cusdt)
        lo, hi = 0, 20_000 * USD
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if uni_out(mid, r_in, r_out) <= want else (lo, mid - 1)
        big = lo
        refused_before = leg(v.buy, mirror.cusdt, big, 0, DEADLINE, sender=operator)
        fund(w3, mirror.cusdt, stranger.address, donation)
        pool = market.pool_contract(w3).functions
        with impersonating(w3, stranger.address):
            send(w3, ov.erc20(w3, mirror.cusdt).functions.approve(market.pool, donation), stranger.address)
            send(w3, pool.repay(mirror.cusdt, donation, 2, v.address), stranger.address)
        refused_after = leg(v.buy, mirror.cusdt, big, 0, DEADLINE, sender=operator)
        out[version] = (refused_before, refused_after)
        assert rpc(w3, "evm_revert", [snap])
    print(f"\nrepay on behalf: {out}")
    assert out["v1"] == ("ExposureAboveCap", None)  # the donation loosened v1's cap
    assert out["v2"] == ("ExposureAboveCap", "ExposureAboveCap")  # and not v2's


# --- 5. the infos ---------------------------------------------------------------------------------


@pytest.mark.parametrize("field_, value, v2_error", [
    ("weth10=weth9", None, "DuplicateAddress"),
    ("sellFloorPrice", 0, "ParamInvalid"),
    ("ethFloorPrice", 0, "ParamInvalid"),
    ("maxDeskFeeBps", 10_000, "CapAboveCeiling"),
])
def test_constructor_degenerate_configs(make_vault, mirror, field_, value, v2_error):
    """Info: v1 accepted weth10 == weth9 (collateral counted twice), a zero sell floor, a zero ETH
    floor and a 100% desk fee; v2 refuses each with a named error."""
    if field_ == "weth10=weth9":
        from dealvault import kit
        orig = kit.vault_config
        try:
            def same_wrappers(m, o, *a):
                c = orig(m, o, *a)
                return (c[0], c[0], *c[2:])  # weth10 = weth9

            kit.vault_config = same_wrappers
            import tests.conftest as tc
            tc.kit_vault_config = kit.vault_config
            assert make_vault("v1").vault.address
            with pytest.raises(ContractLogicError) as e:
                make_vault("v2")
        finally:
            kit.vault_config = orig
            tc.kit_vault_config = orig
    else:
        assert make_vault("v1", **{field_: value}).vault.address
        with pytest.raises(ContractLogicError) as e:
            make_vault("v2", **{field_: value})
    assert error_name(e.value) == v2_error


def test_renounce_ownership_before_close(make_vault, owner):
    """Info: v1's renounceOwnership before CLOSED left every wei locked; v2 refuses it before CLOSED."""
    assert leg(make_vault("v1").vault.renounceOwnership, sender=owner) is None
    assert leg(make_vault("v2").vault.renounceOwnership, sender=owner) == "WrongPhase"


def test_future_updated_at_is_invalid(make_vault, w3, mirror, owner, operator):
    """Info: a feed round dated in the future counted as fresh on v1; on v2 it is Invalid, and a
    risk-adding leg is refused."""
    from dealvault.kit.mirror import set_eth_price

    out = {}
    for version in ("v1", "v2"):
        snap = rpc(w3, "evm_snapshot")
        s = make_vault(version)
        s.vault.fund(value=100 * ETH, sender=owner)
        s.vault.split(sender=operator)
        set_eth_price(w3, mirror, 3_000 * 10**8, w3.eth.get_block("latest")["timestamp"] + 3_600)
        out[version] = leg(s.vault.supply, mirror.weth9, 30 * ETH, sender=operator)
        assert rpc(w3, "evm_revert", [snap])
    assert out == {"v1": None, "v2": "InvalidPrice"}


@pytest.mark.parametrize("mode, size", [(0, 0), (1, 200_000)], ids=["burns-all-gas", "huge-revert-data"])
def test_griefing_desk_fails_the_tranche_into_holding(make_vault, w3, mirror, owner, operator, deployer, mode, size):
    """Info: a desk that burns all the gas it gets, or reverts with 200 kB of data, made v1's redeem
    revert (out of gas) instead of failing into HOLDING; v2 gives the desk fixed gas and keeps at most
    256 bytes of its revert data: the tranche fails, the deal is in HOLDING, nothing moved."""
    desk = ape.project.GriefingDesk.deploy(sender=deployer)
    desk.setMode(mode, size, sender=deployer)
    out = {}
    # v2 first: v1's out-of-gas transaction is traced by ape for seconds, so no snapshot is reverted
    # after it (each version has its own vault; the market moves a little between them, which
    # changes nothing here)
    for version in ("v2", "v1"):
        s = make_vault(version, desk=desk.address)
        _position(s, mirror, owner, operator)
        s.vault.buy(mirror.cusdt, 15_000 * USD, 0, DEADLINE, sender=operator)
        held = s.rv().usdtzHeld
        # an explicit gas limit, as a harness sends it (1M: v2 needs at least 567,301 for a redeem)
        out[version] = leg(s.vault.redeem, mirror.cusdt, min(held, 10_000 * USD), sender=operator, gas=1_000_000)
        rv = s.rv()
        out[version + "_phase"] = rv.phase
        out[version + "_held"] = rv.usdtzHeld == held
    print(f"\ngriefing desk ({mode}): {out}")
    assert out["v1"] is not None and out["v1_phase"] != HOLDING  # v1's leg reverted
    assert out["v2"] is None and out["v2_phase"] == HOLDING and out["v2_held"]
