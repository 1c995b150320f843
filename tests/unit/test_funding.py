"""The funding helper: any amount of any ERC-20 to any account, by finding the balance slot."""

from __future__ import annotations

import pytest
from eth_utils import keccak

from dealvault.artifacts import own
from dealvault.kit import fiattoken as ft
from dealvault.kit.evm import TxFailed, deploy, get_storage, role_address, send, set_code
from dealvault.kit.funding import FundingError, balance_of, find_balance_slot, fund, fund_eth
from dealvault.kit.mirror import weth9, weth10
from tests.conftest import gas_cost as _gas_cost

ETH = 10**18
USD6 = 10**6


# alice and bob (tests/conftest.py): impersonated dev accounts 3 and 4
ALICE_INDEX, BOB_INDEX = 3, 4


@pytest.mark.parametrize("which", ["weth9", "weth10"])
def test_funded_weth_unwraps_to_eth(w3, mirror, alice, which):
    c = weth9(w3) if which == "weth9" else weth10(w3)
    token = c.address
    send(w3, c.functions.deposit(), alice, value=ETH)  # a real balance first: funding adds to it
    bal0, supply0, backing0 = c.functions.balanceOf(alice).call(), c.functions.totalSupply().call(), w3.eth.get_balance(token)

    assert fund(w3, token, alice, 7 * ETH) == bal0 + 7 * ETH
    assert c.functions.balanceOf(alice).call() == bal0 + 7 * ETH
    assert w3.eth.get_balance(token) == backing0 + 7 * ETH
    assert c.functions.totalSupply().call() == supply0 + 7 * ETH

    eth0 = w3.eth.get_balance(alice)
    r = send(w3, c.functions.withdraw(8 * ETH), alice)  # everything, funded part included
    assert w3.eth.get_balance(alice) == eth0 + 8 * ETH - _gas_cost(r)
    assert c.functions.balanceOf(alice).call() == 0
    assert w3.eth.get_balance(token) == backing0 - ETH


def test_funding_cusdt_behind_its_proxy(w3, mirror, alice, bob):
    tok = mirror.cusdt_token
    c = tok.contract(w3)
    supply0 = c.functions.totalSupply().call()
    assert c.functions.balanceOf(alice).call() == 0

    fund(w3, tok.address, alice, 250 * USD6)
    fund(w3, tok.address, alice, 50 * USD6)
    fund(w3, tok.address, bob, 1 * USD6)
    assert c.functions.balanceOf(alice).call() == 300 * USD6
    assert c.functions.balanceOf(bob).call() == 1 * USD6
    assert c.functions.totalSupply().call() == supply0 + 301 * USD6  # supply kept consistent

    # The slot is the proxy's storage, not the implementation's.
    slot = find_balance_slot(w3, tok.address, alice)
    assert get_storage(w3, tok.address, slot) == 300 * USD6
    assert get_storage(w3, tok.implementation, slot) == 0

    send(w3, c.functions.transfer(bob, 100 * USD6), alice)
    assert c.functions.balanceOf(alice).call() == 200 * USD6
    assert c.functions.balanceOf(bob).call() == 101 * USD6
    # The other stablecoin was not touched.
    assert mirror.cusdc_token.contract(w3).functions.balanceOf(alice).call() == 0


def test_funding_keeps_a_blacklisted_accounts_flag(w3, mirror, alice, bob):
    tok = mirror.cusdt_token
    c = tok.contract(w3)
    fund(w3, tok.address, bob, 40 * USD6)
    ft.freeze(w3, tok, bob)
    slot = find_balance_slot(w3, tok.address, bob)
    assert get_storage(w3, tok.address, slot) == ft.BLACKLIST_BIT | 40 * USD6

    fund(w3, tok.address, bob, 60 * USD6)
    assert c.functions.balanceOf(bob).call() == 100 * USD6
    assert c.functions.isBlacklisted(bob).call()  # still frozen
    assert get_storage(w3, tok.address, slot) == ft.BLACKLIST_BIT | 100 * USD6
    fund(w3, tok.address, alice, 5 * USD6)
    with pytest.raises(TxFailed, match="blacklisted"):
        send(w3, c.functions.transfer(alice, USD6), bob)
    with pytest.raises(TxFailed, match="blacklisted"):
        send(w3, c.functions.transfer(bob, USD6), alice)

    ft.unfreeze(w3, tok, bob)
    send(w3, c.functions.transfer(alice, 100 * USD6), bob)  # the whole funded balance moves
    assert c.functions.balanceOf(alice).call() == 105 * USD6
    assert c.functions.balanceOf(bob).call() == 0


def test_funding_a_namespaced_packed_layout(w3, alice, bob):
    odd = deploy(w3, own("OddLayoutToken"), 1_000 * ETH, sender=alice)
    f = odd.functions
    send(w3, f.transfer(bob, 10 * ETH), alice)
    touched, sent = f.lastTouched(alice).call(), f.transfers(alice).call()
    assert touched > 0 and sent == 1

    fund(w3, odd.address, alice, 5 * ETH)
    fund(w3, odd.address, bob, 3 * ETH)
    assert f.balanceOf(alice).call() == 995 * ETH
    assert f.balanceOf(bob).call() == 13 * ETH
    assert f.totalSupply().call() == 1_008 * ETH
    # The other fields packed into the balance slot survived the write.
    assert f.lastTouched(alice).call() == touched
    assert f.transfers(alice).call() == sent

    # The balance really lives in the ERC-7201 struct: accounts mapping at namespace + 2.
    base = int.from_bytes(f.storageLocation().call(), "big") + 2
    want = int.from_bytes(keccak(bytes(12) + bytes.fromhex(alice[2:]) + base.to_bytes(32, "big")), "big")
    assert find_balance_slot(w3, odd.address, alice) == want
    # The decoy config slot that balanceOf also reads was probed and put back.
    send(w3, f.transfer(bob, 995 * ETH), alice)
    assert f.balanceOf(bob).call() == 1_008 * ETH


def test_funding_something_that_is_not_a_token_names_it(w3, mirror, alice):
    with pytest.raises(FundingError, match=mirror.eth_usd_feed):
        fund(w3, mirror.eth_usd_feed, alice, 1)
    with pytest.raises(FundingError, match="no code"):
        fund(w3, alice, alice, 1)


def test_funding_fails_clearly_when_no_slot_holds_the_balance(w3, alice):
    # A "token" whose balanceOf answers 42 for everyone from code alone: no slot to write.
    token = role_address("test.constant-balance-token")
    set_code(w3, token, "0x602a60005260206000f3")  # mstore(0, 42); return(0, 32)
    assert balance_of(w3, token, alice) == 42
    with pytest.raises(FundingError, match="no storage slot holds the balance") as err:
        fund(w3, token, alice, 1)
    assert token in str(err.value) and alice in str(err.value)
    assert balance_of(w3, token, alice) == 42


def test_fund_eth(w3, alice):
    before = w3.eth.get_balance(alice)
    assert fund_eth(w3, alice, 12345) == before + 12345
    assert w3.eth.get_balance(alice) == before + 12345


def test_negative_amount_is_refused(w3, mirror, alice):
    with pytest.raises(ValueError):
        fund(w3, mirror.cusdt, alice, -1)
    assert balance_of(w3, mirror.cusdt, alice) == 0
