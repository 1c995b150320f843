"""The Chain 138 mirror: right chain, right addresses, right code, and the tokens behave.

Accounts are funded with dealvault.kit.funding (as on a fork), never with the doubles' mint.
"""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address

from dealvault import chain138
from dealvault.artifacts import own
from dealvault.kit import fiattoken as ft
from dealvault.kit.evm import TxFailed, deploy, get_storage, send, set_code
from dealvault.kit.funding import fund, fund_eth
from dealvault.kit.mirror import (
    DEFAULT_ETH_USD,
    MirrorError,
    check_upstream,
    feed,
    install_mirror,
    make_feed_stale,
    set_eth_price,
    weth9,
    weth10,
)
from tests.conftest import gas_cost as _gas_cost

ETH = 10**18
USD6 = 10**6


# alice and bob: impersonated dev accounts 1 and 2 (tests/conftest.py)


# --- where and what --------------------------------------------------------------------------


def test_chain_id_is_138(w3, mirror):
    assert w3.eth.chain_id == 138
    assert int(w3.provider.make_request("eth_chainId", [])["result"], 16) == 138
    assert mirror.chain_id == chain138.CHAIN_ID == 138


def test_every_canonical_address_has_code(w3, mirror):
    canonical = [t.address for t in chain138.TOKENS] + [chain138.ETH_USD_FEED]
    assert len(canonical) == 5
    for address in canonical:
        assert len(w3.eth.get_code(to_checksum_address(address))) > 0, address
    assert {mirror.weth9, mirror.weth10, mirror.cusdt, mirror.cusdc, mirror.eth_usd_feed} == {
        to_checksum_address(a) for a in canonical
    }


_META_ABI = [
    {"type": "function", "name": n, "stateMutability": "view", "inputs": [], "outputs": [{"type": t, "name": ""}]}
    for n, t in (("name", "string"), ("symbol", "string"), ("decimals", "uint8"))
]


@pytest.mark.parametrize("fact", chain138.TOKENS, ids=lambda f: f.symbol)
def test_token_metadata_matches_chain138(w3, mirror, fact):
    c = w3.eth.contract(address=to_checksum_address(fact.address), abi=_META_ABI)
    assert c.functions.name().call() == fact.name
    assert c.functions.symbol().call() == fact.symbol
    assert c.functions.decimals().call() == fact.decimals
    assert mirror.token(fact.symbol) == to_checksum_address(fact.address)


def test_check_upstream_is_clean_and_names_what_is_wrong(w3, mirror):
    assert check_upstream(w3) == []
    set_code(w3, mirror.cusdc, "0x")  # isolated: reverted after the test
    problems = check_upstream(w3)
    assert len(problems) == 1
    assert mirror.cusdc in problems[0] and "no code" in problems[0]


def test_installing_twice_is_refused(w3, mirror):
    with pytest.raises(MirrorError, match="already present") as err:
        install_mirror(w3)
    assert mirror.weth9 in str(err.value)


def test_weth9_was_deployed_by_its_constructor_from_the_mainnet_deployer(w3, mirror):
    # WETH9 is where the deployer's nonce 446 puts it, so the constructor really ran.
    assert w3.eth.get_transaction_count(chain138.WETH9_DEPLOYER) == chain138.WETH9_DEPLOYER_NONCE + 1
    assert weth9(w3).functions.totalSupply().call() == w3.eth.get_balance(mirror.weth9)


def test_cusdt_and_cusdc_are_fiat_token_proxies_with_named_roles(w3, mirror):
    for tok in (mirror.cusdt_token, mirror.cusdc_token):
        impl, admin = ft.proxy_slots(w3, tok.address)
        assert impl == mirror.fiat_implementation == tok.implementation
        assert admin == tok.roles.proxy_admin
        c = tok.contract(w3)
        assert c.functions.owner().call() == tok.roles.owner
        assert c.functions.masterMinter().call() == tok.roles.master_minter
        assert c.functions.pauser().call() == tok.roles.pauser
        assert c.functions.blacklister().call() == tok.roles.blacklister
        assert c.functions.rescuer().call() == tok.roles.rescuer
        assert c.functions.isMinter(tok.roles.minter).call()
        assert c.functions.currency().call() == "USD"
        assert c.functions.version().call() == "2"
        # V2_2 was initialized: the token blacklists itself.
        assert c.functions.isBlacklisted(tok.address).call()
        # The proxy admin cannot reach the token: its calls stop at the proxy.
        with pytest.raises(Exception, match="proxy admin"):
            c.functions.name().call({"from": tok.roles.proxy_admin})
    assert mirror.cusdt_token.roles != mirror.cusdc_token.roles


# --- WETH9 and WETH10 ------------------------------------------------------------------------


def test_weth9_deposit_and_withdraw(w3, mirror, alice):
    c = weth9(w3)
    eth0, supply0 = w3.eth.get_balance(alice), c.functions.totalSupply().call()
    r1 = send(w3, c.functions.deposit(), alice, value=2 * ETH)
    assert c.functions.balanceOf(alice).call() == 2 * ETH
    assert c.functions.totalSupply().call() == supply0 + 2 * ETH
    r2 = send(w3, c.functions.withdraw(ETH + 1), alice)
    assert c.functions.balanceOf(alice).call() == ETH - 1
    assert w3.eth.get_balance(alice) == eth0 - 2 * ETH + ETH + 1 - _gas_cost(r1) - _gas_cost(r2)
    with pytest.raises(TxFailed):
        send(w3, c.functions.withdraw(ETH), alice)  # only ETH - 1 left


def test_weth10_deposit_withdraw_to_and_from(w3, mirror, alice, bob):
    c = weth10(w3)
    send(w3, c.functions.deposit(), alice, value=3 * ETH)
    send(w3, c.functions.depositTo(bob), alice, value=ETH)
    assert c.functions.balanceOf(alice).call() == 3 * ETH
    assert c.functions.balanceOf(bob).call() == ETH
    assert c.functions.totalSupply().call() == 4 * ETH == w3.eth.get_balance(mirror.weth10)

    bob_eth = w3.eth.get_balance(bob)
    send(w3, c.functions.withdrawTo(bob, ETH), alice)
    assert w3.eth.get_balance(bob) == bob_eth + ETH
    assert c.functions.balanceOf(alice).call() == 2 * ETH

    with pytest.raises(TxFailed):
        send(w3, c.functions.withdrawFrom(alice, bob, ETH), bob)  # no allowance
    send(w3, c.functions.approve(bob, ETH), alice)
    bob_eth = w3.eth.get_balance(bob)
    r = send(w3, c.functions.withdrawFrom(alice, bob, ETH), bob)
    assert w3.eth.get_balance(bob) == bob_eth + ETH - _gas_cost(r)
    assert c.functions.balanceOf(alice).call() == ETH
    assert c.functions.allowance(alice, bob).call() == 0

    alice_eth = w3.eth.get_balance(alice)
    r = send(w3, c.functions.withdraw(ETH), alice)
    assert w3.eth.get_balance(alice) == alice_eth + ETH - _gas_cost(r)
    assert c.functions.balanceOf(alice).call() == 0


ZERO = "0x0000000000000000000000000000000000000000"


def _weth10_balance_slot(account: str) -> int:
    """WETH10's ``balanceOf[account]``: a plain mapping at slot 0 (the deployed token's layout)."""
    return int.from_bytes(keccak(bytes(12) + bytes.fromhex(to_checksum_address(account)[2:]) + bytes(32)), "big")


def test_weth10_transfer_to_its_own_address_credits_the_contract_and_pays_no_eth(w3, mirror, alice, bob):
    """As deployed at the canonical address: a transfer (or transferFrom) to WETH10 itself is an
    ordinary transfer; the tokens stay on the contract's own balance and no ETH leaves it."""
    c = weth10(w3)
    send(w3, c.functions.deposit(), alice, value=3 * ETH)
    supply0, held0 = c.functions.totalSupply().call(), w3.eth.get_balance(mirror.weth10)
    own0 = c.functions.balanceOf(mirror.weth10).call()
    alice_eth = w3.eth.get_balance(alice)

    r = send(w3, c.functions.transfer(mirror.weth10, ETH), alice)
    assert w3.eth.get_balance(alice) == alice_eth - _gas_cost(r)  # no ETH paid back
    assert c.functions.balanceOf(alice).call() == 2 * ETH
    assert c.functions.balanceOf(mirror.weth10).call() == own0 + ETH
    assert c.functions.totalSupply().call() == supply0 and w3.eth.get_balance(mirror.weth10) == held0
    transfers = c.events.Transfer().process_receipt(r)
    assert [(e.args["from"], e.args["to"], e.args["value"]) for e in transfers] == [(alice, mirror.weth10, ETH)]

    send(w3, c.functions.approve(bob, ETH), alice)
    bob_eth = w3.eth.get_balance(bob)
    r = send(w3, c.functions.transferFrom(alice, mirror.weth10, ETH), bob)
    assert w3.eth.get_balance(bob) == bob_eth - _gas_cost(r)
    assert c.functions.balanceOf(alice).call() == ETH and c.functions.allowance(alice, bob).call() == 0
    assert c.functions.balanceOf(mirror.weth10).call() == own0 + 2 * ETH
    assert c.functions.totalSupply().call() == supply0 and w3.eth.get_balance(mirror.weth10) == held0
    # the storage layout is the deployed token's: balanceOf is the mapping at slot 0
    assert get_storage(w3, mirror.weth10, _weth10_balance_slot(mirror.weth10)) == own0 + 2 * ETH


def test_weth10_transfer_to_address_zero_burns_and_pays_the_caller(w3, mirror, alice, bob):
    """transfer(address(0), v) burns the caller's v and pays it v ETH; transferFrom(from,
    address(0), v) burns ``from``'s v (spending the caller's allowance) and pays the ETH to the
    caller, not to ``from`` (the deployed WETH10)."""
    c = weth10(w3)
    send(w3, c.functions.deposit(), alice, value=3 * ETH)
    supply0 = c.functions.totalSupply().call()
    alice_eth = w3.eth.get_balance(alice)

    r = send(w3, c.functions.transfer(ZERO, ETH), alice)
    assert w3.eth.get_balance(alice) == alice_eth + ETH - _gas_cost(r)
    assert c.functions.balanceOf(alice).call() == 2 * ETH
    assert c.functions.totalSupply().call() == supply0 - ETH == w3.eth.get_balance(mirror.weth10)

    send(w3, c.functions.approve(bob, 2 * ETH), alice)
    alice_eth, bob_eth = w3.eth.get_balance(alice), w3.eth.get_balance(bob)
    r = send(w3, c.functions.transferFrom(alice, ZERO, ETH), bob)
    assert w3.eth.get_balance(bob) == bob_eth + ETH - _gas_cost(r)
    assert w3.eth.get_balance(alice) == alice_eth
    assert c.functions.balanceOf(alice).call() == ETH and c.functions.allowance(alice, bob).call() == ETH
    assert c.functions.totalSupply().call() == supply0 - 2 * ETH == w3.eth.get_balance(mirror.weth10)
    with pytest.raises(TxFailed):
        send(w3, c.functions.transferFrom(alice, ZERO, 2 * ETH), bob)  # more than the allowance left (and than alice holds)


def test_weth10_flash_mint(w3, mirror, alice):
    c = weth10(w3)
    borrower = deploy(w3, own("FlashBorrowerProbe"), mirror.weth10, sender=alice)
    send(w3, c.functions.deposit(), alice, value=ETH)
    supply0 = c.functions.totalSupply().call()
    amount = 1_000_000 * ETH  # far more ETH than exists here: it is minted, not lent

    send(w3, borrower.functions.borrow(amount), alice)
    f = borrower.functions
    assert f.seenAmount().call() == amount
    assert f.seenFee().call() == 0
    assert f.seenBalance().call() == amount
    assert f.seenTotalSupply().call() == supply0 + amount
    assert f.seenInitiator().call() == borrower.address
    # Repaid and burnt: nothing left over, nothing flash-minted.
    assert c.functions.balanceOf(borrower.address).call() == 0
    assert c.functions.totalSupply().call() == supply0
    assert c.functions.flashMinted().call() == 0

    send(w3, f.setApproveRepayment(False), alice)
    with pytest.raises(TxFailed):
        send(w3, f.borrow(amount), alice)
    with pytest.raises(TxFailed):
        send(w3, f.borrow(2**112), alice)  # above the cap
    assert c.functions.maxFlashLoan(mirror.weth10).call() == 2**112 - 1


def test_weth10_permit_signed_off_chain(w3, mirror, alice, bob):
    c = weth10(w3)
    owner = Account.create()  # throw-away key, made now, never stored
    fund_eth(w3, owner.address, ETH)
    fund(w3, mirror.weth10, owner.address, 5 * ETH)
    deadline = w3.eth.get_block("latest")["timestamp"] + 3600
    value = 2 * ETH

    # The domain separator is computed for chain 138 and the canonical address at run time.
    domain_typehash = keccak(text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
    expected = keccak(
        domain_typehash + keccak(text="Wrapped Ether v10") + keccak(text="1") + (138).to_bytes(32, "big")
        + bytes(12) + bytes.fromhex(mirror.weth10[2:])
    )
    assert c.functions.DOMAIN_SEPARATOR().call() == expected

    def sign(nonce: int, amount: int):
        msg = encode_typed_data(full_message={
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"},
                ],
                "Permit": [
                    {"name": "owner", "type": "address"}, {"name": "spender", "type": "address"},
                    {"name": "value", "type": "uint256"}, {"name": "nonce", "type": "uint256"},
                    {"name": "deadline", "type": "uint256"},
                ],
            },
            "primaryType": "Permit",
            "domain": {"name": "Wrapped Ether v10", "version": "1", "chainId": 138, "verifyingContract": mirror.weth10},
            "message": {"owner": owner.address, "spender": bob, "value": amount, "nonce": nonce, "deadline": deadline},
        })
        return Account.sign_message(msg, owner.key)

    sig = sign(0, value)
    args = (owner.address, bob, value, deadline, sig.v, sig.r.to_bytes(32, "big"), sig.s.to_bytes(32, "big"))
    assert c.functions.allowance(owner.address, bob).call() == 0
    send(w3, c.functions.permit(*args), alice)  # anyone may submit it
    assert c.functions.allowance(owner.address, bob).call() == value
    assert c.functions.nonces(owner.address).call() == 1
    with pytest.raises(TxFailed):
        send(w3, c.functions.permit(*args), alice)  # replay: nonce moved on

    bad = sign(1, value + 1)  # signed for another value than submitted
    with pytest.raises(TxFailed):
        send(w3, c.functions.permit(owner.address, bob, value, deadline, bad.v, bad.r.to_bytes(32, "big"), bad.s.to_bytes(32, "big")), alice)

    send(w3, c.functions.transferFrom(owner.address, bob, value), bob)
    assert c.functions.balanceOf(bob).call() == value
    assert c.functions.balanceOf(owner.address).call() == 3 * ETH


# --- cUSDT freeze and pause --------------------------------------------------------------------


def test_cusdt_freeze_blocks_sending_and_receiving(w3, mirror, alice, bob):
    tok = mirror.cusdt_token
    c = tok.contract(w3)
    fund(w3, tok.address, alice, 1_000 * USD6)
    fund(w3, tok.address, bob, 1_000 * USD6)
    send(w3, c.functions.transfer(bob, 10 * USD6), alice)  # works before the freeze

    ft.freeze(w3, tok, alice)
    assert c.functions.isBlacklisted(alice).call()
    assert c.functions.balanceOf(alice).call() == 990 * USD6  # frozen, not seized
    with pytest.raises(TxFailed, match="blacklisted"):
        send(w3, c.functions.transfer(bob, USD6), alice)  # cannot send
    with pytest.raises(TxFailed, match="blacklisted"):
        send(w3, c.functions.transfer(alice, USD6), bob)  # cannot receive
    send(w3, c.functions.approve(bob, 5 * USD6), bob)
    with pytest.raises(TxFailed, match="blacklisted"):
        send(w3, c.functions.transferFrom(bob, alice, USD6), bob)  # not via transferFrom either

    ft.unfreeze(w3, tok, alice)
    send(w3, c.functions.transfer(bob, USD6), alice)
    send(w3, c.functions.transfer(alice, 2 * USD6), bob)
    assert c.functions.balanceOf(alice).call() == 991 * USD6
    assert c.functions.balanceOf(bob).call() == 1_009 * USD6


def test_only_the_blacklister_can_freeze(w3, mirror, alice, bob):
    c = mirror.cusdt_token.contract(w3)
    with pytest.raises(TxFailed, match="blacklister"):
        send(w3, c.functions.blacklist(bob), alice)
    assert not c.functions.isBlacklisted(bob).call()


def test_cusdt_pause_blocks_transfers_both_ways(w3, mirror, alice, bob):
    tok = mirror.cusdt_token
    c = tok.contract(w3)
    fund(w3, tok.address, alice, 100 * USD6)
    fund(w3, tok.address, bob, 100 * USD6)
    send(w3, c.functions.approve(alice, 50 * USD6), bob)

    ft.pause(w3, tok)
    assert c.functions.paused().call()
    with pytest.raises(TxFailed, match="paused"):
        send(w3, c.functions.transfer(bob, USD6), alice)
    with pytest.raises(TxFailed, match="paused"):
        send(w3, c.functions.transfer(alice, USD6), bob)
    with pytest.raises(TxFailed, match="paused"):
        send(w3, c.functions.transferFrom(bob, alice, USD6), alice)
    assert c.functions.balanceOf(alice).call() == c.functions.balanceOf(bob).call() == 100 * USD6

    ft.unpause(w3, tok)
    send(w3, c.functions.transferFrom(bob, alice, 7 * USD6), alice)
    assert c.functions.balanceOf(alice).call() == 107 * USD6
    assert c.functions.balanceOf(bob).call() == 93 * USD6


def test_cusdc_is_independent_of_cusdt(w3, mirror, alice, bob):
    fund(w3, mirror.cusdc, alice, 10 * USD6)
    ft.pause(w3, mirror.cusdt_token)
    c = mirror.cusdc_token.contract(w3)
    send(w3, c.functions.transfer(bob, 3 * USD6), alice)
    assert c.functions.balanceOf(bob).call() == 3 * USD6


# --- the ETH/USD feed --------------------------------------------------------------------------


def test_feed_answers_moves_and_goes_stale(w3, mirror, alice):
    c = feed(w3)
    assert c.functions.decimals().call() == 8
    rid0, answer0, _, updated0, _ = c.functions.latestRoundData().call()
    assert answer0 == DEFAULT_ETH_USD
    assert c.functions.owner().call() == mirror.feed_owner

    set_eth_price(w3, mirror, 2_500 * 10**8)
    rid1, answer1, _, updated1, answered1 = c.functions.latestRoundData().call()
    assert (rid1, answer1, answered1) == (rid0 + 1, 2_500 * 10**8, rid0 + 1)
    assert updated1 >= updated0
    assert c.functions.getRoundData(rid0).call()[1] == answer0  # history stays readable

    stale_at = make_feed_stale(w3, mirror, age=3 * 86_400)
    rid2, answer2, _, updated2, _ = c.functions.latestRoundData().call()
    assert rid2 == rid1 + 1 and answer2 == answer1 and updated2 == stale_at
    assert w3.eth.get_block("latest")["timestamp"] - updated2 >= 3 * 86_400

    with pytest.raises(TxFailed):
        send(w3, c.functions.setAnswer(1), alice)  # not the owner



# --- the same FiatToken machinery, deployed normally (the overlay's USDTz uses it) -------------


def test_deploy_fiat_token_normally(w3, mirror, alice):
    tok = ft.deploy_fiat_token(w3, "Test Tz Dollar", "TTZ", "USD", "test.ttz", implementation=mirror.fiat_implementation)
    c = tok.contract(w3)
    assert (c.functions.name().call(), c.functions.symbol().call(), c.functions.decimals().call()) == ("Test Tz Dollar", "TTZ", 6)
    assert ft.proxy_slots(w3, tok.address) == (mirror.fiat_implementation, tok.roles.proxy_admin)
    assert tok.roles.pauser == ft.FiatTokenRoles.named("test.ttz").pauser
    ft.mint(w3, tok, alice, 5 * USD6)
    assert c.functions.balanceOf(alice).call() == 5 * USD6
    assert c.functions.totalSupply().call() == 5 * USD6
    ft.freeze(w3, tok, alice)
    with pytest.raises(TxFailed, match="blacklisted"):
        send(w3, c.functions.transfer(mirror.cusdt, USD6), alice)


def test_sigterm_stops_the_mirror_and_its_anvil(tmp_path):
    """Issue 13: `kill <ape run mirror>` (SIGTERM) stops its anvil too, as Ctrl-C does."""
    import os
    import signal
    import socket
    import subprocess
    import time

    from dealvault.paths import ROOT

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen([str(ROOT / ".venv" / "bin" / "ape"), "run", "mirror", "--port", str(port)], cwd=ROOT,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "SOLCX_BINARY_PATH": str(ROOT / "tools" / "solcx")})
    try:
        deadline = time.monotonic() + 120
        lines = []
        while not any("up; Ctrl-C to stop" in line for line in lines):
            assert p.poll() is None and time.monotonic() < deadline, "".join(lines)
            lines.append(p.stderr.readline())
        anvils = subprocess.run(["pgrep", "-f", f"anvil --port {port} "], capture_output=True, text=True, check=False).stdout.split()
        assert anvils, "the mirror's anvil is not running"
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) is not None
        time.sleep(0.5)
        assert subprocess.run(["pgrep", "-f", f"anvil --port {port} "], capture_output=True, check=False).returncode == 1
        with socket.socket() as s, pytest.raises(ConnectionRefusedError):
            s.connect(("127.0.0.1", port))
    finally:
        if p.poll() is None:
            p.kill()
