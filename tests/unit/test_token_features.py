"""Issue 13: the Tether-style stablecoin (contracts/test/TetherStyleToken.sol, dealvault.kit.tether)
and the discovery layer (dealvault.kit.features) that finds what a stablecoin supports by eth_call
probes and blacklists / pauses through whichever mechanism it has.

The Tether-style token is placed (anvil_setCode + initialize, as the mirror places it at cUSDT) at
a fresh address of the session's mirror chain; accounts are funded with dealvault.kit.funding.
"""

from __future__ import annotations

import pytest
from eth_utils import keccak, to_checksum_address

from dealvault import chain138
from dealvault.kit import start_kit
from dealvault.kit.evm import TxFailed, act_as, role_address, send
from dealvault.kit.features import (
    FIATTOKEN,
    TETHER,
    FeatureMissingError,
    blacklist_account,
    is_blacklisted,
    is_paused,
    pause_token,
    token_features,
    unblacklist_account,
    unpause_token,
)
from dealvault.kit.funding import fund
from dealvault.kit.mirror import CUSDT, MirrorError, check_upstream, install_mirror
from dealvault.kit.overlay import approve
from dealvault.kit.tether import TetherToken, TetherTokenError, place_tether_token

USD6 = 10**6
MAX = 2**256 - 1


@pytest.fixture
def tether(w3, mirror, request):
    """A Tether-style token at an address of its own (named after the test), owner a kit role."""
    address = role_address(f"test.tether-style.{request.node.name}")
    return place_tether_token(w3, address, "Test Tether USD", "TUSDT", "test.tether-style.owner")


def _revert_selector(w3, sender: str, fn) -> bytes:
    """The first four bytes of what ``fn`` reverts with when called from ``sender`` (eth_call)."""
    tx = {"from": sender, "to": fn.address, "data": fn._encode_transaction_data()}
    resp = w3.provider.make_request("eth_call", [tx, "latest"])
    assert "error" in resp, f"{fn.fn_name} did not revert"
    data = resp["error"].get("data") or "0x"
    return bytes.fromhex(data[2:10])


def _selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def test_tether_style_token_returns_nothing_and_refuses_an_approve_from_non_zero(w3, tether, alice, bob):
    c = tether.contract(w3)
    assert (c.functions.name().call(), c.functions.symbol().call(), c.functions.decimals().call()) == ("Test Tether USD", "TUSDT", 6)
    assert c.functions.owner().call() == tether.owner == role_address("test.tether-style.owner")
    supply0 = c.functions.totalSupply().call()
    fund(w3, tether.address, alice, 100 * USD6)  # the funding helper finds the balance and supply slots
    assert c.functions.balanceOf(alice).call() == 100 * USD6 and c.functions.totalSupply().call() == supply0 + 100 * USD6

    # transfer, transferFrom and approve return nothing (not even a bool)
    for fn in (c.functions.transfer(bob, USD6), c.functions.approve(bob, USD6)):
        assert bytes(w3.eth.call({"from": alice, "to": tether.address, "data": fn._encode_transaction_data()})) == b""
    send(w3, c.functions.transfer(bob, 10 * USD6), alice)
    assert (c.functions.balanceOf(alice).call(), c.functions.balanceOf(bob).call()) == (90 * USD6, 10 * USD6)

    send(w3, c.functions.approve(bob, 5 * USD6), alice)
    assert _revert_selector(w3, alice, c.functions.approve(bob, 7 * USD6)) == _selector("ApproveFromNonZero(uint256,uint256)")
    with pytest.raises(TxFailed):
        send(w3, c.functions.approve(bob, 7 * USD6), alice)
    assert c.functions.allowance(alice, bob).call() == 5 * USD6
    send(w3, c.functions.approve(bob, 0), alice)
    send(w3, c.functions.approve(bob, MAX), alice)
    send(w3, c.functions.transferFrom(alice, bob, 30 * USD6), bob)
    assert c.functions.allowance(alice, bob).call() == MAX  # an infinite allowance is not spent
    assert c.functions.balanceOf(bob).call() == 40 * USD6


def test_the_kits_approve_helper_moves_a_tether_style_allowance_from_non_zero_to_non_zero(w3, tether, alice, bob):
    """dealvault.kit.overlay.approve (used by swap_on_pair) resets a leftover allowance to 0 first."""
    c = tether.contract(w3)
    approve(w3, tether.address, alice, bob, 5 * USD6)
    assert c.functions.allowance(alice, bob).call() == 5 * USD6
    with pytest.raises(TxFailed):
        send(w3, c.functions.approve(bob, 7 * USD6), alice)  # what the helper avoids
    approve(w3, tether.address, alice, bob, 7 * USD6)
    assert c.functions.allowance(alice, bob).call() == 7 * USD6


def test_tether_style_blacklist_stops_sending_but_not_receiving(w3, tether, alice, bob):
    c = tether.contract(w3)
    fund(w3, tether.address, alice, 50 * USD6)
    fund(w3, tether.address, bob, 50 * USD6)
    features = token_features(w3, tether.address)
    assert (features.blacklist, features.blacklist_admin) == (TETHER, tether.owner)

    blacklist_account(w3, features, alice)  # as the owner found on the token
    assert is_blacklisted(w3, features, alice) and c.functions.getBlackListStatus(alice).call()
    assert _revert_selector(w3, alice, c.functions.transfer(bob, USD6)) == _selector("Blacklisted(address)")
    send(w3, c.functions.approve(bob, MAX), alice)  # approving still works
    assert _revert_selector(w3, bob, c.functions.transferFrom(alice, bob, USD6)) == _selector("Blacklisted(address)")
    send(w3, c.functions.transfer(alice, 5 * USD6), bob)  # receiving still works
    assert c.functions.balanceOf(alice).call() == 55 * USD6

    unblacklist_account(w3, features, alice)
    assert not is_blacklisted(w3, features, alice)
    send(w3, c.functions.transfer(bob, 55 * USD6), alice)
    assert c.functions.balanceOf(bob).call() == 100 * USD6

    # only the owner administers; the owner can burn a blacklisted account's funds
    with pytest.raises(TxFailed):
        send(w3, c.functions.addBlackList(bob), alice)
    blacklist_account(w3, features, bob)
    supply = c.functions.totalSupply().call()
    with pytest.raises(TxFailed):
        act_as(w3, tether.owner, c.functions.destroyBlackFunds(alice))  # alice is not blacklisted
    act_as(w3, tether.owner, c.functions.destroyBlackFunds(bob))
    assert c.functions.balanceOf(bob).call() == 0 and c.functions.totalSupply().call() == supply - 100 * USD6


def test_tether_style_pause_stops_transfers_not_approvals(w3, tether, alice, bob):
    c = tether.contract(w3)
    fund(w3, tether.address, alice, 10 * USD6)
    features = token_features(w3, tether.address)
    assert (features.pause, features.pause_admin) == (TETHER, tether.owner)
    with pytest.raises(TxFailed):
        send(w3, c.functions.pause(), alice)  # not the owner

    pause_token(w3, features)
    assert is_paused(w3, features) and c.functions.paused().call()
    assert _revert_selector(w3, alice, c.functions.transfer(bob, USD6)) == _selector("TransfersPaused()")
    send(w3, c.functions.approve(bob, USD6), alice)
    assert _revert_selector(w3, bob, c.functions.transferFrom(alice, bob, USD6)) == _selector("TransfersPaused()")

    unpause_token(w3, features)
    assert not is_paused(w3, features)
    send(w3, c.functions.transferFrom(alice, bob, USD6), bob)
    assert c.functions.balanceOf(bob).call() == USD6


def test_tether_style_token_initializes_once_and_is_placed_only_on_an_empty_address(w3, tether, alice):
    c = tether.contract(w3)
    assert _revert_selector(w3, alice, c.functions.initialize("X", "X", 18, alice)) == _selector("AlreadyInitialized(address)")
    assert c.functions.decimals().call() == 6
    with pytest.raises(TetherTokenError, match=f"{tether.address} already has code"):
        place_tether_token(w3, tether.address, "Again", "AGN", "test.tether-style.owner")


def test_token_features_find_the_mirrors_fiattoken_blacklist_and_pause(w3, mirror, alice):
    tok = mirror.cusdc_token
    features = token_features(w3, tok.address)
    assert (features.blacklist, features.blacklist_admin) == (FIATTOKEN, tok.roles.blacklister)
    assert (features.pause, features.pause_admin) == (FIATTOKEN, tok.roles.pauser)
    assert features.returns_bool is True and features.symbol == "cUSDC"
    assert f"blacklister() -> {tok.roles.blacklister}" in features.probes

    c = tok.contract(w3)
    blacklist_account(w3, features, alice)  # the FiatToken's blacklist(), as its blacklister
    assert c.functions.isBlacklisted(alice).call() and is_blacklisted(w3, features, alice)
    unblacklist_account(w3, features, alice)
    assert not c.functions.isBlacklisted(alice).call()
    pause_token(w3, features)
    assert c.functions.paused().call()
    unpause_token(w3, features)
    assert not c.functions.paused().call()


def test_token_features_name_every_probe_when_a_mechanism_is_missing(w3, mirror, alice):
    features = token_features(w3, mirror.weth9)
    assert (features.blacklist, features.pause, features.returns_bool) == (None, None, True)
    msg = features.missing("blacklist")
    assert msg.startswith(f"WETH at {mirror.weth9} has no blacklist: probed blacklister() -> ")
    assert "owner() -> " in msg and "approve(address,uint256) -> 32 bytes" in msg
    with pytest.raises(FeatureMissingError, match="has no blacklist: probed"):
        blacklist_account(w3, features, alice)
    with pytest.raises(FeatureMissingError, match="has no pause: probed"):
        pause_token(w3, features)


def test_a_kit_with_a_tether_style_cusdt_passes_the_upstream_check_and_funds_its_overlay():
    kit = start_kit(overlay=True, cusdt_kind="tether")
    try:
        w3, mirror, overlay = kit.w3, kit.mirror, kit.overlay
        assert isinstance(mirror.cusdt_token, TetherToken) and mirror.cusdt == to_checksum_address(chain138.CUSDT) == CUSDT
        assert mirror.cusdt_token.owner == role_address("cusdt.owner")
        assert check_upstream(w3) == []  # same name, symbol and decimals as Chain 138's cUSDT
        features = token_features(w3, CUSDT)
        assert (features.blacklist, features.pause, features.returns_bool) == (TETHER, TETHER, False)
        # the overlay's cUSDT came from the funding helper (nobody minted): the desk's stock and
        # the pairs' reserves are there
        assert overlay is not None
        c = mirror.cusdt_token.contract(w3)
        assert c.functions.balanceOf(overlay.desk).call() > 0
        assert c.functions.balanceOf(overlay.pair_usdtz_cusdt).call() > 0 and c.functions.balanceOf(overlay.pair_weth_cusdt).call() > 0
        assert c.functions.totalSupply().call() >= c.functions.balanceOf(overlay.desk).call()
        with pytest.raises(MirrorError, match="cusdt_kind is 'usdt'"):
            install_mirror(w3, cusdt_kind="usdt")
    finally:
        kit.stop()
