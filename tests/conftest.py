"""Shared fixtures: the local chain made to look like Chain 138, the mirror and the overlay.

ape's foundry provider starts anvil for the test session; we give it Chain 138's chain id
(anvil_setChainId) so every contract sees ``block.chainid == 138``, then install the mirror
(what Chain 138 itself has) and the venues overlay (what a deal needs that the chain does not
publish) once per session. ape isolates each test with a snapshot taken after the session
fixtures, so every test starts from the same freshly built market.
"""

from __future__ import annotations

import os
import tempfile

import ape
import pytest

from dealvault.chain138 import CHAIN_ID
from dealvault.kit import vault_config as kit_vault_config
from tests.model import DEFAULT_RISK


def _own_anvil_port() -> None:
    """ape-foundry's ``host: auto`` picks its anvil's port at random in 49152-60999 without asking
    whether it is free; a port another suite's node or a live connection holds makes that anvil exit
    and the worker die at start ("Timed out waiting for successful RPC connection to the 'anvil'
    process", seen once with the suites side by side). The OS picks a free one instead
    (``APE_FOUNDRY_HOST``, read by ape-foundry's connect); it is dropped once ape is connected, so
    the processes the tests start do not inherit it."""
    ours = os.environ.get("DEALVAULT_OWN_ANVIL_PORT")
    if "APE_FOUNDRY_HOST" not in os.environ or (ours and ours != str(os.getpid())):  # unset, or an xdist parent's
        from dealvault.kit.anvil import free_port

        os.environ["APE_FOUNDRY_HOST"] = f"http://127.0.0.1:{free_port()}"
        os.environ["DEALVAULT_OWN_ANVIL_PORT"] = str(os.getpid())


_own_anvil_port()


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session):
    if os.environ.get("DEALVAULT_OWN_ANVIL_PORT") == str(os.getpid()):
        os.environ.pop("DEALVAULT_OWN_ANVIL_PORT")
        os.environ.pop("APE_FOUNDRY_HOST", None)


# The host-wide vault locks (dealvault.record.host_vault_lock) of this test session, apart from any
# other session or deal on this machine (the kits' vaults have the same addresses every run).
os.environ["DEALVAULT_LOCK_DIR"] = tempfile.mkdtemp(prefix="dealvault-locks-")


def _quiet_expected_reverts() -> None:
    """ape-foundry prints the call trace of every revert it sees (a debug trace of the call, then
    its enrichment: about 0.3 s an expected revert, most of the unit suite's time once). The tests
    decide what a revert means (``ape.reverts`` with the custom error and its arguments), so the
    trace is not drawn; the error itself is built exactly as before."""
    from ape_ethereum.trace import Trace
    from ape_foundry.provider import FoundryProvider

    handle = FoundryProvider._handle_execution_reverted

    def quiet(self, *args, **kwargs):
        show = Trace.show
        Trace.show = lambda *_a, **_k: None  # type: ignore[method-assign]
        try:
            return handle(self, *args, **kwargs)
        finally:
            Trace.show = show  # type: ignore[method-assign]

    FoundryProvider._handle_execution_reverted = quiet  # type: ignore[method-assign]


_quiet_expected_reverts()


def _cheaper_local_rpc() -> None:
    """The test session's client costs, measured (tests/unit/vault/test_vault_caps.py under cProfile,
    7,875 requests for 282 transactions): ape-foundry rebuilds its pydantic settings on every read
    (2,425 reads, 13% of the CPU), requests scans the environment for proxies on every request (6%),
    web3's validation middleware asks eth_chainId twice per call and transaction (22% of the
    requests) and ape re-derives the test mnemonic's seed on every account lookup (1,174 PBKDF2s).
    The session's chain id is set once (the ``w3`` fixture; a fork's is its upstream's), so these
    are read once: no behaviour under test changes, only the client's repeats.
    """
    import functools

    import requests
    from ape_foundry.provider import FoundryProvider
    from eth_account.hdaccount.mnemonic import Mnemonic
    from web3.eth import Eth

    settings = FoundryProvider.settings.fget

    def cached_settings(self):
        # one provider per session, its config fixed by ape-config.yaml for the whole run
        cache = self.__dict__.setdefault("_dealvault_settings", {})
        key = repr(sorted(self.provider_settings.items()))
        if key not in cache:
            cache[key] = settings(self)
        return cache[key]

    FoundryProvider.settings = property(cached_settings)  # type: ignore[method-assign,assignment]

    # with no proxy or CA bundle configured, nothing in the environment changes how a request goes (a
    # fork run against a real CHAIN138_RPC_URL behind a proxy keeps requests' lookups)
    if not any(k.lower().endswith("_proxy") or k in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE") for k in os.environ):
        session_init = requests.Session.__init__

        def local_session(self, *args, **kwargs):
            session_init(self, *args, **kwargs)
            self.trust_env = False  # no per-request scan of the environment for proxies

        requests.Session.__init__ = local_session  # type: ignore[method-assign]

    # anvil mines on arrival, yet a receipt asked for at once is often not there yet (64 of 342 in
    # that file): poll every 10 ms, not web3's 100 ms (wall time only, no behaviour)
    wait = Eth.wait_for_transaction_receipt

    def wait_for_receipt(self, transaction_hash, timeout=120, poll_latency=0.01):
        return wait(self, transaction_hash, timeout=timeout, poll_latency=min(poll_latency, 0.01))

    Eth.wait_for_transaction_receipt = wait_for_receipt  # type: ignore[method-assign]

    to_seed = Mnemonic.to_seed.__func__  # type: ignore[attr-defined]
    Mnemonic.to_seed = classmethod(functools.lru_cache(maxsize=8)(to_seed))  # type: ignore[method-assign,assignment]


_cheaper_local_rpc()


@pytest.fixture(scope="session")
def w3():
    provider = ape.chain.provider
    web3 = provider.web3
    if web3.eth.chain_id != CHAIN_ID:
        web3.provider.make_request("anvil_setChainId", [CHAIN_ID])
        provider.cached_chain_id = CHAIN_ID  # ape signs with the cached id; keep them equal
    assert web3.eth.chain_id == CHAIN_ID
    # anvil's built-in signer keeps the chain id it started with; let eth_sendTransaction from
    # any address go unsigned so web3-level helpers can act as dev accounts and kit roles.
    web3.provider.make_request("anvil_autoImpersonateAccount", [True])
    # the chain id is fixed from here on: web3 answers its validation middleware's asks from its cache,
    # as the deal run does (dealvault.run.chain.cache_chain_id)
    from dealvault.run.chain import cache_chain_id

    cache_chain_id(web3)
    return web3


@pytest.fixture(scope="session")
def mirror(w3):
    from dealvault.kit.mirror import install_mirror

    return install_mirror(w3)


@pytest.fixture(scope="session")
def market(w3, mirror):
    from dealvault.kit.overlay import deploy_overlay

    return deploy_overlay(w3, mirror)


# --- dev accounts acting by impersonation (alice, bob) -----------------------------------------
# anvil_setChainId (above) does not reach anvil's dev-account signer, which keeps signing for
# 31337, so eth_sendTransaction from a dev account fails; impersonated senders are not signed, so
# act for the dev account by impersonation (the kit's roles work the same way). A test module
# picks the dev accounts with ALICE_INDEX / BOB_INDEX (default 1 and 2).


def _dev_actor(w3, request, name: str, default: int):
    from dealvault.kit.evm import impersonating

    index = getattr(request.module, f"{name.upper()}_INDEX", default)
    with impersonating(w3, w3.eth.accounts[index]) as who:
        yield who


@pytest.fixture
def alice(w3, request):
    yield from _dev_actor(w3, request, "alice", 1)


@pytest.fixture
def bob(w3, request):
    yield from _dev_actor(w3, request, "bob", 2)


def gas_cost(receipt) -> int:
    """Wei paid for a mined transaction."""
    return receipt["gasUsed"] * receipt["effectiveGasPrice"]


# --- roles and the vault ---------------------------------------------------------------------
# Role-named accounts from ape's test accounts (keys generated by ape's test mnemonic; no key
# is written anywhere in the repo).


@pytest.fixture(scope="session")
def deployer(accounts):
    return accounts[0]


@pytest.fixture(scope="session")
def owner(accounts):
    return accounts[1]


@pytest.fixture(scope="session")
def operator(accounts):
    return accounts[2]


@pytest.fixture(scope="session")
def guardian(accounts):
    return accounts[3]


@pytest.fixture(scope="session")
def whale(accounts):
    return accounts[4]


@pytest.fixture(scope="session")
def stranger(accounts):
    return accounts[5]



RISK_FIELDS = tuple(DEFAULT_RISK)


def risk_tuple(**overrides):
    risk = {**DEFAULT_RISK, **overrides}
    unknown = set(overrides) - set(DEFAULT_RISK)
    if unknown:
        raise KeyError(f"unknown risk params: {sorted(unknown)}")
    return tuple(risk[k] for k in RISK_FIELDS)


@pytest.fixture(scope="session")
def vault_config(w3, mirror, market, owner, operator, guardian):
    """Builder of the constructor's Config tuple: ``vault_config(maxLtvBps=2500, owner=...)``."""

    def build(*, owner_=None, operator_=None, guardian_=None, **risk):
        return kit_vault_config(mirror, market, str(owner_ or owner.address), str(operator_ or operator.address),
                                str(guardian_ or guardian.address), risk_tuple(**risk))

    return build


@pytest.fixture(scope="session")
def vault_factory(project, deployer, vault_config):
    """Deploys a DealVault with the given risk overrides: ``vault_factory(maxLtvBps=2500)``.

    Returns it with the whole vault's ABI (IDealVault: the core's legs and the extension's
    functions, served at the same address)."""

    def deploy(**overrides):
        core = project.DealVault.deploy(vault_config(**overrides), sender=deployer)
        return project.IDealVault.at(core.address)

    return deploy


@pytest.fixture(scope="session")
def vault(vault_factory):
    """A default vault (50/30/20, LTV cap 30%, exposure cap 25%), unfunded, phase FUNDED."""
    return vault_factory()


@pytest.fixture(scope="session", autouse=True)
def lens(project, deployer, w3):
    """The lens (one per chain, stateless): ``lens.riskView(vault)``, ``lens.params(vault)``...
    Deployed once per session, before ape's per-test snapshot; tests/unit/vault/helpers_vault's
    ``risk_view`` / ``params`` use it."""
    from tests.model import LENS

    contract = project.DealVaultLens.deploy(sender=deployer)
    LENS["address"] = contract.address
    return contract


# The unit suite's files, longest first (wall seconds alone, session 8: tests/cpu_report.py), so that
# `make test-unit`'s xdist workers (--dist loadfile --no-loadscope-reorder: a file per worker, in this
# order) do not end on a long file started last. xdist's own order is by test count, which put the
# files of few long tests (the README run, the RPC failures, the guard) at the end. Other files keep
# pytest's order after these; a stale list only costs time, never a test.
LONGEST_FIRST = (
    "tests/unit/test_orchestrator.py",            # 107 s
    "tests/unit/test_orchestrator_rpc.py",        # 51 s
    "tests/unit/vault/test_vault_caps.py",        # 44 s
    "tests/unit/vault/test_vault_v2_findings.py", # 43 s
    "tests/unit/test_readme_commands.py",         # 37 s
    "tests/unit/vault/test_vault_crisis.py",      # 36 s
    "tests/unit/test_deploy.py",                  # 35 s
    "tests/unit/vault/test_vault_params.py",      # 35 s
    "tests/unit/test_guard.py",                   # 34 s
    "tests/unit/test_observe_prometheus.py",      # 20 s
    "tests/unit/vault/test_vault_adversarial.py", # 17 s
    "tests/unit/test_record.py",                  # 17 s
    "tests/unit/test_guard_lease.py",             # 15 s
    "tests/unit/vault/test_vault_roles.py",       # 14 s
    "tests/unit/test_observe_api.py",             # 13 s
    "tests/unit/test_status.py",                  # 13 s
)


def pytest_collection_modifyitems(session, config, items):
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))  # stable: a file's tests keep their order
