"""Scenario 9: the cUSDT issuer blacklists the vault.

What the stablecoin at cUSDT supports is discovered first (issue 13,
:func:`dealvault.kit.features.token_features`, eth_call probes only): a Circle FiatToken blacklist
(``blacklister()`` + ``isBlacklisted``: a blacklisted account can neither send nor receive) or a
Tether-style one (``owner()`` + ``isBlackListed``: a blacklisted account cannot send but still
receives). The admin found on the token is impersonated (no role record of the mirror is used), so
the same test runs on a fork of the real chain; where the token has no blacklist the scenario is
skipped naming what was probed. ``make test`` runs it against both (the normal fork runs have the
FiatToken at cUSDT, ``tools/test_fork.sh --usdt-style`` the Tether-style token).

Shown here: exactly which legs fail and how (revert reasons asserted: the FiatToken's
"Blacklistable" string, the Tether-style token's ``Blacklisted(vault)``), which still work under a
send-only blacklist (borrow, sell and redeem into cUSDT only *receive* cUSDT), that nothing else is
lost (ETH, collateral, USDTz, cUSDT, cUSDC, books, legSeq unchanged), that riskView still answers,
that under the FiatToken redeem into cUSDT fails softly into HOLDING, that cUSDC still works, and
the way out: the owner
repays on the vault's behalf directly on the pool (``pool.repay(cUSDT, amount, 2, vault)`` with
an explicit amount: Aave refuses type(uint256).max on behalf of someone else), after which the
collateral can be withdrawn and the deal closed.

v2 outcomes asserted here (v1 in brackets):
* the direct repayment on the pool is a repayment on the vault's behalf: the lens's ``poolDebt``
  falls at once, but the caps' ``debt`` stays the vault's scaled book at the pool's index (a
  third party's repayment never loosens a cap) until the vault's next debt action (here
  withdrawCollateral) books it in ``repaidOnBehalf`` (event RepaidOnBehalf, the book at that
  second's index); the PnL subtracts it like ``ownerRepaid`` [v1: the view showed the lower debt
  at once and the PnL never saw the repayment]. The frozen cUSDT still counts at par in
  ``stableHeld`` and the PnL (the remaining caveat).
* the buy and the operator's sell are TWAP-checked: the operator observes the pair a window before
  the blacklisting, so the buy reaches the token (and fails on the blacklist, as in v1).
* closing with the USDTz still held writes its cost off, which is past the operator's loss budget:
  the operator's close is refused LossBudgetExceeded(operatorLoss + cost, budget) and the owner
  closes [v1: the operator closed].
"""

from __future__ import annotations

import pytest

from dealvault.kit.evm import impersonating, send
from dealvault.kit.features import FIATTOKEN, TETHER, blacklist_account, is_blacklisted, token_features, unblacklist_account
from dealvault.kit.funding import fund
from dealvault.kit.overlay import erc20
from tests.model import ceil_div
from tests.unit.vault.helpers_vault import ray_mul

DEADLINE = 2**64
BPS = 10_000
ETH = 10**18
USD = 10**6
MAX = 2**256 - 1
MONETIZING, HOLDING, CLOSED = 4, 5, 6
BLK = "Blacklistable: account is blacklisted"
ZERO = "0x0000000000000000000000000000000000000000"
REDEEM_GAS = 1_000_000  # above the vault's 567,301 floor (as tests/fork/conftest's Deal sends a redeem)


def blacklist_or_skip(w3, address: str):
    """What the token at ``address`` supports (probed); skips the test, naming every probe and its
    answer, when it has no blacklist."""
    features = token_features(w3, address)
    if features.blacklist is None:
        pytest.skip(features.missing("blacklist"))
    return features


def desk_pays(w3, market, amount: int) -> int:
    desk = market.desk_contract(w3)
    return amount - ceil_div(amount * desk.functions.feeBps().call(), BPS) - desk.functions.flatFee().call()


def test_issuer_blacklists_vault_on_cusdt(fork_vault, make_deal, w3, market, upstream, owner, reason_of, project):
    # the token's blacklist and its admin, as found on the token (skip where it has none)
    features = blacklist_or_skip(w3, upstream.cusdt)
    both_ways = features.blacklist == FIATTOKEN  # FiatToken: no send, no receive; Tether-style: no send
    deal = make_deal(fork_vault, f"scenario 9: the cUSDT issuer blacklists the vault ({features.blacklist} blacklist)")
    v, raw = deal.vault, deal.raw
    vault = str(v.address)
    # what a blocked transfer of the vault's cUSDT reverts with: the FiatToken's string, or the
    # Tether-style token's Blacklisted(vault), bubbled up unchanged through Aave and the vault
    blocked = BLK if both_ways else project.TetherStyleToken.at(upstream.cusdt).Blacklisted
    blocked_args = None if both_ways else {"account": vault}
    pos = deal.position(5_000 * ETH, 2900, keep_working=10 * ETH)
    deal.leg("redeem", deal.cusdt, 50_000 * USD, label="redeem r0 50,000")
    # v2: a TWAP observation at the pair's price now, a window old, so that the buy below is
    # refused by the blacklist and not by PriceAboveTwap (the vault's own buy moved the pair)
    deal.observe_and_wait()

    assert features.symbol == "cUSDT" and erc20(w3, upstream.cusdt).functions.decimals().call() == 6
    assert not is_blacklisted(w3, features, vault)
    blacklist_account(w3, features, vault)  # impersonates the admin found above
    assert is_blacklisted(w3, features, vault)
    deal.row("cUSDT blacklists vault")
    deal.note(f"{features.blacklist_admin} (found on the token) blacklists the vault: {features.blacklist} blacklist")

    def state():
        s = deal.view()
        return (s.legSeq, s.phase, s.stableHeld, s.usdtzHeld, s.usdtzCost, s.collateralWeth, deal.stable_of(deal.cusdt),
                deal.stable_of(deal.cusdc)), (raw.eth(), raw.atoken("WETH"), raw.bal(deal.cusdt), raw.bal(deal.cusdc),
                                              raw.bal(deal.usdtz))

    books0, bal0 = state()
    assert bal0[2] == books0[6] > 0  # cUSDT on the books, now frozen in the vault

    # 1. these fail (revert, nothing changes), each with its reason; the vault *sending* cUSDT
    #    fails under either blacklist, the vault *receiving* it only under the FiatToken's
    deal.refused("TransferHelper: TRANSFER_FROM_FAILED", "buy", deal.cusdt, 1_000 * USD, 0, DEADLINE)
    deal.refused(blocked, "repay", deal.cusdt, 1_000 * USD, expect=blocked_args)  # the pool pulls from the vault
    fund(w3, deal.cusdt, str(owner.address), 2_000_000 * USD)
    with impersonating(w3, str(owner.address)):
        send(w3, erc20(w3, deal.cusdt).functions.approve(vault, MAX), str(owner.address))
    if both_ways:
        deal.refused(BLK, "borrow", deal.cusdt, 1_000 * USD)  # the pool's transfer to the vault
        deal.refused("UniswapV2: TRANSFER_FAILED", "sell", deal.cusdt, 1_000 * USD, 0, DEADLINE)  # the pair pays the vault
        deal.refused("UniswapV2: TRANSFER_FAILED", "deleverage", deal.weth9, deal.cusdt, ETH, 0, DEADLINE)
        deal.refused(BLK, "ownerRepay", deal.cusdt, 1_000 * USD, sender=owner)  # owner -> vault transfer
    else:
        # the vault still receives: the sale pays it, then the pool's pull of the repayment fails;
        # the owner's cUSDT reaches the vault, then the same pull fails
        deal.refused(blocked, "deleverage", deal.weth9, deal.cusdt, ETH, 0, DEADLINE, expect=blocked_args)
        deal.refused(blocked, "ownerRepay", deal.cusdt, 1_000 * USD, sender=owner, expect=blocked_args)
        # legs that only bring cUSDT in still go through (simulated here: the state stays as it is)
        v.borrow.call(deal.cusdt, 1_000 * USD, sender=deal.operator)
        v.sell.call(deal.cusdt, 1_000 * USD, 0, DEADLINE, sender=deal.operator)
    assert state() == (books0, bal0)  # nothing else lost, no leg went through
    s = deal.view()  # the lens's riskView still answers (it reads the books, the pool and the feed)
    price, _ = raw.price()
    debt = raw.debt()
    assert s.debt == debt and s.ltvBps == ceil_div(debt * 10**20 * BPS, s.collateralWeth * price)
    assert (s.poolCollateralBase, s.poolDebtBase) == raw.account()[:2] and s.oracleStatus == 0

    # 2. FiatToken: redeem into cUSDT fails softly: RedemptionFailed with the token's reason,
    #    HOLDING. Tether-style: the desk's payment still reaches the vault (simulated, not sent)
    if both_ways:
        assert v.redeem.call(deal.cusdt, 10_000 * USD, sender=deal.operator, gas=REDEEM_GAS) is False
        tx = deal.leg("redeem", deal.cusdt, 10_000 * USD, label="redeem cUSDT (fails)")
        failed = [e for e in tx.events if e.event_name == "RedemptionFailed"]
        assert len(failed) == 1 and reason_of(failed[0].reason) == ("Error", (BLK,))
        s = deal.view()
        assert s.phase == HOLDING and s.phaseBeforeHolding == MONETIZING and (s.rung, s.rungProgress) == (0, 0)
        books1, bal1 = state()
        assert bal1 == bal0 and books1[1:] == (HOLDING,) + books0[2:]  # only legSeq and phase moved
    else:
        assert v.redeem.call(deal.cusdt, 10_000 * USD, sender=deal.operator, gas=REDEEM_GAS) is True
        assert state() == (books0, bal0)

    # 3. everything in cUSDC still works (under the FiatToken's blacklist: in HOLDING)
    paid = desk_pays(w3, market, 10_000 * USD)
    tx = deal.leg("redeem", deal.cusdc, 10_000 * USD, label="redeem cUSDC ok")
    assert not [e for e in tx.events if e.event_name == "RedemptionFailed"]
    assert raw.bal(deal.cusdc) == bal0[3] + paid and deal.stable_of(deal.cusdc) == paid
    assert raw.bal(deal.usdtz) == bal0[4] - 10_000 * USD

    # 4. the way out: the owner repays on the vault's behalf directly on the pool
    pool = market.pool_contract(w3)
    o = str(owner.address)
    with impersonating(w3, o):
        send(w3, erc20(w3, deal.cusdt).functions.approve(market.pool, MAX), o)
        with pytest.raises(Exception, match="40"):  # Aave: no type(uint256).max on behalf of another
            pool.functions.repay(deal.cusdt, MAX, 2, vault).call({"from": o})
    debt0, t0, rate = raw.debt(), raw.now(), raw.rate()
    rate0 = rate
    scaled_book = raw.scaled_debt()  # the vault's scaled debt book (its last debt action: the borrow)
    part = debt0 // 2
    o_before = raw.bal(deal.cusdt, o)
    with impersonating(w3, o):
        send(w3, pool.functions.repay(deal.cusdt, part, 2, vault), o)
    assert o_before - raw.bal(deal.cusdt, o) == part
    debt1 = raw.debt()
    assert debt0 - part - 2 <= debt1 <= debt0 - part + raw.interest_bound(debt0, t0, rate)  # Aave rounds by a wei
    s = deal.view()
    # v2: the lens shows the pool's lower debt in poolDebt; the caps' debt stays the book at the
    # pool's index (never loosened by someone else's repayment) until the vault books it
    assert s.poolDebt == debt1
    assert s.debt == ray_mul(scaled_book, raw.debt_index()) >= debt0 and s.repaidOnBehalf == 0
    deal.row("owner repays half on pool")
    # the rest, with an explicit amount above the debt (the pool takes only the debt)
    o_before, t1, rate = raw.bal(deal.cusdt, o), raw.now(), raw.rate()
    with impersonating(w3, o):
        send(w3, pool.functions.repay(deal.cusdt, debt1 + 1_000 * USD, 2, vault), o)
    rest = o_before - raw.bal(deal.cusdt, o)
    assert debt1 <= rest <= debt1 + raw.interest_bound(debt1, t1, rate)
    assert raw.debt() == 0
    s = deal.view()
    # no pool debt, but not yet booked (the vault has not acted on its debt since): the caps' debt
    # and LTV are still the book's (v1: debt 0 and LTV 0 at once)
    assert s.poolDebt == 0 and s.ownerRepaid == 0 and s.repaidOnBehalf == 0
    book_debt = ray_mul(scaled_book, raw.debt_index())
    price, _ = raw.price()
    assert s.debt == book_debt > 0 and s.ltvBps == ceil_div(book_debt * 10**20 * BPS, s.collateralWeth * price)
    deal.row("owner repays rest on pool")
    paid_direct = part + rest

    # collateral can be withdrawn (no debt) and the deal closed; v2: the withdrawal's debt
    # sync books the direct repayment as repaid on the vault's behalf: the book at that second's index
    coll = deal.collateral_of(deal.weth9)
    assert coll == pos["working"] == raw.atoken("WETH")
    tx = deal.leg("withdrawCollateral", deal.weth9, coll)
    assert raw.atoken("WETH") == 0
    on_behalf = ray_mul(scaled_book, raw.debt_index(block=tx.block_number))
    assert [(e.stable, e.amount) for e in tx.events if e.event_name == "RepaidOnBehalf"] == [(deal.cusdt, on_behalf)]
    # what the owner paid, plus at most the interest between its repayments and the sync
    # (the rate only fell after the first repayment: debt0's interest at the rate read before bounds it)
    assert paid_direct - 2 <= on_behalf <= paid_direct + raw.interest_bound(debt0, t0, rate0)
    s = deal.view()
    assert (s.repaidOnBehalf, s.debt, s.poolDebt, s.ownerRepaid, s.ltvBps) == (on_behalf, on_behalf, 0, 0, 0)
    usdtz_cost = s.usdtzCost
    frozen_cusdt = raw.bal(deal.cusdt)
    assert frozen_cusdt == deal.stable_of(deal.cusdt) == bal0[2]
    # v2: the write-off of the USDTz still held is past the operator's loss budget; the owner closes
    budget = pos["split_value"] * 50 // BPS
    assert (s.splitValue, s.lossBudget) == (pos["split_value"], budget) and s.operatorLoss + usdtz_cost > budget
    deal.refused(v.LossBudgetExceeded, "close", expect={"lossAfter": s.operatorLoss + usdtz_cost, "budget": budget})
    tx = deal.leg("close", sender=owner, label="close (owner)")
    s = deal.view()
    assert s.phase == CLOSED and s.realizedPnlEth == 0 and raw.eth() == 5_000 * ETH
    assert s.writtenOffUsdtz == usdtz_cost > 0 and raw.bal(deal.usdtz) == bal0[4] - 10_000 * USD
    # the remaining caveat: frozen cUSDT at par; the owner's direct repayment is now subtracted
    assert s.realizedPnlUsd == (frozen_cusdt + raw.bal(deal.cusdc) - on_behalf) * 100
    ev = [e for e in tx.events if e.event_name == "Closed"][0]
    assert (ev.realizedPnlUsd, ev.stableSurplus, ev.writtenOffUsdtz) == (s.realizedPnlUsd, frozen_cusdt + raw.bal(deal.cusdc), usdtz_cost)
    true_usd = (raw.bal(deal.cusdc) - paid_direct) * 100  # what the owner really has, frozen cUSDT at 0
    assert s.realizedPnlUsd - frozen_cusdt * 100 == true_usd - (on_behalf - paid_direct) * 100
    deal.note(f"realizedPnlUsd {s.realizedPnlUsd / 1e8:,.2f} counts frozen cUSDT {frozen_cusdt / 1e6:,.2f} at par and "
              f"subtracts the direct repayment booked on the vault's behalf {on_behalf / 1e6:,.6f} (paid "
              f"{paid_direct / 1e6:,.6f}): net {true_usd / 1e8:,.2f} USD + {s.writtenOffUsdtz / 1e6:,.2f} USDTz written off")
    # the owner takes back the ETH; the frozen cUSDT cannot leave
    deal.leg("withdraw", "0x0000000000000000000000000000000000000000", raw.eth(), sender=owner, label="owner withdraws ETH")
    deal.refused(blocked, "withdraw", deal.cusdt, frozen_cusdt, sender=owner, expect=blocked_args)
    # taken off the blacklist, the vault's cUSDT moves again
    unblacklist_account(w3, features, vault)
    assert not is_blacklisted(w3, features, vault)
    deal.leg("withdraw", deal.cusdt, frozen_cusdt, sender=owner, label="owner withdraws cUSDT")
    assert raw.bal(deal.cusdt) == 0 and raw.bal(deal.cusdt, str(owner.address)) >= frozen_cusdt


# Where the blacklist's admin is kept: FiatTokenV1's layout (owner, pauser|paused, blacklister, ...)
# and TetherStyleToken's (name, symbol, decimals, owner|paused, ...).
ADMIN_SLOT = {FIATTOKEN: 2, TETHER: 3}
ADMIN_GETTER = {FIATTOKEN: "blacklister", TETHER: "owner"}
ADDRESS_BITS = (1 << 160) - 1


def test_blacklist_scenario_discovers_what_the_stablecoin_supports(w3, upstream):
    """Issue 13: the discovery the scenario above starts with, by eth_call probes. The mirror's
    cUSDT has a blacklist (the FiatToken's, or the Tether-style token's in a --usdt-style run) whose
    admin is read from the token; a token without one (WETH9 here) and a token whose admin is unset
    skip the scenario naming every probe (the fork is reverted after this test)."""
    from dealvault.kit.evm import get_storage, set_storage

    features = blacklist_or_skip(w3, upstream.cusdt)
    kind = features.blacklist
    assert kind in (FIATTOKEN, TETHER)
    getter = ADMIN_GETTER[kind]
    on_chain = w3.eth.contract(address=upstream.cusdt, abi=[
        {"type": "function", "name": getter, "stateMutability": "view", "inputs": [], "outputs": [{"type": "address", "name": ""}]},
    ])
    assert features.blacklist_admin == getattr(on_chain.functions, getter)().call() != ZERO
    assert f"{getter}() -> {features.blacklist_admin}" in features.probes
    # the no-bool habit goes with the Tether-style token (its approve returns nothing)
    assert features.returns_bool is (kind == FIATTOKEN)

    # the helpers act through the mechanism found: on, then off again
    someone = "0x000000000000000000000000000000000000bEEF"
    blacklist_account(w3, features, someone)
    assert is_blacklisted(w3, features, someone)
    unblacklist_account(w3, features, someone)
    assert not is_blacklisted(w3, features, someone)

    weth = token_features(w3, upstream.weth9)
    assert weth.blacklist is None and weth.pause is None
    with pytest.raises(pytest.skip.Exception, match=f"WETH at {upstream.weth9} has no blacklist: probed blacklister\\(\\) -> "):
        blacklist_or_skip(w3, upstream.weth9)

    slot = ADMIN_SLOT[kind]
    raw = get_storage(w3, upstream.cusdt, slot)
    assert raw & ADDRESS_BITS == int(features.blacklist_admin, 16)
    set_storage(w3, upstream.cusdt, slot, raw & ~ADDRESS_BITS)  # the admin unset, nothing else
    with pytest.raises(pytest.skip.Exception, match=f"cUSDT at {upstream.cusdt} has no blacklist: .*{getter}\\(\\) -> {ZERO}"):
        blacklist_or_skip(w3, upstream.cusdt)
