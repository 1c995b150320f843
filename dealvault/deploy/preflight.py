"""Preflight: every check before a deployment sends anything.

In order: the chain's identity (chain id and genesis hash against the network config; a null
genesis needs ``--accept-genesis``); code at every configured address; token symbols and
decimals; the ETH/USD feed answers, is positive and fresh; the pool lists WETH9/WETH10 as
collateral and the deal's stablecoin as borrowable; the router's ``WETH()``; a configured lens
runs the DealVaultLens build; roles distinct and non-zero; the target chain runs every post-paris
opcode the builds use; the constructor simulates (a revert decoded by its custom error); the
deployer can pay the gas. Any failure raises :class:`PreflightError` listing every problem with
the item it concerns; on success :func:`preflight` returns the :class:`Plan` the pipeline sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.types import TxParams

from dealvault.deploy import opcodes
from dealvault.deploy.build import Build, companion_builds, hexstr
from dealvault.deploy.errors import PreflightError, Problem
from dealvault.deploy.params import ROLES, DealParams, constructor_config, encode_constructor
from dealvault.spec import GasPolicy
from dealvault.spec.netconfig import NetworkConfig
from dealvault.units import from_units
from dealvault.vault.revert import explain

__all__ = ["Identity", "Plan", "check_identity", "gas_fields", "genesis_hash", "preflight"]

_ERC20 = [
    {"name": "symbol", "type": "function", "stateMutability": "view", "inputs": [], "outputs": [{"type": "string"}]},
    {"name": "decimals", "type": "function", "stateMutability": "view", "inputs": [], "outputs": [{"type": "uint8"}]},
]
_FEED = [
    {"name": "decimals", "type": "function", "stateMutability": "view", "inputs": [], "outputs": [{"type": "uint8"}]},
    {"name": "latestRoundData", "type": "function", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "roundId", "type": "uint80"}, {"name": "answer", "type": "int256"},
                 {"name": "startedAt", "type": "uint256"}, {"name": "updatedAt", "type": "uint256"},
                 {"name": "answeredInRound", "type": "uint80"}]},
]
_POOL = [
    {"name": "getConfiguration", "type": "function", "stateMutability": "view", "inputs": [{"name": "asset", "type": "address"}],
     "outputs": [{"name": "", "type": "tuple", "components": [{"name": "data", "type": "uint256"}]}]},
]
_PROVIDER = [{"name": "getPool", "type": "function", "stateMutability": "view", "inputs": [], "outputs": [{"type": "address"}]}]
_ROUTER = [{"name": "WETH", "type": "function", "stateMutability": "view", "inputs": [], "outputs": [{"type": "address"}]}]

# Aave V3 ReserveConfigurationMap bits
_LTV_MASK = 0xFFFF
_ACTIVE_BIT, _FROZEN_BIT, _BORROWING_BIT, _PAUSED_BIT = 56, 57, 58, 60
_ZERO = "0x" + "0" * 40


# ---------------------------------------------------------------------------------------------
# identity


@dataclass(frozen=True)
class Identity:
    """The chain the node is on, as preflight established it."""

    chain_id: int
    genesis_hash: str               # 0x hash of block 0, as the node reports it
    genesis_accepted_by_flag: bool  # the config's genesis_hash is null and --accept-genesis matched


def genesis_hash(w3: Web3) -> str:
    return hexstr(bytes(w3.eth.get_block(0)["hash"]))


def check_identity(w3: Web3, net: NetworkConfig, accept_genesis: str | None = None) -> Identity:
    """Chain id and genesis hash against the config; raises PreflightError naming the item.

    A config whose ``genesis_hash`` is null (the Chain 138 placeholder) is refused for a
    non-ephemeral network unless ``accept_genesis`` equals the hash the node reports; the error
    says which hash was seen."""
    problems: list[Problem] = []
    chain_id = int(w3.eth.chain_id)
    genesis = genesis_hash(w3)
    where = f" ({net.path})" if net.path else ""
    if chain_id != net.chain_id:
        problems.append(Problem("network.chain_id", f"the node reports chain id {chain_id}, the config{where} expects {net.chain_id}"))
    accepted = False
    if accept_genesis is not None:
        accept_genesis = accept_genesis.lower()
    if net.genesis_hash is not None:
        if genesis != net.genesis_hash:
            problems.append(Problem("network.genesis_hash", f"the node's block 0 hash is {genesis}, the config{where} expects {net.genesis_hash}: this is a different chain"))
        elif accept_genesis is not None and accept_genesis != genesis:
            problems.append(Problem("network.genesis_hash", f"--accept-genesis {accept_genesis} differs from the configured and observed {genesis}"))
    elif not net.ephemeral:
        if accept_genesis is None:
            problems.append(Problem(
                "network.genesis_hash",
                f"is null (placeholder) in the config{where}; the node reports block 0 hash {genesis}. "
                f"Check it against an independent source, then pass --accept-genesis {genesis} (or put it in the config)"))
        elif accept_genesis != genesis:
            problems.append(Problem("network.genesis_hash", f"--accept-genesis {accept_genesis} but the node's block 0 hash is {genesis}"))
        else:
            accepted = True
    if problems:
        raise PreflightError(problems)
    return Identity(chain_id=chain_id, genesis_hash=genesis, genesis_accepted_by_flag=accepted)


# ---------------------------------------------------------------------------------------------
# the plan


@dataclass
class Plan:
    """What preflight established and what the deployment will send."""

    deal_id: str
    network: str
    identity: Identity
    deployer: str
    pool: str
    config: dict[str, Any]               # constructor Config, decoded
    constructor_args: bytes
    tx: dict[str, Any]                   # the deployment transaction (without nonce binding)
    gas_estimate: int
    gas_price_wei: int
    cost_wei: int
    deployer_balance_wei: int
    opcodes: dict[str, Any]
    checks: list[str] = field(default_factory=list)
    lens: str | None = None              # the network config's lens (verified), or None: deploy one
    lens_tx: dict[str, Any] | None = None  # the lens's creation transaction when one is deployed
    lens_gas_estimate: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "deal_id": self.deal_id,
            "network": self.network,
            "chain_id": self.identity.chain_id,
            "genesis_hash": self.identity.genesis_hash,
            "deployer": self.deployer,
            "owner": self.config["owner"],
            "operator": self.config["operator"],
            "guardian": self.config["guardian"],
            "pool": self.pool,
            "lens": self.lens or "deploy",
            "gas_estimate": self.gas_estimate,
            "lens_gas_estimate": self.lens_gas_estimate,
            "gas_price_wei": self.gas_price_wei,
            "max_cost_eth": str(Web3.from_wei(self.cost_wei, "ether")),
            "deployer_balance_eth": str(Web3.from_wei(self.deployer_balance_wei, "ether")),
            "post_paris_opcodes": self.opcodes.get("used") or {},
            "checks": self.checks,
        }


def gas_fields(w3: Web3, gas: GasPolicy | None) -> dict[str, int]:
    """The fee fields of a transaction: the deal's fixed policy, or the node's gas price."""
    if gas is not None and not gas.is_auto:
        if gas.legacy:
            return {"gasPrice": int(gas.max_fee_wei or 0)}
        return {"maxFeePerGas": int(gas.max_fee_wei or 0), "maxPriorityFeePerGas": int(gas.priority_fee_wei or 0)}
    return {"gasPrice": int(w3.eth.gas_price)}


# ---------------------------------------------------------------------------------------------
# the checks, one concern each; they add to ``problems`` and ``checks``


@dataclass
class _Findings:
    problems: list[Problem] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)

    def problem(self, item: str, message: str) -> None:
        self.problems.append(Problem(item, message))


def _call(w3: Web3, address: str, abi: list[dict[str, Any]], fn: str, *args: Any) -> Any:
    return getattr(w3.eth.contract(address=to_checksum_address(address), abi=abi).functions, fn)(*args).call()


def _has_code(w3: Web3, address: str) -> bool:
    return bool(w3.eth.get_code(to_checksum_address(address)))


def _check_code(w3: Web3, net: NetworkConfig, f: _Findings) -> set[str]:
    """Code at every configured address; returns the addresses that have code."""
    has_code = set()
    for key, addr in net.address_items():
        if addr is None:
            continue
        if _has_code(w3, addr):
            has_code.add(addr)
        else:
            f.problem(key, f"no contract at {addr}")
    return has_code


def _check_tokens(w3: Web3, net: NetworkConfig, has_code: set[str], f: _Findings) -> None:
    for k, t in net.tokens.items():
        if t.address is None or t.address not in has_code:
            continue
        try:
            sym = _call(w3, t.address, _ERC20, "symbol")
            dec = int(_call(w3, t.address, _ERC20, "decimals"))
        except Exception as exc:
            f.problem(f"tokens.{k}", f"{t.address} does not answer symbol()/decimals(): {exc}")
            continue
        if sym != t.symbol:
            f.problem(f"tokens.{k}.symbol", f"{t.address} says symbol {sym!r}, the config expects {t.symbol!r}")
        if dec != t.decimals:
            f.problem(f"tokens.{k}.decimals", f"{t.address} says decimals {dec}, the config expects {t.decimals}")
        else:
            f.checks.append(f"{t.symbol} at {t.address}: {dec} decimals")


def _check_feed(w3: Web3, net: NetworkConfig, deal: DealParams, has_code: set[str], f: _Findings) -> None:
    feed = net.feed
    if feed.address is None or feed.address not in has_code:
        return
    max_age = min(feed.max_age, int(deal.risk.get("oracleMaxAge", feed.max_age)))
    try:
        dec = int(_call(w3, feed.address, _FEED, "decimals"))
        _rid, answer, _s, updated_at, _a = _call(w3, feed.address, _FEED, "latestRoundData")
    except Exception as exc:
        f.problem("feeds.eth_usd", f"{feed.address} does not answer decimals()/latestRoundData(): {exc}")
        return
    now = int(w3.eth.get_block("latest")["timestamp"])
    if dec != feed.decimals:
        f.problem("feeds.eth_usd.decimals", f"{feed.address} says decimals {dec}, the config expects {feed.decimals}")
    if answer <= 0:
        f.problem("feeds.eth_usd", f"{feed.address} answers {answer}: not a positive price")
    age = now - int(updated_at)
    if age > max_age:
        f.problem("feeds.eth_usd.max_age", f"{feed.address} last updated {age} s ago (at {updated_at}); allowed at most {max_age} s")
    if answer > 0 and age <= max_age:
        f.checks.append(f"ETH/USD feed: {from_units(int(answer), dec):.2f}, {age} s old")


def _pool_address(w3: Web3, net: NetworkConfig, has_code: set[str], f: _Findings) -> str | None:
    """The configured pool, or the addresses provider's getPool() (which must agree with it)."""
    v = net.venues
    pool = v.pool
    if v.pool_addresses_provider is None or v.pool_addresses_provider not in has_code:
        return pool
    try:
        via = to_checksum_address(_call(w3, v.pool_addresses_provider, _PROVIDER, "getPool"))
    except Exception as exc:
        f.problem("venues.pool_addresses_provider", f"{v.pool_addresses_provider} does not answer getPool(): {exc}")
        return pool
    if pool is not None and via != pool:
        f.problem("venues.pool", f"{pool} differs from the addresses provider's getPool() {via}")
    if not _has_code(w3, via):
        f.problem("venues.pool_addresses_provider", f"getPool() is {via}, which has no code")
    return pool or via


def _check_pool(w3: Web3, net: NetworkConfig, deal: DealParams, pool: str, f: _Findings) -> None:
    """Aave V3's reserve configuration: WETH9/WETH10 usable collateral, the deal's stablecoin borrowable."""

    def conf(asset: str) -> int | None:
        try:
            return int(_call(w3, pool, _POOL, "getConfiguration", asset)[0])
        except Exception:
            return None

    def bit(c: int, n: int) -> int:
        return (c >> n) & 1

    for k in ("weth9", "weth10"):
        addr, sym = net.tokens[k].address, net.tokens[k].symbol
        if addr is None:
            continue
        c = conf(addr)
        if c is None or not bit(c, _ACTIVE_BIT):
            f.problem("venues.pool", f"the pool {pool} does not list {sym} ({addr}) as an active reserve")
        elif (c & _LTV_MASK) == 0 or bit(c, _FROZEN_BIT) or bit(c, _PAUSED_BIT):
            f.problem("venues.pool", f"{sym} is not usable as collateral in the pool {pool} (ltv {c & _LTV_MASK} bps, "
                                     f"frozen {bit(c, _FROZEN_BIT)}, paused {bit(c, _PAUSED_BIT)})")
        else:
            f.checks.append(f"pool: {sym} collateral, LTV {c & _LTV_MASK} bps")
    for k in ("cusdt", "cusdc"):
        addr, sym = net.tokens[k].address, net.tokens[k].symbol
        if addr is None:
            continue
        c = conf(addr)
        if c is None or not bit(c, _ACTIVE_BIT):
            f.problem("venues.pool", f"the pool {pool} does not list {sym} ({addr}) as an active reserve")
        elif k == deal.stablecoin and (not bit(c, _BORROWING_BIT) or bit(c, _FROZEN_BIT) or bit(c, _PAUSED_BIT)):
            f.problem("venues.pool", f"{sym} (the deal's stablecoin) is not borrowable in the pool {pool} (borrowing "
                                     f"{bit(c, _BORROWING_BIT)}, frozen {bit(c, _FROZEN_BIT)}, paused {bit(c, _PAUSED_BIT)})")
        else:
            f.checks.append(f"pool: {sym} listed" + (", borrowable" if k == deal.stablecoin else ""))


def _check_router(w3: Web3, net: NetworkConfig, has_code: set[str], f: _Findings) -> None:
    router, weth9 = net.venues.router, net.tokens["weth9"].address
    if router is None or router not in has_code or not weth9:
        return
    try:
        rw = to_checksum_address(_call(w3, router, _ROUTER, "WETH"))
    except Exception as exc:
        f.problem("venues.router", f"{router} does not answer WETH(): {exc}")
        return
    if rw != weth9:
        f.problem("venues.router", f"the router's WETH() is {rw}, not WETH9 {weth9}")


def _check_lens(w3: Web3, net: NetworkConfig, lens_build: Build, has_code: set[str], f: _Findings) -> None:
    """The configured lens must run the DealVaultLens build; without one, one is deployed."""
    lens = net.venues.lens
    if lens is None:
        f.checks.append("lens: none configured (venues.lens): one is deployed and recorded with the deal")
    elif lens in has_code:
        why = lens_build.mismatch(bytes(w3.eth.get_code(to_checksum_address(lens))))
        if why:
            f.problem("venues.lens", f"the code at {lens} is not the DealVaultLens build: {why}")
        else:
            f.checks.append(f"lens: {lens} runs the DealVaultLens build ({lens_build.runtime_hash})")


def _check_roles(deal: DealParams, deployer: str, f: _Findings) -> None:
    seen: dict[str, str] = {}
    for role in ROLES:
        a = deal.roles.get(role)
        if not a or a.lower() == _ZERO:
            f.problem(f"roles.{role}", "is missing or the zero address")
            continue
        if a.lower() in seen:
            f.problem(f"roles.{role}", f"{a} is also roles.{seen[a.lower()]}; owner, operator and guardian must be distinct")
        seen[a.lower()] = role
    if deployer.lower() in seen:
        f.checks.append(f"note: the deployer {deployer} is also the {seen[deployer.lower()]} (the constructor grants roles, not the deployer)")


def _check_opcodes(w3: Web3, builds: list[Build], f: _Findings) -> dict[str, Any]:
    """Every post-paris opcode of ``builds`` (creation and runtime code) runs on the target chain."""
    report: dict[str, Any] = {"used": {}, "probed": {}}
    refused = []
    for b in builds:
        try:
            rep = opcodes.check_build(w3, b.creation, b.runtime, what=f"the {b.contract} build")
        except opcodes.UnsupportedOpcodeError as exc:
            refused.append(str(exc))
            continue
        report["used"].update({f"{b.contract} {part}": hits for part, hits in rep["used"].items()})
        report["probed"].update(rep["probed"])
    if refused:
        f.problem("build.evm_version", " | ".join(refused))
    else:
        names = sorted({n for part in report["used"].values() for n in part})
        f.checks.append("opcodes: " + (", ".join(names) or "no post-paris opcodes"))
    return report


# ---------------------------------------------------------------------------------------------
# preflight


def preflight(
    w3: Web3,
    net: NetworkConfig,
    deal: DealParams,
    build: Build,
    deployer: str,
    *,
    accept_genesis: str | None = None,
    check_opcodes: bool = True,
    extension_build: Build | None = None,
    lens_build: Build | None = None,
) -> Plan:
    """Every check before a deployment (see the module doc). Sends nothing; raises PreflightError
    listing every problem (identity problems stop the checks at once)."""
    deployer = to_checksum_address(deployer)
    identity = check_identity(w3, net, accept_genesis)
    if extension_build is None or lens_build is None:
        ext_b, lens_b = companion_builds(build)
        extension_build, lens_build = extension_build or ext_b, lens_build or lens_b
    f = _Findings(checks=[f"chain id {identity.chain_id}", f"genesis {identity.genesis_hash}"])

    missing = net.missing_for_vault()
    for key in missing:
        f.problem(key, f"is null in the network config{f' ({net.path})' if net.path else ''}; a vault needs it")
    has_code = _check_code(w3, net, f)
    _check_tokens(w3, net, has_code, f)
    _check_feed(w3, net, deal, has_code, f)
    pool = _pool_address(w3, net, has_code, f)
    if pool is not None and _has_code(w3, pool):
        _check_pool(w3, net, deal, pool, f)
    _check_router(w3, net, has_code, f)
    _check_lens(w3, net, lens_build, has_code, f)
    _check_roles(deal, deployer, f)
    op_report: dict[str, Any] = {"used": {}, "probed": {}}
    if check_opcodes:
        # the core (its creation code carries the extension's), the extension, the lens to deploy
        op_report = _check_opcodes(w3, [build, extension_build] + ([lens_build] if net.venues.lens is None else []), f)

    config = constructor_config(net, deal, pool or "") if not missing else {}
    plan = Plan(deal_id=deal.deal_id, network=net.name, identity=identity, deployer=deployer, pool=pool or "",
                config=config, constructor_args=b"", tx={}, gas_estimate=0, gas_price_wei=0, cost_wei=0,
                deployer_balance_wei=int(w3.eth.get_balance(deployer)), opcodes=op_report, checks=f.checks,
                lens=net.venues.lens)
    if not f.problems:
        _plan_transactions(w3, deal, build, lens_build, plan, f)
    if f.problems:
        raise PreflightError(f.problems)
    return plan


def _plan_transactions(w3: Web3, deal: DealParams, build: Build, lens_build: Build, plan: Plan, f: _Findings) -> None:
    """The creation transactions (the lens's unless configured, the vault's), simulated for gas;
    the deployer's balance must cover them."""
    plan.constructor_args = encode_constructor(build, plan.config)
    fee = gas_fields(w3, deal.gas)
    plan.gas_price_wei = fee.get("gasPrice", fee.get("maxFeePerGas", 0))
    chain_id = plan.identity.chain_id
    plan.tx = {"from": plan.deployer, "data": hexstr(build.creation + plan.constructor_args), "value": 0, "chainId": chain_id}
    try:
        plan.gas_estimate = int(w3.eth.estimate_gas(cast(TxParams, plan.tx)))
    except Exception as exc:
        f.problem("constructor", f"the deployment would revert: {explain(exc, build.abi)}")
    if plan.lens is None:
        plan.lens_tx = {"from": plan.deployer, "data": hexstr(lens_build.creation), "value": 0, "chainId": chain_id}
        try:
            plan.lens_gas_estimate = int(w3.eth.estimate_gas(cast(TxParams, plan.lens_tx)))
        except Exception as exc:
            f.problem("lens", f"the lens deployment would revert: {exc}")
    if f.problems:
        return
    gas_limit = plan.gas_estimate * 12 // 10
    lens_limit = plan.lens_gas_estimate * 12 // 10
    plan.cost_wei = (gas_limit + lens_limit) * plan.gas_price_wei
    plan.tx.update(fee, gas=gas_limit)
    if plan.lens_tx is not None:
        plan.lens_tx.update(fee, gas=lens_limit)
    what = f"{gas_limit} gas" + (f" + the lens {lens_limit} gas" if plan.lens_tx is not None else "")
    balance, cost = plan.deployer_balance_wei, plan.cost_wei
    if balance < cost:
        f.problem("deployer", f"{plan.deployer} has {Web3.from_wei(balance, 'ether')} ETH; the deployment may cost up to "
                              f"{Web3.from_wei(cost, 'ether')} ETH ({what} at {plan.gas_price_wei} wei)")
    else:
        f.checks.append(f"deployer balance {Web3.from_wei(balance, 'ether')} ETH >= {Web3.from_wei(cost, 'ether')} ETH ({what})")
