"""DealVault roles (v2): every gated function refuses a wrong caller with the right error (the
core's legs and the extension's functions alike, all called at the vault's address), the
extension called at its own address serves no one, two-step ownership, renounce of each role
(the owner's only once CLOSED), operator/guardian replacement, the guardian's narrow powers
(pause, hold, revokeParam), owner-only withdraw of the surplus to the owner, and the
constructor's role, decimals, bucket, rung and ceiling checks and its edges.

v1's tighten-only setters (setMaxLtvBps ...) are gone: setParam and its timelock, and the
constructor's new refusals (duplicate and zero addresses, degenerate values, minTranche), are in
test_vault_params.py."""

from __future__ import annotations

import ape
import pytest
from helpers_revert import deploy_reverts
from helpers_vault import E6, ETH, PH, Deal, bal, lens_call, params, risk_view, venues

from dealvault.artifacts import own
from dealvault.kit.funding import fund, fund_eth
from dealvault.kit.overlay import DEADLINE

ZERO = "0x0000000000000000000000000000000000000000"
CLOSED_MASK = 1 << PH["CLOSED"]  # renounceOwnership's allowedMask (0x40)
MAX_LTV, MAX_SLIPPAGE = 0, 5  # IDealVault.Param ids


@pytest.fixture
def v(mirror, market):
    return venues(mirror, market)


def calls(vault, v):
    """(name, kind, callable(sender)) for every role-gated function of IDealVault. kind: the error
    a stranger gets -- 'owner' NotOwner, 'guardian' NotGuardian (owner or guardian), 'operator'
    NotOperator (operator only), 'opown' NotOperator (operator or owner)."""
    s, w = v.cusdt, v.weth9
    return [
        # the extension's functions (run by the core's fallback, DELEGATECALL)
        ("fund", "owner", lambda a: vault.fund(value=1, sender=a)),
        ("ownerRepay", "owner", lambda a: vault.ownerRepay(s, 1, sender=a)),
        ("resume", "owner", lambda a: vault.resume(sender=a)),
        ("unpause", "owner", lambda a: vault.unpause(sender=a)),
        ("withdraw", "owner", lambda a: vault.withdraw(ZERO, 0, sender=a)),
        ("setParam", "owner", lambda a: vault.setParam(MAX_LTV, 2000, sender=a)),
        ("setOperator", "owner", lambda a: vault.setOperator(a.address, sender=a)),
        ("setGuardian", "owner", lambda a: vault.setGuardian(a.address, sender=a)),
        ("transferOwnership", "owner", lambda a: vault.transferOwnership(a.address, sender=a)),
        ("renounceOwnership", "owner", lambda a: vault.renounceOwnership(sender=a)),
        ("pause", "guardian", lambda a: vault.pause(sender=a)),
        ("hold", "guardian", lambda a: vault.hold(sender=a)),
        ("revokeParam", "guardian", lambda a: vault.revokeParam(MAX_LTV, sender=a)),
        ("renounceGuardian", "guardian_only", lambda a: vault.renounceGuardian(sender=a)),
        ("renounceOperator", "operator", lambda a: vault.renounceOperator(sender=a)),
        ("observe", "opown", lambda a: vault.observe(sender=a)),
        ("acceptOwnership", "pending", lambda a: vault.acceptOwnership(sender=a)),
        # the core's legs
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
    ]


#: state-changing functions anyone may call (acceptParam: a due loosening; tested in test_vault_params.py)
UNGATED = {"acceptParam"}

ALLOWED = {  # who may call (by role name); everyone else must be refused
    "owner": {"owner"}, "guardian": {"owner", "guardian"}, "guardian_only": {"guardian"},
    "operator": {"operator"}, "opown": {"operator", "owner"}, "pending": set(),
}
ERROR = {"owner": "NotOwner", "guardian": "NotGuardian", "guardian_only": "NotGuardian",
         "operator": "NotOperator", "opown": "NotOperator", "pending": "NotPendingOwner"}


def test_calls_cover_every_state_changing_function(vault, v):
    """The list above is the whole IDealVault ABI minus its views: a new gated function cannot be
    missed by the wrong-caller tests."""
    abi = own("IDealVault").abi
    mutating = {a["name"] for a in abi if a.get("type") == "function" and a["stateMutability"] not in ("view", "pure")}
    listed = [name for name, _, _ in calls(vault, v)]
    assert len(listed) == len(set(listed))
    assert set(listed) | UNGATED == mutating, (set(listed) ^ (mutating - UNGATED))


def test_wrong_caller_for_every_gated_function(w3, vault, v, owner, operator, guardian, stranger):
    roles = dict(owner=owner, operator=operator, guardian=guardian, stranger=stranger)
    checked = 0
    for name, kind, call in calls(vault, v):
        for role, acct in roles.items():
            if role in ALLOWED[kind]:
                continue
            with ape.reverts(getattr(vault, ERROR[kind]), caller=acct.address):
                call(acct)
            checked += 1
    # 4 roles x 28 functions minus the allowed (owner 10 x 1, guardian 3 x 2, guardian_only 1,
    # operator 4 x 1, opown 9 x 2, pending 0)
    assert checked == 4 * 28 - (10 + 6 + 1 + 4 + 18)
    # nothing changed
    assert (vault.owner(), vault.operator(), vault.guardian()) == (owner.address, operator.address, guardian.address)
    assert vault.pendingOwner() == ZERO
    assert vault.phase() == PH["FUNDED"] and not vault.paused()
    assert bal(w3, None, vault) == 0


def test_extension_called_directly_serves_no_one(project, vault, v, owner, operator, guardian):
    """The extension's own storage is empty: called at its own address (not through the vault's
    DELEGATECALL) every gated function refuses even the vault's real roles, and it knows no roles."""
    ext = project.IDealVault.at(vault.extension())
    assert ext.address != vault.address
    assert (ext.owner(), ext.operator(), ext.guardian(), ext.pendingOwner()) == (ZERO, ZERO, ZERO, ZERO)
    roles = dict(owner=owner, operator=operator, guardian=guardian)
    extension_functions = {"fund", "ownerRepay", "resume", "unpause", "withdraw", "setParam", "setOperator",
                           "setGuardian", "transferOwnership", "renounceOwnership", "pause", "hold", "revokeParam",
                           "renounceGuardian", "renounceOperator", "observe", "acceptOwnership"}
    checked = 0
    for name, kind, call in calls(ext, v):
        if name not in extension_functions:
            continue
        for acct in roles.values():
            with ape.reverts(getattr(ext, ERROR[kind]), caller=acct.address):
                call(acct)
            checked += 1
    assert checked == 17 * 3
    # the vault's own roles are untouched
    assert (vault.owner(), vault.operator(), vault.guardian()) == (owner.address, operator.address, guardian.address)


def test_two_step_ownership(vault, owner, operator, guardian, stranger, accounts):
    new = accounts[6]
    r = vault.transferOwnership(new.address, sender=owner)
    assert [(e.previousOwner, e.newOwner) for e in r.decode_logs(vault.OwnershipTransferStarted)] == [
        (owner.address, new.address)]
    assert vault.owner() == owner.address and vault.pendingOwner() == new.address
    with ape.reverts(vault.NotOwner, caller=new.address):  # pending is not owner yet
        vault.setParam(MAX_LTV, 2000, sender=new)
    with ape.reverts(vault.NotPendingOwner, caller=stranger.address):
        vault.acceptOwnership(sender=stranger)
    r = vault.acceptOwnership(sender=new)
    assert [(e.previousOwner, e.newOwner) for e in r.decode_logs(vault.OwnershipTransferred)] == [
        (owner.address, new.address)]
    assert vault.owner() == new.address and vault.pendingOwner() == ZERO
    with ape.reverts(vault.NotOwner, caller=owner.address):
        vault.setParam(MAX_LTV, 2000, sender=owner)
    r = vault.setParam(MAX_LTV, 2000, sender=new)
    assert [(e.param, e.oldValue, e.newValue) for e in r.decode_logs(vault.RiskParamSet)] == [(MAX_LTV, 3000, 2000)]
    assert params(vault).maxLtvBps == 2000
    # a later transfer can be overwritten before acceptance; the overwritten one cannot accept
    vault.transferOwnership(stranger.address, sender=new)
    vault.transferOwnership(owner.address, sender=new)
    with ape.reverts(vault.NotPendingOwner, caller=stranger.address):
        vault.acceptOwnership(sender=stranger)
    # the operator or the guardian may never become owner
    vault.transferOwnership(operator.address, sender=new)
    with ape.reverts(vault.RolesNotDistinct, account=operator.address):
        vault.acceptOwnership(sender=operator)
    vault.transferOwnership(guardian.address, sender=new)
    with ape.reverts(vault.RolesNotDistinct, account=guardian.address):
        vault.acceptOwnership(sender=guardian)
    assert vault.owner() == new.address


def test_renounce_each_role(w3, vault, v, owner, operator, guardian, accounts):
    """v2: the owner may renounce only once CLOSED (before that an ownerless vault would lock
    every wei); the operator and the guardian at any time."""
    r = vault.renounceOperator(sender=operator)
    assert [(e.previousOperator, e.newOperator) for e in r.decode_logs(vault.OperatorSet)] == [(operator.address, ZERO)]
    assert vault.operator() == ZERO
    with ape.reverts(vault.NotOperator, caller=operator.address):
        vault.supply(v.weth9, ETH, sender=operator)
    r = vault.renounceGuardian(sender=guardian)
    assert [(e.previousGuardian, e.newGuardian) for e in r.decode_logs(vault.GuardianSet)] == [(guardian.address, ZERO)]
    assert vault.guardian() == ZERO
    with ape.reverts(vault.NotGuardian, caller=guardian.address):
        vault.pause(sender=guardian)
    # the owner runs the deal to CLOSED alone (split and close are operator-or-owner legs);
    # renounceOwnership is refused in every phase on the way
    with ape.reverts(vault.WrongPhase, current=PH["FUNDED"], allowedMask=CLOSED_MASK):
        vault.renounceOwnership(sender=owner)
    vault.fund(value=10 * ETH, sender=owner)
    vault.split(sender=owner)
    with ape.reverts(vault.WrongPhase, current=PH["SPLIT"], allowedMask=CLOSED_MASK):
        vault.renounceOwnership(sender=owner)
    vault.close(sender=owner)
    assert vault.phase() == PH["CLOSED"]
    new = accounts[6]
    vault.transferOwnership(new.address, sender=owner)
    r = vault.renounceOwnership(sender=owner)
    assert [(e.previousOwner, e.newOwner) for e in r.decode_logs(vault.OwnershipTransferred)] == [(owner.address, ZERO)]
    assert vault.owner() == ZERO and vault.pendingOwner() == ZERO  # the pending transfer is void too
    with ape.reverts(vault.NotOwner, caller=owner.address):
        vault.withdraw(ZERO, ETH, sender=owner)
    with ape.reverts(vault.NotPendingOwner, caller=new.address):
        vault.acceptOwnership(sender=new)
    assert bal(w3, None, vault) == 10 * ETH  # what the owner gave up stays in the vault


def test_renounce_ownership_refused_before_closed(w3, vault_factory, mirror, market, owner, operator, guardian):
    """v2 (issue 12, Info): renounceOwnership reverts WrongPhase(current, 0x40) in every phase
    before CLOSED (FUNDED, SPLIT, WORKING, POSITIONED, MONETIZING, HOLDING); the owner stays."""
    deal = Deal(w3, vault_factory(), mirror, market, owner, operator)
    vault = deal.vault
    seen = set()

    def refused(phase: str) -> None:
        assert vault.phase() == PH[phase]
        seen.add(PH[phase])
        with ape.reverts(vault.WrongPhase, current=PH[phase], allowedMask=CLOSED_MASK):
            vault.renounceOwnership(sender=owner)
        assert vault.owner() == owner.address

    refused("FUNDED")
    deal.fund()
    refused("FUNDED")
    deal.split()
    refused("SPLIT")
    deal.supply()
    refused("WORKING")
    deal.borrow()
    deal.buy()
    refused("POSITIONED")
    deal.redeem()
    refused("MONETIZING")
    vault.hold(sender=guardian)
    refused("HOLDING")
    assert seen == set(range(PH["CLOSED"]))  # every phase before CLOSED was tried


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


def test_guardian_pauses_holds_and_revokes_nothing_else(w3, vault, v, owner, operator, guardian):
    """v2: the guardian's powers are pause, hold and revokeParam (drop a queued loosening); every
    other gated function refuses it. (acceptParam is anyone's: not a guardian power.)"""
    vault.fund(value=10 * ETH, sender=owner)
    r = vault.pause(sender=guardian)
    assert [(e.paused, e.by) for e in r.decode_logs(vault.PauseChanged)] == [(True, guardian.address)]
    assert vault.paused()
    r = vault.hold(sender=guardian)
    assert [(e["from"] if isinstance(e, dict) else getattr(e, "from"), e.reason)
            for e in r.decode_logs(vault.HoldingEntered)] == [(PH["FUNDED"], 2)]
    assert vault.phase() == PH["HOLDING"]
    # revokeParam: the owner tightens maxLtvBps, queues the way back; the guardian drops it
    vault.setParam(MAX_LTV, 2000, sender=owner)
    r = vault.setParam(MAX_LTV, 3000, sender=owner)
    valid_at = w3.eth.get_block(r.block_number)["timestamp"] + 86_400
    assert [(e.param, e.value, e.validAt) for e in r.decode_logs(vault.RiskParamQueued)] == [(MAX_LTV, 3000, valid_at)]
    r = vault.revokeParam(MAX_LTV, sender=guardian)
    assert [(e.param, e.by) for e in r.decode_logs(vault.RiskParamRevoked)] == [(MAX_LTV, guardian.address)]
    values, valid = lens_call("queuedParams", vault.address)
    assert values[MAX_LTV] == 0 and valid[MAX_LTV] == 0
    with ape.reverts(vault.NothingQueued, param=MAX_LTV):
        vault.revokeParam(MAX_LTV, sender=guardian)
    # everything else refuses the guardian
    refused = 0
    for name, kind, call in calls(vault, v):
        if "guardian" in ALLOWED[kind]:
            continue
        with ape.reverts(getattr(vault, ERROR[kind]), caller=guardian.address):
            call(guardian)
        refused += 1
    assert refused == 28 - 4  # all but pause, hold, revokeParam, renounceGuardian
    assert params(vault).maxLtvBps == 2000 and vault.guardian() == guardian.address
    vault.unpause(sender=owner)
    vault.resume(sender=owner)
    assert vault.phase() == PH["FUNDED"] and not vault.paused()


def test_owner_withdraw_sends_surplus_to_the_owner_only(w3, vault, v, owner, operator, guardian, stranger):
    """Before CLOSED (and outside HOLDING) the owner withdraws only what exceeds the books, to
    itself. v2: the funded capital is booked (core) from `fund` on, so it is no surplus even
    before split; Withdrawn carries fromBooks = 0."""
    vault.fund(value=10 * ETH, sender=owner)
    with ape.reverts(vault.InsufficientBucket, bucket=6, available=0, needed=1):
        vault.withdraw(ZERO, 1, sender=owner)  # v2: unsplit capital is core, not surplus
    vault.split(sender=operator)
    # donations: ETH (forced balance), cUSDT, USDTz
    fund_eth(w3, vault.address, 3 * ETH)
    fund(w3, v.cusdt, vault.address, 700 * E6)
    fund(w3, v.usdtz, vault.address, 55 * E6)
    for who in (stranger, operator, guardian):
        with ape.reverts(vault.NotOwner, caller=who.address):
            vault.withdraw(v.cusdt, 700 * E6, sender=who)
    with ape.reverts(vault.InsufficientBucket, bucket=6, available=700 * E6, needed=700 * E6 + 1):
        vault.withdraw(v.cusdt, 700 * E6 + 1, sender=owner)
    with ape.reverts(vault.InsufficientBucket, bucket=6, available=55 * E6, needed=55 * E6 + 1):
        vault.withdraw(v.usdtz, 55 * E6 + 1, sender=owner)
    with ape.reverts(vault.InsufficientBucket, bucket=6, available=3 * ETH, needed=3 * ETH + 1):
        vault.withdraw(ZERO, 3 * ETH + 1, sender=owner)  # core/working/opportunistic are not surplus
    s0, z0, x0 = bal(w3, v.cusdt, owner), bal(w3, v.usdtz, owner), bal(w3, v.cusdt, stranger)
    r1 = vault.withdraw(v.cusdt, 700 * E6, sender=owner)
    r2 = vault.withdraw(v.usdtz, 55 * E6, sender=owner)
    e0 = bal(w3, None, owner)
    r3 = vault.withdraw(ZERO, 3 * ETH, sender=owner)
    got = [(e.token, e.amount, e.fromBooks) for r in (r1, r2, r3) for e in r.decode_logs(vault.Withdrawn)]
    assert got == [(v.cusdt, 700 * E6, 0), (v.usdtz, 55 * E6, 0), (ZERO, 3 * ETH, 0)]
    assert bal(w3, v.cusdt, owner) == s0 + 700 * E6 and bal(w3, v.usdtz, owner) == z0 + 55 * E6
    assert bal(w3, None, owner) == e0 + 3 * ETH - r3.gas_used * r3.gas_price
    assert bal(w3, v.cusdt, stranger) == x0
    assert (bal(w3, None, vault), bal(w3, v.cusdt, vault), bal(w3, v.usdtz, vault)) == (10 * ETH, 0, 0)
    rv = risk_view(vault)  # the books untouched
    assert (rv.coreEth, rv.workingEth, rv.opportunisticEth) == (5 * ETH, 3 * ETH, 2 * ETH)
    assert (rv.stableHeld, rv.usdtzHeld, rv.ethReturned) == (0, 0, 0)
    # nothing more is surplus
    with ape.reverts(vault.InsufficientBucket, bucket=6, available=0, needed=1):
        vault.withdraw(ZERO, 1, sender=owner)


# --- constructor ------------------------------------------------------------------------------------
# (zero and duplicate addresses, degenerate values and minTranche: test_vault_params.py)


def deploy_with(project, deployer, cfg):
    return project.DealVault.deploy(cfg, sender=deployer)


def test_constructor_roles_not_distinct(project, deployer, vault_config, owner, operator, guardian):
    for kw, acct in [(dict(operator_=owner.address), owner), (dict(guardian_=owner.address), owner),
                     (dict(guardian_=operator.address), operator)]:
        deploy_reverts(project, deployer, vault_config(**kw), "RolesNotDistinct", account=acct.address)


def test_constructor_wrong_decimals(w3, project, deployer, vault_config, mirror, market):
    """v2: a token that is already another venue is a DuplicateAddress first, so the wrong-decimals
    tokens are tokens the vault does not otherwise use: the pool's aWETH (18 dp) as cUSDT and the
    cUSDT debt token (6 dp) as WETH10."""
    from dealvault.kit.overlay import erc20

    a_weth, debt_cusdt = market.a_tokens["WETH"], market.variable_debt_tokens["cUSDT"]
    assert erc20(w3, a_weth).functions.decimals().call() == 18
    assert erc20(w3, debt_cusdt).functions.decimals().call() == 6
    cfg = list(vault_config())
    cfg[2] = a_weth  # an 18-dp token as cUSDT
    deploy_reverts(project, deployer, tuple(cfg), "WrongDecimals", token=a_weth, expected=6, actual=18)
    cfg = list(vault_config())
    cfg[1] = debt_cusdt  # a 6-dp token as WETH10
    deploy_reverts(project, deployer, tuple(cfg), "WrongDecimals", token=debt_cusdt, expected=18, actual=6)


@pytest.mark.parametrize("risk,err,kw", [
    (dict(coreBps=5000, workingBps=3000, opportunisticBps=2001), "BucketSplitInvalid", dict(sum=10_001)),
    (dict(coreBps=5000, workingBps=2999, opportunisticBps=2000), "BucketSplitInvalid", dict(sum=9_999)),
    (dict(maxLtvBps=3001), "CapAboveCeiling", dict(value=3001, ceiling=3000)),
    (dict(maxExposureBps=2501), "CapAboveCeiling", dict(value=2501, ceiling=2500)),
    # v2: the desk fee and the slippage have a hard ceiling of 1,000 bps (v1: 10,000 and 9,999)
    (dict(maxDeskFeeBps=10_001), "CapAboveCeiling", dict(value=10_001, ceiling=1_000)),
    (dict(minDiscountBps=10_000), "CapAboveCeiling", dict(value=10_000, ceiling=9_999)),
    (dict(maxSlippageBps=10_000), "CapAboveCeiling", dict(value=10_000, ceiling=1_000)),
    (dict(sellFloorPrice=10**6 + 1), "CapAboveCeiling", dict(value=10**6 + 1, ceiling=10**6)),
    (dict(rungs=[0, 2, 3]), "RungsInvalid", dict(index=0)),
    (dict(rungs=[5, 5, 6]), "RungsInvalid", dict(index=1)),
    (dict(rungs=[5, 6, 6]), "RungsInvalid", dict(index=2)),
    (dict(rungs=[5, 7, 6]), "RungsInvalid", dict(index=2)),
    (dict(rungs=[5, 6, 2**63]), "RungsInvalid", dict(index=2)),  # the ladder's progress book is a uint64
])
def test_constructor_risk_errors(project, deployer, vault_config, risk, err, kw):
    deploy_reverts(project, deployer, vault_config(**risk), err, **kw)


def test_constructor_edges_pass(project, deployer, vault_config):
    """Every parameter at its hard limit, then at its floor, deploys; the lens reads them back
    (params and initialParams), and the ladder's top rung may be 2**63 - 1."""
    top = dict(maxLtvBps=3000, maxExposureBps=2500, maxDeskFeeBps=1000, oracleMaxAge=2**32 - 1, minDiscountBps=9_999,
               maxSlippageBps=1000, sellFloorPrice=10**6, ethFloorPrice=10**16, maxOperatorLossBps=1000,
               twapWindow=65_535, loosenDelay=30 * 86_400)
    c = deploy_with(project, deployer, vault_config(rungs=[1, 2, 3], minTranche=1, **top))
    got = params(c)
    assert {k: getattr(got, k) for k in top} == top
    assert (list(got.rungs), got.minTranche) == ([1, 2, 3], 1)
    initial = lens_call("initialParams", c.address)
    assert list(initial[:11]) == list(top.values())
    bottom = dict(maxLtvBps=0, maxExposureBps=0, maxDeskFeeBps=0, oracleMaxAge=1, minDiscountBps=0, maxSlippageBps=0,
                  sellFloorPrice=1, ethFloorPrice=1, maxOperatorLossBps=0, twapWindow=1, loosenDelay=3_600)
    c = deploy_with(project, deployer, vault_config(rungs=[1, 2, 2**63 - 1], minTranche=1, **bottom))
    got = params(c)
    assert {k: getattr(got, k) for k in bottom} == bottom
    assert list(got.rungs) == [1, 2, 2**63 - 1]
    assert list(lens_call("setup", c.address)[6]) == [1, 2, 2**63 - 1]  # Setup.rungs


def test_after_close_the_books_follow_the_owners_withdrawals(w3, vault_factory, mirror, market, owner, operator, stranger):
    """After CLOSED the owner may take anything; the surplus goes first and the books are written
    down to what is left (Withdrawn.fromBooks), so the lens never shows a closed vault holding what
    it no longer has. The realized PnL, booked at close, does not move."""
    from helpers_vault import make_deal

    deal = make_deal(vault_factory, w3, mirror, market, owner, operator)
    deal.run("close")
    v = deal.vault
    rv0 = risk_view(v)
    assert rv0.phase == PH["CLOSED"] and rv0.stableHeld > 0
    eth_books = rv0.coreEth + rv0.workingEth + rv0.opportunisticEth
    # a donation first: it is surplus, taken before any book
    fund(w3, mirror.cusdt, stranger.address, 7 * E6)
    from dealvault.kit.evm import impersonating, send
    from dealvault.kit.overlay import erc20

    with impersonating(w3, stranger.address):
        send(w3, erc20(w3, mirror.cusdt).functions.transfer(v.address, 7 * E6), stranger.address)
    r = v.withdraw(mirror.cusdt, 7 * E6, sender=owner)
    assert [(e.amount, e.fromBooks) for e in r.decode_logs(v.Withdrawn)] == [(7 * E6, 0)]
    assert risk_view(v).stableHeld == rv0.stableHeld
    # then the stablecoin books: all of it
    r = v.withdraw(mirror.cusdt, rv0.stableHeld, sender=owner)
    assert [(e.amount, e.fromBooks) for e in r.decode_logs(v.Withdrawn)] == [(rv0.stableHeld, rv0.stableHeld)]
    # ETH in two parts: the buckets go down by what left (opportunistic first), then to zero
    half = w3.eth.get_balance(v.address) // 2
    v.withdraw(ape.utils.ZERO_ADDRESS, half, sender=owner)
    rv = risk_view(v)
    assert rv.coreEth + rv.workingEth + rv.opportunisticEth == min(eth_books, w3.eth.get_balance(v.address))
    v.withdraw(ape.utils.ZERO_ADDRESS, w3.eth.get_balance(v.address), sender=owner)
    rv = risk_view(v)
    assert (rv.coreEth, rv.workingEth, rv.opportunisticEth, rv.stableHeld, rv.nav) == (0, 0, 0, 0, 0)
    assert rv.ethReturned == eth_books
    assert (rv.realizedPnlEth, rv.realizedPnlUsd) == (rv0.realizedPnlEth, rv0.realizedPnlUsd)
