"""The guard's rules (issue 15): from one reading of a deal, what to do, with the numbers.

=================  ======================================================  ====================
rule               condition                                               action
=================  ======================================================  ====================
``ltv``            LTV >= cap - ``guard.ltv_margin_bps`` (the trigger)     operator: add collateral
                                                                           from the opportunistic
                                                                           bucket, then repay from
                                                                           the books, then
                                                                           deleverage, as far as
                                                                           the restore point
                                                                           (trigger - hysteresis)
``oracle``         the vault's oracle Stale or Invalid                     guardian: hold
``usdtz-frozen``   the vault holds USDTz and cannot move it                guardian: hold
``stable-blocked`` the vault cannot move its stablecoin (blacklist, pause) guardian: hold
``desk``           in MONETIZING, a small redemption would fail            guardian: hold
``interest``       interest since the debt last changed > share of the     alert
                   deal's expected spread on that debt
``loss-budget``    operator loss >= share of the loss budget               alert
``health``         Aave health factor below the floor                      alert
=================  ======================================================  ====================

Every rule fires once when its condition starts and acts at most once until it clears (the LTV
rule clears at the restore point, below its trigger: hysteresis); after acting, a rule waits
``guard.cooldown_seconds`` before it acts again, so two actions never flap. Only risk-reducing
legs, and ``hold``; never a leg that adds risk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from dealvault.units import BPS, ETH_DECIMALS, STABLE_DECIMALS, STABLE_TO_E26, amount_text
from dealvault.vault import OracleStatus, Phase, Phases, RiskView
from dealvault.vault.risk import deleverage_bound_wei, ltv_within

if TYPE_CHECKING:
    from dealvault.guard.model import GuardReading
    from dealvault.spec import DealSpec

__all__ = ["Rule", "HOLD_RULES", "Step", "Decision", "RuleBook", "ltv_trigger", "restore_point", "plan_ltv"]


class Rule(StrEnum):
    LTV = "ltv"
    ORACLE = "oracle"
    USDTZ_FROZEN = "usdtz-frozen"
    STABLE_BLOCKED = "stable-blocked"
    DESK = "desk"
    INTEREST = "interest"
    LOSS_BUDGET = "loss-budget"
    HEALTH = "health"


#: The rules whose action is the guardian's hold.
HOLD_RULES = frozenset({Rule.ORACLE, Rule.USDTZ_FROZEN, Rule.STABLE_BLOCKED, Rule.DESK})
_ALERT_RULES = frozenset({Rule.INTEREST, Rule.LOSS_BUDGET, Rule.HEALTH})


@dataclass(frozen=True)
class Step:
    """One leg the guard sends (or, in a dry run, would send)."""

    leg: str  # the vault function: addCollateral | repay | deleverage | hold
    args: tuple[Any, ...]
    role: str  # "operator" | "guardian"
    text: str  # what and why, with the numbers


@dataclass(frozen=True)
class Decision:
    deal_id: str
    rule: Rule
    kind: str  # "act" | "alert" | "clear"
    text: str
    steps: tuple[Step, ...] = ()


@dataclass
class _State:
    active: bool = False
    acted_at: float | None = None


def ltv_trigger(spec: DealSpec, max_ltv_bps: int) -> int:
    """The LTV (bps) at which the guard acts: the vault's cap less the deal's margin."""
    return max_ltv_bps - spec.guard.ltv_margin_bps


def restore_point(spec: DealSpec, max_ltv_bps: int) -> int:
    """The LTV (bps) the guard brings a deal back to, and where the LTV rule clears."""
    return ltv_trigger(spec, max_ltv_bps) - spec.guard.hysteresis_bps


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def plan_ltv(rv: RiskView, spec: DealSpec, *, goal_bps: int, max_slippage_bps: int, wrapper: str, stable: str,
             stable_books: int) -> list[Step]:
    """The legs that bring the LTV to ``goal_bps`` or below, each only as far as needed, in the
    order: add collateral (the opportunistic bucket), repay (the stablecoin books), deleverage
    (collateral sold for the debt, within the vault's bound). Integer math as RiskLib's
    (wei x price (8 dp) / 1e20 = 6 dp USD). Empty if the LTV is there already or no price."""
    p, coll, debt = rv.ethPrice, rv.collateralWeth, rv.debt
    steps: list[Step] = []
    if debt == 0 or p <= 0 or ltv_within(debt, coll, p, goal_bps):
        return steps
    need_coll = _ceil_div(debt * STABLE_TO_E26 * BPS, goal_bps * p)  # the collateral that carries the debt at goal
    add = min(rv.opportunisticEth, max(need_coll - coll, 0))
    if add > 0:
        coll += add
        steps.append(Step("addCollateral", (wrapper, add), "operator",
                          f"add {amount_text(add, ETH_DECIMALS)} ETH of collateral from the opportunistic bucket "
                          f"({amount_text(rv.opportunisticEth, ETH_DECIMALS)} ETH there)"))
    if ltv_within(debt, coll, p, goal_bps):
        return steps
    carried = goal_bps * coll * p // (STABLE_TO_E26 * BPS)  # the debt the collateral carries at goal
    pay = min(stable_books, debt - carried)
    if pay > 0:
        debt -= pay
        steps.append(Step("repay", (stable, pay), "operator",
                          f"repay {amount_text(pay, STABLE_DECIMALS)} {spec.stablecoin} from the books "
                          f"({amount_text(stable_books, STABLE_DECIMALS)} there)"))
    if ltv_within(debt, coll, p, goal_bps):
        return steps
    # sell z wei: (debt - z p (BPS - s) / (1e20 BPS)) / ((coll - z) p / 1e20) <= goal / BPS
    den = p * (BPS - max_slippage_bps - goal_bps)
    if den <= 0:
        return steps
    # + 2 units of the stablecoin: the sale's proceeds are rounded down (to the 6-dp unit) by the vault
    z = _ceil_div(debt * STABLE_TO_E26 * BPS - goal_bps * coll * p + 2 * STABLE_TO_E26 * BPS, den)
    # the vault's bound: z's value x (1 - slippage) <= debt x (1 + DELEVERAGE_MARGIN_BPS)
    z_max = deleverage_bound_wei(debt, p, max_slippage_bps)
    z = min(z, z_max, coll)
    if z > 0:
        steps.append(Step("deleverage", (wrapper, stable, z), "operator",
                          f"deleverage {amount_text(z, ETH_DECIMALS)} ETH of collateral "
                          f"(sold for at least {amount_text(z * p * (BPS - max_slippage_bps) // (STABLE_TO_E26 * BPS), STABLE_DECIMALS)} "
                          f"{spec.stablecoin}, all repaid)"))
    return steps


@dataclass
class RuleBook:
    """Each deal's rules: fired or not, when last acted. ``evaluate`` is pure given ``now``."""

    states: dict[tuple[str, Rule], _State] = field(default_factory=dict)

    def _state(self, deal_id: str, rule: Rule) -> _State:
        return self.states.setdefault((deal_id, rule), _State())

    def reset(self, deal_id: str, rule: Rule) -> None:
        """Forget that ``rule`` fired on ``deal_id`` (it could not act: it fires again next time)."""
        self._state(deal_id, rule).active = False

    def acted(self, deal_id: str, rule: Rule, now: float) -> None:
        """Record that ``rule`` acted on ``deal_id`` at ``now`` (the cool-down starts)."""
        self._state(deal_id, rule).acted_at = now

    def evaluate(self, reading: GuardReading, spec: DealSpec, now: float, *, wrapper: str, stable_books: int,
                 interest: tuple[int, int] | None = None) -> list[Decision]:
        """The decisions for one reading: a rule that starts firing (act or alert), one that
        clears ("clear"), nothing for one that keeps firing or stays clear. ``interest``: (interest
        accrued since the debt last changed, the debt then), 6 dp, if known."""
        rv, params, probes = reading.risk, reading.params, reading.probes
        deal = reading.target.deal_id
        conditions: dict[Rule, tuple[bool, bool, str]] = {}  # rule -> (firing, clearing, why)
        trigger, goal = ltv_trigger(spec, params.maxLtvBps), restore_point(spec, params.maxLtvBps)
        live = rv.phase not in (Phase.FUNDED, Phase.CLOSED)
        conditions[Rule.LTV] = (live and rv.debt > 0 and rv.ltvBps >= trigger, rv.debt == 0 or rv.ltvBps <= goal,
                                f"LTV {rv.ltvBps} bps >= the trigger {trigger} bps (cap {params.maxLtvBps} - margin "
                                f"{spec.guard.ltv_margin_bps}); restoring to {goal} bps")
        oracle_bad = rv.oracleStatus in (OracleStatus.Stale, OracleStatus.Invalid)
        conditions[Rule.ORACLE] = (oracle_bad, not oracle_bad,
                                   f"the oracle is {rv.oracleStatus.name} (price updated at {rv.priceUpdatedAt}, "
                                   f"max age {params.oracleMaxAge} s)")
        frozen = rv.usdtzHeld > 0 and probes.usdtz_transfer is not None
        conditions[Rule.USDTZ_FROZEN] = (frozen, not frozen, f"the vault cannot move its USDTz: {probes.usdtz_transfer}")
        blocked = probes.stable_transfer is not None
        conditions[Rule.STABLE_BLOCKED] = (blocked, not blocked,
                                           f"the vault cannot move its {spec.stablecoin}: {probes.stable_transfer}")
        desk = rv.phase == Phase.MONETIZING and probes.desk is not None
        conditions[Rule.DESK] = (desk, not desk, f"a redemption at the desk would fail: {probes.desk}")
        if interest is not None:
            accrued, principal = interest
            spread = principal * spec.min_discount_bps // BPS
            hot = spread > 0 and accrued * BPS > spread * spec.guard.interest_alert_bps
            conditions[Rule.INTEREST] = (hot, not hot, f"interest {amount_text(accrued, STABLE_DECIMALS)} {spec.stablecoin} "
                                         f"since the debt last changed is above {spec.guard.interest_alert_bps} bps of the "
                                         f"expected spread {amount_text(spread, STABLE_DECIMALS)} on "
                                         f"{amount_text(principal, STABLE_DECIMALS)}")
        used = rv.lossBudget > 0 and rv.operatorLoss * BPS >= rv.lossBudget * spec.guard.loss_budget_alert_bps
        conditions[Rule.LOSS_BUDGET] = (used, not used, f"operator loss {amount_text(rv.operatorLoss, STABLE_DECIMALS)} of the "
                                        f"budget {amount_text(rv.lossBudget, STABLE_DECIMALS)} "
                                        f"(alert at {spec.guard.loss_budget_alert_bps} bps)")
        low = rv.debt > 0 and 0 < rv.healthFactor < spec.guard.health_floor_wad
        conditions[Rule.HEALTH] = (low, not low, f"health factor {amount_text(rv.healthFactor, 18)} below the floor "
                                   f"{amount_text(spec.guard.health_floor_wad, 18)}")

        out: list[Decision] = []
        for rule, (firing, clearing, why) in conditions.items():
            st = self._state(deal, rule)
            if st.active:
                if clearing:
                    st.active = False
                    out.append(Decision(deal, rule, "clear", f"{rule}: cleared"))
                continue
            if not firing:
                continue
            st.active = True
            if rule in _ALERT_RULES:
                out.append(Decision(deal, rule, "alert", why))
                continue
            if st.acted_at is not None and now - st.acted_at < spec.guard.cooldown_s:
                out.append(Decision(deal, rule, "alert", f"{why}; cooling down ({spec.guard.cooldown_s} s since the last action)"))
                continue
            steps = self._steps(rule, rv, spec, goal=goal, slippage=params.maxSlippageBps, wrapper=wrapper,
                                stable=reading.target.stable, stable_books=stable_books)
            if not steps:
                out.append(Decision(deal, rule, "alert", f"{why}; nothing the guard may send does it"
                                    + (" (the vault is in HOLDING already)" if rv.phase == Phase.HOLDING else "")))
                continue
            out.append(Decision(deal, rule, "act", why, tuple(steps)))
        return out

    @staticmethod
    def _steps(rule: Rule, rv: RiskView, spec: DealSpec, *, goal: int, slippage: int, wrapper: str, stable: str,
               stable_books: int) -> Sequence[Step]:
        if rule == Rule.LTV:
            return plan_ltv(rv, spec, goal_bps=goal, max_slippage_bps=slippage, wrapper=wrapper, stable=stable,
                            stable_books=stable_books)
        if rv.phase == Phase.HOLDING or not Phases.OPEN.allows(rv.phase):
            return ()
        return (Step("hold", (), "guardian", "hold: the deal goes to HOLDING (nothing forced, nothing sold)"),)
