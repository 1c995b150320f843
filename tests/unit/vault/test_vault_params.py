"""DealVault v2 risk parameters (issue 12, "Parameters" and "Info"): the timelock and the
constructor's refusals.

setParam (owner): a tightening, or the same value, acts at once (RiskParamSet) and drops a queued
loosening of that parameter; a loosening is queued for loosenDelay seconds (RiskParamQueued), at
most back to the constructor's value (LoosenedPastInitial(param, value, initial)) and never past the
hard limit (CapAboveCeiling(value, limit)) nor below the floor (ParamInvalid); acceptParam (anyone)
applies it at validAt (QueuedUntil before, NothingQueued without one); revokeParam (owner or
guardian) drops it. Every value is read back two ways: the lens (params, initialParams,
queuedParams) and the raw storage word at the (slot, byte offset, width) ParamTable documents.

The constructor refuses duplicate and zero venue/token addresses, degenerate values (zero floors,
a zero TWAP window or oracle age), values past the hard limits, and minTranche out of
(0, rungs[0]].

(v1's tighten-only setter tests, moved from test_vault_roles.py, are the per-parameter tests here:
v1 refused any loosening with NotTighter; v2 queues it.)"""

from __future__ import annotations

import itertools

import ape
import pytest
from helpers_revert import deploy_reverts
from helpers_vault import (
    BPS,
    ETH,
    LEG,
    bal,
    block_ts,
    collateral_of,
    debt_at,
    feed,
    lens_call,
    make_deal,
    params,
    reserves,
    risk_view,
    uni_out,
    venues,
)

from dealvault.kit.evm import rpc
from dealvault.kit.mirror import set_eth_price
from dealvault.kit.overlay import DEADLINE
from tests.model import DEFAULT_RISK

ZERO = "0x0000000000000000000000000000000000000000"
DAY = 86_400

# IDealVault.Param ids
(MAX_LTV, MAX_EXPOSURE, MAX_DESK_FEE, ORACLE_MAX_AGE, MIN_DISCOUNT, MAX_SLIPPAGE, SELL_FLOOR, ETH_FLOOR,
 MAX_OPERATOR_LOSS, TWAP_WINDOW, LOOSEN_DELAY) = range(11)

#: Param -> (storage slot, byte offset, bytes): ParamTable's table, read raw from the vault's storage
RAW = {MAX_LTV: (1, 20, 2), MAX_EXPOSURE: (1, 22, 2), MAX_DESK_FEE: (1, 24, 2), ORACLE_MAX_AGE: (1, 28, 4),
       MIN_DISCOUNT: (0, 27, 2), MAX_SLIPPAGE: (1, 26, 2), SELL_FLOOR: (3, 20, 4), ETH_FLOOR: (3, 24, 8),
       MAX_OPERATOR_LOSS: (2, 20, 2), TWAP_WINDOW: (0, 29, 2), LOOSEN_DELAY: (2, 22, 4)}

# The vault these tests deploy: the tests' defaults, with the LTV and exposure caps below their
# hard limits so that "past the constructor's value" and "past the limit" are different values.
INIT = {**{k: DEFAULT_RISK[k] for k in ("maxDeskFeeBps", "oracleMaxAge", "minDiscountBps", "maxSlippageBps",
                                        "sellFloorPrice", "ethFloorPrice", "maxOperatorLossBps", "twapWindow",
                                        "loosenDelay")},
        "maxLtvBps": 2500, "maxExposureBps": 2000}


class P:
    """One parameter's test values. higher: higher is tighter. tight / tighter: two successive
    tightenings from the constructor's value; mid: a partial loosening back (between tight and
    init); past_init: just looser than the constructor's value; past_limit: just past the hard
    limit; floor: the smallest value allowed (0, 1, or an hour for loosenDelay)."""

    def __init__(self, pid, field, higher, tight, tighter, mid, limit, floor):
        self.id, self.field, self.higher, self.limit, self.floor = pid, field, higher, limit, floor
        self.init = INIT[field]
        self.tight, self.tighter, self.mid = tight, tighter, mid
        step = 1 if higher else -1  # one unit tighter
        self.past_init = self.init - step
        self.past_limit = limit + 1
        assert self.init != limit  # the two ceilings differ
        tighter_than = (lambda a, b: a > b) if higher else (lambda a, b: a < b)
        assert tighter_than(tighter, tight) and tighter_than(tight, mid) and tighter_than(mid, self.init)

    def __repr__(self):
        return self.field


PARAMS = [
    P(MAX_LTV, "maxLtvBps", False, 2000, 1500, 2200, 3000, 0),
    P(MAX_EXPOSURE, "maxExposureBps", False, 1500, 1000, 1800, 2500, 0),
    P(MAX_DESK_FEE, "maxDeskFeeBps", False, 25, 10, 40, 1000, 0),
    P(ORACLE_MAX_AGE, "oracleMaxAge", False, 1800, 600, 3000, 2**32 - 1, 1),
    P(MIN_DISCOUNT, "minDiscountBps", True, 800, 1200, 600, 9_999, 0),
    P(MAX_SLIPPAGE, "maxSlippageBps", False, 50, 10, 80, 1000, 0),
    P(SELL_FLOOR, "sellFloorPrice", True, 900_000, 950_000, 870_000, 10**6, 1),
    P(ETH_FLOOR, "ethFloorPrice", True, 1_500 * 10**8, 2_000 * 10**8, 1_200 * 10**8, 10**16, 1),
    P(MAX_OPERATOR_LOSS, "maxOperatorLossBps", False, 25, 10, 40, 1000, 0),
    P(TWAP_WINDOW, "twapWindow", True, 120, 600, 90, 65_535, 1),
    P(LOOSEN_DELAY, "loosenDelay", True, 2 * DAY, 3 * DAY, DAY + 3_600, 30 * DAY, 3_600),
]
IDS = [p.field for p in PARAMS]


@pytest.fixture(scope="module")
def pv(vault_factory):
    """The parameter tests' vault (INIT), deployed once; each test runs on a snapshot of it."""
    return vault_factory(maxLtvBps=INIT["maxLtvBps"], maxExposureBps=INIT["maxExposureBps"])


# --- reads ------------------------------------------------------------------------------------


def raw(w3, vault, pid: int) -> int:
    """The parameter's value straight from the vault's storage word (ParamTable's layout)."""
    slot, offset, size = RAW[pid]
    word = int.from_bytes(w3.eth.get_storage_at(vault.address, slot), "big")
    return (word >> (8 * offset)) & ((1 << (8 * size)) - 1)


def current(w3, vault, p: P) -> int:
    """The value now, read twice (lens and raw storage), which must agree."""
    lens_value = getattr(params(vault), p.field)
    assert lens_value == raw(w3, vault, p.id), (p, lens_value, raw(w3, vault, p.id))
    return lens_value


def initial(vault, p: P) -> int:
    return lens_call("initialParams", vault.address)[p.id]


def queued(vault) -> dict[int, tuple[int, int]]:
    """The lens's queued loosenings: {param: (value, validAt)} for those queued."""
    values, valid_at = lens_call("queuedParams", vault.address)
    assert all(values[i] == 0 for i in range(11) if valid_at[i] == 0)
    return {i: (values[i], valid_at[i]) for i in range(11) if valid_at[i]}


def set_events(vault, r):
    return [(e.param, e.oldValue, e.newValue) for e in r.decode_logs(vault.RiskParamSet)]


def queued_events(vault, r):
    return [(e.param, e.value, e.validAt) for e in r.decode_logs(vault.RiskParamQueued)]


def pin(w3, t: int) -> None:
    """The next block's timestamp (a refused call mines nothing: the pin still holds after it)."""
    rpc(w3, "evm_setNextBlockTimestamp", [t])


def queue(w3, vault, owner, p: P, value: int) -> int:
    """Queues a loosening of ``p`` to ``value``; checks the event and the lens; returns validAt."""
    delay = current(w3, vault, PARAMS[LOOSEN_DELAY])  # the delay now (for LoosenDelay itself: the current one)
    before = current(w3, vault, p)
    r = vault.setParam(p.id, value, sender=owner)
    valid_at = block_ts(w3, r.block_number) + delay
    assert set_events(vault, r) == []
    assert queued_events(vault, r) == [(p.id, value, valid_at)]
    assert current(w3, vault, p) == before  # not yet
    assert queued(vault)[p.id] == (value, valid_at)
    return valid_at


# --- the timelock, parameter by parameter ----------------------------------------------------------


@pytest.mark.parametrize("p", PARAMS, ids=IDS)
def test_tighten_at_once_equal_noop_loosen_queued_then_accepted(w3, pv, owner, stranger, p):
    vault = pv
    assert current(w3, vault, p) == p.init == initial(vault, p)
    assert queued(vault) == {}
    with ape.reverts(vault.NothingQueued, param=p.id):
        vault.acceptParam(p.id, sender=stranger)
    # the same value: passes, old == new, nothing queued
    r = vault.setParam(p.id, p.init, sender=owner)
    assert set_events(vault, r) == [(p.id, p.init, p.init)] and queued_events(vault, r) == []
    assert current(w3, vault, p) == p.init and queued(vault) == {}
    # tighter: at once
    r = vault.setParam(p.id, p.tight, sender=owner)
    assert set_events(vault, r) == [(p.id, p.init, p.tight)] and queued_events(vault, r) == []
    assert current(w3, vault, p) == p.tight and queued(vault) == {}
    assert initial(vault, p) == p.init  # the bound a loosening may go back to does not move
    # looser, all the way back to the constructor's value: queued behind loosenDelay
    valid_at = queue(w3, vault, owner, p, p.init)
    assert list(queued(vault)) == [p.id]  # only this one
    with ape.reverts(vault.QueuedUntil, param=p.id, validAt=valid_at):
        vault.acceptParam(p.id, sender=stranger)
    pin(w3, valid_at - 1)
    with ape.reverts(vault.QueuedUntil, param=p.id, validAt=valid_at):
        vault.acceptParam(p.id, sender=stranger)
    assert current(w3, vault, p) == p.tight
    # at validAt anyone applies it
    pin(w3, valid_at)
    r = vault.acceptParam(p.id, sender=stranger)
    assert block_ts(w3, r.block_number) == valid_at
    assert set_events(vault, r) == [(p.id, p.tight, p.init)]
    assert current(w3, vault, p) == p.init and queued(vault) == {}
    with ape.reverts(vault.NothingQueued, param=p.id):
        vault.acceptParam(p.id, sender=stranger)


@pytest.mark.parametrize("p", PARAMS, ids=IDS)
def test_limits_initial_ceiling_hard_limit_and_floor(w3, pv, owner, p):
    vault = pv
    # looser than the constructor's value: refused, before and after a tightening
    with ape.reverts(vault.LoosenedPastInitial, param=p.id, value=p.past_init, initial=p.init):
        vault.setParam(p.id, p.past_init, sender=owner)
    vault.setParam(p.id, p.tight, sender=owner)
    with ape.reverts(vault.LoosenedPastInitial, param=p.id, value=p.past_init, initial=p.init):
        vault.setParam(p.id, p.past_init, sender=owner)
    # past the hard limit: refused whichever way it points
    with ape.reverts(vault.CapAboveCeiling, value=p.past_limit, ceiling=p.limit):
        vault.setParam(p.id, p.past_limit, sender=owner)
    with ape.reverts(vault.CapAboveCeiling, value=2**255, ceiling=p.limit):
        vault.setParam(p.id, 2**255, sender=owner)
    assert current(w3, vault, p) == p.tight and queued(vault) == {}
    # the limit itself: the tightest value for a higher-is-tighter parameter (at once); the
    # loosest for the others, so past this vault's constructor value
    if p.higher:
        r = vault.setParam(p.id, p.limit, sender=owner)
        assert set_events(vault, r) == [(p.id, p.tight, p.limit)]
        assert current(w3, vault, p) == p.limit
    else:
        with ape.reverts(vault.LoosenedPastInitial, param=p.id, value=p.limit, initial=p.init):
            vault.setParam(p.id, p.limit, sender=owner)
        assert current(w3, vault, p) == p.tight
    before = current(w3, vault, p)
    # the floor
    if p.floor >= 1:
        with ape.reverts(vault.ParamInvalid, param=p.id, value=p.floor - 1):
            vault.setParam(p.id, p.floor - 1, sender=owner)
        assert current(w3, vault, p) == before
    elif p.higher:  # 0 is allowed but the loosest: past the constructor's value here
        with ape.reverts(vault.LoosenedPastInitial, param=p.id, value=0, initial=p.init):
            vault.setParam(p.id, 0, sender=owner)
        assert current(w3, vault, p) == before
    else:  # 0 is the tightest value: at once
        r = vault.setParam(p.id, 0, sender=owner)
        assert set_events(vault, r) == [(p.id, before, 0)]
        assert current(w3, vault, p) == 0
    assert queued(vault) == {}


@pytest.mark.parametrize("p", PARAMS, ids=IDS)
def test_tightening_drops_a_queued_loosening(w3, pv, owner, stranger, p):
    vault = pv
    vault.setParam(p.id, p.tighter, sender=owner)
    # a second loosening replaces the first (value and validAt)
    first = queue(w3, vault, owner, p, p.tight)
    rpc(w3, "evm_increaseTime", [100])
    second = queue(w3, vault, owner, p, p.mid)
    assert second > first and queued(vault) == {p.id: (p.mid, second)}
    # the same value again: acts (old == new) and drops the queued loosening
    r = vault.setParam(p.id, p.tighter, sender=owner)
    assert set_events(vault, r) == [(p.id, p.tighter, p.tighter)] and queued_events(vault, r) == []
    assert queued(vault) == {}
    pin(w3, second + 1)
    with ape.reverts(vault.NothingQueued, param=p.id):
        vault.acceptParam(p.id, sender=stranger)
    assert current(w3, vault, p) == p.tighter
    # a loosening, then a tightening below the current value: acts, the loosening is gone
    vault.setParam(p.id, p.tight, sender=owner)  # looser than the current (tighter) value: queued
    assert queued(vault)[p.id][0] == p.tight
    r = vault.setParam(p.id, p.tighter + (1 if p.higher else -1), sender=owner)
    assert set_events(vault, r) == [(p.id, p.tighter, p.tighter + (1 if p.higher else -1))]
    assert queued(vault) == {}
    rpc(w3, "evm_increaseTime", [31 * DAY])
    with ape.reverts(vault.NothingQueued, param=p.id):
        vault.acceptParam(p.id, sender=stranger)
    assert current(w3, vault, p) == p.tighter + (1 if p.higher else -1)


@pytest.mark.parametrize("p", PARAMS, ids=IDS)
def test_who_may_set_and_revoke(w3, pv, owner, operator, guardian, stranger, p):
    vault = pv
    for who in (operator, guardian, stranger):
        with ape.reverts(vault.NotOwner, caller=who.address):
            vault.setParam(p.id, p.tight, sender=who)
    assert current(w3, vault, p) == p.init
    vault.setParam(p.id, p.tight, sender=owner)
    valid_at = queue(w3, vault, owner, p, p.mid)
    for who in (operator, stranger):
        with ape.reverts(vault.NotGuardian, caller=who.address):
            vault.revokeParam(p.id, sender=who)
    assert queued(vault) == {p.id: (p.mid, valid_at)}
    # the guardian drops it
    r = vault.revokeParam(p.id, sender=guardian)
    assert [(e.param, e.by) for e in r.decode_logs(vault.RiskParamRevoked)] == [(p.id, guardian.address)]
    assert queued(vault) == {}
    with ape.reverts(vault.NothingQueued, param=p.id):
        vault.revokeParam(p.id, sender=guardian)
    pin(w3, valid_at)
    with ape.reverts(vault.NothingQueued, param=p.id):
        vault.acceptParam(p.id, sender=stranger)
    assert current(w3, vault, p) == p.tight
    # queued again; the owner drops it
    queue(w3, vault, owner, p, p.mid)
    r = vault.revokeParam(p.id, sender=owner)
    assert [(e.param, e.by) for e in r.decode_logs(vault.RiskParamRevoked)] == [(p.id, owner.address)]
    assert queued(vault) == {}
    with ape.reverts(vault.NothingQueued, param=p.id):
        vault.revokeParam(p.id, sender=owner)
    assert current(w3, vault, p) == p.tight


def test_loosening_of_one_param_leaves_the_others(w3, pv, owner, guardian, stranger):
    """Queues are per parameter: three queued at once; revoking one or accepting another leaves
    the rest as they were."""
    vault = pv
    a, b, c = PARAMS[MAX_LTV], PARAMS[SELL_FLOOR], PARAMS[TWAP_WINDOW]
    for p in (a, b, c):
        vault.setParam(p.id, p.tight, sender=owner)
    va, vb, vc = (queue(w3, vault, owner, p, p.mid) for p in (a, b, c))
    assert queued(vault) == {a.id: (a.mid, va), b.id: (b.mid, vb), c.id: (c.mid, vc)}
    vault.revokeParam(b.id, sender=guardian)
    assert queued(vault) == {a.id: (a.mid, va), c.id: (c.mid, vc)}
    pin(w3, max(va, vc))
    vault.acceptParam(a.id, sender=stranger)
    assert queued(vault) == {c.id: (c.mid, vc)}
    assert (current(w3, vault, a), current(w3, vault, b), current(w3, vault, c)) == (a.mid, b.tight, c.tight)


def test_loosen_delay_shortening_waits_the_current_delay(w3, pv, owner, stranger):
    """Lengthening the delay acts at once (every later loosening waits it); shortening it is itself
    queued behind the current (longer) delay; once accepted the shorter delay applies."""
    vault = pv
    d, s = PARAMS[LOOSEN_DELAY], PARAMS[MAX_SLIPPAGE]
    r = vault.setParam(LOOSEN_DELAY, 3 * DAY, sender=owner)
    assert set_events(vault, r) == [(LOOSEN_DELAY, DAY, 3 * DAY)]
    vault.setParam(MAX_SLIPPAGE, s.tight, sender=owner)
    r = vault.setParam(MAX_SLIPPAGE, s.init, sender=owner)
    t = block_ts(w3, r.block_number)
    assert queued_events(vault, r) == [(MAX_SLIPPAGE, s.init, t + 3 * DAY)]
    # back to one day: queued for three
    r = vault.setParam(LOOSEN_DELAY, DAY, sender=owner)
    t1 = block_ts(w3, r.block_number)
    assert queued_events(vault, r) == [(LOOSEN_DELAY, DAY, t1 + 3 * DAY)]
    assert current(w3, vault, d) == 3 * DAY
    pin(w3, t1 + DAY)
    with ape.reverts(vault.QueuedUntil, param=LOOSEN_DELAY, validAt=t1 + 3 * DAY):
        vault.acceptParam(LOOSEN_DELAY, sender=stranger)
    pin(w3, t1 + 3 * DAY)
    r = vault.acceptParam(LOOSEN_DELAY, sender=stranger)
    assert set_events(vault, r) == [(LOOSEN_DELAY, 3 * DAY, DAY)]
    assert current(w3, vault, d) == DAY
    # the slippage loosening queued earlier keeps its validAt (t + 3 days): not moved by the new delay
    assert queued(vault) == {MAX_SLIPPAGE: (s.init, t + 3 * DAY)}
    # a new loosening waits one day
    vault.setParam(MAX_LTV, PARAMS[MAX_LTV].tight, sender=owner)
    r = vault.setParam(MAX_LTV, PARAMS[MAX_LTV].init, sender=owner)
    assert queued_events(vault, r) == [(MAX_LTV, PARAMS[MAX_LTV].init, block_ts(w3, r.block_number) + DAY)]


def test_owner_slip_is_recoverable(w3, vault_factory, mirror, market, owner, operator, stranger):
    """Issue 12, Low: an owner slip (maxSlippageBps = 0) blocks a deleverage, the risk-reducing
    exit, for the operator and the owner alike (the sale must then pay the full oracle value, which
    a swap with a fee never does). v1 could never loosen again; v2 queues the way back to the
    constructor's value, and after loosenDelay (anyone accepts) the deleverage goes through."""
    deal = make_deal(vault_factory, w3, mirror, market, owner, operator)
    deal.run("borrow")  # 100 ETH, 30 ETH supplied as WETH9, 20,000 cUSDT borrowed
    vault, v = deal.vault, venues(mirror, market)
    amount = 5 * ETH
    price, _ = feed(w3, mirror)
    value = amount * price // 10**20  # 6 dp, the collateral at the oracle price
    out = uni_out(amount, *reserves(w3, market, market.pair_weth_cusdt, v.weth9))
    assert value * (BPS - 100) // BPS <= out < value  # passes at 100 bps, never at 0

    r = vault.setParam(MAX_SLIPPAGE, 0, sender=owner)  # the slip: a tightening, at once
    assert set_events(vault, r) == [(MAX_SLIPPAGE, 100, 0)]
    for who in (operator, owner):
        with ape.reverts("UniswapV2Router: INSUFFICIENT_OUTPUT_AMOUNT"):
            vault.deleverage(v.weth9, v.cusdt, amount, 0, DEADLINE, sender=who)
    # the way back: queue the constructor's value
    r = vault.setParam(MAX_SLIPPAGE, 100, sender=owner)
    valid_at = block_ts(w3, r.block_number) + DAY
    assert queued_events(vault, r) == [(MAX_SLIPPAGE, 100, valid_at)]
    with ape.reverts("UniswapV2Router: INSUFFICIENT_OUTPUT_AMOUNT"):
        vault.deleverage(v.weth9, v.cusdt, amount, 0, DEADLINE, sender=operator)  # still 0 meanwhile
    with ape.reverts(vault.QueuedUntil, param=MAX_SLIPPAGE, validAt=valid_at):
        vault.acceptParam(MAX_SLIPPAGE, sender=stranger)
    pin(w3, valid_at)
    r = vault.acceptParam(MAX_SLIPPAGE, sender=stranger)
    assert set_events(vault, r) == [(MAX_SLIPPAGE, 0, 100)]
    assert params(vault).maxSlippageBps == 100
    set_eth_price(w3, mirror, price)  # a day passed: a fresh round at the same price

    # the deleverage now clears, at exactly the pair's output, repaying with all of it
    assert uni_out(amount, *reserves(w3, market, market.pair_weth_cusdt, v.weth9)) == out
    pre = w3.eth.block_number
    r = vault.deleverage(v.weth9, v.cusdt, amount, 0, DEADLINE, sender=operator)
    ts = block_ts(w3, r.block_number)
    owed = debt_at(w3, market, v.cusdt, v.debt_cusdt, vault, ts, block=pre)
    assert owed > out
    got = [(e.wrapper, e.stable, e.collateralAmount, e.received, e.repaid) for e in r.decode_logs(vault.Deleveraged)]
    assert got == [(v.weth9, v.cusdt, amount, out, out)]
    assert abs(bal(w3, v.debt_cusdt, vault) - (owed - out)) <= 1  # Aave's ray rounding
    assert collateral_of(vault, v.weth9) == 25 * ETH
    budget = (100 * ETH * price // 10**20) * DEFAULT_RISK["maxOperatorLossBps"] // BPS
    losses = [(e.leg, e.loss, e.total, e.budget) for e in r.decode_logs(vault.OperatorLoss)]
    assert losses == [(LEG["Deleverage"], value - out, value - out, budget)]
    assert risk_view(vault).operatorLoss == value - out


# --- the constructor ----------------------------------------------------------------------------

VENUE_NAMES = ["weth9", "weth10", "cusdt", "cusdc", "usdtz", "pool", "router", "desk", "ethUsdFeed"]
ADDRESS_NAMES = VENUE_NAMES + ["owner", "operator", "guardian"]
PAIRS = list(itertools.combinations(range(9), 2))


def deploy(project, deployer, cfg):
    return project.DealVault.deploy(cfg, sender=deployer)


def test_duplicate_pairs_include_the_named_ones():
    named = {("weth9", "weth10"), ("cusdt", "cusdc"), ("cusdt", "usdtz"), ("router", "desk")}
    assert named <= {(VENUE_NAMES[i], VENUE_NAMES[j]) for i, j in PAIRS}
    assert len(PAIRS) == 36


@pytest.mark.parametrize("i,j", PAIRS, ids=[f"{VENUE_NAMES[j]}=={VENUE_NAMES[i]}" for i, j in PAIRS])
def test_constructor_duplicate_address(project, deployer, vault_config, i, j):
    """Issue 12, Info: two equal venue/token addresses (e.g. weth10 == weth9: the collateral
    counted twice) revert DuplicateAddress(that address)."""
    cfg = list(vault_config())
    cfg[j] = cfg[i]
    deploy_reverts(project, deployer, tuple(cfg), "DuplicateAddress", account=cfg[i])


@pytest.mark.parametrize("i", range(12), ids=ADDRESS_NAMES)
def test_constructor_zero_address(project, deployer, vault_config, i):
    """(moved here from test_vault_roles.py) A zero venue, token or role: ZeroAddress(its name)."""
    cfg = list(vault_config())
    cfg[i] = ZERO
    deploy_reverts(project, deployer, tuple(cfg), "ZeroAddress", which=ADDRESS_NAMES[i])


@pytest.mark.parametrize("i,sym,which", [(2, "cUSDT", "cusdt reserve"), (3, "cUSDC", "cusdc reserve")])
def test_constructor_stable_without_a_reserve(project, deployer, vault_config, market, i, sym, which):
    """A 6-dp token the pool has no reserve for (here the stable's own debt token) as a stable: the
    pool reports a zero debt token, ZeroAddress("<stable> reserve")."""
    cfg = list(vault_config())
    cfg[i] = market.variable_debt_tokens[sym]
    deploy_reverts(project, deployer, tuple(cfg), "ZeroAddress", which=which)


@pytest.mark.parametrize("field,pid", [("sellFloorPrice", SELL_FLOOR), ("ethFloorPrice", ETH_FLOOR),
                                       ("twapWindow", TWAP_WINDOW), ("oracleMaxAge", ORACLE_MAX_AGE)])
def test_constructor_degenerate_zero(project, deployer, vault_config, field, pid):
    """Issue 12, Info: a zero sell floor or ETH floor (no bound at all), a zero TWAP window (a buy
    against its own spot) or a zero oracle age (never fresh): ParamInvalid(param, 0)."""
    deploy_reverts(project, deployer, vault_config(**{field: 0}), "ParamInvalid", param=pid, value=0)


@pytest.mark.parametrize("field,value,ceiling", [
    ("maxDeskFeeBps", 10_000, 1_000),  # issue 12, Info: v1 accepted a 100% desk fee
    ("maxDeskFeeBps", 1_001, 1_000),
    ("maxSlippageBps", 1_001, 1_000),
    ("maxOperatorLossBps", 1_001, 1_000),
    ("maxLtvBps", 3_001, 3_000),
    ("maxExposureBps", 2_501, 2_500),
    ("minDiscountBps", 10_000, 9_999),
    ("sellFloorPrice", 10**6 + 1, 10**6),
    ("ethFloorPrice", 10**16 + 1, 10**16),
    ("loosenDelay", 30 * DAY + 1, 30 * DAY),
])
def test_constructor_above_hard_limit(project, deployer, vault_config, field, value, ceiling):
    deploy_reverts(project, deployer, vault_config(**{field: value}), "CapAboveCeiling", value=value, ceiling=ceiling)


@pytest.mark.parametrize("min_tranche", [0, DEFAULT_RISK["rungs"][0] + 1, 2**255])
def test_constructor_min_tranche_out_of_range(project, deployer, vault_config, min_tranche):
    deploy_reverts(project, deployer, vault_config(minTranche=min_tranche), "RungsInvalid", index=3)


def test_constructor_min_tranche_edges_pass(project, deployer, vault_config):
    for m in (1, DEFAULT_RISK["rungs"][0]):
        c = deploy(project, deployer, vault_config(minTranche=m))
        assert params(c).minTranche == m
        assert lens_call("setup", c.address)[7] == m  # Setup.minTranche


def test_constructor_loosen_delay_floor(project, deployer, vault_config):
    """A zero (or sub-hour) loosenDelay would switch the timelock off: the guardian could never
    revoke a loosening before it applies. The floor is an hour: ParamInvalid(LoosenDelay, value)."""
    deploy_reverts(project, deployer, vault_config(loosenDelay=0), "ParamInvalid", param=LOOSEN_DELAY, value=0)
    deploy_reverts(project, deployer, vault_config(loosenDelay=3_599), "ParamInvalid", param=LOOSEN_DELAY, value=3_599)
    assert project.DealVault.deploy(vault_config(loosenDelay=3_600), sender=deployer).address
