"""Shared fixtures: the local chain made to look like Chain 138, the mirror and the overlay.

ape's foundry provider starts anvil for the test session; we give it Chain 138's chain id
(anvil_setChainId) so every contract sees ``block.chainid == 138``, then install the mirror
(what Chain 138 itself has) and the venues overlay (what a deal needs that the chain does not
publish) once per session. ape isolates each test with a snapshot taken after the session
fixtures, so every test starts from the same freshly built market.
"""

from __future__ import annotations

import ape
import pytest

from dealvault.chain138 import CHAIN_ID


@pytest.fixture(scope="session")
def w3():
    provider = ape.chain.provider
    web3 = provider.web3
    if web3.eth.chain_id != CHAIN_ID:
        web3.provider.make_request("anvil_setChainId", [CHAIN_ID])
        provider.cached_chain_id = CHAIN_ID  # ape signs with the cached id; keep them equal
    assert web3.eth.chain_id == CHAIN_ID
    return web3


@pytest.fixture(scope="session")
def mirror(w3):
    from dealvault.mirror import install_mirror

    return install_mirror(w3)


@pytest.fixture(scope="session")
def market(w3, mirror):
    from dealvault.overlay import deploy_overlay

    return deploy_overlay(w3, mirror)
