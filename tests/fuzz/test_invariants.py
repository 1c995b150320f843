"""Stateful invariant fuzzing of DealVault v2 (issue 8, "Invariant fuzzing"; issue 12's attacker,
loss budget, parameter timelock and owner-exit properties).

A Hypothesis RuleBasedStateMachine drives random sequences of every leg (valid and invalid
amounts, every role), observe, the parameter timelock (setParam / acceptParam / revokeParam),
an attacker's sandwiches around legs (the USDTz/cUSDT, USDTz/cUSDC and WETH pairs, pumped or
dumped before the leg and traded back after, in the same block or across blocks), and moves of
the outside world: oracle moves (stale, zero, negative, absurd, an updatedAt in the future),
USDTz freezes, desk halts, fees and droughts, Aave reserve freezes, a WETH reserve borrowed dry
and refilled, repayments of the vault's debt by a third party (pool.repay onBehalfOf the vault),
time jumps, third-party trades, donations. After every step the invariants below are checked
from raw reads (feed, pool, aToken / debt token balances and scaled balances, the pool's index,
token balances, pair reserves and price accumulators, allowances, the vault's logs), computed
independently in Python integers; the lens's views are only ever the thing checked.

Properties (each assertion names the one it checks):
- legs: role, phase, pause and oracle gating; a reverted leg changes nothing; value leaves only
  to the owner or a configured venue; ETH is conserved; risk-adding legs end within the LTV (books
  and pool) and exposure caps; risk-reducing legs never raise the debt, the LTV or the exposure;
  books follow what moved (redeem, sell, buy, withdraw, close); buy / operator sell respect the
  pair's TWAP (recomputed from the pair's accumulators) and the price limit / floor; deleverage
  receives at least the reference price x (1 - slippage) and sells no more than the debt needs.
- loss budget: every operator leg's OperatorLoss equals the loss recomputed from raw deltas; an
  operator leg never lowers NAV (at the feed price) by more than the loss it books; the lens's
  operatorLoss == the sum of the OperatorLoss events <= splitValue x maxOperatorLossBps / 10_000
  (splitValue recomputed from the Split event and the feed price at split); each increase fits the
  budget in force; the owner's legs book nothing; refusals are LossBudgetExceeded with the numbers.
- parameters: the lens's params / queuedParams equal the fuzzer's own model; every RiskParamSet in
  the logs is a tightening by setParam, or a loosening by acceptParam at or after the validAt its
  RiskParamQueued announced, never past the constructor's value or a hard limit.
- debt books: the caps' debt (the vault's scaled books x the pool's index + repaidOnBehalf) never
  falls on a third party's repayment; RepaidOnBehalf books exactly the scaled debt others repaid.
- owner's exit: in every state reached, a dry run (eth_simulateV1) of hold -> ownerRepay every
  debt -> withdraw all ETH -> close -> withdraw ETH, aTokens and stablecoins left succeeds and
  gives the owner at least the booked ETH (buckets + collateral); the only allowed failure is the
  USDTz withdrawal while the issuer has frozen the vault (a FiatToken blacklist: nobody can move it).
The attacker's gain from its sandwiches is recorded (tests/fuzz/conftest.py prints it, with the
other counts: budget refusals, loosenings, exit dry runs...). tests/fuzz/test_scenarios.py drives
this machine through fixed sequences so that each new actor and rule runs in every `make test`.

Runs on its own anvil (``dealvault.kit.start_kit``), not ape's network:
    .venv/bin/pytest tests/fuzz -p no:ape_test -q                 (fast profile, the default)
    DEALVAULT_FUZZ_PROFILE=long .venv/bin/pytest tests/fuzz -p no:ape_test -q
It also runs under ``ape test tests/fuzz`` (it uses no ape fixture).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from eth_abi import decode
from eth_utils import function_signature_to_4byte_selector as sel
from eth_utils import to_checksum_address
from hypothesis import HealthCheck, settings
from hypothesis import event as _event
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from dealvault.kit import mirror as mir
from dealvault.kit import overlay as ov
from dealvault.kit.evm import set_balance
from dealvault.kit.funding import fund
from tests.model import ceil_div

from .harness import (
    ETH,
    FAR,
    FLOOR,
    HIGHER_IS_TIGHTER,
    LIMIT,
    MAX_UINT,
    PARAMS,
    RISK,
    USD6,
    ZERO,
    Reader,
    approvals_by,
    err,
    eth_balance_call,
    fingerprint,
    get_env,
    ray_mul,
    reset,
    transfers,
    vault_events,
)

# --- profiles ------------------------------------------------------------------------------------
_COMMON = dict(deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
# `make test`'s profile: the forge suite (tests/forge, 1,002 x 32 in `make test`) carries the vault's
# properties at depth; here 30 random sequences run the harness's own checks (raw reads recomputed in
# Python, the lens against them, the owner's exit dry run) and test_scenarios.py runs every actor's
# fixed sequence. 100 sequences took 63 s of the stage's 69 (session 8); `make fuzz-harness` runs 5,000 x 30.
settings.register_profile("fast", max_examples=30, stateful_step_count=20, **_COMMON)
settings.register_profile("long", max_examples=5_000, stateful_step_count=30, **_COMMON)
settings.register_profile("long_sample", max_examples=100, stateful_step_count=30, **_COMMON)  # to time `long`
settings.register_profile("smoke", max_examples=10, stateful_step_count=20, **_COMMON)
PROFILE = os.environ.get("DEALVAULT_FUZZ_PROFILE", "fast")

# --- phases, roles, masks (from the NatSpec leg x phase table) -------------------------------------
FUNDED, SPLIT, WORKING, POSITIONED, MONETIZING, HOLDING, CLOSED = range(7)
M = lambda *ps: sum(1 << p for p in ps)  # noqa: E731
MASK = {
    "fund": M(FUNDED), "split": M(FUNDED),
    "supply": M(SPLIT, WORKING, POSITIONED, MONETIZING),
    "borrow": M(WORKING, POSITIONED, MONETIZING), "buy": M(WORKING, POSITIONED, MONETIZING),
    "redeem": M(POSITIONED, MONETIZING, HOLDING), "sell": M(POSITIONED, MONETIZING, HOLDING),
    "repay": M(WORKING, POSITIONED, MONETIZING, HOLDING), "ownerRepay": M(WORKING, POSITIONED, MONETIZING, HOLDING),
    "addCollateral": M(WORKING, POSITIONED, MONETIZING, HOLDING),
    "withdrawCollateral": M(WORKING, POSITIONED, MONETIZING, HOLDING),
    "deleverage": M(WORKING, POSITIONED, MONETIZING, HOLDING),
    "close": M(SPLIT, WORKING, POSITIONED, MONETIZING, HOLDING),
    "hold": M(FUNDED, SPLIT, WORKING, POSITIONED, MONETIZING), "resume": M(HOLDING),
    "observe": M(FUNDED, SPLIT, WORKING, POSITIONED, MONETIZING, HOLDING),
}
OPERATOR_ONLY = {"supply", "borrow", "buy"}
OPERATOR_OR_OWNER = {"split", "redeem", "sell", "repay", "addCollateral", "withdrawCollateral", "deleverage", "close",
                     "observe"}
OWNER_ONLY = {"fund", "ownerRepay", "resume", "unpause", "withdraw", "setParam"}
OWNER_OR_GUARDIAN = {"pause", "hold", "revokeParam"}
ANYONE = {"acceptParam"}
RISK_ADDING = {"supply", "borrow", "buy"}  # + withdrawCollateral while debt remains
RISK_REDUCING = {"redeem", "sell", "repay", "ownerRepay", "addCollateral", "deleverage", "close"}
LOSS_LEGS = {"sell", "redeem", "deleverage", "borrow", "close"}  # the legs that may book an operator loss
LEG_ENUM = dict(Split=0, Supply=1, Borrow=2, Buy=3, Redeem=4, Sell=5, Repay=6, OwnerRepay=7, AddCollateral=8,
                WithdrawCollateral=9, Deleverage=10, Close=11, Hold=12, Resume=13, Fund=14)

ROLE = st.sampled_from(["operator"] * 6 + ["owner"] * 2 + ["guardian", "stranger"])
OWNER_ROLE = st.sampled_from(["owner"] * 6 + ["operator", "guardian", "stranger"])
GUARD_ROLE = st.sampled_from(["guardian"] * 3 + ["owner"] * 3 + ["operator", "stranger"])
ANY_ROLE = st.sampled_from(["stranger", "operator", "owner", "guardian", "attacker"])
WRAPPER = st.sampled_from(["WETH9"] * 3 + ["WETH10"] * 2 + ["bogus"])
STABLE = st.sampled_from(["cUSDT"] * 3 + ["cUSDC"] * 2 + ["bogus"])
# (mode, bps, raw): an amount relative to what the books allow, or not
READY = st.sampled_from(["no", "wait", "observe", "observe"])
# an amount the books allow (the attacker's sandwiches want legs that can run)
LEG_AMOUNT = st.tuples(st.sampled_from(["frac"] * 8 + ["all"]), st.integers(1, 10_000), st.just(1))
AMOUNT = st.tuples(st.sampled_from(["frac"] * 5 + ["all", "over", "zero", "raw"]), st.integers(1, 10_000), st.integers(1, 10**30))

# Aave's scaled balances (rayDiv/rayMul) may move a debt or aToken balance by 1 unit more or less
# than the amount repaid/supplied: NAV may drift by that much on a leg.
AAVE_ROUNDING = 2
BOGUS = "0x000000000000000000000000000000000000dEaD"
BPS = 10_000
MASK192 = (1 << 192) - 1

# what the fuzzer saw, over the whole session (tests/fuzz/conftest.py prints it)
STATS: dict[str, int] = {
    "sequences": 0, "steps": 0, "sandwiches": 0, "sandwiched_legs_ok": 0, "sandwiched_operator_legs_ok": 0,
    "attacker_gain_total_usd6": 0, "attacker_gain_max_sandwich_usd6": -10**30, "attacker_gain_max_sequence_usd6": -10**30,
    "attacker_gain_min_sandwich_usd6": 10**30, "attacker_gain_total_legs_ok_usd6": 0, "attacker_gain_max_legs_ok_usd6": -10**30, "operator_loss_max_usd6": 0, "budget_refusals": 0,
    "loss_events": 0, "sandwich_buy_overpay_max_bps": 0, "loosenings_applied": 0, "loosenings_queued": 0, "revokes": 0,
    "sells_underwater_ratio_not_compared": 0,
    "exit_dry_runs": 0, "exit_prediction_misses": 0, "exit_usdtz_frozen": 0, "exit_collateral_left": 0, "repaid_on_behalf_booked": 0,
    "weth_drained": 0,
}


def event(msg: str) -> None:
    """hypothesis.event, or nothing outside a Hypothesis test (the scenarios drive the machine directly)."""
    try:
        _event(msg)
    except InvalidArgument:
        pass


def _error_names() -> dict[str, str]:
    from dealvault.artifacts import own

    out = {"0x08c379a0": "Error(string)", "0x4e487b71": "Panic"}
    for e in own("IDealVault").abi:
        if e["type"] == "error":
            sig = f"{e['name']}({','.join(i['type'] for i in e['inputs'])})"
            out["0x" + sel(sig).hex()] = e["name"]
    return out


ERROR_NAMES = _error_names()


def error_name(data: str) -> str:
    """The custom error's name (or the Error(string) message) of revert data."""
    if not data or data == "0x":
        return "no data"
    name = ERROR_NAMES.get(data[:10], data[:10])
    if name == "Error(string)":
        try:
            return decode(["string"], bytes.fromhex(data[10:]))[0]
        except Exception:
            return name
    return name


def past_initial(pi: int, value: int, initial: int) -> str:
    """The revert data of a loosening past the constructor's value: LoosenedPastInitial(param,
    value, initial) in the v2 spec (builds before that change said CapAboveCeiling(value, initial))."""
    if "LoosenedPastInitial" in ERROR_NAMES.values():
        return err("LoosenedPastInitial(uint8,uint256,uint256)", pi, value, initial)
    return err("CapAboveCeiling(uint256,uint256)", value, initial)


def pick(spec: tuple[str, int, int], avail: int) -> int:
    mode, bps, raw = spec
    if mode == "zero":
        return 0
    if mode == "all":
        return avail
    if mode == "over":
        return avail + 1 + raw % (avail // 10 + 1)
    if mode == "raw":
        return raw % 10 ** (1 + raw % 25)
    return max(1, avail * bps // 10_000) if avail > 0 else bps


def tdiv(a: int, b: int) -> int:
    """Solidity's signed division (rounds toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


# --- independent risk math (Python ints, from raw reads) -----------------------------------------

def oracle(s: dict) -> tuple[str, int]:
    """(status, answer-or-0) from latestRoundData, the block time and oracleMaxAge: Invalid for an
    answer <= 0 or > 1e16 or an updatedAt in the future; Stale past oracleMaxAge."""
    if s["feed"] is None:
        return "invalid", 0
    ans, upd = s["feed"]
    ts = s["block"][1]
    if ans <= 0 or ans > 10**16 or upd > ts:
        return "invalid", 0
    if ts - upd > s["pm"]["oracleMaxAge"]:
        return "stale", ans
    return "fresh", ans


def coll_wei(s: dict) -> int:
    return sum(min(s[f"coll.{w}"], s[f"abal.{w}"]) for w in ("WETH9", "WETH10") if s[f"coll.{w}"] > 0)


def coll_books(s: dict) -> int:
    return s["coll.WETH9"] + s["coll.WETH10"]


def pool_debt(s: dict) -> int:
    """What the pool is owed: the debt tokens' balances."""
    return s["debt.cUSDT"] + s["debt.cUSDC"]


def scaled_books(s: dict) -> dict[str, int]:
    """The vault's scaled debt books, from its storage word 0 (uint72 scaledDebtT | uint72 scaledDebtC)."""
    w = s["slot0"]
    return {"cUSDT": w & (2**72 - 1), "cUSDC": (w >> 72) & (2**72 - 1)}


def booked_debt(s: dict) -> int:
    """The vault's scaled debt books x the pool's index (a third party's repayment does not lower
    it until the vault books it)."""
    b = scaled_books(s)
    return sum(ray_mul(b[k], s[f"idx.{k}"]) for k in ("cUSDT", "cUSDC") if b[k])


def caps_debt(s: dict) -> int:
    """The debt the caps count: the booked debt + what others repaid (the model's, from the logs).
    There is an LTV only while the booked debt is not 0 (repaidOnBehalf alone is no loan)."""
    return booked_debt(s) + s["m.rob"]


def stable_books(s: dict) -> int:
    return s["stable.cUSDT"] + s["stable.cUSDC"]


def eth_books(s: dict) -> int:
    rv = s["rv"]
    return rv["coreEth"] + rv["workingEth"] + rv["opportunisticEth"]


def nav_e26(s: dict, price: int) -> int:
    return (eth_books(s) + coll_wei(s)) * price + (stable_books(s) + s["rv"]["usdtzCost"] - caps_debt(s)) * 10**20


def spot_x112(env, s: dict, stable: str) -> int:
    r0, r1, _ = s[f"res.{stable}"]
    rz, rs = (r0, r1) if env.usdtz_is0[stable] else (r1, r0)
    return (rs << 112) // rz


def cumulative(env, s: dict, stable: str) -> int:
    """The pair's USDTz price accumulator now (counterfactual since its last update, as the
    Uniswap V2 oracle library computes it)."""
    cum = s[f"cum0.{stable}"] if env.usdtz_is0[stable] else s[f"cum1.{stable}"]
    last = s[f"res.{stable}"][2]
    elapsed = (s["block"][1] - last) % 2**32
    return (cum + spot_x112(env, s, stable) * elapsed) % 2**256


def bal_call(token: str, who: str) -> dict:
    """A simulated balanceOf(who) call."""
    return {"to": token, "data": "0x" + (sel("balanceOf(address)") + bytes(12) + bytes.fromhex(who[2:])).hex()}


def e6(x112: int) -> int:
    return x112 * 10**6 >> 112


WORLD: dict[str, dict] = {}


def world_action(**strategies):
    """Register a move of the outside world (drawn by the single `world` rule)."""
    def deco(fn):
        WORLD[fn.__name__] = strategies
        return fn
    return deco


@dataclass
class Model:
    """The fuzzer's own ledger, kept from independent expectations and the audited logs."""
    params: dict[str, int]
    queued: dict[str, tuple[int, int]] = field(default_factory=dict)  # param -> (value, validAt)
    obs: dict[str, tuple[int, int]] = field(default_factory=dict)  # stable -> (cumulative mod 2**192, ts)
    core: int = 0
    eth_returned: int = 0
    op_loss: int = 0
    rob: int = 0
    owner_repaid: int = 0
    pending_scaled: dict[str, int] = field(default_factory=lambda: {"cUSDT": 0, "cUSDC": 0})


class VaultMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.env = get_env()
        if not hasattr(self.env, "reader"):
            self.env.reader = Reader(self.env)
        self.r = self.env.reader
        self.last: dict | None = None
        self.log: list[str] = []
        self.steps = 0
        self.model = Model(params=dict(self.env.initial))
        self.attacker_gain = 0
        self.exit_checked: object = None

    def teardown(self):
        event(f"legs per sequence: {min(self.steps // 5 * 5, 30)}+")
        # no allowance from the vault to any venue, role or spender, on any token or aToken
        left = {k: v for k, v in self.r.all_allowances().items() if v != 0}
        assert not left, f"the vault left allowances: {left}"
        STATS["sequences"] += 1
        STATS["steps"] += self.steps
        STATS["attacker_gain_max_sequence_usd6"] = max(STATS["attacker_gain_max_sequence_usd6"], self.attacker_gain)
        STATS["operator_loss_max_usd6"] = max(STATS["operator_loss_max_usd6"], self.model.op_loss)

    # --- setup -------------------------------------------------------------------------------
    @initialize(base=st.sampled_from(["split", "positioned", "positioned", "positioned", "underwater", "underwater",
                                      "underwater_tight", "underwater_tight"]))
    def start(self, base):
        reset(self.env)
        self.r.reset_logs()
        e = self.env
        self.model = Model(params={p: e.initial[p] for p in PARAMS}, obs=dict(e.obs0), core=e.core0)
        op = e.roles["operator"]
        if base != "split":
            # supply 200 ETH, borrow 150k cUSDT, buy with 100k of it (the TWAP window passed at the root)
            legs = [e.enc("supply", e.m.weth9, 200 * ETH), e.enc("borrow", e.m.cusdt, 150_000 * USD6)]
            if base != "positioned":
                legs += [e.enc("addCollateral", e.m.weth9, 150 * ETH), e.enc("borrow", e.m.cusdt, 150_000 * USD6)]
            for data in legs:
                e.must(op, data, what="setup leg")
            if base == "positioned":
                e.must(op, e.enc("buy", e.m.cusdt, 100_000 * USD6, 0, FAR), what="setup buy")
            else:
                # the attacker holds USDTz/cUSDT at ~0.90 for a window, the operator buys with
                # 250k there (~0.92 with its own impact), the attacker takes the price down to
                # ~0.88 and holds it for a window: the vault's USDTz is underwater (its sells
                # above the $0.85 floor realize losses), 50k cUSDT stay for more buys
                self._move_pair("cUSDT", 900_000)
                e.must(op, e.enc("observe"), what="observe")
                e.jump(RISK["twapWindow"])
                e.must(op, e.enc("buy", e.m.cusdt, 250_000 * USD6, 0, FAR), what="setup buy")
                self._move_pair("cUSDT", 880_000)
                e.must(op, e.enc("observe"), what="observe")
                e.jump(RISK["twapWindow"])
            if base == "underwater_tight":
                # the owner tightens the loss budget to 2 bps ($600 at the split's $3M): it binds
                e.must(e.roles["owner"], e.enc("setParam", PARAMS.index("maxOperatorLossBps"), 2), what="setParam")
        self.last = None
        self.state()  # ingests the setup's logs
        self.log.append(f"base {base}")

    def _move_pair(self, stable: str, target_e6: int) -> None:
        """The attacker trades the USDTz/stable pair to a spot of ~target_e6."""
        e = self.env
        s = self.read()
        r0, r1, _ = s[f"res.{stable}"]
        rz, rs = (r0, r1) if e.usdtz_is0[stable] else (r1, r0)
        k = rz * rs
        # new reserves at the target price: rs' / rz' = p, rz' * rs' = k
        from math import isqrt
        rs_new = isqrt(k * target_e6 // 10**6)
        if rs_new > rs:
            self._att_swap(e.tokens[stable], e.o.usdtz, (rs_new - rs) * 1000 // 997)
        else:
            rz_new = k // rs_new
            self._att_swap(e.o.usdtz, e.tokens[stable], (rz_new - rz) * 1000 // 997)

    def _att_swap(self, tin: str, tout: str, amount: int) -> int:
        e = self.env
        att = e.roles["attacker"]
        data = e.router.functions.swapExactTokensForTokens(amount, 0, [tin, tout], att, FAR)._encode_transaction_data()
        rc = e.must(att, data, to=e.o.uniswap_router, what="attacker swap")
        return sum(a for *_x, a in transfers(rc, to=att, token=tout))

    # --- reads and the log audit ---------------------------------------------------------------
    def read(self) -> dict:
        s = self.r.read()
        self.ingest(s)
        s["m.rob"] = self.model.rob
        s["m.op_loss"] = self.model.op_loss
        return s

    def state(self) -> dict:
        if self.last is None:
            self.last = self.read()
        return self.last

    def ingest(self, s: dict) -> None:
        """Audit every vault log since the last read, in order, against the model; update it."""
        e, md = self.env, self.model
        tx_cache: dict[str, dict] = {}

        def tx(h: str) -> dict:
            if h not in tx_cache:
                tx_cache[h] = e.call1("eth_getTransactionByHash", [h])
            return tx_cache[h]

        split_value = e.split["splitValue"]
        for lg in s["logs"]:
            d = e.events.decode(lg)
            if d is None:
                continue
            name, a = d
            blk, ts = int(lg["blockNumber"], 16), int(lg["blockTimestamp"], 16)
            here = blk == s["block"][0]
            if name == "OperatorLoss":
                t = tx(lg["transactionHash"])
                assert to_checksum_address(t["from"]) == e.roles["operator"], f"OperatorLoss booked for {t['from']}, not the operator"
                budget = split_value * md.params["maxOperatorLossBps"] // BPS
                assert a["total"] == md.op_loss + a["loss"], f"OperatorLoss total {a['total']} != {md.op_loss} + {a['loss']}"
                assert a["budget"] == budget, f"OperatorLoss budget {a['budget']} != splitValue x bps = {budget}"
                assert a["total"] <= budget, f"operator loss {a['total']} past the budget {budget}"
                assert a["loss"] > 0, "OperatorLoss of 0"
                md.op_loss = a["total"]
                STATS["loss_events"] += 1
            elif name in ("RiskParamSet", "RiskParamQueued", "RiskParamRevoked"):
                t = tx(lg["transactionHash"])
                fn = t["input"][:10]
                p = PARAMS[a["param"]]
                higher = p in HIGHER_IS_TIGHTER
                init = e.initial[p]
                if name == "RiskParamSet":
                    old, new = a["oldValue"], a["newValue"]
                    assert old == md.params[p], f"RiskParamSet({p}) old {old} != model {md.params[p]}"
                    assert FLOOR[p] <= new <= LIMIT[p], f"{p} = {new} outside its hard limits"
                    tighter = new >= old if higher else new <= old
                    if fn == "0x" + sel("setParam(uint8,uint256)").hex():
                        assert tighter, f"setParam loosened {p} {old} -> {new} at once"
                        md.queued.pop(p, None)
                    elif fn == "0x" + sel("acceptParam(uint8)").hex():
                        assert p in md.queued, f"acceptParam set {p} with nothing queued"
                        qv, valid_at = md.queued.pop(p)
                        assert new == qv, f"acceptParam set {p} = {new}, queued {qv}"
                        assert ts >= valid_at, f"acceptParam applied {p} at {ts} < validAt {valid_at}"
                        if not tighter:
                            STATS["loosenings_applied"] += 1
                    else:
                        raise AssertionError(f"RiskParamSet({p}) emitted by {fn}, not setParam/acceptParam")
                    if not tighter:
                        assert (new >= init) if higher else (new <= init), f"{p} loosened past its initial {init}: {new}"
                    md.params[p] = new
                elif name == "RiskParamQueued":
                    assert fn == "0x" + sel("setParam(uint8,uint256)").hex(), f"RiskParamQueued by {fn}"
                    v = a["value"]
                    looser = v < md.params[p] if higher else v > md.params[p]
                    assert looser, f"queued a non-loosening {p} {md.params[p]} -> {v}"
                    assert (v >= init) if higher else (v <= init), f"queued {p} = {v} past its initial {init}"
                    assert a["validAt"] == ts + md.params["loosenDelay"], \
                        f"validAt {a['validAt']} != {ts} + loosenDelay {md.params['loosenDelay']}"
                    md.queued[p] = (v, a["validAt"])
                    STATS["loosenings_queued"] += 1
                else:
                    assert fn == "0x" + sel("revokeParam(uint8)").hex(), f"RiskParamRevoked by {fn}"
                    assert to_checksum_address(a["by"]) in (e.roles["owner"], e.roles["guardian"])
                    assert p in md.queued, f"revoked {p} with nothing queued"
                    md.queued.pop(p)
                    STATS["revokes"] += 1
            elif name == "RepaidOnBehalf":
                st_ = "cUSDT" if to_checksum_address(a["stable"]) == e.m.cusdt else "cUSDC"
                pend = md.pending_scaled[st_]
                assert pend > 0, f"RepaidOnBehalf({st_}, {a['amount']}) but nobody repaid for the vault"
                if here:
                    want = ray_mul(pend, s[f"idx.{st_}"])
                    assert a["amount"] == want, f"RepaidOnBehalf {a['amount']} != scaled {pend} x index = {want}"
                md.pending_scaled[st_] = 0
                md.rob += a["amount"]
                STATS["repaid_on_behalf_booked"] += 1
            elif name == "Observed":
                st_ = "cUSDT" if to_checksum_address(a["stable"]) == e.m.cusdt else "cUSDC"
                assert a["timestamp"] == ts
                if here:
                    assert a["cumulative"] == cumulative(e, s, st_) & MASK192, "Observed cumulative != the pair's"
                md.obs[st_] = (a["cumulative"], ts)
            elif name == "Split":
                raise AssertionError("a second Split")
            elif name == "CollateralSeized":
                raise AssertionError(f"CollateralSeized {a} (nobody liquidates in this fuzzer)")

    # --- helpers -----------------------------------------------------------------------------
    def addr(self, role: str) -> str:
        return self.env.roles[role]

    def tok(self, name: str) -> str:
        return BOGUS if name == "bogus" else self.env.tokens[name]

    def twap_now(self, s: dict, stable: str) -> tuple[int, int, int]:
        """(spot, twap, observedAt) of the pair at state s, from the pair's reserves and
        accumulators and the model's observation (UQ112x112)."""
        cum_obs, t_obs = self.model.obs[stable]
        ts = s["block"][1]
        spot = spot_x112(self.env, s, stable)
        twap = ((cumulative(self.env, s, stable) - cum_obs) & MASK192) // (ts - t_obs) if ts > t_obs else 0
        return spot, twap, t_obs

    def leg(self, name: str, role: str, data: str, value: int = 0, *, risk_adding: bool | None = None) -> dict:
        e, r = self.env, self.r
        sender = self.addr(role)
        before = self.state()
        ts = before["block"][1]  # the leg's block time too (the clock stands still)
        rc = e.send(sender, data, value)
        after = self.read()
        self.last = after
        ok = int(rc["status"], 16) == 1
        reason = "" if ok else e.revert_reason(sender, data, value, ts=ts)
        tag = f"{name} by {role}: {'ok' if ok else 'reverted ' + error_name(reason)}"
        self.log.append(tag)
        event(f"leg {name}: {'ok' if ok else 'reverted ' + error_name(reason)}")
        self.steps += 1
        for token, spender in approvals_by(rc, e.vault_addr):
            if (token, spender) not in r.allowance_keys:
                r.watch(token, spender)
                self.last = after = {**r.read(), "logs": [], "m.rob": self.model.rob, "m.op_loss": self.model.op_loss}

        pb = before["p.phase"]
        if risk_adding is None:
            risk_adding = name in RISK_ADDING

        # --- role, phase, pause, oracle: a leg that may not run must revert ---
        allowed = {
            **{n: {"operator"} for n in OPERATOR_ONLY}, **{n: {"operator", "owner"} for n in OPERATOR_OR_OWNER},
            **{n: {"owner"} for n in OWNER_ONLY}, **{n: {"owner", "guardian"} for n in OWNER_OR_GUARDIAN},
            **{n: set(e.roles) for n in ANYONE},
        }[name]
        if name == "withdrawCollateral" and risk_adding:
            allowed = {"operator", "owner"}
        if role not in allowed:
            assert not ok, f"{tag}: wrong role succeeded"
        if name in MASK and not (1 << pb) & MASK[name]:
            assert not ok, f"{tag}: ran in phase {pb}"
        if name == "withdrawCollateral" and risk_adding and pb == HOLDING:
            assert not ok, f"{tag}: risk-adding withdrawCollateral ran in HOLDING"
        status, price = oracle(before)
        if risk_adding and ok:
            assert not before["p.paused"], f"{tag}: risk-adding leg ran while paused"
            assert status == "fresh", f"{tag}: risk-adding leg ran with a {status} oracle"

        losses = [a for n, a in vault_events(e, rc) if n == "OperatorLoss"]
        if not ok:
            # a reverted leg changed nothing (same block time: nothing accrued either)
            assert fingerprint(before) == fingerprint(after), f"{tag}: reverted leg changed state: {diff(before, after)}"
            if reason[:10] == "0x" + sel("LossBudgetExceeded(uint256,uint256)").hex():
                total, budget = decode(["uint256", "uint256"], bytes.fromhex(reason[10:]))
                assert role == "operator", f"{tag}: the owner's leg refused by the loss budget"
                want = e.split["splitValue"] * self.model.params["maxOperatorLossBps"] // BPS
                assert budget == want and total > budget and total > self.model.op_loss, \
                    f"{tag}: LossBudgetExceeded({total}, {budget}), budget should be {want}"
                STATS["budget_refusals"] += 1
                event("leg refused by the loss budget")
            return {"ok": False, "rc": rc, "before": before, "after": after, "reason": reason, "losses": losses}

        # --- value left only to the owner or a configured venue ---
        for token, _f, to, amount in transfers(rc, frm=e.vault_addr):
            if amount == 0:
                continue
            if to == ZERO:
                assert token in e.burnable, f"{tag}: {token} burned from the vault"
            else:
                assert to in e.allowed_recipients, f"{tag}: {amount} of {token} left the vault to {to}"
        # ETH: conserved among vault, wrappers and the owner (the sender's gas excluded)
        gas = int(rc["gasUsed"], 16) * int(rc["effectiveGasPrice"], 16)
        d_owner = after["eth.owner"] - before["eth.owner"] + (gas + value if role == "owner" else 0)
        d = (after["eth.vault"] - before["eth.vault"]) + (after["eth.weth9"] - before["eth.weth9"]) \
            + (after["eth.weth10"] - before["eth.weth10"]) + d_owner - (value if role == "owner" else 0)
        assert d == 0, f"{tag}: ETH left the vault/wrappers/owner circle: {d}"

        # --- the loss budget: only operator legs book a loss, and only the legs that realize one ---
        if losses:
            assert role == "operator", f"{tag}: the owner's leg booked an operator loss"
            assert name in LOSS_LEGS, f"{tag}: booked an operator loss"
            assert all(a["leg"] == LEG_ENUM[name[0].upper() + name[1:]] for a in losses), f"{tag}: OperatorLoss leg id"
        loss = sum(a["loss"] for a in losses)
        # an operator leg never lowers NAV (at the feed's price) by more than the loss it books
        if role == "operator":
            drop = nav_e26(before, price) - nav_e26(after, price)
            assert drop <= loss * 10**20 + (AAVE_ROUNDING + 1) * 10**20, \
                f"{tag}: operator leg lowered NAV by {drop / 1e26:.6f} USD but booked a loss of {loss / 1e6:.6f}"

        db, da = pool_debt(before), pool_debt(after)
        cdb, cda = caps_debt(before), caps_debt(after)
        cb, ca = coll_wei(before), coll_wei(after)
        _, price_a = oracle(after)
        if risk_adding:
            if booked_debt(after) > 0:
                cap = after["pm"]["maxLtvBps"]
                assert cda * 10**20 * 10_000 <= cap * ca * price_a, f"{tag}: LTV above cap (books/oracle)"
                g = after["gua"]
                assert g is not None and g[1] * 10_000 <= cap * g[0], f"{tag}: LTV above cap (pool)"
            u = after["rv"]["usdtzHeld"]
            if u > 0:
                nav = nav_e26(after, price_a)
                assert nav > 0 and u * 10**20 * 10_000 <= after["pm"]["maxExposureBps"] * nav, \
                    f"{tag}: exposure above cap: {ceil_div(u * 10**24, nav) if nav > 0 else 'inf'} bps"
        elif name in RISK_REDUCING or name == "withdrawCollateral":
            assert da <= db, f"{tag}: risk-reducing leg raised the pool debt {db} -> {da}"
            assert cda <= cdb + AAVE_ROUNDING, f"{tag}: risk-reducing leg raised the caps' debt {cdb} -> {cda}"
            assert da * cb <= db * ca, f"{tag}: risk-reducing leg raised LTV"
            ub, ua = before["rv"]["usdtzHeld"], after["rv"]["usdtzHeld"]
            ref_is_feed = status == "fresh" or (status == "stale" and role == "operator")
            if name == "deleverage" and ua > 0 and ref_is_feed:
                # deleverage sells collateral below the oracle: NAV drops by at most the slippage allowance
                coll_sold = cb - ca
                nav_loss = nav_e26(before, price) - nav_e26(after, price)
                assert nav_loss <= coll_sold * price * before["pm"]["maxSlippageBps"] // 10_000 + AAVE_ROUNDING * 10**20, \
                    f"{tag}: deleverage lost more NAV than the slippage allowance: {nav_loss}"
            elif name not in ("close", "deleverage") and ua > 0:
                nb, na = nav_e26(before, price), nav_e26(after, price)
                sold = ub - ua
                if name == "sell" and sold > 0 and nb * sold < ub * (nb - na):
                    # Selling x of the USDTz held ub at a loss d = nb - na (below its cost; do_sell checks
                    # the floor) raises the ratio ua / na exactly when nb * x < ub * d, and takes NAV to
                    # <= 0 when d >= nb: arithmetic of a deeply underwater vault (make fuzz-harness,
                    # session 8: an owner's sell at exposure 4,231% with the feed at 0), not added risk.
                    event("sell by a vault whose NAV is below its USDTz's loss: ratio not compared")
                    STATS["sells_underwater_ratio_not_compared"] += 1
                elif na <= 0:
                    assert nb <= 0, f"{tag}: risk-reducing leg made NAV <= 0 with USDTz held"
                elif nb > 0:
                    # NAV may lose AAVE_ROUNDING 6-dp units to the pool's scaled-balance rounding
                    event(f"exposure checked on {name}")
                    assert ua * nb <= ub * (na + AAVE_ROUNDING * 10**20), (f"{tag}: risk-reducing leg raised exposure "
                                                f"{ceil_div(ub * 10**24, nb)} -> {ceil_div(ua * 10**24, na)} bps")
        return {"ok": True, "rc": rc, "before": before, "after": after, "reason": "", "losses": losses, "loss": loss}

    def check_loss(self, res: dict, role: str, expected: int, what: str) -> None:
        """The operator loss the leg booked equals the one recomputed from raw deltas."""
        if not res["ok"]:
            return
        want = expected if role == "operator" and expected > 0 else 0
        assert res["loss"] == want, f"{what}: booked an operator loss of {res['loss']}, recomputed {want}"

    # --- legs ----------------------------------------------------------------------------------
    @rule(role=ROLE, w=WRAPPER, a=AMOUNT)
    def supply(self, role, w, a):
        s = self.state()
        self.leg("supply", role, self.env.enc("supply", self.tok(w), pick(a, s["rv"]["workingEth"])))

    @rule(role=ROLE, stable=STABLE, a=AMOUNT)
    def borrow(self, role, stable, a):
        s = self.state()
        _, price = oracle(s)
        room = max(s["pm"]["maxLtvBps"] * coll_wei(s) * price // 10**24 - caps_debt(s), 0)
        amount = pick(a, room)
        res = self.leg("borrow", role, self.env.enc("borrow", self.tok(stable), amount))
        if res["ok"]:
            b, af = res["before"], res["after"]
            arrived = af[f"bal.{stable}"] - b[f"bal.{stable}"]
            assert af[f"stable.{stable}"] - b[f"stable.{stable}"] == arrived, "borrow: books != what arrived"
            self.check_loss(res, role, amount - arrived, "borrow")

    @rule(role=ROLE, stable=STABLE, a=AMOUNT, stale_deadline=st.booleans(), min_out=st.sampled_from([0, 0, 0, 1, 10**30]),
          ready=READY)
    def buy(self, role, stable, a, stale_deadline, min_out, ready):
        self.prepare_twap(stable, ready)
        s = self.state()
        avail = s.get(f"stable.{stable}", 0)
        deadline = s["block"][1] - 1 if stale_deadline and min_out == 1 else FAR
        self.do_buy(role, stable, pick(a, avail), min_out, deadline)

    def prepare_twap(self, stable: str, mode: str) -> None:
        """Before a buy or a sell: nothing, wait until the observation is twapWindow old, or a
        new observation by the operator and a wait of twapWindow (the operator script's way)."""
        if stable == "bogus" or mode == "no":
            return
        if mode == "observe":
            res = self.leg("observe", "operator", self.env.enc("observe"))
            if not res["ok"]:
                return
        self.wait_twap(stable)

    def wait_twap(self, stable: str) -> None:
        """Let the stable's observation reach twapWindow (the lens's readyAt, checked against the model)."""
        s = self.state()
        ready_at = self.model.obs[stable][1] + s["pm"]["twapWindow"]  # = the lens's readyAt (checked)
        if ready_at > s["block"][1]:
            self.env.jump(ready_at - s["block"][1])
            self.last = None

    def do_buy(self, role, stable, amount, min_out, deadline) -> dict:
        res = self.leg("buy", role, self.env.enc("buy", self.tok(stable), amount, min_out, deadline))
        if res["ok"]:
            b, af = res["before"], res["after"]
            spot, twap, t_obs = self.twap_now(b, stable)
            slip = b["pm"]["maxSlippageBps"]
            assert b["block"][1] >= t_obs + b["pm"]["twapWindow"], "buy: used an observation younger than twapWindow"
            assert spot * BPS <= twap * (BPS + slip), f"buy: spot {e6(spot)} above TWAP {e6(twap)} x (1 + {slip} bps)"
            got = af["bal.USDTz"] - b["bal.USDTz"]
            limit = (BPS - b["pm"]["minDiscountBps"]) * 100
            assert amount * 10**6 <= limit * got, f"buy: paid {amount} for {got} USDTz, above the limit {limit}"
            assert got >= min_out
            assert af["rv"]["usdtzHeld"] - b["rv"]["usdtzHeld"] == got, "buy: USDTz books != USDTz received"
            assert af["rv"]["usdtzCost"] - b["rv"]["usdtzCost"] == amount, "buy: cost basis != stable paid"
            assert b[f"bal.{stable}"] - af[f"bal.{stable}"] == amount
        return res

    @rule(role=ROLE, stable=STABLE, a=AMOUNT)
    def redeem(self, role, stable, a):
        s = self.state()
        rv = s["rv"]
        size = s["pm"]["rungs"][min(rv["rung"], 2)]
        amount = pick(a, min(rv["usdtzHeld"], size))
        res = self.leg("redeem", role, self.env.enc("redeem", self.tok(stable), amount))
        if not res["ok"]:
            return
        b, af, rc = res["before"], res["after"], res["rc"]
        held, cost = b["rv"]["usdtzHeld"], b["rv"]["usdtzCost"]
        assert amount >= b["pm"]["minTranche"] or amount == held, "redeem: a tranche below minTranche ran"
        # books follow what moved (success or failure)
        dz = b["bal.USDTz"] - af["bal.USDTz"]
        assert b["rv"]["usdtzHeld"] - af["rv"]["usdtzHeld"] == dz, "redeem: USDTz books != USDTz delivered"
        ds = af[f"bal.{stable}"] - b[f"bal.{stable}"]
        assert af[f"stable.{stable}"] - b[f"stable.{stable}"] == ds, "redeem: stable books != stable received"
        cost_out = cost if dz >= held else ceil_div(cost * dz, held)
        assert b["rv"]["usdtzCost"] - af["rv"]["usdtzCost"] == cost_out, "redeem: cost basis out != average cost"
        self.check_loss(res, role, cost_out - ds, "redeem")
        if any(n == "RedemptionFailed" for n, _a in vault_events(self.env, rc)):
            assert af["p.phase"] == HOLDING and af["rv"]["rung"] == 0 and af["rv"]["rungProgress"] == 0
            if dz == 0 and ds == 0:
                # a failed redemption changed only the phase, the ladder position and the failure record
                keep = ("phase", "phaseBeforeHolding", "rung", "rungProgress", "legSeq")
                fb, fa = fingerprint(b, keep), fingerprint(af, keep)
                fb.pop("p.phase"), fa.pop("p.phase")
                assert fb == fa, f"failed redemption changed more: {diff(b, af)}"
        else:
            fee_ok = ds * 10_000 >= amount * (10_000 - b["pm"]["maxDeskFeeBps"])
            assert fee_ok and dz == amount, f"redeem succeeded but paid {ds} for {dz} (amount {amount})"

    @rule(role=ROLE, stable=STABLE, a=AMOUNT, min_out=st.sampled_from([0, 0, 0, 10**30]), ready=READY)
    def sell(self, role, stable, a, min_out, ready):
        self.prepare_twap(stable, ready)
        s = self.state()
        self.do_sell(role, stable, pick(a, s["rv"]["usdtzHeld"]), min_out)

    def do_sell(self, role, stable, amount, min_out) -> dict:
        res = self.leg("sell", role, self.env.enc("sell", self.tok(stable), amount, min_out, FAR))
        if res["ok"]:
            b, af = res["before"], res["after"]
            held, cost = b["rv"]["usdtzHeld"], b["rv"]["usdtzCost"]
            cost_out = cost if amount >= held else ceil_div(cost * amount, held)
            received = af[f"bal.{stable}"] - b[f"bal.{stable}"]
            assert received * 10**6 >= b["pm"]["sellFloorPrice"] * amount, "sell: below the floor"
            assert received >= min_out
            assert af[f"stable.{stable}"] - b[f"stable.{stable}"] == received, "sell: stable books != received"
            assert (af["rv"]["usdtzHeld"], af["rv"]["usdtzCost"]) == (held - amount, cost - cost_out), "sell: USDTz books"
            if role == "operator":
                spot, twap, t_obs = self.twap_now(b, stable)
                slip = b["pm"]["maxSlippageBps"]
                assert b["block"][1] >= t_obs + b["pm"]["twapWindow"], "operator sell: observation younger than twapWindow"
                assert spot * BPS >= twap * (BPS - slip), f"operator sell: spot {e6(spot)} below TWAP {e6(twap)} x (1 - {slip} bps)"
            self.check_loss(res, role, cost_out - received, "sell")
        return res

    @rule(role=ROLE, stable=STABLE, a=AMOUNT, use_max=st.booleans())
    def repay(self, role, stable, a, use_max):
        s = self.state()
        amount = MAX_UINT if use_max else pick(a, s.get(f"stable.{stable}", 0))
        self.leg("repay", role, self.env.enc("repay", self.tok(stable), amount))

    @rule(role=OWNER_ROLE, stable=STABLE, a=AMOUNT)
    def owner_repay(self, role, stable, a):
        """The owner repays with its own stablecoin (funded and approved to the vault at setup):
        the vault pulls the amount asked, repays at most the debt and sends the rest back."""
        s = self.state()
        amount = pick(a, s.get(f"debt.{stable}", 0))
        res = self.leg("ownerRepay", role, self.env.enc("ownerRepay", self.tok(stable), amount))
        if res["ok"]:
            b, af = res["before"], res["after"]
            paid = b[f"own.{stable}"] - af[f"own.{stable}"]
            assert 0 < paid <= max(amount, 0) and paid <= b[f"debt.{stable}"], f"ownerRepay: the owner paid {paid}"
            assert b[f"debt.{stable}"] - af[f"debt.{stable}"] in range(paid - AAVE_ROUNDING, paid + AAVE_ROUNDING + 1)
            assert af[f"stable.{stable}"] == b[f"stable.{stable}"], "ownerRepay moved the stable books"
            self.model.owner_repaid += paid

    @rule(role=ROLE, w=WRAPPER, a=AMOUNT)
    def add_collateral(self, role, w, a):
        s = self.state()
        self.leg("addCollateral", role, self.env.enc("addCollateral", self.tok(w), pick(a, s["rv"]["opportunisticEth"])))

    @rule(role=ROLE, w=WRAPPER, a=AMOUNT)
    def withdraw_collateral(self, role, w, a):
        s = self.state()
        self.leg("withdrawCollateral", role, self.env.enc("withdrawCollateral", self.tok(w), pick(a, s.get(f"coll.{w}", 0))),
                 risk_adding=pool_debt(s) > 0)

    @rule(role=ROLE, w=WRAPPER, stable=STABLE, a=AMOUNT, min_out=st.sampled_from([0, 0, 0, 10**30]), size=st.booleans())
    def deleverage(self, role, w, stable, a, min_out, size):
        s = self.state()
        self.do_deleverage(role, w, stable, pick(a, self.deleverage_room(s, w, stable, role) if size else s.get(f"coll.{w}", 0)),
                           min_out)

    def ref_price(self, s: dict, role: str) -> int | None:
        status, ans = oracle(s)
        if status == "fresh":
            return ans
        if role == "owner":
            return s["pm"]["ethFloorPrice"]
        return ans if status == "stale" else None

    def deleverage_room(self, s: dict, w: str, stable: str, role: str) -> int:
        """The most collateral a deleverage may sell: bound <= the stable's debt x 1.01."""
        if w == "bogus" or stable == "bogus":
            return 0
        px = self.ref_price(s, role if role in ("owner", "operator") else "operator")
        if not px:
            return s.get(f"coll.{w}", 0)
        debt_s = s[f"debt.{stable}"]
        slip = s["pm"]["maxSlippageBps"]
        # value x (1 - slip) <= debt x 1.01  <=>  amount <= debt x 10_100 x 1e20 / (px x (10_000 - slip))
        return min(s[f"coll.{w}"], debt_s * 10_100 * 10**20 // (px * (BPS - slip)) if slip < BPS else 0)

    def do_deleverage(self, role, w, stable, amount, min_out) -> dict:
        e = self.env
        res = self.leg("deleverage", role, e.enc("deleverage", self.tok(w), self.tok(stable), amount, min_out, FAR))
        b = res["before"]
        status, _ = oracle(b)
        if res["ok"]:
            assert not (role == "operator" and status == "invalid"), "operator deleverage ran with an invalid oracle"
            af, rc = res["after"], res["rc"]
            px = self.ref_price(b, role)
            value = amount * px // 10**20
            slip = b["pm"]["maxSlippageBps"]
            bound = value * (BPS - slip) // BPS
            received = sum(x[3] for x in transfers(rc, frm=e.weth_pairs[stable], to=e.vault_addr, token=e.tokens[stable]))
            assert received >= max(bound, min_out), f"deleverage received {received} < bound {bound} (price {px})"
            # no more collateral than the debt needs: value x (1 - slippage) <= debt x (1 + 1% margin)
            assert value * (BPS - slip) <= b[f"debt.{stable}"] * (BPS + 100), \
                f"deleverage sold collateral worth {bound} for a debt of {b[f'debt.{stable}']}"
            assert b[f"coll.{w}"] - af[f"coll.{w}"] == amount
            self.check_loss(res, role, value - received, "deleverage")
        elif role == "operator" and status == "invalid" and res["reason"][:10] not in ("", "0x"):
            event("operator deleverage refused: oracle invalid")
        return res

    @rule(role=ROLE, really=st.integers(0, 3))
    def close(self, role, really):
        # a close ends the sequence (every later leg reverts): 3 in 4 attempts come from a stranger
        role = role if really == 0 else "stranger"
        e = self.env
        res = self.leg("close", role, e.enc("close"))
        if not res["ok"]:
            return
        b, af, rc = res["before"], res["after"], res["rc"]
        assert pool_debt(b) == 0, "closed with debt"
        assert af["p.phase"] == CLOSED
        assert af["rv"]["coreEth"] == b["rv"]["coreEth"] == self.model.core, "close moved the core"
        # collateral: what the reserve can pay now is withdrawn, the rest stays booked
        left = 0
        for w in ("WETH9", "WETH10"):
            booked, abal, liq = b[f"coll.{w}"], b[f"abal.{w}"], b[f"liq.{w}"]
            payable = min(abal, liq)
            want = 0 if booked == 0 or payable == abal else booked - min(payable, booked) if payable > 0 else booked
            assert af[f"coll.{w}"] == want, f"close left {af[f'coll.{w}']} of {w} booked, expected {want}"
            left += want
        if left:
            STATS["exit_collateral_left"] += 1
        closed = [a for n, a in vault_events(e, rc) if n == "Closed"]
        assert len(closed) == 1
        c = closed[0]
        status, price = oracle(b)
        pnl_eth = eth_books(b) + coll_books(b) + self.model.eth_returned - b["rv"]["fundedCapital"]
        stable = stable_books(b)
        pnl_usd = tdiv(pnl_eth * price, 10**18) + (stable - self.model.owner_repaid - af["m.rob"]) * 100
        assert (c["realizedPnlEth"], c["realizedPnlUsd"]) == (pnl_eth, pnl_usd), f"Closed pnl {c} vs ({pnl_eth}, {pnl_usd})"
        assert (c["stableSurplus"], c["writtenOffUsdtz"], c["collateralLeft"]) == (stable, b["rv"]["usdtzCost"], left)
        assert c["oracleStatus"] == ["fresh", "stale", "invalid"].index(status)
        self.check_loss(res, role, b["rv"]["usdtzCost"], "close")

    @rule(which=st.sampled_from(["hold", "resume", "pause", "unpause", "hold", "resume", "unpause", "observe", "observe"]),
          g=GUARD_ROLE, o=OWNER_ROLE, r=ROLE, wait=st.booleans())
    def admin(self, which, g, o, r, wait):
        """hold / resume / pause / unpause / observe (+ wait the TWAP window) in one rule."""
        if which == "observe":
            res = self.leg("observe", r, self.env.enc("observe"))
            if res["ok"]:
                ts = res["before"]["block"][1]
                assert all(self.model.obs[k][1] == ts for k in ("cUSDT", "cUSDC")), "observe: no new observation"
                assert not [n for n, _a in vault_events(self.env, res["rc"]) if n == "LegCompleted"], "observe is not a leg"
                if wait:
                    self.env.jump(res["after"]["pm"]["twapWindow"])
                    self.last = None
            return
        getattr(self, "do_" + which)(g if which in ("hold", "pause") else o)

    def do_hold(self, role):
        res = self.leg("hold", role, self.env.enc("hold"))
        if res["ok"]:
            assert res["after"]["p.phase"] == HOLDING and res["after"]["rv"]["phaseBeforeHolding"] == res["before"]["p.phase"]

    def do_resume(self, role):
        res = self.leg("resume", role, self.env.enc("resume"))
        if res["ok"]:
            assert res["after"]["p.phase"] == res["before"]["rv"]["phaseBeforeHolding"]

    def do_pause(self, role):
        self.leg("pause", role, self.env.enc("pause"))

    def do_unpause(self, role):
        self.leg("unpause", role, self.env.enc("unpause"))

    @rule(role=OWNER_ROLE, what=st.sampled_from(["ETH", "ETH", "cUSDT", "USDTz", "WETH9", "aWETH9"]), a=AMOUNT,
          idle=st.booleans())
    def withdraw(self, role, what, a, idle):
        """Owner's withdraw: surplus before CLOSED; in HOLDING also the idle ETH buckets
        (opportunistic, then working, then core); anything after CLOSED."""
        s = self.state()
        e = self.env
        phase = s["p.phase"]
        if what == "ETH":
            token, bal, books = ZERO, s["eth.vault"], eth_books(s)
        elif what == "aWETH9":
            token, bal, books = e.a_tokens["WETH9"], s["abal.WETH9"], s["coll.WETH9"]
        else:
            token, bal = e.tokens[what], s[f"bal.{what}"]
            books = s["rv"]["usdtzHeld"] if what == "USDTz" else s.get(f"stable.{what}", 0)
        surplus = max(bal - books, 0) if phase != CLOSED else bal
        avail = bal if (idle and what == "ETH" and phase == HOLDING) else surplus
        amount = pick(a, avail)
        res = self.leg("withdraw", role, e.enc("withdraw", token, amount))
        if not res["ok"]:
            return
        b, af = res["before"], res["after"]
        assert phase == CLOSED or what != "aWETH9" or amount == 0, "aTokens withdrawn before CLOSED"
        # before CLOSED only the surplus (and in HOLDING the ETH buckets); after CLOSED the surplus
        # goes first and the books are written down to what is left
        from_books = max(amount - surplus, 0) if phase != CLOSED else max(books - (bal - amount), 0)
        assert phase in (HOLDING, CLOSED) or from_books == 0, "withdrew booked value outside HOLDING"
        wd = [x for n, x in vault_events(e, res["rc"]) if n == "Withdrawn"]
        assert wd and wd[0]["fromBooks"] == from_books and wd[0]["amount"] == amount
        if from_books and what != "ETH":
            after_books = {"aWETH9": af["coll.WETH9"], "USDTz": af["rv"]["usdtzHeld"]}.get(
                what, af.get(f"stable.{what}", 0))
            assert after_books == books - from_books == min(books, bal - amount), "withdraw after CLOSED: books"
        elif from_books:
            rv = b["rv"]
            f_opp = min(from_books, rv["opportunisticEth"])
            f_work = min(from_books - f_opp, rv["workingEth"])
            f_core = from_books - f_opp - f_work
            assert (af["rv"]["opportunisticEth"], af["rv"]["workingEth"], af["rv"]["coreEth"]) == \
                (rv["opportunisticEth"] - f_opp, rv["workingEth"] - f_work, rv["coreEth"] - f_core), "withdraw: bucket order"
            self.model.core -= f_core
            self.model.eth_returned += from_books

    @rule(role=ROLE, again=st.booleans())
    def fund_or_split_again(self, role, again):
        if again:
            self.leg("split", role, self.env.enc("split"))
        else:
            self.leg("fund", "owner" if role == "operator" else role, self.env.enc("fund"), value=ETH)

    # --- parameters: the timelock --------------------------------------------------------------
    @rule(plan=st.sampled_from(["set", "set", "accept", "revoke", "cycle", "cycle", "cycle"]),
          p=st.sampled_from(PARAMS + ["maxOperatorLossBps"] * 3 + ["maxSlippageBps", "twapWindow", "sellFloorPrice"]),
          how=st.sampled_from(["tight", "tight", "loose", "loose", "initial", "same", "past_initial", "past_limit", "under_floor"]),
          frac=st.integers(1, 10_000), owner_role=OWNER_ROLE, guard_role=GUARD_ROLE, anyone=ANY_ROLE, wait=st.booleans(),
          then=st.sampled_from(["accept_early", "accept_after", "accept_after", "revoke", "revoke", "tighten", "leave"]))
    def params(self, plan, p, how, frac, owner_role, guard_role, anyone, wait, then):
        """One parameter call (`set` / `accept` / `revoke`), or a `cycle`: the owner tightens p,
        queues a loosening back toward its initial value, then: an early acceptParam
        (QueuedUntil), an acceptParam by anyone once validAt is reached, a revokeParam by the
        owner or the guardian, a new tightening (drops the queue), or nothing."""
        if plan == "set":
            return self.param_step("set", p, how, frac, owner_role, wait)
        if plan == "accept":
            return self.param_step("accept", p, how, frac, anyone, wait)
        if plan == "revoke":
            return self.param_step("revoke", p, how, frac, guard_role, wait)
        self.param_step("set", p, "tight", frac, "owner", False)
        self.param_step("set", p, "initial" if how == "initial" else "loose", frac, "owner", False)
        if then.startswith("accept"):
            self.param_step("accept", p, how, frac, anyone, then == "accept_after")
        elif then == "revoke":
            self.param_step("revoke", p, how, frac, guard_role if guard_role in ("owner", "guardian") else "guardian", False)
        elif then == "tighten":
            self.param_step("set", p, "tight", frac, "owner", False)

    def param_step(self, op, p, how, frac, role, wait):
        """setParam (tighten at once / queue a loosening), acceptParam (after the delay, anyone),
        revokeParam (owner or guardian); the outcome and its error predicted independently."""
        e, md = self.env, self.model
        pi = PARAMS.index(p)
        higher = p in HIGHER_IS_TIGHTER
        cur, init, lim, flo = md.params[p], e.initial[p], LIMIT[p], FLOOR[p]
        if op == "set":
            step = lambda span: max(1, span * frac // BPS)  # noqa: E731
            if how == "tight":
                value = min(cur + step(lim - cur), lim) if higher else max(cur - step(cur - flo), flo)
            elif how == "loose":
                value = cur - step(cur - init) if higher else cur + step(init - cur)
            elif how == "initial":
                value = init
            elif how == "same":
                value = cur
            elif how == "past_initial":
                value = init - 1 if higher else init + 1
            elif how == "past_limit":
                value = lim + 1
            else:
                value = flo - 1 if flo > 0 else 0
            s = self.state()
            ts = s["block"][1]
            if role != "owner":
                want = ("err", err("NotOwner(address)", self.addr(role)))
            elif value > lim:
                want = ("err", err("CapAboveCeiling(uint256,uint256)", value, lim))
            elif value < flo:
                want = ("err", err("ParamInvalid(uint8,uint256)", pi, value))
            elif (value >= cur) if higher else (value <= cur):
                want = ("set", value)
            elif (value < init) if higher else (value > init):
                want = ("err", past_initial(pi, value, init))
            else:
                want = ("queued", (value, ts + md.params["loosenDelay"]))
            res = self.leg("setParam", role, e.enc("setParam", pi, value))
        elif op == "accept":
            q = md.queued.get(p)
            if wait and q:
                now = self.state()["block"][1]
                if q[1] > now:
                    e.jump(q[1] - now)
                    self.last = None
            ts = self.state()["block"][1]
            if q is None:
                want = ("err", err("NothingQueued(uint8)", pi))
            elif ts < q[1]:
                want = ("err", err("QueuedUntil(uint8,uint256)", pi, q[1]))
            else:
                want = ("set", q[0])
            res = self.leg("acceptParam", role, e.enc("acceptParam", pi))
        else:
            if role not in ("owner", "guardian"):
                want = ("err", err("NotGuardian(address)", self.addr(role)))
            elif p not in md.queued:
                want = ("err", err("NothingQueued(uint8)", pi))
            else:
                want = ("revoked", None)
            res = self.leg("revokeParam", role, e.enc("revokeParam", pi))
        kind, arg = want
        event(f"param {op}: {kind}")
        if kind == "err":
            assert not res["ok"] and res["reason"] == arg, f"{op} {p}: expected revert {arg}, got {res['ok']} {res['reason']}"
            return
        assert res["ok"], f"{op} {p} ({how}): expected {kind}, reverted {res['reason']}"
        pm, q = res["after"]["pm"], md.queued
        if kind == "set":
            assert pm[p] == arg and p not in q, f"{op} {p}: params {pm[p]} != {arg}"
        elif kind == "queued":
            assert pm[p] == cur and q.get(p) == arg, f"setParam {p}: queued {q.get(p)} != {arg}"
        else:
            assert p not in q

    # --- the attacker ----------------------------------------------------------------------------
    @rule(kind=st.sampled_from(["buy", "buy", "sell", "sell", "deleverage", "deleverage"]),
          role=st.sampled_from(["operator"] * 4 + ["owner"]), stable=st.sampled_from(["cUSDT", "cUSDT", "cUSDC"]),
          w=st.sampled_from(["WETH9", "WETH9", "WETH10"]),
          push=st.sampled_from([5, 10, 20, 30, 50, 100, 300, 1_000, 5_000]), reverse=st.booleans(),
          gap=st.sampled_from([0, 0, 0, 1, "window", "10window"]), a=LEG_AMOUNT,
          ready=st.sampled_from(["observe", "observe", "wait", "no"]))
    def sandwich(self, kind, role, stable, w, push, reverse, gap, a, ready):
        """The attacker trades the pair the leg uses before it (pump before a buy, dump before a
        sell or a deleverage; `reverse` the other way), the leg runs, the attacker trades back all
        it got. gap 0: the three in one block time (same-block sandwich); else time passes between
        the front-run and the leg. The attacker's gain is valued at the pre-trade spot (USDTz),
        par (stablecoins) and the feed (WETH)."""
        e = self.env
        if kind in ("buy", "sell"):
            self.prepare_twap(stable, ready)
        s = self.state()
        usdtz, stab, weth = e.o.usdtz, e.tokens[stable], e.m.weth9
        if kind == "buy":
            tin, tout = (stab, usdtz) if not reverse else (usdtz, stab)
        elif kind == "sell":
            tin, tout = (usdtz, stab) if not reverse else (stab, usdtz)
        else:
            tin, tout = (weth, stab) if not reverse else (stab, weth)
        if kind == "deleverage":
            pair_reserves = self.env.o.pair_contract(e.w3, e.weth_pairs[stable]).functions.getReserves().call()
            t0 = self.env.o.pair_contract(e.w3, e.weth_pairs[stable]).functions.token0().call()
            r_in = pair_reserves[0] if to_checksum_address(t0) == to_checksum_address(tin) else pair_reserves[1]
        else:
            r0, r1, _ = s[f"res.{stable}"]
            rz, rs = (r0, r1) if e.usdtz_is0[stable] else (r1, r0)
            r_in = rz if tin == usdtz else rs
        amount_in = max(r_in * push // BPS, 1)
        spot0 = spot_x112(e, s, stable)
        ans = s["feed"][0] if s["feed"] else 0
        feed_px = ans if 0 < ans <= 10**16 else e.split["price"]  # WETH at the feed (or the split's price)
        got = self._att_swap(tin, tout, amount_in)
        if gap:
            e.jump({"window": s["pm"]["twapWindow"], "10window": 10 * s["pm"]["twapWindow"]}.get(gap, gap))
        self.last = None
        s1 = self.state()
        if kind == "buy":
            res = self.do_buy(role, stable, pick(a, s1[f"stable.{stable}"]), 0, FAR)
        elif kind == "sell":
            res = self.do_sell(role, stable, pick(a, s1["rv"]["usdtzHeld"]), 0)
        else:
            res = self.do_deleverage(role, w, stable, pick(a, self.deleverage_room(s1, w, stable, role)), 0)
        back = self._att_swap(tout, tin, got)
        self.last = None
        gain = back - amount_in  # in tin's units; the attacker holds none of tout left from this
        gain_usd6 = gain * feed_px // 10**20 if tin == weth else gain * e6(spot0) // 10**6 if tin == usdtz else gain
        self.attacker_gain += gain_usd6
        STATS["sandwiches"] += 1
        STATS["attacker_gain_total_usd6"] += gain_usd6
        STATS["attacker_gain_max_sandwich_usd6"] = max(STATS["attacker_gain_max_sandwich_usd6"], gain_usd6)
        STATS["attacker_gain_min_sandwich_usd6"] = min(STATS["attacker_gain_min_sandwich_usd6"], gain_usd6)
        if res["ok"] and kind == "buy" and role == "operator":
            # what the vault paid against the pair's spot before the attacker's trade
            paid, got_z = res["before"][f"bal.{stable}"] - res["after"][f"bal.{stable}"], \
                res["after"]["bal.USDTz"] - res["before"]["bal.USDTz"]
            over = paid * 10**6 * BPS // (got_z * e6(spot0)) - BPS if got_z and e6(spot0) else 0
            STATS["sandwich_buy_overpay_max_bps"] = max(STATS["sandwich_buy_overpay_max_bps"], over)
        if res["ok"]:
            STATS["attacker_gain_total_legs_ok_usd6"] += gain_usd6
            STATS["attacker_gain_max_legs_ok_usd6"] = max(STATS["attacker_gain_max_legs_ok_usd6"], gain_usd6)
            STATS["sandwiched_legs_ok"] += 1
            if role == "operator":
                STATS["sandwiched_operator_legs_ok"] += 1
        event(f"sandwich {kind} by {role}: leg {'ok' if res['ok'] else 'refused'}, attacker "
              f"{'gained' if gain_usd6 > 0 else 'lost'}")
        self.log.append(f"attacker {kind} push {push} bps gap {gap}: gain {gain_usd6 / 1e6:.2f} USD")

    # --- the world moves -----------------------------------------------------------------------
    # (the kit's roles act by one auto-impersonated transaction each: the same calls as
    # dealvault.kit.mirror / dealvault.kit.overlay's helpers, without their impersonation round trips)
    def _feed_round(self, answer: int, updated_at: int | None) -> None:
        e = self.env
        f = mir.feed(e.w3, e.m.eth_usd_feed).functions
        fn = f.setAnswer(answer) if updated_at is None else f.setRound(answer, updated_at)
        e.must(e.m.feed_owner, fn._encode_transaction_data(), to=e.m.eth_usd_feed, what="feed round")
        self.last = None

    @world_action(usd=st.one_of(st.integers(500, 8_000).map(lambda x: x * 10**8), st.sampled_from([0, -1, 10**17, 2_999 * 10**8])))
    def price_move(self, usd):
        self._feed_round(usd, None)
        self.log.append(f"price {usd}")

    @world_action(age=st.integers(3_601, 10 * 86_400))
    def feed_stale(self, age):
        """The latest round's answer again, updated `age` seconds ago."""
        s = self.state()
        self._feed_round(s["feed"][0], max(s["block"][1] - age, 1))
        self.log.append(f"stale {age}")

    @world_action(ahead=st.sampled_from([1, 60, 3_600, 86_400]))
    def feed_future(self, ahead):
        """A round whose updatedAt is ahead of the chain's clock: Invalid until the clock gets there."""
        s = self.state()
        self._feed_round(s["feed"][0], s["block"][1] + ahead)
        self.log.append(f"feed updatedAt now+{ahead}")

    @world_action(frozen=st.booleans())
    def usdtz_freeze(self, frozen):
        """The issuer blacklists (or clears) the vault on USDTz."""
        e = self.env
        c = e.o.usdtz_contract(e.w3).functions
        fn = c.blacklist(e.vault_addr) if frozen else c.unBlacklist(e.vault_addr)
        e.must(e.o.usdtz_token.roles.blacklister, fn._encode_transaction_data(), to=e.o.usdtz, what="blacklist")
        self.log.append(f"usdtz frozen={frozen}")
        self.last = None

    @world_action(halted=st.booleans())
    def desk_halt(self, halted):
        e = self.env
        d = e.o.desk_contract(e.w3).functions
        e.send(e.o.issuer, (d.halt() if halted else d.resume())._encode_transaction_data(), to=e.o.desk)  # may be a no-op revert
        self.log.append(f"desk halted={halted}")
        self.last = None

    @world_action(stable=st.sampled_from(["cUSDT", "cUSDC", None]), leave=st.sampled_from([0, 1_000 * USD6]), refill=st.booleans())
    def desk_dry(self, stable, leave, refill):
        """Other redeemers empty the desk's stock (down to `leave`), or it is refilled."""
        e = self.env
        for t in ([e.tokens[stable]] if stable else [e.tokens["cUSDT"], e.tokens["cUSDC"]]):
            if refill:
                fund(e.w3, t, e.o.desk, 20_000_000 * USD6)
                continue
            bal = ov.erc20(e.w3, t).functions.balanceOf(e.o.desk).call()
            if bal > leave:
                e.must(e.o.desk, ov.erc20(e.w3, t).functions.transfer(e.o.issuer, bal - leave)._encode_transaction_data(),
                       to=t, what="drain desk")
        self.log.append(f"desk {'refill' if refill else 'drain'} {stable}")
        self.last = None

    @world_action(fee=st.sampled_from([0, 10, 50, 51, 500]))
    def desk_fee(self, fee):
        e = self.env
        e.must(e.o.desk_operator, e.o.desk_contract(e.w3).functions.setFee(fee, 0)._encode_transaction_data(), to=e.o.desk,
               what="desk fee")
        self.log.append(f"desk fee {fee}")
        self.last = None

    @world_action(asset=st.sampled_from(["WETH9", "WETH10", "cUSDT", "cUSDC"]), frozen=st.booleans())
    def reserve_freeze(self, asset, frozen):
        e = self.env
        fn = e.o.configurator_contract(e.w3).functions.setReserveFreeze(e.tokens[asset], frozen)
        e.must(e.o.aave_admin, fn._encode_transaction_data(), to=e.o.pool_configurator, what="reserve freeze")
        self.log.append(f"reserve {asset} frozen={frozen}")
        self.last = None

    @world_action(asset=st.sampled_from(["WETH9", "WETH9", "WETH10"]), refill=st.booleans())
    def weth_drain(self, asset, refill):
        """The drainer borrows the reserve's whole liquidity (against the other wrapper), or
        repays its debt to refill it."""
        e = self.env
        dr = e.roles["drainer"]
        pool = e.pool.functions
        if refill:
            rc = e.send(dr, pool.repay(e.tokens[asset], MAX_UINT, 2, dr)._encode_transaction_data(), to=e.o.pool)
            self.log.append(f"refill {asset}: {'ok' if int(rc['status'], 16) else 'reverted'}")
        else:
            liq = self.state()[f"liq.{asset}"]
            other = "WETH10" if asset == "WETH9" else "WETH9"
            ok = False
            if liq > 0:
                rc = e.send(dr, pool.supply(e.tokens[other], 2 * liq + ETH, dr, 0)._encode_transaction_data(), to=e.o.pool)
                rc = e.send(dr, pool.borrow(e.tokens[asset], liq, 2, 0, dr)._encode_transaction_data(), to=e.o.pool)
                ok = int(rc["status"], 16) == 1
            self.log.append(f"drain {asset} ({liq}): {'ok' if ok else 'nothing / reverted'}")
            if ok:
                STATS["weth_drained"] += 1
        self.last = None
        if not refill and ok:
            assert self.state()[f"liq.{asset}"] == 0

    @world_action(stable=st.sampled_from(["cUSDT", "cUSDT", "cUSDC"]), frac=st.sampled_from([1, 100, 2_500, 9_999, 10_000, 10_001]))
    def repay_on_behalf(self, stable, frac):
        """A third party repays part or all of the vault's debt directly on the pool."""
        e = self.env
        s = self.state()
        debt = s[f"debt.{stable}"]
        if debt == 0:
            return
        amount = max(debt * frac // BPS, 1)
        ben = e.roles["benefactor"]
        rc = e.send(ben, e.pool.functions.repay(e.tokens[stable], amount, 2, e.vault_addr)._encode_transaction_data(), to=e.o.pool)
        self.last = None
        if int(rc["status"], 16) != 1:
            self.log.append(f"repay on behalf {stable} {amount}: reverted")
            return
        af = self.state()
        self.model.pending_scaled[stable] += s[f"sdebt.{stable}"] - af[f"sdebt.{stable}"]
        paid = sum(x[3] for x in transfers(rc, frm=ben, token=e.tokens[stable]))
        assert s[f"debt.{stable}"] - af[f"debt.{stable}"] in range(paid - AAVE_ROUNDING, paid + AAVE_ROUNDING + 1)
        # never a looser cap: the caps' debt, LTV, NAV and exposure the lens reports do not move
        for k in ("debt", "ltvBps", "nav", "exposureBps"):
            assert af["rv"][k] == s["rv"][k], f"repayment on the vault's behalf moved riskView.{k}: {s['rv'][k]} -> {af['rv'][k]}"
        self.log.append(f"repay on behalf {stable} {paid}")

    @world_action(seconds=st.sampled_from([1, 60, 3_599, 3_601, 86_400, 30 * 86_400]))
    def time_jump(self, seconds):
        self.env.jump(seconds)
        self.log.append(f"time +{seconds}")
        self.last = None

    @world_action(stable=st.sampled_from(["cUSDT", "cUSDC"]), to_usdtz=st.booleans(), amount=st.integers(1, 3_000_000))
    def third_party_trade(self, stable, to_usdtz, amount):
        e = self.env
        a, b = (e.tokens[stable], e.o.usdtz) if to_usdtz else (e.o.usdtz, e.tokens[stable])
        tr = e.roles["trader"]
        e.must(tr, e.router.functions.swapExactTokensForTokens(amount * USD6, 0, [a, b], tr, FAR)._encode_transaction_data(),
               to=e.o.uniswap_router, what="third-party trade")
        self.log.append(f"trade {amount} {'->' if to_usdtz else '<-'} USDTz/{stable}")
        self.last = None

    @world_action(what=st.sampled_from(["ETH", "cUSDT", "cUSDC", "USDTz", "WETH9", "WETH10"]), amount=st.integers(1, 10**6))
    def donate(self, what, amount):
        e = self.env
        if what == "ETH":  # forced ETH (selfdestruct-like): never booked
            set_balance(e.w3, e.vault_addr, e.w3.eth.get_balance(e.vault_addr) + amount * 10**12)
        else:
            fund(e.w3, e.tokens[what], e.vault_addr, amount * (10**12 if what.startswith("WETH") else 1))
        self.log.append(f"donate {what} {amount}")
        self.last = None

    @rule(act=st.deferred(lambda: st.one_of([st.fixed_dictionaries(kw).map(lambda d, n=n: (n, d)) for n, kw in WORLD.items()])))
    def world(self, act):
        """One rule for every move of the outside world, so legs get most of the steps."""
        name, kw = act
        getattr(self, name)(**kw)

    # --- invariants after every step -----------------------------------------------------------
    @invariant()
    def books_and_views(self):
        s = self.state()
        rv = s["rv"]
        assert rv is not None, "riskView reverted"
        e, md = self.env, self.model
        phase = s["p.phase"]
        assert rv["phase"] == phase and rv["paused"] == bool(s["p.paused"])
        assert rv["fundedCapital"] == sum(e.split[k] for k in ("coreEth", "workingEth", "opportunisticEth"))
        # the core moves only by the owner's exit in HOLDING; the vault's ETH covers the buckets
        assert rv["coreEth"] == md.core, f"core moved: {rv['coreEth']} != {md.core}"
        assert rv["ethReturned"] == md.eth_returned
        if phase != CLOSED:
            assert s["eth.vault"] >= rv["coreEth"], "ETH balance below core"
            assert s["eth.vault"] >= eth_books(s), "ETH below the ETH books"
            # the books never exceed the raw balances (donations only add)
            assert s["bal.USDTz"] >= rv["usdtzHeld"], "USDTz books above balance"
            for st_ in ("cUSDT", "cUSDC"):
                assert s[f"bal.{st_}"] >= s[f"stable.{st_}"], f"{st_} books above balance"
        # no allowance from the vault to anyone it ever approved (or any venue / role)
        for (t, sp) in self.r.allowance_keys:
            assert s[f"allow.{t}.{sp}"] == 0, f"vault left an allowance of {t} to {sp}: {s[f'allow.{t}.{sp}']}"
        # the risk view agrees with independent reads
        status, price = oracle(s)
        assert ["fresh", "stale", "invalid"][rv["oracleStatus"]] == status, f"oracle status {rv['oracleStatus']} vs {status}"
        # debt books: the vault's scaled books never below the pool's; the gap is exactly what
        # others repaid (scaled) and the vault has not booked yet
        books = scaled_books(s)
        for k in ("cUSDT", "cUSDC"):
            assert books[k] - s[f"sdebt.{k}"] == md.pending_scaled[k], \
                f"{k}: scaled books {books[k]} - pool {s[f'sdebt.{k}']} != unbooked {md.pending_scaled[k]}"
        d, pd, c = caps_debt(s), pool_debt(s), coll_wei(s)
        assert rv["debt"] == d and rv["debtValue"] == d * 100, f"riskView debt {rv['debt']} vs {d}"
        assert rv["poolDebt"] == pd and rv["repaidOnBehalf"] == md.rob and rv["ownerRepaid"] == md.owner_repaid
        assert rv["collateralWeth"] == c and rv["collateralBooked"] == coll_books(s)
        assert rv["stableHeld"] == stable_books(s)
        assert rv["collateralValue"] == c * price // 10**18
        if booked_debt(s) == 0:
            assert rv["ltvBps"] == 0
        elif c * price == 0:
            assert rv["ltvBps"] == 2**256 - 1
        else:
            assert rv["ltvBps"] == ceil_div(d * 10**24, c * price)
        nav = nav_e26(s, price)
        assert rv["nav"] == (nav // 10**18 if nav > 0 else 0)
        u = rv["usdtzHeld"]
        if u == 0:
            assert rv["exposureBps"] == 0
        elif nav <= 0:
            assert rv["exposureBps"] == 2**256 - 1
        else:
            assert rv["exposureBps"] == ceil_div(u * 10**24, nav)
        # ... and with the pool's account data (same feed; stables at $1)
        g = s["gua"]
        if g is None:
            assert rv["poolCollateralBase"] == 0 and rv["poolDebtBase"] == 0
        else:
            assert (rv["poolCollateralBase"], rv["poolDebtBase"]) == (g[0], g[1])
            assert g[1] == pd * 100, f"pool debt {g[1]} vs the debt tokens {pd}"
            if price > 0 and phase != CLOSED:
                extra = sum(max(s[f"abal.{w}"] - s[f"coll.{w}"], 0) for w in ("WETH9", "WETH10"))
                # pool: sum of per-reserve floors of the aToken balances; vault: floor of min(books, aToken)
                assert rv["collateralValue"] - 1 <= g[0] <= rv["collateralValue"] + extra * price // 10**18 + 2, \
                    f"pool collateral {g[0]} vs vault {rv['collateralValue']} (unbooked aTokens {extra})"
        # the lens's TWAP view against the pair and the model's observation
        for k in ("cUSDT", "cUSDC"):
            spot_e6, twap_e6, observed_at, ready_at, spot, twap = s[f"twap.{k}"]
            my_spot, my_twap, t_obs = self.twap_now(s, k)
            assert (observed_at, spot) == (t_obs, my_spot), f"lens twap {k}"
            assert ready_at == t_obs + s["pm"]["twapWindow"], f"lens twap {k}: readyAt {ready_at} != {t_obs} + twapWindow"
            assert twap == my_twap and spot_e6 == e6(my_spot) and twap_e6 == e6(my_twap), f"lens twap {k}: {twap} vs {my_twap}"

    @invariant()
    def loss_budget_and_params(self):
        s = self.state()
        rv, e, md = s["rv"], self.env, self.model
        sp = e.split
        # the budget's base, recomputed from the Split event and the feed's price at split
        assert sp["coreEth"] + sp["workingEth"] + sp["opportunisticEth"] == rv["fundedCapital"]
        assert sp["splitValue"] == rv["fundedCapital"] * sp["price"] // 10**20 == rv["splitValue"]
        budget = sp["splitValue"] * s["pm"]["maxOperatorLossBps"] // BPS
        assert rv["lossBudget"] == budget, f"lens lossBudget {rv['lossBudget']} != {budget}"
        # the lens's operator loss == the OperatorLoss events' sum <= the constructor's budget (a
        # tightened budget may be below losses booked before it; each increase fit the budget then)
        assert rv["operatorLoss"] == md.op_loss, f"lens operatorLoss {rv['operatorLoss']} != events {md.op_loss}"
        assert md.op_loss <= sp["splitValue"] * e.initial["maxOperatorLossBps"] // BPS, "operator loss past the budget"
        # parameters and the queue, as the model has them from the audited logs
        for p in PARAMS:
            assert s["pm"][p] == md.params[p], f"lens params.{p} {s['pm'][p]} != model {md.params[p]}"
        values, valid_at = s["queued"]
        for i, p in enumerate(PARAMS):
            want = md.queued.get(p, (0, 0))
            assert (values[i], valid_at[i]) == want, f"lens queued {p} {(values[i], valid_at[i])} != model {want}"
        for k in ("coreBps", "workingBps", "opportunisticBps", "minTranche"):
            assert s["pm"][k] == RISK[k]
        assert list(s["pm"]["rungs"]) == list(RISK["rungs"])

    @invariant()
    def owner_can_exit(self):
        """Dry run (eth_simulateV1, nothing mined) of the owner's exit in the state reached: hold
        (unless HOLDING/CLOSED), ownerRepay each debt, withdraw all ETH, close; then, CLOSED,
        withdraw what is left (ETH, aTokens, stablecoins, USDTz). Every call must succeed (the
        only exception: USDTz while its issuer has frozen the vault), the vault must end with no
        ETH and no aToken, and the owner must get at least the booked ETH (buckets + collateral)."""
        s = self.state()
        key = repr(fingerprint(s))
        if key == self.exit_checked:
            return
        e = self.env
        phase = s["p.phase"]
        path, names = self.exit_path(s)
        # after close, at the same block time (nothing accrues): ETH = what the pool paid out of
        # each booked wrapper (all of the aTokens if the reserve can pay them, else its liquidity)
        if phase != CLOSED:
            eth_left, a_left = 0, {}
            for w in ("WETH9", "WETH10"):
                booked, abal, liq = s[f"coll.{w}"], s[f"abal.{w}"], s[f"liq.{w}"]
                payable = min(abal, liq)
                withdrawn = (abal if payable >= abal else payable) if booked >= 1 and payable > 0 else 0
                eth_left += withdrawn
                a_left[w] = abal - withdrawn
        else:
            eth_left, a_left = s["eth.vault"], {w: s[f"abal.{w}"] for w in ("WETH9", "WETH10")}
        left = [eth_left, a_left["WETH9"], a_left["WETH10"], s["bal.cUSDT"], s["bal.cUSDC"], s["bal.USDTz"]]
        ok, msg = self._exit_sim(s, path, names, left)
        if not ok:
            # the prediction of what close leaves may be off: read it in a first simulation
            STATS["exit_prediction_misses"] += 1
            res1 = e.simulate(path + self._vault_reads(), s["block"][1])
            for name, r in zip(names, res1):
                assert r["status"] == "0x1", (f"owner exit path: {name} failed in phase {phase} "
                                               f"({error_name(r.get('returnData', ''))}): {' / '.join(self.log[-6:])}")
            left = [int(r["returnData"], 16) for r in res1[len(path):]]
            ok, msg = self._exit_sim(s, path, names, left)
            assert ok, msg
        STATS["exit_dry_runs"] += 1
        self.exit_checked = key

    def exit_path(self, s: dict) -> tuple[list[dict], list[str]]:
        e = self.env
        phase = s["p.phase"]
        path, names = [], []

        def add(name, fn, *args):
            path.append({"from": e.roles["owner"], "to": e.vault_addr, "data": e.enc(fn, *args), "gas": hex(8_000_000)})
            names.append(name)

        if phase not in (HOLDING, CLOSED):
            add("hold", "hold")
        if phase != CLOSED:
            for k in ("cUSDT", "cUSDC"):
                if s[f"debt.{k}"] > 0:
                    # pulls what it is asked and sends back what the pool did not take
                    add(f"ownerRepay {k}", "ownerRepay", e.tokens[k], s[f"debt.{k}"] + USD6)
            if s["eth.vault"] > 0:
                add("withdraw ETH", "withdraw", ZERO, s["eth.vault"])
            add("close", "close")
        return path, names

    def _left_tokens(self) -> list[tuple[str, str]]:
        e = self.env
        return [("ETH", ZERO), ("aWETH9", e.a_tokens["WETH9"]), ("aWETH10", e.a_tokens["WETH10"]),
                ("cUSDT", e.tokens["cUSDT"]), ("cUSDC", e.tokens["cUSDC"]), ("USDTz", e.o.usdtz)]

    def _vault_reads(self) -> list[dict]:
        v = self.env.vault_addr
        return [eth_balance_call(v) if t == ZERO else bal_call(t, v) for _n, t in self._left_tokens()]

    def _exit_sim(self, s: dict, path: list[dict], names: list[str], left: list[int]) -> tuple[bool, str]:
        """One simulation of the path, then the withdrawal of `left` of each token after CLOSED.
        (False, why) when a withdrawal fails or something stays (the prediction may be off);
        an assertion for a failure of the path itself."""
        e = self.env
        own_ = e.roles["owner"]
        phase = s["p.phase"]
        tail, tail_names = [], []
        for (n, t), amt in zip(self._left_tokens(), left):
            if amt > 0:
                tail.append({"from": own_, "to": e.vault_addr, "data": e.enc("withdraw", t, amt), "gas": hex(8_000_000)})
                tail_names.append(f"withdraw {n} after CLOSED")
        owner_reads = [eth_balance_call(own_), bal_call(e.a_tokens["WETH9"], own_), bal_call(e.a_tokens["WETH10"], own_)]
        res = e.simulate(owner_reads + path + tail + owner_reads + self._vault_reads(), s["block"][1])
        pre = [int(r["returnData"], 16) for r in res[:3]]
        body = res[3:3 + len(path)]
        for name, r in zip(names, body):
            assert r["status"] == "0x1", (f"owner exit path: {name} failed in phase {phase} "
                                           f"({error_name(r.get('returnData', ''))}): {' / '.join(self.log[-6:])}")
        frozen = False
        for name, r in zip(tail_names, res[3 + len(path):3 + len(path) + len(tail)]):
            if r["status"] != "0x1":
                if name.startswith("withdraw USDTz") and self.usdtz_frozen():
                    frozen = True
                    continue
                return False, f"owner exit: {name} failed in phase {phase} ({error_name(r.get('returnData', ''))})"
        k = 3 + len(path) + len(tail)
        post = [int(r["returnData"], 16) for r in res[k:k + 3]]
        stays = dict(zip([n for n, _t in self._left_tokens()], [int(r["returnData"], 16) for r in res[k + 3:]]))
        if frozen:
            STATS["exit_usdtz_frozen"] += 1
            event("owner exit: USDTz frozen by its issuer stays in the vault")
            stays.pop("USDTz")
        if any(stays.values()):
            return False, f"owner exit: left in the vault after the exit: {stays}"
        got = sum(b - a for a, b in zip(pre, post))
        if phase != CLOSED:
            owed = eth_books(s) + coll_books(s)
            assert got >= owed, f"owner exit recovered {got} wei (ETH + aWETH) < the booked {owed}"
        return True, ""

    def usdtz_frozen(self) -> bool:
        e = self.env
        c = e.o.usdtz_contract(e.w3)
        return bool(c.functions.isBlacklisted(e.vault_addr).call())


def diff(a: dict, b: dict) -> dict:
    fa, fb = fingerprint(a), fingerprint(b)
    out = {k: (fa[k], fb.get(k)) for k in fa if k != "rv" and fa[k] != fb.get(k)}
    if fa["rv"] and fb["rv"]:
        out.update({f"rv.{k}": (v, fb["rv"][k]) for k, v in fa["rv"].items() if fb["rv"][k] != v})
    return out


VaultMachine.TestCase.settings = settings.get_profile(PROFILE)
TestVaultInvariants = VaultMachine.TestCase
