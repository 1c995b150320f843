"""Scenario 9: the cUSDT issuer blacklists the vault (cUSDT is a FiatToken: blacklisting is real).

The issuer's blacklister is *found* (the token's own ``blacklister()`` getter, through
:func:`dealvault.upstream.fiat_token_as_found`) and impersonated: no role record of the mirror is
used, so the same test runs on a fork of the real chain.

Shown here: exactly which legs fail and how (revert reasons asserted), that nothing else is lost
(ETH, collateral, USDTz, cUSDT, cUSDC, books, legSeq unchanged), that riskView still answers, that
redeem into cUSDT fails softly into HOLDING while cUSDC still works, and the way out: the owner
repays on the vault's behalf directly on the pool (``pool.repay(cUSDT, amount, 2, vault)`` with
an explicit amount: Aave refuses type(uint256).max on behalf of someone else), after which the
vault's view shows the lower debt (it reads the debt token), the collateral can be withdrawn and
the deal closed. Caveat (asserted exactly): the direct repayment is invisible to the vault's PnL
(``ownerRepaid`` stays 0) and the frozen cUSDT still counts at par in ``stableHeld``.
"""

from __future__ import annotations

import ape
import pytest

from dealvault import fiattoken
from dealvault.evm import impersonating, send
from dealvault.funding import fund
from dealvault.overlay import erc20
from dealvault.upstream import fiat_token_as_found
from tests.model import ceil_div

DEADLINE = 2**64
BPS = 10_000
ETH = 10**18
USD = 10**6
MAX = 2**256 - 1
MONETIZING, HOLDING, CLOSED = 4, 5, 6
BLK = "Blacklistable: account is blacklisted"


def desk_pays(w3, market, amount: int) -> int:
    desk = market.desk_contract(w3)
    return amount - ceil_div(amount * desk.functions.feeBps().call(), BPS) - desk.functions.flatFee().call()


def test_issuer_blacklists_vault_on_cusdt(fork_vault, make_deal, w3, market, upstream, owner, reason_of):
    deal = make_deal(fork_vault, "scenario 9: the cUSDT issuer blacklists the vault")
    v, raw = deal.vault, deal.raw
    vault = str(v.address)
    pos = deal.position(5_000 * ETH, 2900, keep_working=10 * ETH)
    deal.leg("redeem", deal.cusdt, 50_000 * USD, label="redeem r0 50,000")

    # the issuer's blacklister, as found on the token
    token = fiat_token_as_found(w3, upstream.cusdt)
    c = token.contract(w3)
    assert token.roles.blacklister == c.functions.blacklister().call()
    assert token.symbol == "cUSDT" and token.decimals == 6
    assert not c.functions.isBlacklisted(vault).call()
    fiattoken.freeze(w3, token, vault)  # impersonates the blacklister found above
    assert c.functions.isBlacklisted(vault).call()
    deal.row("cUSDT blacklists vault")
    deal.note(f"blacklister {token.roles.blacklister} (found via blacklister()) blacklists the vault")

    def state():
        s = v.riskView()
        return (s.legSeq, s.phase, s.stableHeld, s.usdtzHeld, s.usdtzCost, s.collateralWeth, v.stableOf(deal.cusdt),
                v.stableOf(deal.cusdc)), (raw.eth(), raw.atoken("WETH"), raw.bal(deal.cusdt), raw.bal(deal.cusdc),
                                          raw.bal(deal.usdtz))

    books0, bal0 = state()
    assert bal0[2] == books0[6] > 0  # cUSDT on the books, now frozen in the vault

    # 1. these fail (revert, nothing changes), each with its reason
    deal.refused(BLK, "borrow", deal.cusdt, 1_000 * USD)  # the pool's transfer to the vault
    deal.refused("TransferHelper: TRANSFER_FROM_FAILED", "buy", deal.cusdt, 1_000 * USD, 0, DEADLINE)
    deal.refused(BLK, "repay", deal.cusdt, 1_000 * USD)  # the pool pulls from the vault
    deal.refused("UniswapV2: TRANSFER_FAILED", "sell", deal.cusdt, 1_000 * USD, 0, DEADLINE)  # the pair pays the vault
    deal.refused("UniswapV2: TRANSFER_FAILED", "deleverage", deal.weth9, deal.cusdt, ETH, 0, DEADLINE)
    fund(w3, deal.cusdt, str(owner.address), 2_000_000 * USD)
    with impersonating(w3, str(owner.address)):
        send(w3, erc20(w3, deal.cusdt).functions.approve(vault, MAX), str(owner.address))
    deal.refused(BLK, "ownerRepay", deal.cusdt, 1_000 * USD, sender=owner)  # owner -> vault transfer
    assert state() == (books0, bal0)  # nothing else lost, no leg went through
    s = v.riskView()  # riskView still answers (it reads balances, the pool and the feed)
    price, _ = raw.price()
    debt = raw.debt()
    assert s.debt == debt and s.ltvBps == ceil_div(debt * 10**20 * BPS, s.collateralWeth * price)
    assert (s.poolCollateralBase, s.poolDebtBase) == raw.account()[:2] and s.oracleStatus == 0

    # 2. redeem into cUSDT fails softly: RedemptionFailed with the token's reason, HOLDING
    assert v.redeem.call(deal.cusdt, 10_000 * USD, sender=deal.operator) is False
    tx = deal.leg("redeem", deal.cusdt, 10_000 * USD, label="redeem cUSDT (fails)")
    failed = [e for e in tx.events if e.event_name == "RedemptionFailed"]
    assert len(failed) == 1 and reason_of(failed[0].reason) == ("Error", (BLK,))
    s = v.riskView()
    assert s.phase == HOLDING and s.phaseBeforeHolding == MONETIZING and (s.rung, s.rungProgress) == (0, 0)
    books1, bal1 = state()
    assert bal1 == bal0 and books1[1:] == (HOLDING,) + books0[2:]  # only legSeq and phase moved

    # 3. everything in cUSDC still works, even in HOLDING
    paid = desk_pays(w3, market, 10_000 * USD)
    tx = deal.leg("redeem", deal.cusdc, 10_000 * USD, label="redeem cUSDC ok")
    assert not [e for e in tx.events if e.event_name == "RedemptionFailed"]
    assert raw.bal(deal.cusdc) == bal0[3] + paid and v.stableOf(deal.cusdc) == paid
    assert raw.bal(deal.usdtz) == bal0[4] - 10_000 * USD

    # 4. the way out: the owner repays on the vault's behalf directly on the pool
    pool = market.pool_contract(w3)
    o = str(owner.address)
    with impersonating(w3, o):
        send(w3, erc20(w3, deal.cusdt).functions.approve(market.pool, MAX), o)
        with pytest.raises(Exception, match="40"):  # Aave: no type(uint256).max on behalf of another
            pool.functions.repay(deal.cusdt, MAX, 2, vault).call({"from": o})
    debt0, t0, rate = raw.debt(), raw.now(), raw.rate()
    part = debt0 // 2
    o_before = raw.bal(deal.cusdt, o)
    with impersonating(w3, o):
        send(w3, pool.functions.repay(deal.cusdt, part, 2, vault), o)
    assert o_before - raw.bal(deal.cusdt, o) == part
    debt1 = raw.debt()
    assert debt0 - part - 2 <= debt1 <= debt0 - part + raw.interest_bound(debt0, t0, rate)  # Aave rounds by a wei
    assert v.riskView().debt == debt1  # the vault's view reads the pool: the lower debt shows
    deal.row("owner repays half on pool")
    # the rest, with an explicit amount above the debt (the pool takes only the debt)
    o_before, t1, rate = raw.bal(deal.cusdt, o), raw.now(), raw.rate()
    with impersonating(w3, o):
        send(w3, pool.functions.repay(deal.cusdt, debt1 + 1_000 * USD, 2, vault), o)
    rest = o_before - raw.bal(deal.cusdt, o)
    assert debt1 <= rest <= debt1 + raw.interest_bound(debt1, t1, rate)
    assert raw.debt() == 0
    s = v.riskView()
    assert s.debt == 0 and s.ltvBps == 0 and s.ownerRepaid == 0  # the vault never saw the repayment
    deal.row("owner repays rest on pool")
    paid_direct = part + rest

    # collateral can be withdrawn (HOLDING, no debt) and the deal closed
    coll = v.collateralOf(deal.weth9)
    assert coll == pos["working"] == raw.atoken("WETH")
    deal.leg("withdrawCollateral", deal.weth9, coll)
    assert raw.atoken("WETH") == 0
    usdtz_cost = v.riskView().usdtzCost
    frozen_cusdt = raw.bal(deal.cusdt)
    assert frozen_cusdt == v.stableOf(deal.cusdt) == bal0[2]
    tx = deal.leg("close")
    s = v.riskView()
    assert s.phase == CLOSED and s.realizedPnlEth == 0 and raw.eth() == 5_000 * ETH
    assert s.writtenOffUsdtz == usdtz_cost > 0 and raw.bal(deal.usdtz) == bal0[4] - 10_000 * USD
    # the caveat: frozen cUSDT at par, the owner's direct repayment unseen by the vault
    assert s.realizedPnlUsd == (frozen_cusdt + raw.bal(deal.cusdc)) * 100
    true_usd = (raw.bal(deal.cusdc) - paid_direct) * 100  # what the owner really has, frozen cUSDT at 0
    deal.note(f"realizedPnlUsd {s.realizedPnlUsd / 1e8:,.2f} counts frozen cUSDT {frozen_cusdt / 1e6:,.2f} at par and "
              f"ignores the owner's direct repayment {paid_direct / 1e6:,.2f}: net {true_usd / 1e8:,.2f} USD + "
              f"{s.writtenOffUsdtz / 1e6:,.2f} USDTz written off")
    # the owner takes back the ETH; the frozen cUSDT cannot leave
    deal.leg("withdraw", "0x0000000000000000000000000000000000000000", raw.eth(), sender=owner, label="owner withdraws ETH")
    with ape.reverts(BLK):
        v.withdraw(deal.cusdt, frozen_cusdt, sender=owner)
