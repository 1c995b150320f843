"""Fork suite: the whole loop on a fork of Chain 138, upstream taken as found.

Run: ``ape test --network chain138:mainnet-fork:foundry tests/fork`` (``-s`` prints a risk
snapshot table after each leg).

* ``CHAIN138_RPC_URL`` set: that chain is forked as it is; nothing is started here.
* not set: an upstream mirror (anvil, chain id 138, the mirror contracts only: no overlay, no
  vault) is started on a free port in ``pytest_configure`` (ape connects the network when
  collection finishes, before any fixture runs) and ``CHAIN138_RPC_URL`` points at it; it is
  stopped in ``pytest_unconfigure``. ``DEALVAULT_FORK_CUSDT=tether`` (``tools/test_fork.sh
  --usdt-style``) puts a Tether-style token at cUSDT in that mirror instead of Circle's FiatToken.

Either way the fixtures below treat the upstream the same: they *find* WETH9, WETH10, cUSDT,
cUSDC and the feed (:func:`dealvault.kit.upstream.find_upstream`, which fails naming the address and
what was found), deploy the venues overlay on the fork (liquidity funded with the funding helper,
never minted), and deploy DealVault v2 through the deployment pipeline
(:func:`dealvault.deploy.deploy_vault`: the core, the extension it creates, and the lens the
pipeline deploys and records with it). The vault is used through its full ABI (``IDealVault`` at
the vault's address); every view (riskView, params, collateralOf, stableOf, twap) is read through
the lens of the vault's deployment record (:func:`lens_of`).

What the stablecoins support (blacklist, pause, bool returns) is never assumed: the scenarios that
need a mechanism find it with :func:`dealvault.kit.features.token_features` and skip, naming what
was probed, where the token has none.

v2 rules the driver follows: a buy needs the vault's TWAP observation (taken at ``split`` and by
``observe``) to be ``twapWindow`` old (``Deal.twap_ready`` mines a block at that second), a redeem
is sent with an explicit gas limit above the vault's 567,301 floor (``REDEEM_GAS``), and
``Deal.refused`` decodes a refused leg's revert (the custom error and its arguments, checked where
the test knows them) from a simulation, then sends the leg for real and requires it mined reverted.

These fixtures override ``w3``, ``mirror`` and ``market`` of ``tests/conftest.py`` (which install
the mirror on ape's local provider); the role accounts and ``DEFAULT_RISK`` are shared.
"""

from __future__ import annotations

import functools
import itertools
import os
import sys
from decimal import Decimal

import ape
import pytest
from eth_utils import to_checksum_address

from dealvault.chain138 import CHAIN_ID

_STARTED = "_dealvault_fork_upstream"
FORK_NETWORK = "chain138:mainnet-fork"


def _network_choice(config) -> str:
    try:
        return str(config.getoption("--network") or "")
    except ValueError:
        return ""


def pytest_configure(config):
    """Start the upstream mirror before ape connects, unless CHAIN138_RPC_URL is set."""
    if os.environ.get("CHAIN138_RPC_URL"):
        config._dealvault_upstream_mode = f"as found at CHAIN138_RPC_URL={os.environ['CHAIN138_RPC_URL']}"
        return
    if FORK_NETWORK not in _network_choice(config):
        return  # not a fork run: the fork tests skip themselves (see `w3`)
    from dealvault.kit import start_kit
    from dealvault.kit.mirror import CUSDT_KIND_ENV

    # mirror only: the overlay is deployed on the fork, by the fixtures; DEALVAULT_FORK_CUSDT=tether
    # (tools/test_fork.sh --usdt-style) puts a Tether-style token at cUSDT instead of the FiatToken
    cusdt_kind = os.environ.get(CUSDT_KIND_ENV, "fiattoken")
    kit = start_kit(overlay=False, cusdt_kind=cusdt_kind)
    os.environ["CHAIN138_RPC_URL"] = kit.node.url
    setattr(config, _STARTED, kit)
    config._dealvault_upstream_mode = f"embedded mirror started by tests/fork at {kit.node.url}, cUSDT {cusdt_kind}"


def pytest_unconfigure(config):
    kit = getattr(config, _STARTED, None)
    if kit is not None:
        kit.stop()
        os.environ.pop("CHAIN138_RPC_URL", None)
        setattr(config, _STARTED, None)


def pytest_report_header(config):
    mode = getattr(config, "_dealvault_upstream_mode", None)
    return [f"chain 138 upstream: {mode}"] if mode else []


# --- the fork ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def w3():
    provider = ape.chain.provider
    net = provider.network
    if not (net.ecosystem.name == "chain138" and net.name == "mainnet-fork"):
        pytest.skip(f"fork tests run on {FORK_NETWORK}:foundry, not {net.ecosystem.name}:{net.name}")
    web3 = provider.web3
    assert web3.eth.chain_id == CHAIN_ID, f"the fork reports chain id {web3.eth.chain_id}, expected {CHAIN_ID}"
    web3.provider.make_request("anvil_autoImpersonateAccount", [True])
    return web3


@pytest.fixture(scope="session")
def upstream(w3):
    """The canonical contracts, found (and checked) on the forked upstream."""
    from dealvault.kit.upstream import UpstreamError, find_upstream

    try:
        return find_upstream(w3)
    except UpstreamError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def mirror(upstream):
    """Shared fixtures (vault_config...) take the mirror's addresses: here, the upstream's."""
    return upstream


@pytest.fixture(scope="session")
def market(w3, upstream):
    from dealvault.kit.overlay import deploy_overlay

    return deploy_overlay(w3, upstream)


@pytest.fixture(scope="session")
def fork_netconfig(w3, upstream, market):
    from dealvault.spec.netconfig import local_config_data, parse_netconfig

    return parse_netconfig(local_config_data(w3, upstream, market, name="fork"))


@pytest.fixture(scope="session")
def vault_build():
    from dealvault.deploy import build_contract

    return build_contract()


# vault address -> the ape DealVaultLens of its deployment record (filled by deploy_fork_vault)
LENSES: dict[str, object] = {}


def lens_of(vault):
    """The DealVaultLens the vault's deployment record names (an ape contract instance)."""
    return LENSES[to_checksum_address(str(getattr(vault, "address", vault)))]


@pytest.fixture(scope="session")
def deploy_fork_vault(w3, fork_netconfig, vault_build, deployer, owner, operator, guardian, project, tmp_path_factory):
    """Deploys a DealVault through the deployment pipeline (preflight, deploy the lens and the
    vault, verify the core, the extension and the lens, record); returns the vault as
    ``project.IDealVault`` (the whole ABI: the core's legs and the extension's functions) and
    registers the record's lens for :func:`lens_of`.
    ``deploy_fork_vault(maxLtvBps=2500, stablecoin="cusdc")``."""
    from dealvault import deploy as D
    from tests.conftest import DEFAULT_RISK

    records = tmp_path_factory.mktemp("deployments")
    ids = itertools.count(1)

    def deploy(stablecoin: str = "cusdt", **risk):
        unknown = set(risk) - set(DEFAULT_RISK)
        assert not unknown, f"unknown risk params {unknown}"
        deal = D.DealParams(
            deal_id=f"fork-{next(ids):03d}",
            roles={"owner": str(owner.address), "operator": str(operator.address), "guardian": str(guardian.address)},
            risk={**DEFAULT_RISK, **risk},
            stablecoin=stablecoin,
        )
        res = D.deploy_vault(w3, D.ApeSigner(deployer, w3), fork_netconfig, deal, build=vault_build, deployments_dir=records)
        assert res.status == "deployed", res.status
        # the lens the pipeline deployed, verified and recorded with the vault
        lens = to_checksum_address(res.record["lens"]["address"])
        assert res.lens and to_checksum_address(res.lens) == lens, (res.lens, lens)
        assert w3.eth.get_code(lens), f"no code at the recorded lens {lens}"
        ext = to_checksum_address(res.record["extension"]["address"])
        vault = project.IDealVault.at(res.address)
        assert to_checksum_address(vault.extension()) == ext and w3.eth.get_code(ext)
        LENSES[to_checksum_address(res.address)] = project.DealVaultLens.at(lens)
        return vault

    return deploy


@pytest.fixture(scope="session")
def fork_vault(deploy_fork_vault):
    """A default vault on the fork (unfunded, FUNDED); ape reverts it between tests."""
    return deploy_fork_vault()


@pytest.fixture(scope="session")
def rich(w3, owner):
    """Give the owner enough ETH for a large deal (anvil_setBalance)."""
    from dealvault.kit.evm import set_balance

    set_balance(w3, str(owner.address), 100_000 * 10**18)
    return owner


# --- raw reads (independent of the vault's math) ------------------------------------------------

ERC20_ABI = [
    {"type": "function", "name": "balanceOf", "stateMutability": "view", "inputs": [{"type": "address", "name": "a"}], "outputs": [{"type": "uint256", "name": ""}]},
    {"type": "function", "name": "approve", "stateMutability": "nonpayable", "inputs": [{"type": "address", "name": "s"}, {"type": "uint256", "name": "v"}], "outputs": [{"type": "bool", "name": ""}]},
]


SCALED_ABI = [
    {"type": "function", "name": "scaledBalanceOf", "stateMutability": "view", "inputs": [{"type": "address", "name": "u"}], "outputs": [{"type": "uint256", "name": ""}]},
]
RAY = 10**27


def ray_mul(a: int, b: int) -> int:
    """Aave's WadRayMath.rayMul (half up)."""
    return (a * b + RAY // 2) // RAY


class Raw:
    """Raw on-chain reads for one vault: balances, debt, aTokens, feed, pool account data."""

    def __init__(self, w3, vault, market, upstream):
        from dealvault.kit.mirror import feed

        self.w3, self.vault, self.market, self.up = w3, str(vault.address), market, upstream
        self.feed = feed(w3, upstream.eth_usd_feed)
        self.pool = market.pool_contract(w3)

    def bal(self, token, who=None) -> int:
        c = self.w3.eth.contract(address=to_checksum_address(str(token)), abi=ERC20_ABI)
        return c.functions.balanceOf(to_checksum_address(str(who or self.vault))).call()

    def eth(self, who=None) -> int:
        return self.w3.eth.get_balance(who or self.vault)

    def debt(self, symbol="cUSDT") -> int:
        return self.bal(self.market.variable_debt_tokens[symbol])

    def atoken(self, symbol="WETH") -> int:
        return self.bal(self.market.a_tokens[symbol])

    def scaled_debt(self, symbol="cUSDT") -> int:
        """The vault's scaled variable debt (the debt token's scaledBalanceOf), raw."""
        c = self.w3.eth.contract(address=to_checksum_address(self.market.variable_debt_tokens[symbol]), abi=SCALED_ABI)
        return c.functions.scaledBalanceOf(to_checksum_address(self.vault)).call()

    def debt_at(self, ts: int, symbol="cUSDT") -> int:
        """The vault's variable debt at timestamp ``ts`` (>= the latest block's), from the raw
        scaled balance and the reserve's index compounded at its current rate (Aave's math)."""
        from tests.unit.vault.helpers_vault import debt_at

        stable = self.up.cusdt if symbol == "cUSDT" else self.up.cusdc
        return debt_at(self.w3, self.market, stable, self.market.variable_debt_tokens[symbol], self.vault, ts)

    def debt_index(self, stable: str | None = None, block="latest") -> int:
        """The pool's normalized variable debt (ray) of ``stable`` at ``block``."""
        return self.pool.functions.getReserveNormalizedVariableDebt(stable or self.up.cusdt).call(block_identifier=block)

    def price(self) -> tuple[int, int]:
        _r, answer, _s, updated, _a = self.feed.functions.latestRoundData().call()
        return answer, updated

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def rate(self, stable: str | None = None) -> int:
        """The reserve's current variable borrow rate (ray, per year)."""
        return self.pool.functions.getReserveData(stable or self.up.cusdt).call()[4]

    def interest_bound(self, debt: int, since: int, rate: int) -> int:
        """Upper bound on the interest ``debt`` accrues from ``since`` to the latest block at
        ``rate`` (read before; linear, rounded up, +2 wei for ray rounding)."""
        dt = self.now() - since
        return -(-debt * rate * dt // (10**27 * 365 * 86_400)) + 2

    def account(self) -> tuple:
        return tuple(self.pool.functions.getUserAccountData(self.vault).call())


# --- the deal driver, with a snapshot table after each leg -------------------------------------

PHASES = ("FUNDED", "SPLIT", "WORKING", "POSITIONED", "MONETIZING", "HOLDING", "CLOSED")
ORACLE = ("fresh", "stale", "invalid", "unread")
DEADLINE = 2**64
# redeem reverts GasTooLow below 567,301 gas left at its check (DealVault.REDEEM_GAS): every redeem
# here is sent with an explicit limit above it, as the harness sends it
REDEEM_GAS = 1_000_000
# `Deal.refused(EMPTY_REVERT, ...)`: a revert with no data (e.g. a call to a contract-less address)
EMPTY_REVERT = b""
REFUSED_GAS = 5_000_000  # the explicit limit a refused leg is sent with (no estimate: it reverts)


def _hex(b) -> str:
    return "0x" + bytes(b).hex()


@functools.lru_cache(maxsize=1)
def _error_table() -> dict[bytes, tuple[str, list[str], list[str]]]:
    from eth_utils import keccak

    from dealvault.artifacts import own

    out = {keccak(text="Error(string)")[:4]: ("Error", ["message"], ["string"]),
           keccak(text="Panic(uint256)")[:4]: ("Panic", ["code"], ["uint256"])}
    # the vault's errors, then those of the Tether-style stablecoin (a token's revert bubbles up
    # through Aave and the vault unchanged: Blacklisted(account), TransfersPaused())
    for e in own("IDealVault").abi + own("TetherStyleToken").abi:
        if e.get("type") == "error":
            types = [i["type"] for i in e["inputs"]]
            out.setdefault(keccak(text=f"{e['name']}({','.join(types)})")[:4], (e["name"], [i["name"] for i in e["inputs"]], types))
    return out


def decode_revert(data: str) -> tuple[str, dict]:
    """Revert data -> (error name, {argument: value}): IDealVault's and TetherStyleToken's custom errors (addresses
    checksummed, enums as ints), Error(string) as ("Error", {"message": ...}), Panic; unknown
    data as ("0x<selector>", {})."""
    from eth_abi import decode

    raw = bytes.fromhex(data[2:]) if data.startswith("0x") else bytes.fromhex(data)
    table = _error_table()
    if raw[:4] not in table:
        return "0x" + raw[:4].hex(), {}
    name, names, types = table[raw[:4]]
    vals = decode(types, raw[4:])
    return name, {n: (to_checksum_address(v) if t == "address" else v) for n, t, v in zip(names, types, vals)}


def _eth(wei: int) -> str:
    return f"{Decimal(wei) / Decimal(10**18):,.2f}"


def _usd6(x: int) -> str:
    return f"{Decimal(x) / Decimal(10**6):,.0f}"


def _usd8(x: int) -> str:
    return f"{Decimal(x) / Decimal(10**8):,.0f}"


def _bps(x: int) -> str:
    return "max" if x >= 2**255 else f"{x}"


class Deal:
    """Runs legs on a vault and prints (with -s) one risk-snapshot row per leg (the lens's riskView)."""

    HEADER = ("leg", "phase", "core", "work", "opp", "coll ETH", "debt $", "LTV", "HF", "NAV $", "exp", "stable $", "USDTz", "rung",
              "loss $", "oracle")

    def __init__(self, w3, vault, market, upstream, owner, operator, guardian, title: str):
        self.w3, self.vault, self.market, self.up = w3, vault, market, upstream
        self.lens = lens_of(vault)
        self.owner, self.operator, self.guardian = owner, operator, guardian
        self.raw = Raw(w3, vault, market, upstream)
        self.weth9, self.weth10 = upstream.weth9, upstream.weth10
        self.cusdt, self.cusdc, self.usdtz = upstream.cusdt, upstream.cusdc, market.usdtz
        self.core_eth: int | None = None
        self.core_checks = 0
        self.rows = 0
        self.observed_at: int | None = None  # block time of the last split / observe (the TWAP's start)
        self._out(f"\n== {title} ==")
        self._out(self._fmt(self.HEADER))

    @staticmethod
    def _fmt(cols) -> str:
        widths = (22, 10, 9, 8, 8, 9, 11, 5, 6, 12, 5, 11, 11, 5, 8, 7)
        return " ".join(str(c)[:w].rjust(w) if i else str(c)[:w].ljust(w) for i, (c, w) in enumerate(zip(cols, widths)))

    def _out(self, line: str) -> None:
        sys.stdout.write(line + "\n")

    def view(self):
        """The lens's riskView of the vault (v2: the views left the vault)."""
        return self.lens.riskView(self.vault.address)

    def params(self):
        """The lens's risk parameters of the vault (maxLtvBps, sellFloorPrice, twapWindow, ...)."""
        return self.lens.params(self.vault.address)

    def collateral_of(self, wrapper: str) -> int:
        return self.lens.collateralOf(self.vault.address, wrapper)

    def stable_of(self, stable: str) -> int:
        return self.lens.stableOf(self.vault.address, stable)

    def row(self, label: str) -> None:
        v = self.view()
        hf = "-" if v.debt == 0 else f"{Decimal(v.healthFactor) / Decimal(10**18):.2f}"
        self._out(self._fmt((
            label, PHASES[v.phase], _eth(v.coreEth), _eth(v.workingEth), _eth(v.opportunisticEth), _eth(v.collateralWeth),
            _usd6(v.debt), _bps(v.ltvBps), hf, _usd8(v.nav), _bps(v.exposureBps), _usd6(v.stableHeld), _usd6(v.usdtzHeld),
            f"{v.rung}", _usd6(v.operatorLoss), ORACLE[v.oracleStatus],
        )))
        self.rows += 1
        self._check_core(v)

    def _check_core(self, v) -> None:
        """Core ETH never moves: booked core constant from split on, and held in ETH by the vault."""
        if v.phase == 6:  # CLOSED: the owner may take it now
            return
        if v.phase == 0:  # FUNDED: v2 books the funded capital in the core bucket until split
            assert v.coreEth == v.fundedCapital and self.raw.eth() >= v.coreEth, (v.coreEth, v.fundedCapital)
            return
        if self.core_eth is None and v.coreEth:
            self.core_eth = v.coreEth
        if self.core_eth is not None:
            assert v.coreEth == self.core_eth, f"core bucket moved: {v.coreEth} != {self.core_eth}"
            assert self.raw.eth() >= self.core_eth, f"vault holds {self.raw.eth()} wei < core {self.core_eth}"
            self.core_checks += 1

    def _send(self, name: str, args, sender, kw):
        if name == "redeem":
            kw.setdefault("gas", REDEEM_GAS)
        return getattr(self.vault, name)(*args, sender=sender or self.operator, **kw)

    def leg(self, name: str, *args, sender=None, label: str | None = None, **kw):
        tx = self._send(name, args, sender, kw)
        if name in ("split", "observe"):
            self.observed_at = int(self.w3.eth.get_block(tx.block_number)["timestamp"])
        self.row(label or name)
        return tx

    def refused(self, error, name: str, *args, sender=None, label: str | None = None, expect: dict | None = None,
                expect_fn=None, **kw):
        """The leg reverts with ``error`` (an ape custom-error class, with ``expect`` = its
        arguments where known; a revert string; EMPTY_REVERT: no revert data; or None: any
        revert); state unchanged.

        The leg is simulated (eth_call from its sender at the latest block) to decode the revert
        (:func:`decode_revert`: the custom error and its arguments, or Error(string)), then sent
        for real with an explicit gas limit and must be mined reverted (status 0). ``expect_fn``
        (inputs -> bool) checks arguments that depend on the second the leg ran (a debt with
        interest, a TWAP). Sent through web3 rather than ape: ape_foundry renders the whole call
        trace of every reverted transaction, seconds for a leg that reverts deep inside Aave."""
        before = self.view()
        who = to_checksum_address(str((sender or self.operator).address))
        tx = {"from": who, "to": to_checksum_address(str(self.vault.address)), "data": _hex(getattr(self.vault, name).encode_input(*args)),
              "gas": hex(kw.pop("gas", REFUSED_GAS)), "value": hex(kw.pop("value", 0))}
        assert not kw, f"unexpected arguments {kw}"
        resp = self.w3.provider.make_request("eth_call", [tx, "latest"])
        assert "error" in resp, f"{name} did not revert: {resp.get('result')}"
        data = resp["error"].get("data") or "0x"
        got, inputs = decode_revert(data if isinstance(data, str) else _hex(data))
        if error is None:
            pass
        elif isinstance(error, bytes):  # EMPTY_REVERT
            assert error == EMPTY_REVERT and data in ("0x", ""), (got, inputs)
        elif isinstance(error, str):
            assert (got, inputs.get("message")) == ("Error", error), (got, inputs, error)
        else:
            assert got == error.__name__, (got, inputs, error.__name__)
            assert all(inputs.get(k) == v for k, v in (expect or {}).items()), (inputs, expect)
            if expect_fn is not None:
                assert expect_fn(inputs), inputs
        receipt = self.w3.eth.wait_for_transaction_receipt(self.w3.eth.send_transaction(tx))
        assert receipt["status"] == 0, f"{name} was mined successfully"
        after = self.view()
        assert before.legSeq == after.legSeq and before.phase == after.phase and before.debt <= after.debt
        assert before.operatorLoss == after.operatorLoss
        why = f"{got}(" + ", ".join(f"{k}={v}" for k, v in inputs.items()) + ")"
        self._out(f"x {label or name:<20} refused: {why}")
        return inputs

    # -- TWAP (v2: a buy, and an operator's sell, price against the pair's own TWAP)
    def twap_ready(self, stable: str | None = None) -> int:
        """Mines a block at the first second a buy may use the vault's observation of the
        ``stable`` pair: the observation's block time (kept here from the split / observe receipt)
        + twapWindow. The lens's Twap.observedAt / readyAt must agree. Returns that time."""
        stable = stable or self.cusdt
        t = self.lens.twap(self.vault.address, stable)
        assert self.observed_at is not None and t.observedAt == self.observed_at, (t.observedAt, self.observed_at)
        ready = self.observed_at + self.params().twapWindow
        assert t.readyAt == ready, (t.readyAt, ready)
        if ready > self.raw.now():
            from dealvault.kit.evm import rpc

            rpc(self.w3, "evm_setNextBlockTimestamp", [ready])
            rpc(self.w3, "evm_mine", [])
        assert self.raw.now() >= ready
        return ready

    def observe_and_wait(self, stable: str | None = None, sender=None) -> None:
        """A new TWAP observation (operator), then wait the window: the TWAP starts at the pair's
        price now (after a third party moved it)."""
        tx = self.vault.observe(sender=sender or self.operator)
        self.observed_at = int(self.w3.eth.get_block(tx.block_number)["timestamp"])
        obs = [e for e in tx.events if e.event_name == "Observed"]
        assert sorted(e.stable for e in obs) == sorted((self.cusdt, self.cusdc)) and {e.timestamp for e in obs} == {self.observed_at}
        self.twap_ready(stable)
        self.note(f"observe(): the TWAP window starts at {self.observed_at}")

    # -- common sequences
    def open(self, funded_wei: int) -> None:
        self.leg("fund", sender=self.owner, value=funded_wei)
        self.leg("split")

    def position(self, funded: int, ltv_bps: int, *, wrapper: str | None = None, stable: str | None = None,
                 buy: bool = True, keep_working: int = 0) -> dict:
        """fund -> split -> supply all working -> borrow ``ltv_bps`` of the collateral at the raw
        feed price -> (a TWAP window later) buy USDTz with all of it. Returns the amounts
        (independently computed)."""
        wrapper, stable = wrapper or self.weth9, stable or self.cusdt
        self.open(funded)
        working = funded * 3000 // 10_000 - keep_working
        self.leg("supply", wrapper, working)
        price, _ = self.raw.price()
        borrow = working * price * ltv_bps // (10**20 * 10_000)
        self.leg("borrow", stable, borrow)
        out = {"funded": funded, "working": working, "price": price, "borrow": borrow, "usdtz": 0,
               "split_value": funded * price // 10**20}
        if buy:
            self.twap_ready(stable)
            before = self.raw.bal(self.usdtz)
            self.leg("buy", stable, borrow, 0, DEADLINE)
            out["usdtz"] = self.raw.bal(self.usdtz) - before
        return out

    def redeem_all(self, stable: str | None = None, rungs=(50_000 * 10**6, 250_000 * 10**6, 1_000_000 * 10**6)) -> int:
        """Redeem every booked USDTz up the ladder from where it stands; returns the stablecoin received."""
        stable = stable or self.cusdt
        got = 0
        while True:
            v = self.view()
            if v.usdtzHeld == 0:
                return got
            amount = min(v.usdtzHeld, rungs[v.rung] - v.rungProgress)
            before = self.raw.bal(stable)
            tx = self.leg("redeem", stable, amount, label=f"redeem r{v.rung} {amount // 10**6:,}")
            assert not [e for e in tx.events if e.event_name == "RedemptionFailed"], "a tranche failed"
            got += self.raw.bal(stable) - before

    def reopen_discount(self, stable: str | None = None, price: Decimal = Decimal("0.80")) -> int:
        """A third party sells USDTz into [USDTz, stable] until the pair is back at ``price``
        stable per USDTz (the vault's own buys pushed it up). Returns the USDTz sold."""
        from dealvault.kit.overlay import swap_on_pair

        stable = stable or self.cusdt
        pair = self.market.pair_usdtz_cusdt if stable == self.cusdt else self.market.pair_usdtz_cusdc
        pc = self.market.pair_contract(self.w3, pair)
        r0, r1, _ = pc.functions.getReserves().call()
        rz, rs = (r0, r1) if pc.functions.token0().call().lower() == self.usdtz.lower() else (r1, r0)
        target_z = int((Decimal(rz) * Decimal(rs) / price).sqrt())
        if target_z <= rz:
            return 0
        amount = (target_z - rz) * 1000 // 997
        swap_on_pair(self.w3, self.market, self.usdtz, stable, amount)
        self.note(f"a third party sells {amount / 1e6:,.0f} USDTz: the pair is back at {price} per USDTz")
        return amount

    def note(self, text: str) -> None:
        self._out(f"   # {text}")


@pytest.fixture
def make_deal(w3, market, upstream, owner, operator, guardian, rich):
    def make(vault, title: str) -> Deal:
        return Deal(w3, vault, market, upstream, owner, operator, guardian, title)

    return make


@pytest.fixture
def raw_reads(w3, market, upstream):
    def make(vault) -> Raw:
        return Raw(w3, vault, market, upstream)

    return make


# --- RedemptionFailed.reason, decoded ------------------------------------------------------------

_REASONS = {
    "Error": ["string"],
    "RedemptionsHalted": [],
    "InsufficientLiquidity": ["address", "uint256", "uint256"],
    "ShortPayment": ["uint256", "uint256"],
    "ApproveFailed": ["address"],
    "ReentrancyGuardReentrantCall": [],
}


def decode_reason(reason) -> tuple[str, tuple]:
    """Decode a ``RedemptionFailed.reason``: ``("Error", (message,))`` or a custom error with its
    arguments (addresses checksummed). Raises KeyError on an unknown selector."""
    from eth_abi import decode
    from eth_utils import keccak

    reason = bytes(reason)
    for name, types in _REASONS.items():
        sig = "{}({})".format(name, ",".join(types)) if name != "Error" else "Error(string)"
        if reason[:4] == keccak(text=sig)[:4]:
            args = tuple(decode(types, reason[4:])) if types else ()
            return name, tuple(to_checksum_address(a) if t == "address" else a for a, t in zip(args, types))
    raise KeyError(f"unknown revert selector 0x{reason[:4].hex()} in {reason.hex()}")


@pytest.fixture
def reason_of():
    return decode_reason
