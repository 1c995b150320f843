"""DealVault roles: every gated function refuses a wrong caller with the right error, two-step
ownership, renounce of each role, operator/guardian replacement, the guardian's narrow powers,
owner-only withdraw to the owner, constructor validation, and tighten-only risk setters."""

from __future__ import annotations

import ape
import pytest

from dealvault.funding import fund, fund_eth
from dealvault.overlay import DEADLINE
from helpers_vault import E6, ETH, PH, assert_books, bal, make_deal, venues
from tests.conftest import DEFAULT_RISK, RISK_FIELDS

ZERO = "0x0000000000000000000000000000000000000000"


@pytest.fixture
def v(mirror, market):
    return venues(mirror, market)


def calls(vault, v):
    """(name, kind, callable(sender)) for every role-gated function. kind: the error a stranger
    gets -- 'owner' NotOwner, 'guardian' NotGuardian (owner or guardian), 'operator' NotOperator
    (operator only), 'opown' NotOperator (operator or owner)."""
    s, w = v.cusdt, v.weth9
    return [
        ("fund", "owner", lambda a: vault.fund(value=1, sender=a)),
        ("ownerRepay", "owner", lambda a: vault.ownerRepay(s, 1, sender=a)),
        ("resume", "owner", lambda a: vault.resume(sender=a)),
        ("unpause", "owner", lambda a: vault.unpause(sender=a)),
        ("withdraw", "owner", lambda a: vault.withdraw(ZERO, 0, sender=a)),
        ("setMaxLtvBps", "owner", lambda a: vault.setMaxLtvBps(2000, sender=a)),
        ("setMaxExposureBps", "owner", lambda a: vault.setMaxExposureBps(2000, sender=a)),
        ("setMaxDeskFeeBps", "owner", lambda a: vault.setMaxDeskFeeBps(10, sender=a)),
        ("setOracleMaxAge", "owner", lambda a: vault.setOracleMaxAge(60, sender=a)),
        ("setMinDiscountBps", "owner", lambda a: vault.setMinDiscountBps(900, sender=a)),
        ("setMaxSlippageBps", "owner", lambda a: vault.setMaxSlippageBps(10, sender=a)),
        ("setSellFloorPrice", "owner", lambda a: vault.setSellFloorPrice(900_000, sender=a)),
        ("setEthFloorPrice", "owner", lambda a: vault.setEthFloorPrice(2_000 * 10**8, sender=a)),
        ("setOperator", "owner", lambda a: vault.setOperator(a.address, sender=a)),
        ("setGuardian", "owner", lambda a: vault.setGuardian(a.address, sender=a)),
        ("transferOwnership", "owner", lambda a: vault.transferOwnership(a.address, sender=a)),
        ("renounceOwnership", "owner", lambda a: vault.renounceOwnership(sender=a)),
        ("pause", "guardian", lambda a: vault.pause(sender=a)),
        ("hold", "guardian", lambda a: vault.hold(sender=a)),
        ("renounceGuardian", "guardian_only", lambda a: vault.renounceGuardian(sender=a)),
        ("renounceOperator", "operator", lambda a: vault.renounceOperator(sender=a)),
        ("supply", "operator", lambda a: vault.supply(w, ETH, sender=a)),
        ("borrow", "operator", lambda a: vault.borrow(s, E6, sender=a)),
        ("buy", "operator", lambda a: vault.buy(s, E6, 0, DEADLINE, sender=a)),
        ("split", "opown", lambda a: vault.split(sender=a)),
        ("redeem", "opown", lambda a: vault.redeem(s, E6, sender=a)),
        ("sell", "opown", lambda a: vault.sell(s, E6, 0, DEADLINE, sender=a)),
        ("repay", "opown", lambda a: vault.repay(s, E6, sender=a)),
        ("addCollateral", "opown", lambda a: vault.addCollateral(w, ETH, sender=a)),
        ("withdrawCollateral", "opown", lambda a: vault.withdrawCollateral(w, ETH, sender=a)),
        ("deleverage", "opown", lambda a: vault.deleverage(w, s, ETH, 0, DEADLINE, sender=a)),
        ("close", "opown", lambda a: vault.close(sender=a)),
        ("acceptOwnership", "pending", lambda a: vault.acceptOwnership(sender=a)),
    ]


ALLOWED = {  # who may call (by role name); everyone else must be refused
    "owner": {"owner"}, "guardian": {"owner", "guardian"}, "guardian_only": {"guardian"},
    "operator": {"operator"}, "opown": {"operator", "owner"}, "pending": set(),
}
ERROR = {"owner": "NotOwner", "guardian": "NotGuardian", "guardian_only": "NotGuardian",
         "operator": "NotOperator", "opown": "NotOperator", "pending": "NotPendingOwner"}


def test_wrong_caller_for_every_gated_function(vault, v, owner, operator, guardian, stranger):
    roles = dict(owner=owner, operator=operator, guardian=guardian, stranger=stranger)
    checked = 0
    for name, kind, call in calls(vault, v):
        for role, acct in roles.items():
            if role in ALLOWED[kind]:
                continue
            with ape.reverts(getattr(vault, ERROR[kind]), caller=acct.address):
                call(acct)
            checked += 1
    assert checked >= 33 * 2
    # nothing changed
    assert (vault.owner(), vault.operator(), vault.guardian()) == (owner.address, operator.address, guardian.address)
    assert vault.phase() == PH["FUNDED"] and not vault.paused()


def test_two_step_ownership(vault, owner, operator, guardian, stranger, accounts):
    new = accounts[6]
    r = vault.transferOwnership(new.address, sender=owner)
    assert [(e.previousOwner, e.newOwner) for e in r.decode_logs(vault.OwnershipTransferStarted)] == [
        (owner.address, new.address)]
    assert vault.owner() == owner.address and vault.pendingOwner() == new.address
    with ape.reverts(vault.NotOwner, caller=new.address):  # pending is not owner yet
        vault.pause(sender=new) if False else vault.setMaxLtvBps(2000, sender=new)
    with ape.reverts(vault.NotPendingOwner, caller=stranger.address):
        vault.acceptOwnership(sender=stranger)
    r = vault.acceptOwnership(sender=new)
    assert [(e.previousOwner, e.newOwner) for e in r.decode_logs(vault.OwnershipTransferred)] == [
        (owner.address, new.address)]
    assert vault.owner() == new.address and vault.pendingOwner() == ZERO
    with ape.reverts(vault.NotOwner, caller=owner.address):
        vault.setMaxLtvBps(2000, sender=owner)
    vault.setMaxLtvBps(2000, sender=new)
    # a later transfer can be overwritten before acceptance; the overwritten one cannot accept
    vault.transferOwnership(stranger.address, sender=new)
    vault.transferOwnership(owner.address, sender=new)
    with ape.reverts(vault.NotPendingOwner, caller=stranger.address):
        vault.acceptOwnership(sender=stranger)
    # the operator or the guardian may never become owner
    vault.transferOwnership(operator.address, sender=new)
    with ape.reverts(vault.RolesNotDistinct, account=operator.address):
        vault.acceptOwnership(sender=operator)


def test_renounce_each_role(vault, v, owner, operator, guardian):
    r = vault.renounceOperator(sender=operator)
    assert [(e.previousOperator, e.newOperator) for e in r.decode_logs(vault.OperatorSet)] == [(operator.address, ZERO)]
    assert vault.operator() == ZERO
    with ape.reverts(vault.NotOperator, caller=operator.address):
        vault.supply(v.weth9, ETH, sender=operator)
    r = vault.renounceGuardian(sender=guardian)
    assert vault.guardian() == ZERO
    with ape.reverts(vault.NotGuardian, caller=guardian.address):
        vault.pause(sender=guardian)
    vault.transferOwnership(guardian.address, sender=owner)
    r = vault.renounceOwnership(sender=owner)
    assert [(e.previousOwner, e.newOwner) for e in r.decode_logs(vault.OwnershipTransferred)] == [(owner.address, ZERO)]
    assert vault.owner() == ZERO and vault.pendingOwner() == ZERO  # the pending transfer is void too
    with ape.reverts(vault.NotOwner, caller=owner.address):
        vault.fund(value=1, sender=owner)
    with ape.reverts(vault.NotPendingOwner, caller=guardian.address):
        vault.acceptOwnership(sender=guardian)


def test_set_operator_and_guardian(vault, v, owner, operator, guardian, stranger, accounts):
    new_op, new_g = accounts[6], accounts[7]
    with ape.reverts(vault.ZeroAddress, which="role"):
        vault.setOperator(ZERO, sender=owner)
    for bad in (owner.address, guardian.address):
        with ape.reverts(vault.RolesNotDistinct, account=bad):
            vault.setOperator(bad, sender=owner)
    for bad in (owner.address, operator.address):
        with ape.reverts(vault.RolesNotDistinct, account=bad):
            vault.setGuardian(bad, sender=owner)
    with ape.reverts(vault.ZeroAddress, which="role"):
        vault.setGuardian(ZERO, sender=owner)
    r = vault.setOperator(new_op.address, sender=owner)
    assert [(e.previousOperator, e.newOperator) for e in r.decode_logs(vault.OperatorSet)] == [
        (operator.address, new_op.address)]
    r = vault.setGuardian(new_g.address, sender=owner)
    assert [(e.previousGuardian, e.newGuardian) for e in r.decode_logs(vault.GuardianSet)] == [
        (guardian.address, new_g.address)]
    vault.fund(value=10 * ETH, sender=owner)
    with ape.reverts(vault.NotOperator, caller=operator.address):
        vault.split(sender=operator)
    vault.split(sender=new_op)
    with ape.reverts(vault.NotGuardian, caller=guardian.address):
        vault.pause(sender=guardian)
    vault.pause(sender=new_g)
    assert vault.paused()


def test_guardian_pauses_and_holds_nothing_else(vault, v, owner, operator, guardian):
    vault.fund(value=10 * ETH, sender=owner)
    r = vault.pause(sender=guardian)
    assert [(e.paused, e.by) for e in r.decode_logs(vault.PauseChanged)] == [(True, guardian.address)]
    r = vault.hold(sender=guardian)
    assert [(e["from"] if isinstance(e, dict) else getattr(e, "from"), e.reason)
            for e in r.decode_logs(vault.HoldingEntered)] == [(PH["FUNDED"], 2)]
    assert vault.phase() == PH["HOLDING"]
    for name, kind, call in calls(vault, v):
        if "guardian" in ALLOWED[kind] or name in ("pause", "hold"):
            continue
        with ape.reverts(getattr(vault, ERROR[kind]), caller=guardian.address):
            call(guardian)
    vault.unpause(sender=owner)
    vault.resume(sender=owner)
    assert vault.phase() == PH["FUNDED"] and not vault.paused()


def test_owner_withdraw_sends_surplus_to_the_owner_only(w3, vault, v, owner, operator, stranger):
    vault.fund(value=10 * ETH, sender=owner)
    vault.split(sender=operator)
    # donations: ETH (forced balance), cUSDT, USDTz
    fund_eth(w3, vault.address, 3 * ETH)
    fund(w3, v.cusdt, vault.address, 700 * E6)
    fund(w3, v.usdtz, vault.address, 55 * E6)
    with ape.reverts(vault.NotOwner, caller=stranger.address):
        vault.withdraw(v.cusdt, 700 * E6, sender=stranger)
    with ape.reverts(vault.InsufficientBucket, bucket=6, available=700 * E6, needed=700 * E6 + 1):
        vault.withdraw(v.cusdt, 700 * E6 + 1, sender=owner)
    with ape.reverts(vault.InsufficientBucket, bucket=6, available=3 * ETH, needed=3 * ETH + 1):
        vault.withdraw(ZERO, 3 * ETH + 1, sender=owner)  # core/working/opportunistic are not surplus
    s0, z0, e0, x0 = bal(w3, v.cusdt, owner), bal(w3, v.usdtz, owner), bal(w3, None, owner), bal(w3, v.cusdt, stranger)
    vault.withdraw(v.cusdt, 700 * E6, sender=owner)
    vault.withdraw(v.usdtz, 55 * E6, sender=owner)
    e0 = bal(w3, None, owner)
    r = vault.withdraw(ZERO, 3 * ETH, sender=owner)
    assert bal(w3, v.cusdt, owner) == s0 + 700 * E6 and bal(w3, v.usdtz, owner) == z0 + 55 * E6
    assert bal(w3, None, owner) == e0 + 3 * ETH - r.gas_used * r.gas_price
    assert bal(w3, v.cusdt, stranger) == x0
    assert bal(w3, None, vault) == 10 * ETH  # the books untouched
    rv = vault.riskView()
    assert (rv.coreEth, rv.workingEth, rv.opportunisticEth) == (5 * ETH, 3 * ETH, 2 * ETH)


# --- constructor ------------------------------------------------------------------------------------

ADDRESS_NAMES = ["weth9", "weth10", "cusdt", "cusdc", "usdtz", "pool", "router", "desk", "ethUsdFeed",
                 "owner", "operator", "guardian"]


def deploy_with(project, deployer, cfg):
    return project.DealVault.deploy(cfg, sender=deployer)


@pytest.mark.parametrize("i", range(12))
def test_constructor_zero_address(project, deployer, vault_config, i):
    cfg = list(vault_config())
    cfg[i] = ZERO
    with ape.reverts(project.DealVault.ZeroAddress, which=ADDRESS_NAMES[i]):
        deploy_with(project, deployer, tuple(cfg))


def test_constructor_roles_not_distinct(project, deployer, vault_config, owner, operator, guardian):
    for kw, acct in [(dict(operator_=owner.address), owner), (dict(guardian_=owner.address), owner),
                     (dict(guardian_=operator.address), operator)]:
        with ape.reverts(project.DealVault.RolesNotDistinct, account=acct.address):
            deploy_with(project, deployer, vault_config(**kw))


def test_constructor_wrong_decimals(project, deployer, vault_config, mirror, market):
    cfg = list(vault_config())
    cfg[2] = mirror.weth9  # an 18-dp token as cUSDT
    with ape.reverts(project.DealVault.WrongDecimals, token=mirror.weth9, expected=6, actual=18):
        deploy_with(project, deployer, tuple(cfg))
    cfg = list(vault_config())
    cfg[1] = mirror.cusdc  # a 6-dp token as WETH10
    with ape.reverts(project.DealVault.WrongDecimals, token=mirror.cusdc, expected=18, actual=6):
        deploy_with(project, deployer, tuple(cfg))


@pytest.mark.parametrize("risk,err,kw", [
    (dict(coreBps=5000, workingBps=3000, opportunisticBps=2001), "BucketSplitInvalid", dict(sum=10_001)),
    (dict(coreBps=5000, workingBps=2999, opportunisticBps=2000), "BucketSplitInvalid", dict(sum=9_999)),
    (dict(maxLtvBps=3001), "CapAboveCeiling", dict(value=3001, ceiling=3000)),
    (dict(maxExposureBps=2501), "CapAboveCeiling", dict(value=2501, ceiling=2500)),
    (dict(maxDeskFeeBps=10_001), "CapAboveCeiling", dict(value=10_001, ceiling=10_000)),
    (dict(minDiscountBps=10_000), "CapAboveCeiling", dict(value=10_000, ceiling=9_999)),
    (dict(maxSlippageBps=10_000), "CapAboveCeiling", dict(value=10_000, ceiling=9_999)),
    (dict(sellFloorPrice=10**6 + 1), "CapAboveCeiling", dict(value=10**6 + 1, ceiling=10**6)),
    (dict(rungs=[0, 2, 3]), "RungsInvalid", dict(index=0)),
    (dict(rungs=[5, 5, 6]), "RungsInvalid", dict(index=1)),
    (dict(rungs=[5, 6, 6]), "RungsInvalid", dict(index=2)),
    (dict(rungs=[5, 7, 6]), "RungsInvalid", dict(index=2)),
    (dict(rungs=[5, 6, 2**63]), "RungsInvalid", dict(index=2)),  # the ladder's progress book is a uint64
])
def test_constructor_risk_errors(project, deployer, vault_config, risk, err, kw):
    with ape.reverts(getattr(project.DealVault, err), **kw):
        deploy_with(project, deployer, vault_config(**risk))


def test_constructor_edges_pass(project, deployer, vault_config):
    c = deploy_with(project, deployer, vault_config(maxLtvBps=3000, maxExposureBps=2500, minDiscountBps=9_999,
                                                     sellFloorPrice=10**6, rungs=[1, 2, 3]))
    assert (c.maxLtvBps(), c.maxExposureBps(), c.minDiscountBps(), c.sellFloorPrice()) == (3000, 2500, 9_999, 10**6)
    assert [c.rungSize(k) for k in range(3)] == [1, 2, 3]
    top = deploy_with(project, deployer, vault_config(rungs=[1, 2, 2**63 - 1]))
    assert top.rungSize(2) == 2**63 - 1


# --- tighten-only setters ------------------------------------------------------------------------------

# (setter, getter, Param id, direction: -1 = tighter is lower, +1 = tighter is higher, default value)
SETTERS = [
    ("setMaxLtvBps", "maxLtvBps", 0, -1),
    ("setMaxExposureBps", "maxExposureBps", 1, -1),
    ("setMaxDeskFeeBps", "maxDeskFeeBps", 2, -1),
    ("setOracleMaxAge", "oracleMaxAge", 3, -1),
    ("setMinDiscountBps", "minDiscountBps", 4, +1),
    ("setMaxSlippageBps", "maxSlippageBps", 5, -1),
    ("setSellFloorPrice", "sellFloorPrice", 6, +1),
    ("setEthFloorPrice", "ethFloorPrice", 7, +1),
]


@pytest.mark.parametrize("setter,getter,param,direction", SETTERS, ids=[s[0] for s in SETTERS])
def test_tighten_only(vault, owner, setter, getter, param, direction):
    cur = getattr(vault, getter)()
    set_ = getattr(vault, setter)
    # looser by one unit: refused
    with ape.reverts(vault.NotTighter, current=cur, proposed=cur - direction):
        set_(cur - direction, sender=owner)
    # equal: passes, event old == new
    r = set_(cur, sender=owner)
    assert [(e.param, e.oldValue, e.newValue) for e in r.decode_logs(vault.RiskParamSet)] == [(param, cur, cur)]
    # tighter: passes
    step = max(cur // 10, 1)
    new = cur + direction * step
    r = set_(new, sender=owner)
    assert [(e.param, e.oldValue, e.newValue) for e in r.decode_logs(vault.RiskParamSet)] == [(param, cur, new)]
    assert getattr(vault, getter)() == new
    # back to the constructor value: now looser, refused
    with ape.reverts(vault.NotTighter, current=new, proposed=cur):
        set_(cur, sender=owner)
    assert getattr(vault, getter)() == new


def test_tighten_ceilings(vault, owner):
    with ape.reverts(vault.CapAboveCeiling, value=10_000, ceiling=9_999):
        vault.setMinDiscountBps(10_000, sender=owner)
    with ape.reverts(vault.CapAboveCeiling, value=10**6 + 1, ceiling=10**6):
        vault.setSellFloorPrice(10**6 + 1, sender=owner)
    vault.setMinDiscountBps(9_999, sender=owner)
    vault.setSellFloorPrice(10**6, sender=owner)
