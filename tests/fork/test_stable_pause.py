"""Scenario 10 (issue 13): the cUSDT issuer pauses the token mid-ladder.

The pause is discovered on the token (:func:`dealvault.kit.features.token_features`: a FiatToken's
``pauser()`` or a Tether-style token's ``owner()``, with ``paused()``) and used by impersonating the
account found there, so the scenario runs on the FiatToken of the normal fork runs, on the
Tether-style token of ``tools/test_fork.sh --usdt-style`` and on a fork of the real chain; a token
without a pause skips it, naming every probe.

Shown here: while cUSDT is paused the desk cannot pay the vault, so the redeem into cUSDT fails
softly (RedemptionFailed carrying the token's own revert: the FiatToken's "Pausable: paused", the
Tether-style token's TransfersPaused()), the ladder resets and the deal holds; nothing moved; the
repayment (the pool pulls cUSDT from the vault) is refused with the same reason; cUSDC still
redeems. Unpaused, the owner resumes, the ladder restarts at rung 0, everything is redeemed into
cUSDT, the debt repaid and the deal closed with the stablecoins as its profit.
"""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_utils import keccak

from dealvault.kit.features import FIATTOKEN, is_paused, pause_token, token_features, unpause_token

ETH = 10**18
USD = 10**6
R0 = 50_000 * USD
MONETIZING, HOLDING, CLOSED = 4, 5, 6
FIAT_PAUSED = "Pausable: paused"


def test_issuer_pauses_cusdt_mid_ladder_then_unpauses(fork_vault, make_deal, w3, upstream, owner, project):
    features = token_features(w3, upstream.cusdt)
    if features.pause is None:
        pytest.skip(features.missing("pause"))
    deal = make_deal(fork_vault, f"scenario 10: the cUSDT issuer pauses the token ({features.pause} pause)")
    v, raw = deal.vault, deal.raw
    if features.pause == FIATTOKEN:
        refused_with = FIAT_PAUSED
        reason = keccak(text="Error(string)")[:4] + encode(["string"], [FIAT_PAUSED])
    else:
        refused_with = project.TetherStyleToken.at(upstream.cusdt).TransfersPaused
        reason = keccak(text="TransfersPaused()")[:4]

    deal.position(5_000 * ETH, 2900)
    deal.leg("redeem", deal.cusdt, R0, label="redeem r0 50,000")
    assert deal.view().rung == 1

    assert not is_paused(w3, features)
    pause_token(w3, features)  # impersonates the pauser / owner found on the token
    assert is_paused(w3, features)
    deal.note(f"{features.pause_admin} (found on the token) pauses cUSDT")

    before = deal.view()
    balances = (raw.bal(deal.cusdt), raw.bal(deal.cusdc), raw.bal(deal.usdtz), raw.eth())
    assert v.redeem.call(deal.cusdt, 10_000 * USD, sender=deal.operator, gas=1_000_000) is False
    tx = deal.leg("redeem", deal.cusdt, 10_000 * USD, label="redeem cUSDT (paused)")
    failed = [e for e in tx.events if e.event_name == "RedemptionFailed"]
    assert len(failed) == 1 and bytes(failed[0].reason) == reason
    s = deal.view()
    assert s.phase == HOLDING and s.phaseBeforeHolding == MONETIZING and (s.rung, s.rungProgress) == (0, 0)
    assert (raw.bal(deal.cusdt), raw.bal(deal.cusdc), raw.bal(deal.usdtz), raw.eth()) == balances
    assert (s.usdtzHeld, s.usdtzCost, s.stableHeld) == (before.usdtzHeld, before.usdtzCost, before.stableHeld)
    deal.refused(refused_with, "repay", deal.cusdt, 1_000 * USD)  # the pool pulls from the vault

    # cUSDC is not paused: the desk pays in it, even while the deal holds
    c_before = raw.bal(deal.cusdc)
    tx = deal.leg("redeem", deal.cusdc, 10_000 * USD, label="redeem cUSDC ok")
    assert not [e for e in tx.events if e.event_name == "RedemptionFailed"]
    assert raw.bal(deal.cusdc) > c_before and raw.bal(deal.usdtz) == balances[2] - 10_000 * USD

    unpause_token(w3, features)
    assert not is_paused(w3, features)
    deal.note("the issuer unpauses cUSDT")
    deal.leg("resume", sender=owner)
    s = deal.view()
    # the ladder restarted at rung 0 when the deal went to holding; the cUSDC tranche counts on it
    assert s.phase == MONETIZING and (s.rung, s.rungProgress) == (0, 10_000 * USD)
    deal.redeem_all()
    deal.leg("repay", deal.cusdt, 2**256 - 1, label="repay all")
    assert raw.debt() == 0
    deal.leg("close")
    s = deal.view()
    assert s.phase == CLOSED and s.realizedPnlEth == 0 and s.writtenOffUsdtz == 0 and s.operatorLoss == 0
    assert s.realizedPnlUsd == (raw.bal(deal.cusdt) + raw.bal(deal.cusdc)) * 100 > 0
