"""The guard's rules (dealvault.guard.rules), pure: the LTV plan's numbers against the vault's own
LTV formula (dealvault.vault.risk, pinned to RiskLib), each rule's trigger, hysteresis and
cool-down. The chain-level scenarios (ETH falling, a stale feed, a frozen USDTz, a blacklist, a
halted desk, dry runs, crashes, several guards) are in test_guard.py."""

from __future__ import annotations

import dataclasses

import pytest

from dealvault.guard.model import GuardReading, Probes, Target
from dealvault.guard.rules import Rule, RuleBook, plan_ltv, restore_point
from dealvault.paths import ROOT
from dealvault.spec import load_spec
from dealvault.vault import OracleStatus, Params, Phase, RiskView
from dealvault.vault.risk import ltv_bps

SPEC = load_spec(ROOT / "deals" / "example.yaml")  # cap 3000, target 2900: margin 50, hysteresis 50
E18, E6 = 10**18, 10**6
PRICE = 3_000 * 10**8
WRAPPER, STABLE = "0x" + "11" * 20, "0x" + "22" * 20
TARGET = Target("demo-001", "0x" + "33" * 20, "0x" + "44" * 20, STABLE, "0x" + "55" * 20, "0x" + "66" * 20, "0x" + "77" * 20)


def view(**kw) -> RiskView:
    base = {f.name: 0 for f in dataclasses.fields(RiskView)}
    base |= {"phase": Phase.POSITIONED, "phaseBeforeHolding": Phase.FUNDED, "oracleStatus": OracleStatus.Fresh,
             "ethPrice": PRICE, "healthFactor": 3 * E18, "lossBudget": 1_000 * E6}
    base |= kw
    if "ltvBps" not in kw:
        base["ltvBps"] = ltv_bps(base["debt"], base["collateralWeth"], base["ethPrice"])
    return RiskView(**base)


def params(**kw) -> Params:
    base = {f.name: 0 for f in dataclasses.fields(Params)}
    base |= {"maxLtvBps": 3000, "maxSlippageBps": 100, "oracleMaxAge": 3600, "rungs": (1, 2, 3)}
    return Params(**(base | kw))


def reading(rv: RiskView, probes: Probes | None = None, **pkw) -> GuardReading:
    return GuardReading(TARGET, rv, params(**pkw), probes or Probes())


def at_price(rv: RiskView, price: int) -> RiskView:
    return dataclasses.replace(rv, ethPrice=price, ltvBps=ltv_bps(rv.debt, rv.collateralWeth, price))


POSITIONED = view(collateralWeth=1_500 * E18, debt=1_305_000 * E6, opportunisticEth=1_000 * E18)  # 29% at $3,000


def apply(rv: RiskView, steps, slippage_bps: int = 100) -> RiskView:
    """The books after the steps, as the vault would move them (a deleverage at its bound)."""
    coll, debt, opp, books = rv.collateralWeth, rv.debt, rv.opportunisticEth, rv.stableHeld
    for s in steps:
        if s.leg == "addCollateral":
            coll, opp = coll + s.args[1], opp - s.args[1]
        elif s.leg == "repay":
            debt, books = debt - s.args[1], books - s.args[1]
        elif s.leg == "deleverage":
            z = s.args[2]
            coll -= z
            debt -= min(debt, z * rv.ethPrice * (10_000 - slippage_bps) // (10**20 * 10_000))
    return dataclasses.replace(rv, collateralWeth=coll, debt=debt, opportunisticEth=opp, stableHeld=books,
                               ltvBps=ltv_bps(debt, coll, rv.ethPrice))


def test_the_ltv_plan_adds_collateral_only_as_far_as_needed():
    rv = at_price(POSITIONED, 2_900 * 10**8)  # ETH -3.3%: LTV 3000
    goal = restore_point(SPEC, 3000)
    assert goal == 2900 and rv.ltvBps == 3000
    (step,) = plan_ltv(rv, SPEC, goal_bps=goal, max_slippage_bps=100, wrapper=WRAPPER, stable=STABLE, stable_books=0)
    after = apply(rv, [step])
    assert step.leg == "addCollateral" and step.role == "operator" and after.ltvBps <= goal
    # one wei less would not do: only as far as needed
    short = dataclasses.replace(step, args=(WRAPPER, step.args[1] - 1))
    assert apply(rv, [short]).ltvBps > goal or ltv_bps(rv.debt, rv.collateralWeth + step.args[1] - 1, rv.ethPrice) > goal


def test_the_ltv_plan_then_repays_from_the_books_then_deleverages():
    rv = dataclasses.replace(at_price(POSITIONED, 2_000 * 10**8), opportunisticEth=10 * E18, stableHeld=20_000 * E6)
    steps = plan_ltv(rv, SPEC, goal_bps=2900, max_slippage_bps=100, wrapper=WRAPPER, stable=STABLE, stable_books=20_000 * E6)
    assert [s.leg for s in steps] == ["addCollateral", "repay", "deleverage"]
    assert steps[0].args[1] == 10 * E18 and steps[1].args[1] == 20_000 * E6  # both used up before selling collateral
    after = apply(rv, steps)
    assert after.ltvBps <= 2900
    z = steps[2].args[2]
    less = apply(rv, [*steps[:2], dataclasses.replace(steps[2], args=(WRAPPER, STABLE, z - 10**13))])
    assert less.ltvBps > 2900  # the deleverage is no larger than needed (to 10 micro-ETH)


def test_no_plan_when_within_the_goal_or_without_debt():
    assert plan_ltv(POSITIONED, SPEC, goal_bps=2900, max_slippage_bps=100, wrapper=WRAPPER, stable=STABLE, stable_books=0) == []
    assert plan_ltv(view(collateralWeth=E18), SPEC, goal_bps=2900, max_slippage_bps=100, wrapper=WRAPPER, stable=STABLE,
                    stable_books=0) == []


def test_the_ltv_rule_fires_once_clears_below_the_restore_point_and_cools_down():
    book = RuleBook()
    kw = {"wrapper": WRAPPER, "stable_books": 0}
    high = at_price(POSITIONED, 2_940 * 10**8)  # LTV 2960 >= trigger 2950
    assert high.ltvBps >= 2950
    (d,) = [x for x in book.evaluate(reading(high), SPEC, 0.0, **kw) if x.rule == Rule.LTV]
    assert d.kind == "act" and d.steps[0].leg == "addCollateral" and "LTV 2960 bps >= the trigger 2950 bps" in d.text
    book.acted("demo-001", Rule.LTV, 0.0)
    assert [x for x in book.evaluate(reading(high), SPEC, 1.0, **kw) if x.rule == Rule.LTV] == []  # once per condition
    mid = at_price(POSITIONED, 2_985 * 10**8)  # 2915: below the trigger, above the restore point: not cleared
    assert 2900 < mid.ltvBps < 2950
    assert [x for x in book.evaluate(reading(mid), SPEC, 2.0, **kw) if x.rule == Rule.LTV] == []
    assert [x.kind for x in book.evaluate(reading(high), SPEC, 3.0, **kw) if x.rule == Rule.LTV] == []  # still active
    low = POSITIONED  # 2900: cleared
    assert [x.kind for x in book.evaluate(reading(low), SPEC, 4.0, **kw) if x.rule == Rule.LTV] == ["clear"]
    # fires again, but within the cool-down (60 s) it only alerts; after it, it acts
    (again,) = [x for x in book.evaluate(reading(high), SPEC, 5.0, **kw) if x.rule == Rule.LTV]
    assert again.kind == "alert" and "cooling down" in again.text
    book.evaluate(reading(low), SPEC, 6.0, **kw)
    (later,) = [x for x in book.evaluate(reading(high), SPEC, 61.0, **kw) if x.rule == Rule.LTV]
    assert later.kind == "act"


@pytest.mark.parametrize("rule,rv,probes", [
    (Rule.ORACLE, view(oracleStatus=OracleStatus.Stale), Probes()),
    (Rule.ORACLE, view(oracleStatus=OracleStatus.Invalid), Probes()),
    (Rule.USDTZ_FROZEN, view(usdtzHeld=5 * E6), Probes(usdtz_transfer="Error(frozen)")),
    (Rule.STABLE_BLOCKED, view(), Probes(stable_transfer="Blacklistable: account is blacklisted")),
    (Rule.DESK, view(phase=Phase.MONETIZING, usdtzHeld=5 * E6), Probes(desk="the desk would fail this redemption")),
])
def test_crisis_rules_hold_the_deal_with_the_guardian(rule, rv, probes):
    book = RuleBook()
    (d,) = [x for x in book.evaluate(reading(rv, probes), SPEC, 0.0, wrapper=WRAPPER, stable_books=0) if x.rule == rule]
    assert d.kind == "act" and [(s.leg, s.role) for s in d.steps] == [("hold", "guardian")]
    # in HOLDING already: nothing to send, an alert (a desk matters only in MONETIZING: no decision)
    held = dataclasses.replace(rv, phase=Phase.HOLDING)
    if rule == Rule.DESK:
        assert not [x for x in RuleBook().evaluate(reading(held, probes), SPEC, 0.0, wrapper=WRAPPER, stable_books=0)
                    if x.rule == rule]
        return
    (d2,) = [x for x in RuleBook().evaluate(reading(held, probes), SPEC, 0.0, wrapper=WRAPPER, stable_books=0) if x.rule == rule]
    assert d2.kind == "alert" and "HOLDING already" in d2.text


def test_probes_that_do_not_matter_do_not_fire():
    book = RuleBook()
    ds = book.evaluate(reading(view(usdtzHeld=0), Probes(usdtz_transfer="frozen", desk="halted")), SPEC, 0.0,
                       wrapper=WRAPPER, stable_books=0)
    assert not [d for d in ds if d.rule in (Rule.USDTZ_FROZEN, Rule.DESK)]  # no USDTz held, not MONETIZING


def test_alerts_interest_loss_budget_health():
    rv = dataclasses.replace(POSITIONED, operatorLoss=500 * E6, lossBudget=1_000 * E6, healthFactor=14 * E18 // 10)
    ds = RuleBook().evaluate(reading(rv), SPEC, 0.0, wrapper=WRAPPER, stable_books=0,
                             interest=(70_000 * E6, 1_305_000 * E6))  # spread 10% = 130,500; 50% = 65,250 < 70,000
    kinds = {d.rule: d.kind for d in ds}
    assert kinds[Rule.INTEREST] == kinds[Rule.LOSS_BUDGET] == kinds[Rule.HEALTH] == "alert"
    quiet = RuleBook().evaluate(reading(dataclasses.replace(rv, operatorLoss=499 * E6, healthFactor=2 * E18)), SPEC, 0.0,
                                wrapper=WRAPPER, stable_books=0, interest=(60_000 * E6, 1_305_000 * E6))
    assert not [d for d in quiet if d.rule in (Rule.INTEREST, Rule.LOSS_BUDGET, Rule.HEALTH)]


def test_an_ltv_action_whose_last_leg_restores_clears_the_rule(monkeypatch):
    """The guard's LTV action re-plans after every leg. When the interest accrued between legs makes
    it send its last allowed leg (MAX_LEGS_PER_ACTION + 1) and that leg restores the LTV, the rule
    must clear: an LTV rule left active never acts again on the next fall (hysteresis), which is how
    the guard test failed in CI (four legs, the fourth restoring, then silence at 2975 bps)."""
    from types import SimpleNamespace

    from dealvault.guard import loop
    from dealvault.guard.rules import RuleBook

    ltvs = iter([2975, 2960, 2940, 2915, 2899, 2899])  # what the vault reads before each leg, then after the last
    monkeypatch.setattr(loop, "restore_point", lambda spec, cap: 2900)
    monkeypatch.setattr(loop, "plan_ltv", lambda rv, spec, **kw: ["step"] if rv.ltvBps > 2900 else [])
    guard = loop.Guard.__new__(loop.Guard)
    guard.rules, said, sent = RuleBook(), [], []
    guard.say = said.append
    guard._send = lambda run, w, d, step, signer, rv, report: sent.append(rv.ltvBps)
    guard.rules._state("d", Rule.LTV).active = True  # the rule fired: this is its action
    run = SimpleNamespace(risk=lambda: SimpleNamespace(ltvBps=next(ltvs), stableHeld=0),
                          reading=lambda: SimpleNamespace(params=SimpleNamespace(maxLtvBps=3000, maxSlippageBps=100)))
    w = SimpleNamespace(spec=SimpleNamespace(deal_id="d"), venues=SimpleNamespace(wrapper=lambda spec: "0xW"),
                        target=SimpleNamespace(stable="0xS"))
    guard._restore_ltv(run, w, None, None, None)
    assert sent == [2975, 2960, 2940, 2915] and len(sent) == loop.MAX_LEGS_PER_ACTION + 1
    assert guard.rules._state("d", Rule.LTV).active is False
    assert said == ["guard: d ltv: restored to 2899 bps (cleared)"]
