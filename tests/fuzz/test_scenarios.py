"""Fixed sequences through the fuzzer's state machine (tests/fuzz/test_invariants.py), so that every
new actor and rule of issue 12 runs, with every invariant checked after each step, in every
`make test` whatever Hypothesis draws: the attacker's sandwiches, a third party's repayment, a
WETH reserve borrowed dry, stale / future / invalid feeds, the parameter timelock, the loss budget.

Each step is a rule of the machine (its own assertions run: books from raw deltas, the loss
recomputed, the TWAP recomputed, the owner's exit dry run...); on top, each scenario asserts the
outcome the issue expects (which leg is refused and with which error, what is booked).
"""

from __future__ import annotations

import pytest

from .harness import ETH, PARAMS, USD6, err
from .test_invariants import CLOSED, HOLDING, STATS, VaultMachine, error_name, oracle

FRAC = lambda bps: ("frac", bps, 1)  # noqa: E731  an amount: bps of what the books allow


@pytest.fixture
def m():
    machine = VaultMachine()
    yield machine
    machine.teardown()


def step(m: VaultMachine, fn, *args, **kw):
    """One rule, then every invariant (as Hypothesis runs them)."""
    out = fn(*args, **kw)
    m.books_and_views()
    m.loss_budget_and_params()
    m.owner_can_exit()
    return out


def last(m: VaultMachine, name: str) -> str:
    """The machine's log line of the last `name` leg."""
    return next(line for line in reversed(m.log) if line.startswith(name + " by"))


def test_third_party_repayment_is_booked_never_a_looser_cap(m):
    step(m, m.start, "positioned")
    s0 = m.state()
    step(m, m.repay_on_behalf, "cUSDT", 2_500)  # a quarter of the 150k debt, on the pool, for the vault
    s1 = m.state()
    assert s0["debt.cUSDT"] - s1["debt.cUSDT"] == 37_500 * USD6
    assert s1["rv"]["debt"] == s0["rv"]["debt"] and s1["rv"]["poolDebt"] == s0["rv"]["poolDebt"] - 37_500 * USD6
    assert m.model.pending_scaled["cUSDT"] > 0
    # the vault's next debt action books it (the machine checks the amount against the scaled debt)
    step(m, m.repay, "operator", "cUSDT", FRAC(2_000), False)
    assert last(m, "repay").endswith("ok")
    assert m.state()["rv"]["repaidOnBehalf"] == 37_500 * USD6 and m.model.pending_scaled["cUSDT"] == 0
    # the owner closes: realizedPnlUsd subtracts it (checked by the close rule)
    step(m, m.do_hold, "owner")
    step(m, m.owner_repay, "owner", "cUSDT", ("over", 1, 1))
    step(m, m.close, "owner", 0)
    assert m.state()["p.phase"] == CLOSED


def test_drained_weth_reserve_delays_collateral_never_the_owners_eth(m):
    step(m, m.start, "positioned")
    step(m, m.weth_drain, "WETH9", False)
    s = m.state()
    assert s["liq.WETH9"] == 0 and s["coll.WETH9"] == 200 * ETH
    # the collateral cannot come out now (Aave has no WETH to pay)
    step(m, m.withdraw_collateral, "operator", "WETH9", FRAC(100))
    assert "reverted" in last(m, "withdrawCollateral")
    # the owner's exit: hold, repay, take the idle ETH back, close with the collateral left booked
    step(m, m.do_hold, "owner")
    step(m, m.owner_repay, "owner", "cUSDT", ("over", 1, 1))
    s = m.state()
    surplus = s["eth.vault"] - (s["rv"]["coreEth"] + s["rv"]["workingEth"] + s["rv"]["opportunisticEth"])
    step(m, m.withdraw, "owner", "ETH", ("all", 1, 1), True)
    # every wei of ETH, the core included, came back (the buckets booked as ethReturned)
    assert m.state()["eth.vault"] == 0 and m.state()["rv"]["ethReturned"] == s["eth.vault"] - surplus
    step(m, m.close, "owner", 0)
    s = m.state()
    assert s["p.phase"] == CLOSED and s["coll.WETH9"] == 200 * ETH  # left booked, as aTokens
    assert STATS["exit_collateral_left"] >= 1
    # after CLOSED the owner takes the aTokens themselves; then the reserve is refilled
    step(m, m.withdraw, "owner", "aWETH9", ("all", 1, 1), False)
    assert m.state()["abal.WETH9"] == 0
    step(m, m.weth_drain, "WETH9", True)


def test_stale_future_and_invalid_feeds_bound_deleverage(m):
    step(m, m.start, "positioned")
    step(m, m.feed_stale, 7_200)
    assert oracle(m.state())[0] == "stale"
    # the operator's deleverage is bounded by the last valid answer (asserted by the rule)
    step(m, m.deleverage, "operator", "WETH9", "cUSDT", FRAC(5_000), 0, True)
    assert last(m, "deleverage").endswith("ok")
    step(m, m.feed_future, 3_600)
    s = m.state()
    assert oracle(s)[0] == "invalid"
    res = step(m, m.do_deleverage, "operator", "WETH9", "cUSDT", m.deleverage_room(s, "WETH9", "cUSDT", "owner") // 2, 0)
    assert not res["ok"] and res["reason"] == err("InvalidPrice(int256)", s["feed"][0])
    # the owner's deleverage prices at ethFloorPrice ($1,000) without a fresh oracle
    step(m, m.deleverage, "owner", "WETH9", "cUSDT", FRAC(2_000), 0, True)
    assert last(m, "deleverage").endswith("ok")
    step(m, m.price_move, 0)
    assert oracle(m.state())[0] == "invalid"
    step(m, m.time_jump, 86_400)


def test_parameter_timelock(m):
    step(m, m.start, "split")
    p = "maxSlippageBps"
    # tighten (at once), queue the loosening back to the initial value, accept too early
    step(m, m.params, "cycle", p, "initial", 5_000, "owner", "guardian", "stranger", False, "accept_early")
    assert "QueuedUntil" in last(m, "acceptParam") and p in m.model.queued
    # anyone accepts once validAt is reached (the machine jumps there)
    step(m, m.param_step, "accept", p, "initial", 5_000, "attacker", True)
    assert last(m, "acceptParam").endswith("ok") and m.model.params[p] == m.env.initial[p]
    # a loosening past the constructor's value is refused
    step(m, m.param_step, "set", p, "past_initial", 1, "owner", False)
    assert "LoosenedPastInitial" in last(m, "setParam") or "CapAboveCeiling" in last(m, "setParam")
    # the guardian revokes a queued loosening; a stranger cannot
    step(m, m.params, "cycle", "maxOperatorLossBps", "loose", 5_000, "owner", "guardian", "stranger", False, "leave")
    assert "maxOperatorLossBps" in m.model.queued
    step(m, m.param_step, "revoke", "maxOperatorLossBps", "loose", 1, "stranger", False)
    assert "NotGuardian" in last(m, "revokeParam")
    step(m, m.param_step, "revoke", "maxOperatorLossBps", "loose", 1, "guardian", False)
    assert last(m, "revokeParam").endswith("ok") and "maxOperatorLossBps" not in m.model.queued
    # the operator cannot set parameters
    step(m, m.param_step, "set", "maxLtvBps", "tight", 100, "operator", False)
    assert "NotOwner" in last(m, "setParam")
    assert PARAMS.index(p) == 5


def test_attacker_sandwiches(m):
    step(m, m.start, "positioned")
    n = STATS["sandwiches"]
    # a same-block pump of 10% of the pair's stable reserve before a buy: spot far above the TWAP
    step(m, m.sandwich, "buy", "operator", "cUSDT", "WETH9", 1_000, False, 0, FRAC(1_000), "observe")
    assert "PriceAboveTwap" in last(m, "buy")
    # a small pump (0.05% of the reserve) stays within maxSlippageBps of the TWAP: the buy runs
    step(m, m.sandwich, "buy", "operator", "cUSDT", "WETH9", 5, False, 0, FRAC(1_000), "observe")
    assert last(m, "buy").endswith("ok")
    # a pump held for ten TWAP windows moves the TWAP: the buy runs at the pumped price
    step(m, m.sandwich, "buy", "operator", "cUSDT", "WETH9", 300, False, "10window", FRAC(1_000), "observe")
    # a same-block WETH dump before a deleverage: the sale must still pay oracle x (1 - slippage)
    step(m, m.sandwich, "deleverage", "operator", "cUSDT", "WETH9", 1_000, False, 0, FRAC(5_000), "no")
    assert "INSUFFICIENT_OUTPUT_AMOUNT" in last(m, "deleverage")
    assert STATS["sandwiches"] == n + 4


def test_loss_budget_refuses_the_operator_not_the_owner(m):
    step(m, m.start, "underwater_tight")  # USDTz bought at ~0.92, the pair at ~0.88, budget 2 bps
    s = m.state()
    budget = m.env.split["splitValue"] * 2 // 10_000
    assert s["rv"]["lossBudget"] == budget == 600 * USD6
    # selling a fifth of the USDTz at a ~4% loss is past the $600 budget
    res = step(m, m.do_sell, "operator", "cUSDT", s["rv"]["usdtzHeld"] // 5, 0)
    assert not res["ok"] and error_name(res["reason"]) == "LossBudgetExceeded"
    # a small sale fits: its loss is booked
    step(m, m.sell, "operator", "cUSDT", FRAC(20), 0, "no")
    assert last(m, "sell").endswith("ok") and 0 < m.model.op_loss <= budget
    # the owner's sale is a crisis exit: no budget, nothing booked
    loss = m.model.op_loss
    step(m, m.sell, "owner", "cUSDT", FRAC(2_000), 0, "no")
    assert last(m, "sell").endswith("ok") and m.model.op_loss == loss
    assert m.state()["p.phase"] not in (HOLDING, CLOSED)
