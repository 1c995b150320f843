"""The upstream check (dealvault.kit.mirror.check_upstream, through the fork fixtures'
dealvault.kit.upstream.find_upstream) on throw-away anvils: a good upstream passes; a fork of it whose
code at WETH10 is replaced, whose cUSDT reports other decimals, whose feed is not a feed, or
whose chain id is not 138 fails with a message naming the address and what was found there.

Nothing here touches ape's fork: a separate mirror anvil (chain id 138, mirror contracts only) is
started once for the module and each case forks it with its own anvil (``--fork-url``), breaks
the fork with ``anvil_setCode`` / ``anvil_setStorageAt`` and runs the check.
"""

from __future__ import annotations

import pytest

from dealvault import chain138
from dealvault.kit.anvil import start_anvil
from dealvault.kit.evm import get_storage, set_code, set_storage
from dealvault.kit.mirror import CUSDC, CUSDT, ETH_USD_FEED, WETH9, WETH10, check_upstream
from dealvault.kit.upstream import UpstreamError, find_upstream

FIAT_DECIMALS_SLOT = 6  # FiatTokenV1 layout: owner, pauser|paused, blacklister, blacklisted, name, symbol, decimals


@pytest.fixture(scope="module")
def good_upstream():
    from dealvault.kit import start_kit

    kit = start_kit(overlay=False)
    try:
        yield kit
    finally:
        kit.stop()


@pytest.fixture
def fork_of(good_upstream):
    nodes = []

    def make(chain_id: int = chain138.CHAIN_ID):
        node = start_anvil(chain_id=chain_id, fork_url=good_upstream.node.url)
        nodes.append(node)
        return node.web3()

    yield make
    for node in nodes:
        node.stop()


def _fails(w3) -> str:
    with pytest.raises(UpstreamError) as exc:
        find_upstream(w3)
    msg = str(exc.value)
    assert msg.startswith("the upstream is not Chain 138 as expected:\n")
    return msg


def test_good_upstream_and_its_fork_pass(good_upstream, fork_of):
    assert check_upstream(good_upstream.w3) == []
    w3 = fork_of()
    up = find_upstream(w3)
    assert (up.chain_id, up.weth9, up.weth10, up.cusdt, up.cusdc, up.eth_usd_feed) == (
        138, WETH9, WETH10, CUSDT, CUSDC, ETH_USD_FEED)
    assert up.cusdt_token is None and up.feed_owner is None  # taken as found: no roles


def test_weth10_code_replaced(fork_of):
    w3 = fork_of()
    # someone else's contract at WETH10: here WETH9's runtime code, without WETH9's storage
    set_code(w3, WETH10, w3.eth.get_code(WETH9).to_0x_hex())
    problems = check_upstream(w3)
    where = f"WETH10 at {WETH10}"
    assert problems == [
        f"{where}: name() is '', expected 'Wrapped Ether v10'",
        f"{where}: symbol() is '', expected 'WETH10'",
        f"{where}: decimals() is 0, expected 18",
    ]
    msg = _fails(w3)
    for p in problems:
        assert f"  - {p}" in msg


def test_weth10_without_code(fork_of):
    w3 = fork_of()
    set_code(w3, WETH10, "0x")
    assert check_upstream(w3) == [f"WETH10 at {WETH10}: no code"]
    assert f"WETH10 at {WETH10}: no code" in _fails(w3)


def test_cusdt_decimals_differ(fork_of):
    w3 = fork_of()
    assert get_storage(w3, CUSDT, FIAT_DECIMALS_SLOT) == 6  # the slot holds cUSDT's decimals
    set_storage(w3, CUSDT, FIAT_DECIMALS_SLOT, 18)
    assert check_upstream(w3) == [f"cUSDT at {CUSDT}: decimals() is 18, expected 6"]
    assert f"cUSDT at {CUSDT}: decimals() is 18, expected 6" in _fails(w3)


def test_feed_is_not_a_feed(fork_of):
    w3 = fork_of()
    set_code(w3, ETH_USD_FEED, w3.eth.get_code(WETH9).to_0x_hex())  # answers decimals(), not latestRoundData()
    problems = check_upstream(w3)
    where = f"ETH/USD feed at {ETH_USD_FEED}"
    assert problems[0] == f"{where}: decimals() is 0, expected 8"
    assert len(problems) == 2 and problems[1].startswith(f"{where}: latestRoundData() reverted or is missing")
    _fails(w3)


def test_wrong_chain_id(fork_of):
    w3 = fork_of(chain_id=1)
    assert check_upstream(w3) == ["chain id is 1, expected 138"]
    assert "chain id is 1, expected 138" in _fails(w3)


def test_several_problems_are_all_listed(fork_of):
    w3 = fork_of()
    set_code(w3, WETH10, "0x")
    set_storage(w3, CUSDT, FIAT_DECIMALS_SLOT, 8)
    msg = _fails(w3)
    assert msg.splitlines()[1:] == [f"  - WETH10 at {WETH10}: no code", f"  - cUSDT at {CUSDT}: decimals() is 8, expected 6"]


def test_cusdt_is_the_kind_the_run_asked_for(w3, upstream):
    """A run that chose the upstream mirror's cUSDT (tools/test_fork.sh --usdt-style sets
    DEALVAULT_FORK_CUSDT=tether) really forks that token: found by the probes, not assumed."""
    import os

    from dealvault.kit.features import FIATTOKEN, TETHER, token_features
    from dealvault.kit.mirror import CUSDT_KIND_ENV

    kind = os.environ.get(CUSDT_KIND_ENV)
    if kind is None:
        pytest.skip(f"{CUSDT_KIND_ENV} is not set: the upstream's cUSDT is taken as found")
    features = token_features(w3, upstream.cusdt)
    want = {"tether": TETHER, "fiattoken": FIATTOKEN}[kind]
    assert (features.blacklist, features.pause) == (want, want), features.probes
    assert features.returns_bool is (want == FIATTOKEN)
