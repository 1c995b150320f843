"""Deploy one DealVault per deal, verify it, and record what was deployed.

The same functions serve ``ape run deploy`` / ``ape run verify_deployment`` (thin wrappers in
``scripts/``), the orchestrator (``make demo``) and the fork tests. Everything works over a plain
web3 instance and a :class:`Signer` (an ape account, or an anvil unlocked/impersonated address).

A deal's vault is one address with two bytecodes: the core (``DealVault``, the legs) and its
extension (``DealVaultExtension``, every other function, run by DELEGATECALL), which the core's
constructor creates: one creation transaction. Its views live in the lens (``DealVaultLens``,
stateless, one per chain for any number of vaults): the pipeline deploys one unless the network
config names one (``venues.lens``), whose code it then checks against the build.

Pipeline (:func:`deploy_vault`):

1. **Preflight** (:func:`preflight`), all before any transaction: chain id and genesis hash match
   the network config; every configured address has code; token symbols and decimals; the
   ETH/USD feed answers, is fresh and positive; the pool lists WETH9/WETH10 as collateral and the
   deal's stablecoin as borrowable; roles distinct and non-zero; a configured lens runs the
   DealVaultLens build; the target chain runs every post-paris opcode the builds use; the
   constructor simulates; the deployer can pay the gas (vault and, if needed, lens).
   Any failure raises :class:`PreflightError` listing every problem with the item it concerns.
2. **Deploy** the lens (unless configured), then the vault with the deal's owner (multisig) set by
   the constructor; wait for confirmations.
3. **Verify** (:func:`verify_deployment`): the core's runtime equals the DealVault build, the
   extension's (``vault.extension()``) the DealVaultExtension build (immutables masked) and the
   lens's the DealVaultLens build; every configured parameter reads back equal (the venues from
   ``vault.setup()``, the roles from ``owner()/operator()/guardian()``, the risk parameters from
   ``lens.params(vault)``), and the core's immutables agree with ``setup()``.
4. **Record** ``<deployments>/<network>/<deal-id>.json`` (format in deployments/README.md; the
   extension's and the lens's addresses and hashes under ``extension`` and ``lens``).

Idempotent: a record for the deal with the same build and constructor arguments is verified on
chain and nothing is sent. A changed build or config is an error unless ``redeploy=True``, which
keeps the old record under ``history``. Other deals' records are never touched.

The builds are compiled from one standard-JSON input built from the sources
(``contracts/DealVault.sol`` and ``contracts/DealVaultLens.sol`` with everything they import,
OpenZeppelin from node_modules) with ape's settings, through the solc bridge
(``tools/solcx/solc-v0.8.28 --standard-json``), and checked byte-for-byte against ape's build: the
input is stored in the record so an auditor (or Blockscout) can re-verify the source of all three.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import os
import posixpath
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

import eth_abi
import yaml
from eth_utils import keccak, to_checksum_address
from web3 import Web3

from dealvault.deploy import opcodes
from dealvault.spec.netconfig import DEPLOYMENTS_DIR, NetworkConfig
from dealvault.paths import NODE_MODULES, ROOT, SOLCX_DIR

__all__ = [
    "DeployError",
    "PreflightError",
    "RecordError",
    "VerificationError",
    "BuildError",
    "Problem",
    "Signer",
    "AnvilSigner",
    "ApeSigner",
    "Build",
    "build_contract",
    "build_family",
    "standard_json_input",
    "DealParams",
    "deal_params",
    "constructor_config",
    "encode_constructor",
    "check_identity",
    "preflight",
    "Plan",
    "deploy_vault",
    "DeployResult",
    "verify_deployment",
    "VerifyReport",
    "read_params",
    "merged_abi",
    "decode_error",
    "companion_builds",
    "record_path",
    "load_record",
    "dry_run",
]

RECORD_FORMAT = "dealvault-deployment/1"
CONTRACT = "DealVault"
EXTENSION = "DealVaultExtension"
LENS = "DealVaultLens"
# One standard-JSON input builds the three (the extension is imported by the core): one compile,
# one cache entry, one input in the record that reproduces every bytecode the deal runs.
FAMILY = (CONTRACT, EXTENSION, LENS)
FAMILY_ROOTS = ("contracts/DealVault.sol", "contracts/DealVaultLens.sol")
SOLC_BRIDGE = SOLCX_DIR / "solc-v0.8.28"
CACHE_DIR = ROOT / ".dealvault" / "solc-cache"
OZ_DIR = NODE_MODULES / "@openzeppelin" / "contracts"


# ---------------------------------------------------------------------------------------------
# errors


class DeployError(RuntimeError):
    """A deployment step refused; ``item`` names what it concerns (a config key, a record...)."""

    def __init__(self, message: str, item: str = ""):
        self.item = item
        super().__init__(f"{item}: {message}" if item else message)


@dataclass(frozen=True)
class Problem:
    item: str
    message: str

    def __str__(self) -> str:
        return f"{self.item}: {self.message}"


class PreflightError(DeployError):
    """One or more preflight checks failed; nothing was sent. ``problems`` lists them all."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__("preflight failed", self.problems[0].item if self.problems else "")

    def __str__(self) -> str:  # keep the list readable (no "item: " prefix on the whole block)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        return f"preflight failed, nothing was sent ({len(self.problems)} problem(s)):\n{lines}"

    def items(self) -> list[str]:
        return [p.item for p in self.problems]


class RecordError(DeployError):
    """A deployment record disagrees with the chain or the current build/config."""


class VerificationError(DeployError):
    """The code or parameters at the deployed address are not what the record/build says."""

    def __init__(self, problems: Sequence[Problem], address: str = ""):
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems), "")
        self.address = address

    def __str__(self) -> str:
        lines = "\n".join(f"  - {p}" for p in self.problems)
        return f"verification of {self.address or 'the deployment'} failed:\n{lines}"


class BuildError(DeployError):
    """The contract could not be built reproducibly."""


# ---------------------------------------------------------------------------------------------
# signers


@runtime_checkable
class Signer(Protocol):
    """Who sends the deployment: ``address`` and ``send(tx) -> tx hash`` (tx is a web3 dict with
    from/data/gas/nonce/chainId and gasPrice or maxFeePerGas/maxPriorityFeePerGas)."""

    address: str

    def send(self, tx: dict[str, Any]) -> bytes: ...


class AnvilSigner:
    """An anvil unlocked account (or, with ``impersonate=True``, any address) via
    ``eth_sendTransaction``: for tests, the local mirror and dry runs on a fork."""

    def __init__(self, w3: Web3, address: str, *, impersonate: bool = False):
        self.w3 = w3
        self.address = to_checksum_address(address)
        self.impersonate = impersonate

    def send(self, tx: dict[str, Any]) -> bytes:
        tx = {**tx, "from": self.address}
        if self.impersonate:
            self.w3.provider.make_request("anvil_impersonateAccount", [self.address])  # type: ignore[arg-type]
        try:
            return bytes(self.w3.eth.send_transaction(tx))  # type: ignore[arg-type]
        finally:
            if self.impersonate:
                self.w3.provider.make_request("anvil_stopImpersonatingAccount", [self.address])  # type: ignore[arg-type]


class ApeSigner:
    """An ape ``AccountAPI`` (keyfile alias, hardware wallet, test account): the transaction is
    signed by ape (which may prompt for the passphrase) and broadcast raw through ``w3``."""

    def __init__(self, account: Any, w3: Web3):
        self.account = account
        self.w3 = w3
        self.address = to_checksum_address(str(account.address))

    def send(self, tx: dict[str, Any]) -> bytes:
        from ape import networks

        ecosystem = networks.provider.network.ecosystem
        kw: dict[str, Any] = {
            "chain_id": tx["chainId"],
            "nonce": tx["nonce"],
            "gas_limit": tx["gas"],
            "data": tx.get("data", b""),
            "value": tx.get("value", 0),
            "sender": self.address,
        }
        if tx.get("to"):
            kw["receiver"] = tx["to"]
        if "gasPrice" in tx:
            kw.update(type=0, gas_price=tx["gasPrice"])
        else:
            kw.update(type=2, max_fee=tx["maxFeePerGas"], max_priority_fee=tx["maxPriorityFeePerGas"])
        txn = ecosystem.create_transaction(**kw)
        signed = self.account.sign_transaction(txn)
        if signed is None or not getattr(signed, "signature", None):
            raise DeployError("the account did not sign the transaction (declined?)", "account")
        return bytes(self.w3.eth.send_raw_transaction(signed.serialize_transaction()))


# ---------------------------------------------------------------------------------------------
# the build: standard-JSON input from the sources, compiled by the bridge, checked against ape


def _hexstr(b: bytes) -> str:
    return "0x" + b.hex()


def _keccak_hex(b: bytes) -> str:
    return _hexstr(keccak(b))


def _sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _ape_solidity_config() -> dict[str, Any]:
    cfg = yaml.safe_load((ROOT / "ape-config.yaml").read_text()) or {}
    return cfg.get("solidity") or {}


def _oz_version() -> str:
    return json.loads((OZ_DIR / "package.json").read_text())["version"]


def _settings() -> dict[str, Any]:
    """Compiler settings exactly as ape-solidity passes them (so the bytecode is identical)."""
    sol = _ape_solidity_config()
    remaps = []
    for r in sol.get("import_remapping") or []:
        prefix, target = r.split("=", 1)
        # ape copies npm dependencies to contracts/.cache/<name>/<version> and remaps there
        remaps.append(f"{prefix}=contracts/.cache/{target}")
    settings: dict[str, Any] = {
        "evmVersion": sol.get("evm_version", "paris"),
        "optimizer": {"enabled": bool(sol.get("optimize", True)), "runs": int(sol.get("optimization_runs", 200))},
    }
    if remaps:
        settings["remappings"] = remaps
    return settings


_IMPORT = re.compile(r"\bimport\b[^;\"']*[\"']([^\"']+)[\"'][^;]*;", re.S)
_COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)


def _remaps(settings: Mapping[str, Any]) -> list[tuple[str, str]]:
    out = []
    for r in settings.get("remappings", []):
        prefix, target = r.split("=", 1)
        out.append((prefix.rstrip("/") + "/", target.rstrip("/") + "/"))
    return out


def _read_source(key: str, remaps: list[tuple[str, str]]) -> str:
    for _prefix, target in remaps:
        if key.startswith(target) and target.startswith("contracts/.cache/openzeppelin/"):
            return (OZ_DIR / key[len(target):]).read_text()
    return (ROOT / key).read_text()


def _resolve(importer: str, path: str, remaps: list[tuple[str, str]]) -> str:
    if path.startswith("./") or path.startswith("../"):
        return posixpath.normpath(posixpath.join(posixpath.dirname(importer), path))
    for prefix, target in remaps:
        if path.startswith(prefix):
            return target + path[len(prefix):]
    return path


def standard_json_input(source_key: str | Sequence[str], settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The solc standard-JSON input for ``source_key`` (e.g. ``contracts/DealVault.sol``, or several
    root files): the files and everything they import (ours from ``contracts/``, OpenZeppelin from
    node_modules under ape's source names), with ape's settings. Feed it to ``solc --standard-json``
    to reproduce the build byte for byte (metadata hash included: a contract's metadata names only
    the sources it uses, so extra roots do not change its bytecode)."""
    settings = dict(settings or _settings())
    remaps = _remaps(settings)
    sources: dict[str, str] = {}
    todo = [source_key] if isinstance(source_key, str) else list(source_key)
    while todo:
        key = todo.pop()
        if key in sources:
            continue
        try:
            text = _read_source(key, remaps)
        except OSError as exc:
            raise BuildError(f"cannot read source {key}: {exc.strerror or exc}", "build") from exc
        sources[key] = text
        for m in _IMPORT.finditer(_COMMENTS.sub("", text)):
            todo.append(_resolve(key, m.group(1), remaps))
    return {
        "language": "Solidity",
        "sources": {k: {"content": sources[k]} for k in sorted(sources)},
        "settings": {
            **settings,
            "outputSelection": {"*": {"*": ["abi", "metadata", "evm.bytecode.object", "evm.deployedBytecode.object",
                                            "evm.deployedBytecode.immutableReferences"], "": ["ast"]}},
        },
    }


def _run_solc(std_input: dict[str, Any]) -> dict[str, Any]:
    """Compile with the bridge (cached by input hash under .dealvault/solc-cache)."""
    digest = _sha256_json(std_input)
    cached = CACHE_DIR / f"{digest}.json"
    if cached.exists():
        try:
            return json.loads(cached.read_text())
        except ValueError:
            pass
    if not SOLC_BRIDGE.exists():
        raise BuildError(f"solc bridge not found at {SOLC_BRIDGE}", "build")
    proc = subprocess.run([str(SOLC_BRIDGE), "--standard-json"], input=json.dumps(std_input).encode(),
                          capture_output=True, cwd=ROOT, timeout=600)
    if proc.returncode != 0:
        raise BuildError(f"solc bridge failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[:2000]}", "build")
    out = json.loads(proc.stdout)
    errors = [e.get("formattedMessage", e.get("message")) for e in out.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise BuildError("compile errors:\n" + "\n".join(errors), "build")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".tmp")
    tmp.write_text(json.dumps(out))
    tmp.replace(cached)
    return out


@functools.lru_cache(maxsize=None)
def _solc_version() -> str:
    proc = subprocess.run([str(SOLC_BRIDGE), "--version"], capture_output=True, text=True, timeout=60)
    m = re.search(r"Version:\s*(\S+)", proc.stdout)
    v = m.group(1) if m else proc.stdout.strip()
    # solcjs says "0.8.28+commit.7893614a.Emscripten.clang": the same compiler as the native
    # "0.8.28+commit.7893614a" (the name Blockscout and solc-bin use)
    return re.sub(r"\.Emscripten\.clang$", "", v)


@dataclass(frozen=True)
class Build:
    """A reproducible build of one contract."""

    contract: str
    source_key: str
    compiler_version: str
    settings: dict[str, Any]              # without outputSelection
    standard_json_input: dict[str, Any]
    abi: list[dict[str, Any]]
    creation: bytes
    runtime: bytes                        # immutables are zero here, as compiled
    immutable_references: dict[str, list[dict[str, int]]]
    metadata: str
    immutable_names: dict[str, str] = field(default_factory=dict)   # AST id -> variable name

    @property
    def source_hash(self) -> str:
        """sha256 of the canonical JSON of the input's sources (what the auditor's input hashes to)."""
        return _sha256_json(self.standard_json_input["sources"])

    @property
    def creation_hash(self) -> str:
        return _keccak_hex(self.creation)

    @property
    def runtime_hash(self) -> str:
        return _keccak_hex(self.runtime)

    def mask(self, code: bytes) -> bytes:
        """``code`` with the immutable slots zeroed (to compare deployed code with the build)."""
        b = bytearray(code)
        for refs in self.immutable_references.values():
            for r in refs:
                s, n = r["start"], r["length"]
                if s + n <= len(b):
                    b[s:s + n] = bytes(n)
        return bytes(b)

    def immutables(self, code: bytes) -> dict[str, str]:
        """Immutable name (or AST id) -> the 32-byte value written in the deployed code (hex)."""
        return {self.immutable_names.get(k, k): _hexstr(code[refs[0]["start"]:refs[0]["start"] + refs[0]["length"]])
                for k, refs in self.immutable_references.items() if refs}


def _immutable_names(sources: Mapping[str, Any]) -> dict[str, str]:
    """AST id -> name of every immutable state variable in the compiler output's ASTs."""
    names: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("nodeType") == "VariableDeclaration" and node.get("mutability") == "immutable":
                names[str(node["id"])] = node["name"]
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for src in sources.values():
        walk(src.get("ast"))
    return names


def _find_source_key(contract: str) -> str:
    hits = [p for p in (ROOT / "contracts").rglob(f"{contract}.sol") if ".cache" not in p.parts]
    if not hits:
        raise BuildError(f"no contracts/**/{contract}.sol", "build")
    return hits[0].relative_to(ROOT).as_posix()


def build_contract(contract: str = CONTRACT, *, source_key: str | None = None, settings: Mapping[str, Any] | None = None,
                   check_ape: bool = True) -> Build:
    """Build ``contract`` from its standard-JSON input through the bridge.

    DealVault, DealVaultExtension and DealVaultLens share one input (``FAMILY_ROOTS``): building
    any of them compiles (and caches) all three. With ``check_ape`` (default) the runtime and
    creation code must equal ape's build (``.build/__local__.json``, recompiled once if it differs):
    the record's standard-JSON input then reproduces exactly what the project compiles."""
    key = source_key or _find_source_key(contract)
    roots: tuple[str, ...] = FAMILY_ROOTS if (source_key is None and contract in FAMILY) else (key,)
    try:
        return _build_once(contract, key, roots, settings, check_ape)
    except _Diverged:
        # the sources may have changed between our compile and ape's (someone is editing them):
        # build both again once from what is on disk now
        _BUILDS.clear()
        return _build_once(contract, key, roots, settings, check_ape)


def build_family(*, settings: Mapping[str, Any] | None = None, check_ape: bool = True) -> dict[str, Build]:
    """The three builds a deal deploys and verifies: {"DealVault", "DealVaultExtension", "DealVaultLens"}."""
    return {c: build_contract(c, settings=settings, check_ape=check_ape) for c in FAMILY}


class _Diverged(BuildError):
    pass


# builds of this process, by (contract, input digest, check_ape): the input is re-read from disk
# every time, so an edited source is a new key
_BUILDS: dict[tuple[str, str, bool], Build] = {}


def _build_once(contract: str, key: str, roots: Sequence[str], settings: Mapping[str, Any] | None, check_ape: bool) -> Build:
    return _build_from_input(contract, key, standard_json_input(roots, settings), check_ape)


def _build_from_input(contract: str, key: str, std: dict[str, Any], check_ape: bool) -> Build:
    memo = (contract, _sha256_json(std), check_ape)
    if memo in _BUILDS:
        return _BUILDS[memo]
    out = _run_solc(std)
    try:
        c = out["contracts"][key][contract]
    except KeyError:
        raise BuildError(f"{contract} not in the compiler output for {key}", "build") from None
    build = Build(
        contract=contract,
        source_key=key,
        compiler_version=_solc_version(),
        settings={k: v for k, v in std["settings"].items() if k != "outputSelection"},
        standard_json_input=std,
        abi=c["abi"],
        creation=bytes.fromhex(c["evm"]["bytecode"]["object"]),
        runtime=bytes.fromhex(c["evm"]["deployedBytecode"]["object"]),
        immutable_references=c["evm"]["deployedBytecode"].get("immutableReferences") or {},
        metadata=c.get("metadata", ""),
        immutable_names=_immutable_names(out.get("sources", {})),
    )
    if check_ape:
        _check_against_ape(build)
    _BUILDS[memo] = build
    return build


def _check_against_ape(build: Build) -> None:
    from dealvault import artifacts

    def ape_code() -> tuple[bytes, bytes]:
        a = artifacts.own(build.contract)
        return bytes.fromhex(a.bytecode.removeprefix("0x")), bytes.fromhex(a.deployed_bytecode.removeprefix("0x"))

    creation, runtime = ape_code()
    if (creation, runtime) != (build.creation, build.runtime):
        artifacts.refresh_own()
        artifacts._compile_own(force=True)  # noqa: SLF001 - the ape build may be older than the sources
        artifacts.refresh_own()
        creation, runtime = ape_code()
    if runtime != build.runtime or creation != build.creation:
        raise _Diverged(
            f"the standard-JSON build of {build.contract} differs from ape's build "
            f"(runtime {_keccak_hex(runtime)} vs {build.runtime_hash}); the settings or sources diverged",
            "build",
        )


# ---------------------------------------------------------------------------------------------
# the deal's parameters (from its spec: one source of truth)


@dataclass(frozen=True)
class DealParams:
    deal_id: str
    roles: dict[str, str]          # owner/operator/guardian -> checksum address
    risk: dict[str, Any]           # IDealVault.RiskParams by Solidity field name
    stablecoin: str                # the deal's borrow stablecoin key ("cusdt" | "cusdc")
    confirmations: int = 1
    gas: Any = None                # spec.GasPolicy or None (auto)
    spec_path: str | None = None
    spec_sha256: str | None = None


def deal_params(spec: Any, resolver: Callable[[str], str] | None = None, path: str | Path | None = None) -> DealParams:
    """Extract what a deployment needs from a :class:`dealvault.spec.DealSpec`.

    ``resolver(alias) -> address`` resolves ``alias:NAME`` roles (local chains)."""

    def no_alias(alias: str) -> str:
        raise DeployError(f"role is the ape account alias {alias!r} and no resolver was given", "roles")

    try:
        roles = spec.roles.resolve(resolver or no_alias)
    except ValueError as exc:  # SpecError
        raise DeployError(str(exc), getattr(exc, "key", "roles")) from exc
    sha = hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else None
    return DealParams(
        deal_id=spec.deal_id,
        roles=roles,
        risk=spec.vault.risk_params_dict(),
        stablecoin=str(spec.stablecoin).lower(),
        confirmations=int(getattr(spec, "confirmations", 1) or 1),
        gas=getattr(spec, "gas", None),
        spec_path=str(path) if path else None,
        spec_sha256=sha,
    )


# ---------------------------------------------------------------------------------------------
# constructor arguments


def constructor_config(net: NetworkConfig, deal: DealParams, pool: str) -> dict[str, Any]:
    """IDealVault.Config by Solidity field name."""
    t = net.tokens
    return {
        "weth9": t["weth9"].address,
        "weth10": t["weth10"].address,
        "cusdt": t["cusdt"].address,
        "cusdc": t["cusdc"].address,
        "usdtz": t["usdtz"].address,
        "pool": pool,
        "router": net.venues.router,
        "desk": net.venues.desk,
        "ethUsdFeed": net.feed.address,
        "owner": deal.roles["owner"],
        "operator": deal.roles["operator"],
        "guardian": deal.roles["guardian"],
        "risk": dict(deal.risk),
    }


def _abi_type(p: Mapping[str, Any]) -> str:
    t = p["type"]
    if t.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in p["components"]) + ")" + t[len("tuple"):]
    return t


def _to_abi(p: Mapping[str, Any], value: Any, where: str) -> Any:
    if p["type"] == "tuple":
        if not isinstance(value, Mapping):
            raise BuildError(f"expected a struct for {where}", "constructor")
        missing = [c["name"] for c in p["components"] if c["name"] not in value]
        if missing:
            raise BuildError(f"no value for {', '.join(f'{where}.{m}' for m in missing)} (the contract's Config changed?)", "constructor")
        return tuple(_to_abi(c, value[c["name"]], f"{where}.{c['name']}") for c in p["components"])
    if p["type"] == "address":
        return to_checksum_address(value)
    if p["type"].endswith("]"):
        return [int(v) for v in value]
    return int(value) if p["type"].startswith(("uint", "int")) else value


def _constructor_inputs(abi: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    for item in abi:
        if item.get("type") == "constructor":
            return list(item.get("inputs", []))
    return []


def encode_constructor(build: Build, config: Mapping[str, Any]) -> bytes:
    inputs = _constructor_inputs(build.abi)
    if len(inputs) != 1 or inputs[0]["type"] != "tuple":
        raise BuildError("expected constructor(Config memory cfg)", "constructor")
    value = _to_abi(inputs[0], config, "cfg")
    return eth_abi.encode([_abi_type(inputs[0])], [value])


def decode_constructor(build_abi: Sequence[Mapping[str, Any]], raw: bytes) -> dict[str, Any]:
    inputs = _constructor_inputs(build_abi)
    (value,) = eth_abi.decode([_abi_type(inputs[0])], raw)

    def named(p: Mapping[str, Any], v: Any) -> Any:
        if p["type"] == "tuple":
            return {c["name"]: named(c, x) for c, x in zip(p["components"], v)}
        if p["type"] == "address":
            return to_checksum_address(v)
        if isinstance(v, (list, tuple)):
            return [int(x) for x in v]
        return v

    return named(inputs[0], value)


# ---------------------------------------------------------------------------------------------
# preflight

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
    {"name": "getReservesList", "type": "function", "stateMutability": "view", "inputs": [], "outputs": [{"type": "address[]"}]},
]
_PROVIDER = [{"name": "getPool", "type": "function", "stateMutability": "view", "inputs": [], "outputs": [{"type": "address"}]}]
_ROUTER = [{"name": "WETH", "type": "function", "stateMutability": "view", "inputs": [], "outputs": [{"type": "address"}]}]

# Aave V3 ReserveConfigurationMap bits
_LTV_MASK = 0xFFFF
_ACTIVE_BIT, _FROZEN_BIT, _BORROWING_BIT, _PAUSED_BIT = 56, 57, 58, 60


def _genesis(w3: Web3) -> str:
    return "0x" + bytes(w3.eth.get_block(0)["hash"]).hex()


def check_identity(w3: Web3, net: NetworkConfig, accept_genesis: str | None = None) -> dict[str, Any]:
    """Chain id and genesis hash against the config; raises PreflightError naming the item.

    A config whose ``genesis_hash`` is null (the Chain 138 placeholder) is refused for a
    non-ephemeral network unless ``accept_genesis`` equals the hash the node reports; the error
    says which hash was seen."""
    problems: list[Problem] = []
    chain_id = int(w3.eth.chain_id)
    genesis = _genesis(w3)
    where = f" ({net.path})" if net.path else ""
    if chain_id != net.chain_id:
        problems.append(Problem("network.chain_id", f"the node reports chain id {chain_id}, the config{where} expects {net.chain_id}"))
    accepted = None
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
            accepted = genesis
    if problems:
        raise PreflightError(problems)
    return {"chain_id": chain_id, "genesis_hash": genesis, "genesis_accepted_by_flag": accepted is not None}


@dataclass
class Plan:
    """What preflight established and what the deployment will send."""

    deal_id: str
    network: str
    identity: dict[str, Any]
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
            "chain_id": self.identity["chain_id"],
            "genesis_hash": self.identity["genesis_hash"],
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


def _call(w3: Web3, address: str, abi: list, fn: str, *args: Any) -> Any:
    return getattr(w3.eth.contract(address=address, abi=abi).functions, fn)(*args).call()


def _gas_fields(w3: Web3, gas: Any) -> dict[str, int]:
    if gas is not None and not getattr(gas, "is_auto", True):
        if getattr(gas, "legacy", False):
            return {"gasPrice": int(gas.max_fee_wei)}
        return {"maxFeePerGas": int(gas.max_fee_wei), "maxPriorityFeePerGas": int(gas.priority_fee_wei)}
    return {"gasPrice": int(w3.eth.gas_price)}


# enums of IDealVaultTypes, by name (for revert arguments typed `enum IDealVaultTypes.X`)
_ENUMS = {
    "Phase": ("FUNDED", "SPLIT", "WORKING", "POSITIONED", "MONETIZING", "HOLDING", "CLOSED"),
    "Param": ("MaxLtvBps", "MaxExposureBps", "MaxDeskFeeBps", "OracleMaxAge", "MinDiscountBps", "MaxSlippageBps",
              "SellFloorPrice", "EthFloorPrice", "MaxOperatorLossBps", "TwapWindow", "LoosenDelay"),
    "OracleStatus": ("Fresh", "Stale", "Invalid", "Unread"),
    "Leg": ("Split", "Supply", "Borrow", "Buy", "Redeem", "Sell", "Repay", "OwnerRepay", "AddCollateral",
            "WithdrawCollateral", "Deleverage", "Close", "Hold", "Resume", "Fund"),
}


def _revert_data(exc: Exception) -> str | None:
    data = None
    for a in getattr(exc, "args", ()):
        if isinstance(a, str) and a.startswith("0x") and len(a) >= 10:
            data = a
        elif isinstance(a, Mapping) and isinstance(a.get("data"), str):
            data = a["data"]
    data = data or getattr(exc, "data", None)
    if isinstance(data, (bytes, bytearray)):
        data = _hexstr(bytes(data))
    return data if isinstance(data, str) and data.startswith("0x") and len(data) >= 10 else None


def decode_error(data: str, abi: Sequence[Mapping[str, Any]]) -> str | None:
    """``Name(arg=value, ...)`` for revert data of a custom error declared in ``abi`` (enum
    arguments by name, e.g. ``param=TwapWindow(9)``), ``Error(reason)``, or None."""
    if not isinstance(data, str) or not data.startswith("0x") or len(data) < 10:
        return None
    sel = bytes.fromhex(data[2:10])
    if data[:10] == "0x08c379a0":
        try:
            return "Error(" + eth_abi.decode(["string"], bytes.fromhex(data[10:]))[0] + ")"
        except Exception:  # noqa: BLE001
            return None
    for item in abi:
        if item.get("type") != "error":
            continue
        types = [_abi_type(i) for i in item.get("inputs", [])]
        if keccak(text=f"{item['name']}({','.join(types)})")[:4] != sel:
            continue
        try:
            vals = eth_abi.decode(types, bytes.fromhex(data[10:]))
        except Exception:  # noqa: BLE001
            vals = ()
        shown = []
        for i, v in zip(item.get("inputs", []), vals):
            enum = str(i.get("internalType", "")).removeprefix("enum ").split(".")[-1]
            names = _ENUMS.get(enum) if str(i.get("internalType", "")).startswith("enum ") else None
            if names is not None and isinstance(v, int) and 0 <= v < len(names):
                v = f"{names[v]}({v})"
            elif isinstance(v, (bytes, bytearray)):
                v = _hexstr(bytes(v))
            shown.append(f"{i['name']}={v}")
        return f"{item['name']}({', '.join(shown)})"
    return None


def _explain_revert(exc: Exception, abi: Sequence[Mapping[str, Any]]) -> str:
    """A revert from eth_call / estimate_gas in words: decode a custom error of ``abi`` (every
    error the ABI declares, e.g. IDealVault's LossBudgetExceeded, PriceAboveTwap...) if we can."""
    data = _revert_data(exc)
    if data is not None:
        text = decode_error(data, abi)
        if text is not None:
            return text
    return str(exc)


def companion_builds(build: Build) -> tuple[Build, Build]:
    """(DealVaultExtension, DealVaultLens) of the same compile as ``build`` (the core): its
    standard-JSON input holds all three (FAMILY_ROOTS), so the extension's code is the one in the
    core's creation code even if the sources on disk changed since. A core built from another
    input gets them built from the sources with its settings."""
    std = build.standard_json_input
    keys = {EXTENSION: _find_source_key(EXTENSION), LENS: _find_source_key(LENS)}
    if std and all(k in std.get("sources", {}) for k in keys.values()):
        # the core's build was checked against ape's when it was made; these come from that compile
        return _build_from_input(EXTENSION, keys[EXTENSION], std, False), _build_from_input(LENS, keys[LENS], std, False)
    same = build.settings == {k: v for k, v in _settings().items()}
    settings = None if same else build.settings
    return (build_contract(EXTENSION, settings=settings, check_ape=same),
            build_contract(LENS, settings=settings, check_ape=same))


def _code_matches(code: bytes, build: Build) -> str | None:
    """None when ``code`` is ``build``'s runtime (immutables masked), else why not."""
    if not build.runtime:
        return None
    if len(code) != len(build.runtime):
        return f"{len(code)} bytes, the {build.contract} build has {len(build.runtime)}"
    masked = build.mask(code)
    if masked != build.runtime:
        first = next(i for i, (a, b) in enumerate(zip(masked, build.runtime)) if a != b)
        return f"differs from the {build.contract} build at byte {first} (hash {_keccak_hex(masked)} vs {build.runtime_hash})"
    return None


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
    """Every check before a deployment (see module doc). Sends nothing; raises PreflightError
    listing every problem (identity problems stop the checks at once)."""
    deployer = to_checksum_address(deployer)
    identity = check_identity(w3, net, accept_genesis)
    if extension_build is None or lens_build is None:
        ext_b, lens_b = companion_builds(build)
        extension_build, lens_build = extension_build or ext_b, lens_build or lens_b
    checks = [f"chain id {identity['chain_id']}", f"genesis {identity['genesis_hash']}"]
    problems: list[Problem] = []

    missing = net.missing_for_vault()
    for key in missing:
        problems.append(Problem(key, f"is null in the network config{f' ({net.path})' if net.path else ''}; a vault needs it"))

    # code at every configured address
    for key, addr in net.address_items():
        if addr is not None and not w3.eth.get_code(addr):
            problems.append(Problem(key, f"no contract at {addr}"))
    has_code = {addr for _, addr in net.address_items() if addr is not None and not any(p.message == f"no contract at {addr}" for p in problems)}

    # tokens
    for k, t in net.tokens.items():
        if t.address is None or t.address not in has_code:
            continue
        try:
            sym = _call(w3, t.address, _ERC20, "symbol")
            dec = int(_call(w3, t.address, _ERC20, "decimals"))
        except Exception as exc:  # noqa: BLE001
            problems.append(Problem(f"tokens.{k}", f"{t.address} does not answer symbol()/decimals(): {exc}"))
            continue
        if sym != t.symbol:
            problems.append(Problem(f"tokens.{k}.symbol", f"{t.address} says symbol {sym!r}, the config expects {t.symbol!r}"))
        if dec != t.decimals:
            problems.append(Problem(f"tokens.{k}.decimals", f"{t.address} says decimals {dec}, the config expects {t.decimals}"))
        else:
            checks.append(f"{t.symbol} at {t.address}: {dec} decimals")

    # feed
    f = net.feed
    if f.address is not None and f.address in has_code:
        max_age = min(f.max_age, int(deal.risk.get("oracleMaxAge", f.max_age)))
        try:
            dec = int(_call(w3, f.address, _FEED, "decimals"))
            _rid, answer, _s, updated_at, _a = _call(w3, f.address, _FEED, "latestRoundData")
        except Exception as exc:  # noqa: BLE001
            problems.append(Problem("feeds.eth_usd", f"{f.address} does not answer decimals()/latestRoundData(): {exc}"))
        else:
            now = int(w3.eth.get_block("latest")["timestamp"])
            if dec != f.decimals:
                problems.append(Problem("feeds.eth_usd.decimals", f"{f.address} says decimals {dec}, the config expects {f.decimals}"))
            if answer <= 0:
                problems.append(Problem("feeds.eth_usd", f"{f.address} answers {answer}: not a positive price"))
            age = now - int(updated_at)
            if age > max_age:
                problems.append(Problem("feeds.eth_usd.max_age", f"{f.address} last updated {age} s ago (at {updated_at}); allowed at most {max_age} s"))
            if answer > 0 and age <= max_age:
                checks.append(f"ETH/USD feed: {answer / 10**dec:.2f}, {age} s old")

    # pool (or its addresses provider)
    v = net.venues
    pool = v.pool
    if v.pool_addresses_provider is not None and v.pool_addresses_provider in has_code:
        try:
            via = to_checksum_address(_call(w3, v.pool_addresses_provider, _PROVIDER, "getPool"))
        except Exception as exc:  # noqa: BLE001
            problems.append(Problem("venues.pool_addresses_provider", f"{v.pool_addresses_provider} does not answer getPool(): {exc}"))
        else:
            if pool is not None and via != pool:
                problems.append(Problem("venues.pool", f"{pool} differs from the addresses provider's getPool() {via}"))
            pool = pool or via
            if not w3.eth.get_code(via):
                problems.append(Problem("venues.pool_addresses_provider", f"getPool() is {via}, which has no code"))
    if pool is not None and w3.eth.get_code(pool):
        def conf(asset: str) -> int | None:
            try:
                return int(_call(w3, pool, _POOL, "getConfiguration", asset)[0])
            except Exception:  # noqa: BLE001
                return None

        for k in ("weth9", "weth10"):
            addr = net.tokens[k].address
            if addr is None:
                continue
            c = conf(addr)
            if c is None or not (c >> _ACTIVE_BIT) & 1:
                problems.append(Problem(f"venues.pool", f"the pool {pool} does not list {net.tokens[k].symbol} ({addr}) as an active reserve"))
            elif (c & _LTV_MASK) == 0 or (c >> _FROZEN_BIT) & 1 or (c >> _PAUSED_BIT) & 1:
                problems.append(Problem(f"venues.pool", f"{net.tokens[k].symbol} is not usable as collateral in the pool {pool} (ltv {c & _LTV_MASK} bps, frozen {(c >> _FROZEN_BIT) & 1}, paused {(c >> _PAUSED_BIT) & 1})"))
            else:
                checks.append(f"pool: {net.tokens[k].symbol} collateral, LTV {c & _LTV_MASK} bps")
        for k in ("cusdt", "cusdc"):
            addr = net.tokens[k].address
            if addr is None:
                continue
            c = conf(addr)
            sym = net.tokens[k].symbol
            if c is None or not (c >> _ACTIVE_BIT) & 1:
                problems.append(Problem("venues.pool", f"the pool {pool} does not list {sym} ({addr}) as an active reserve"))
            elif k == deal.stablecoin and (not (c >> _BORROWING_BIT) & 1 or (c >> _FROZEN_BIT) & 1 or (c >> _PAUSED_BIT) & 1):
                problems.append(Problem("venues.pool", f"{sym} (the deal's stablecoin) is not borrowable in the pool {pool} (borrowing {(c >> _BORROWING_BIT) & 1}, frozen {(c >> _FROZEN_BIT) & 1}, paused {(c >> _PAUSED_BIT) & 1})"))
            else:
                checks.append(f"pool: {sym} listed" + (", borrowable" if k == deal.stablecoin else ""))

    # router
    if v.router is not None and v.router in has_code and net.tokens["weth9"].address:
        try:
            rw = to_checksum_address(_call(w3, v.router, _ROUTER, "WETH"))
        except Exception as exc:  # noqa: BLE001
            problems.append(Problem("venues.router", f"{v.router} does not answer WETH(): {exc}"))
        else:
            if rw != net.tokens["weth9"].address:
                problems.append(Problem("venues.router", f"the router's WETH() is {rw}, not WETH9 {net.tokens['weth9'].address}"))

    # the lens: the configured one must run the DealVaultLens build; else one is deployed
    if v.lens is not None and v.lens in has_code:
        why = _code_matches(bytes(w3.eth.get_code(v.lens)), lens_build)
        if why:
            problems.append(Problem("venues.lens", f"the code at {v.lens} is not the DealVaultLens build: {why}"))
        else:
            checks.append(f"lens: {v.lens} runs the DealVaultLens build ({lens_build.runtime_hash})")
    elif v.lens is None:
        checks.append("lens: none configured (venues.lens): one is deployed and recorded with the deal")

    # roles
    zero = "0x" + "0" * 40
    seen: dict[str, str] = {}
    for role in ("owner", "operator", "guardian"):
        a = deal.roles.get(role)
        if not a or a.lower() == zero:
            problems.append(Problem(f"roles.{role}", "is missing or the zero address"))
            continue
        if a.lower() in seen:
            problems.append(Problem(f"roles.{role}", f"{a} is also roles.{seen[a.lower()]}; owner, operator and guardian must be distinct"))
        seen[a.lower()] = role
    if deployer.lower() in seen:
        checks.append(f"note: the deployer {deployer} is also the {seen[deployer.lower()]} (the constructor grants roles, not the deployer)")

    # opcodes: the core (its creation code carries the extension's), the extension, the lens to deploy
    op_report: dict[str, Any] = {"used": {}, "probed": {}}
    if check_opcodes:
        parts = [(build, f"the {build.contract} build"), (extension_build, f"the {extension_build.contract} build")]
        if v.lens is None:
            parts.append((lens_build, f"the {lens_build.contract} build"))
        refused = []
        for b, what in parts:
            try:
                rep = opcodes.check_build(w3, b.creation, b.runtime, what=what)
            except opcodes.UnsupportedOpcode as exc:
                refused.append(str(exc))
                continue
            op_report["used"].update({f"{b.contract} {part}": hits for part, hits in rep["used"].items()})
            op_report["probed"].update(rep["probed"])
        if refused:
            problems.append(Problem("build.evm_version", " | ".join(refused)))
        else:
            checks.append("opcodes: " + (", ".join(sorted({n for part in op_report['used'].values() for n in part})) or "no post-paris opcodes"))

    config = constructor_config(net, deal, pool) if not missing else {}
    raw_args = b""
    gas_est = lens_gas = gas_price = cost = 0
    balance = int(w3.eth.get_balance(deployer))
    tx: dict[str, Any] = {}
    lens_tx: dict[str, Any] | None = None
    if not problems:
        raw_args = encode_constructor(build, config)
        fee = _gas_fields(w3, deal.gas)
        gas_price = fee.get("gasPrice", fee.get("maxFeePerGas", 0))
        tx = {"from": deployer, "data": _hexstr(build.creation + raw_args), "value": 0, "chainId": identity["chain_id"]}
        try:
            gas_est = int(w3.eth.estimate_gas(tx))  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - a constructor revert: say which check
            problems.append(Problem("constructor", f"the deployment would revert: {_explain_revert(exc, build.abi)}"))
        if v.lens is None:
            lens_tx = {"from": deployer, "data": _hexstr(lens_build.creation), "value": 0, "chainId": identity["chain_id"]}
            try:
                lens_gas = int(w3.eth.estimate_gas(lens_tx))  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001
                problems.append(Problem("lens", f"the lens deployment would revert: {exc}"))
        if not problems:
            gas_limit = gas_est * 12 // 10
            lens_limit = lens_gas * 12 // 10
            cost = (gas_limit + lens_limit) * gas_price
            tx.update(fee, gas=gas_limit)
            if lens_tx is not None:
                lens_tx.update(fee, gas=lens_limit)
            what = f"{gas_limit} gas" + (f" + the lens {lens_limit} gas" if lens_tx is not None else "")
            if balance < cost:
                problems.append(Problem("deployer", f"{deployer} has {Web3.from_wei(balance, 'ether')} ETH; the deployment may cost up to {Web3.from_wei(cost, 'ether')} ETH ({what} at {gas_price} wei)"))
            else:
                checks.append(f"deployer balance {Web3.from_wei(balance, 'ether')} ETH >= {Web3.from_wei(cost, 'ether')} ETH ({what})")
    if problems:
        raise PreflightError(problems)
    return Plan(deal_id=deal.deal_id, network=net.name, identity=identity, deployer=deployer, pool=pool or "",
                config=config, constructor_args=raw_args, tx=tx, gas_estimate=gas_est, gas_price_wei=gas_price,
                cost_wei=cost, deployer_balance_wei=balance, opcodes=op_report, checks=checks, lens=v.lens,
                lens_tx=lens_tx, lens_gas_estimate=lens_gas)


# ---------------------------------------------------------------------------------------------
# verification

# Config fields read back from the vault: the venues from setup(), the roles from their getters.
_ADDRESS_GETTERS = ("weth9", "weth10", "cusdt", "cusdc", "usdtz", "pool", "router", "desk", "ethUsdFeed")
_ROLE_GETTERS = ("owner", "operator", "guardian")
# The risk parameters, as lens.params(vault) names them (= IDealVault.RiskParams field names).
_RISK_FIELDS = ("maxLtvBps", "maxExposureBps", "coreBps", "workingBps", "opportunisticBps", "rungs", "maxDeskFeeBps",
                "oracleMaxAge", "minDiscountBps", "maxSlippageBps", "sellFloorPrice", "ethFloorPrice",
                "maxOperatorLossBps", "twapWindow", "loosenDelay", "minTranche")
# Owner-settable parameters may differ from the constructor's after deployment only by being
# tighter (a loosening goes at most back to the constructor's value): direction of "tighter".
# minTranche is fixed at deployment (higher is tighter).
_TIGHTER = {"maxLtvBps": -1, "maxExposureBps": -1, "maxDeskFeeBps": -1, "oracleMaxAge": -1, "maxSlippageBps": -1,
            "maxOperatorLossBps": -1, "minDiscountBps": +1, "sellFloorPrice": +1, "ethFloorPrice": +1,
            "twapWindow": +1, "loosenDelay": +1, "minTranche": +1}
# The core's (and the extension's) immutables -> where setup() says the same thing.
_IMMUTABLE_SETUP = {
    **{n: ("venues", n) for n in _ADDRESS_GETTERS},
    **{n: ("venues", n) for n in ("aWeth9", "aWeth10", "debtCusdt", "debtCusdc")},
    "pairT": ("venues", "pairCusdt"), "pairC": ("venues", "pairCusdc"),
    "usdtzIs0T": ("usdtzIs0T",), "usdtzIs0C": ("usdtzIs0C",),
    "coreBps": ("coreBps",), "workingBps": ("workingBps",), "opportunisticBps": ("opportunisticBps",),
    "rung0": ("rungs", 0), "rung1": ("rungs", 1), "rung2": ("rungs", 2), "minTranche": ("minTranche",),
}


@dataclass
class VerifyReport:
    address: str
    code_hash: str                 # keccak of the deployed runtime with immutables masked
    params: dict[str, Any]         # name -> value read back
    notes: list[str] = field(default_factory=list)
    immutables: dict[str, str] = field(default_factory=dict)
    extension: str = ""            # vault.extension()
    extension_code_hash: str = ""  # keccak of its runtime, immutables masked
    extension_immutables: dict[str, str] = field(default_factory=dict)
    lens: str = ""
    lens_code_hash: str = ""


def merged_abi(*abis: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The union of ABIs (first one wins for a repeated name and type): the core's and the
    extension's together are the vault's whole ABI (IDealVault plus what the builds add)."""
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, str, str]] = set()
    for abi in abis:
        for item in abi:
            key = (str(item.get("type")), str(item.get("name", "")), ",".join(_abi_type(i) for i in item.get("inputs", [])))
            if item.get("type") in ("constructor", "fallback", "receive") or key in seen:
                continue
            seen.add(key)
            out.append(dict(item))
    return out


def _outputs_named(abi: Sequence[Mapping[str, Any]], fn: str, value: Any) -> Any:
    """A struct returned by ``fn`` as nested dicts keyed by the ABI's component names."""
    outs = [x for x in abi if x.get("type") == "function" and x.get("name") == fn][0]["outputs"]

    def named(p: Mapping[str, Any], v: Any) -> Any:
        if p["type"] == "tuple":
            if isinstance(v, Mapping):
                v = [v[c["name"]] for c in p["components"]]
            return {c["name"]: named(c, x) for c, x in zip(p["components"], v)}
        if p["type"] == "address":
            return to_checksum_address(v)
        if p["type"].endswith("]"):
            return [named({**p, "type": p["type"][:p["type"].rindex("[")]}, x) for x in v]
        return v

    return named(outs[0], value)


def read_params(w3: Web3, address: str, abi: Sequence[Mapping[str, Any]], lens: str, lens_abi: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The vault's configured parameters as read on chain, keyed like Config (risk flattened):
    the venues from ``vault.setup()``, the roles from ``owner()/operator()/guardian()``, the risk
    parameters from ``lens.params(vault)``; plus ``setup`` (the whole Setup, by field name)."""
    address = to_checksum_address(address)
    c = w3.eth.contract(address=address, abi=abi)
    setup = _outputs_named(abi, "setup", c.functions.setup().call())
    out: dict[str, Any] = {n: to_checksum_address(setup["venues"][n]) for n in _ADDRESS_GETTERS}
    for n in _ROLE_GETTERS:
        out[n] = to_checksum_address(getattr(c.functions, n)().call())
    lc = w3.eth.contract(address=to_checksum_address(lens), abi=lens_abi)
    p = _outputs_named(lens_abi, "params", lc.functions.params(address).call())
    out["risk"] = {n: ([int(x) for x in p[n]] if n == "rungs" else int(p[n])) for n in _RISK_FIELDS}
    out["setup"] = setup
    return out


def _immutable_value(hex32: str, like: Any) -> Any:
    n = int(hex32, 16)
    if isinstance(like, str):
        return to_checksum_address(n.to_bytes(32, "big")[-20:])
    if isinstance(like, bool):
        return bool(n)
    return n


def _check_immutables(where: str, immutables: Mapping[str, str], setup: Mapping[str, Any]) -> list[Problem]:
    """Each immutable of ``where`` (the core or the extension) equals what setup() reports."""
    out = []
    for name, path in _IMMUTABLE_SETUP.items():
        if name not in immutables:
            continue
        want: Any = setup
        for k in path:
            want = want[k]
        got = _immutable_value(immutables[name], want)
        if str(got).lower() != str(want).lower():
            out.append(Problem(f"{where}.immutables.{name}", f"the deployed code holds {got}, setup() says {want}"))
    return out


def verify_deployment(
    w3: Web3,
    address: str,
    build: Build,
    expected: Mapping[str, Any],
    *,
    lens: str | None = None,
    extension_build: Build | None = None,
    lens_build: Build | None = None,
    expected_code_hash: str | None = None,
    expected_extension_hash: str | None = None,
    expected_lens_hash: str | None = None,
    allow_tightened: bool = False,
) -> VerifyReport:
    """Step 3: the runtime code at ``address`` equals ``build``'s (immutables masked) and, if
    given, ``expected_code_hash`` (a record's); the extension's (``vault.extension()``) equals
    ``extension_build``'s and the ``lens``'s equals ``lens_build``'s (and the records' hashes);
    every parameter of ``expected`` (constructor Config) reads back equal, through the lens; the
    core's and the extension's immutables agree with ``setup()``. ``allow_tightened``
    (re-verification later) accepts caps the owner tightened since, as notes. Raises
    VerificationError listing every difference."""
    address = to_checksum_address(address)
    if extension_build is None or lens_build is None:
        ext_b, lens_b = companion_builds(build)
        extension_build, lens_build = extension_build or ext_b, lens_build or lens_b
    problems: list[Problem] = []
    notes: list[str] = []
    code = bytes(w3.eth.get_code(address))
    if not code:
        raise VerificationError([Problem("address", f"no contract at {address}")], address)
    masked = build.mask(code)
    code_hash = _keccak_hex(masked)
    why = _code_matches(code, build)
    if why:
        problems.append(Problem("runtime_bytecode", f"the code at {address} {why}"))
    if expected_code_hash is not None and code_hash != expected_code_hash.lower():
        problems.append(Problem("runtime_bytecode_hash", f"the record says {expected_code_hash}, the code at {address} hashes to {code_hash} (immutables masked)"))

    vault_abi = merged_abi(build.abi, extension_build.abi)
    vault = w3.eth.contract(address=address, abi=vault_abi)
    ext, ext_hash, ext_imm = "", "", {}
    try:
        ext = to_checksum_address(vault.functions.extension().call())
    except Exception as exc:  # noqa: BLE001
        problems.append(Problem("extension", f"{address} does not answer extension(): {exc}"))
    if ext:
        ext_code = bytes(w3.eth.get_code(ext))
        if not ext_code:
            problems.append(Problem("extension", f"no contract at {ext} (vault.extension())"))
        else:
            ext_hash = _keccak_hex(extension_build.mask(ext_code))
            ext_imm = extension_build.immutables(ext_code)
            why = _code_matches(ext_code, extension_build)
            if why:
                problems.append(Problem("extension.runtime_bytecode", f"the code at {ext} (vault.extension()) {why}"))
            if expected_extension_hash is not None and ext_hash != expected_extension_hash.lower():
                problems.append(Problem("extension.runtime_bytecode_hash", f"the record says {expected_extension_hash}, the code at {ext} hashes to {ext_hash} (immutables masked)"))
    lens_hash = ""
    if lens is None:
        problems.append(Problem("lens", "no lens address: the deployment record or the network config (venues.lens) must name the DealVaultLens"))
    else:
        lens = to_checksum_address(lens)
        lens_code = bytes(w3.eth.get_code(lens))
        if not lens_code:
            problems.append(Problem("lens", f"no contract at {lens}"))
        else:
            lens_hash = _keccak_hex(lens_build.mask(lens_code))
            why = _code_matches(lens_code, lens_build)
            if why:
                problems.append(Problem("lens.runtime_bytecode", f"the code at {lens} {why}"))
            if expected_lens_hash is not None and lens_hash != expected_lens_hash.lower():
                problems.append(Problem("lens.runtime_bytecode_hash", f"the record says {expected_lens_hash}, the code at {lens} hashes to {lens_hash}"))

    params: dict[str, Any] = {}
    if not problems:
        try:
            params = read_params(w3, address, vault_abi, lens, lens_build.abi)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001
            problems.append(Problem("params", f"cannot read the parameters back (vault.setup(), roles, lens.params): {exc}"))
    if params:
        problems += _check_immutables("core", build.immutables(code), params["setup"])
        problems += _check_immutables("extension", ext_imm, params["setup"])
        imm_ext = build.immutables(code).get("extension")
        if imm_ext is not None and _immutable_value(imm_ext, "") != ext:
            problems.append(Problem("core.immutables.extension", f"the deployed code holds {_immutable_value(imm_ext, '')}, extension() says {ext}"))
        for n, want in expected.items():
            if n == "risk":
                continue
            got = params.get(n)
            if got is None:
                problems.append(Problem(f"config.{n}", "cannot be read back"))
            elif str(got).lower() != str(want).lower():
                problems.append(Problem(f"config.{n}", f"reads {got}, configured {want}"))
        for n, want in (expected.get("risk") or {}).items():
            got = params["risk"].get(n)
            if got is None:
                problems.append(Problem(f"risk.{n}", "cannot be read back (not in lens.params)"))
                continue
            want_v = [int(x) for x in want] if isinstance(want, (list, tuple)) else int(want)
            if got == want_v:
                continue
            d = _TIGHTER.get(n)
            if allow_tightened and d is not None and (got - want_v) * d > 0:
                notes.append(f"risk.{n} was tightened on chain since deployment: {want_v} -> {got}")
            else:
                problems.append(Problem(f"risk.{n}", f"reads {got}, configured {want_v}"))
    if problems:
        raise VerificationError(problems, address)
    return VerifyReport(address=address, code_hash=code_hash, params=params, notes=notes, immutables=build.immutables(code),
                        extension=ext, extension_code_hash=ext_hash, extension_immutables=ext_imm, lens=lens or "",
                        lens_code_hash=lens_hash)


# ---------------------------------------------------------------------------------------------
# records


def record_path(deployments_dir: Path, network: str, deal_id: str) -> Path:
    return Path(deployments_dir) / network / f"{deal_id}.json"


def load_record(path: Path) -> dict[str, Any]:
    try:
        rec = json.loads(Path(path).read_text())
    except OSError as exc:
        raise RecordError(f"cannot read {path}: {exc.strerror or exc}", "record") from exc
    except ValueError as exc:
        raise RecordError(f"{path} is not valid JSON: {exc}", "record") from exc
    if not isinstance(rec, dict) or rec.get("format") != RECORD_FORMAT:
        raise RecordError(f"{path} is not a {RECORD_FORMAT} record", "record")
    return rec


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)


def _jsonable(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (bytes, bytearray)):
        return _hexstr(bytes(v))
    if hasattr(v, "__dataclass_fields__"):
        return _jsonable(v.__dict__)
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return str(v)


def _configs_block(net: NetworkConfig, deal: DealParams) -> dict[str, Any]:
    return {
        "network": {
            "path": str(net.path) if net.path else None,
            "sha256": net.sha256 or None,
            "content": _jsonable(net.raw),
        },
        "deal": {
            "path": deal.spec_path,
            "sha256": deal.spec_sha256,
            "deal_id": deal.deal_id,
            "roles": deal.roles,
            "risk": _jsonable(deal.risk),
            "stablecoin": deal.stablecoin,
        },
    }


# ---------------------------------------------------------------------------------------------
# the pipeline


@dataclass
class DeployResult:
    status: str                      # "deployed" | "existing" | "dry-run"
    address: str
    record_path: Path | None
    record: dict[str, Any]
    plan: Plan | None = None
    gas_used: int | None = None      # the vault's creation transaction (the core creates the extension)
    seconds: float = 0.0
    verify: VerifyReport | None = None
    lens: str = ""                   # the DealVaultLens the deal reads its views through
    extension: str = ""              # vault.extension()
    lens_gas_used: int | None = None  # the lens's creation transaction (None: the config's lens, or existing)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def _wait_confirmations(w3: Web3, tx_hash: bytes, confirmations: int, timeout: float, poll: float) -> Any:
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout, poll_latency=poll)
    deadline = time.monotonic() + timeout
    target = int(receipt["blockNumber"]) + max(confirmations, 1) - 1
    while int(w3.eth.block_number) < target:
        if time.monotonic() > deadline:
            raise DeployError(f"tx {_hexstr(bytes(tx_hash))} mined in block {receipt['blockNumber']} but {confirmations} confirmations did not arrive within {timeout:.0f} s", "confirmations")
        time.sleep(poll)
    return receipt


class _RecordBuild(Build):
    """A Build view of a record (for checking an old deployment against its own record); for the
    extension and the lens, of the record's ``extension`` / ``lens`` block."""

    def __init__(self, rec: Mapping[str, Any], contract: str = CONTRACT):  # noqa: D107
        object.__setattr__(self, "contract", rec.get("contract", contract))
        object.__setattr__(self, "immutable_references", rec.get("immutable_references") or {})
        object.__setattr__(self, "immutable_names", rec.get("immutable_names") or {})
        object.__setattr__(self, "abi", rec.get("abi") or [])
        object.__setattr__(self, "runtime", b"")
        object.__setattr__(self, "creation", b"")

    @property
    def runtime_hash(self) -> str:  # unknown: the length/byte check is skipped via expected hash
        return ""


def _record_builds(rec: Mapping[str, Any], build: Build | None, ext_build: Build | None,
                   lens_build: Build | None) -> tuple[Build, Build, Build]:
    """The builds to check a record against: the given (current) ones where their runtime hash is
    the record's, else views of the record itself (its hashes and immutable maps)."""
    ext_rec = rec.get("extension") or {}
    lens_rec = rec.get("lens") or {}
    b = build if build is not None and build.runtime_hash == rec.get("runtime_bytecode_hash") else _RecordBuild(rec)
    e = ext_build if ext_build is not None and ext_build.runtime_hash == ext_rec.get("runtime_bytecode_hash") else _RecordBuild(ext_rec, EXTENSION)
    lb = lens_build if lens_build is not None and lens_build.runtime_hash == lens_rec.get("runtime_bytecode_hash") else _RecordBuild(lens_rec, LENS)
    return b, e, lb


def _verify_record(w3: Web3, rec: Mapping[str, Any], build: Build | None, ext_build: Build | None, lens_build: Build | None,
                   expected: Mapping[str, Any], *, allow_tightened: bool) -> VerifyReport:
    if not rec.get("extension") or not rec.get("lens"):
        raise RecordError("the record has no extension or lens block (a DealVault v1 record?): it cannot be verified "
                          "against DealVault v2; redeploy (--redeploy keeps it under history)", "record")
    b, e, lb = _record_builds(rec, build, ext_build, lens_build)
    return verify_deployment(w3, rec["address"], b, expected, lens=rec["lens"].get("address"), extension_build=e, lens_build=lb,
                             expected_code_hash=rec["runtime_bytecode_hash"],
                             expected_extension_hash=rec["extension"].get("runtime_bytecode_hash"),
                             expected_lens_hash=rec["lens"].get("runtime_bytecode_hash"), allow_tightened=allow_tightened)


def _existing(
    w3: Web3, path: Path, net: NetworkConfig, builds: tuple[Build, Build, Build], identity: Mapping[str, Any], redeploy: bool
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Look at an existing record: returns (record to keep as is, history for a new record)."""
    if not path.exists():
        return None, []
    rec = load_record(path)
    history = list(rec.get("history") or [])
    old = {k: v for k, v in rec.items() if k != "history"}
    rec_genesis = (rec.get("network") or {}).get("genesis_hash")
    if rec_genesis and rec_genesis != identity["genesis_hash"]:
        if net.ephemeral:  # a restarted local chain: the old record is history
            old["superseded"] = {"at": _now(), "reason": f"chain restarted (genesis {rec_genesis} -> {identity['genesis_hash']})"}
            return None, [old, *history]
        raise RecordError(f"{path} was made on the chain with genesis {rec_genesis}, but this node's genesis is {identity['genesis_hash']}", "record.network.genesis_hash")
    build, ext_build, lens_build = builds
    try:
        if rec.get("extension") and rec.get("lens"):
            _verify_record(w3, rec, build, ext_build, lens_build, {}, allow_tightened=False)
        else:  # a v1 record: its own code only (the build changed: a redeploy is needed anyway)
            b = build if rec.get("runtime_bytecode_hash") == build.runtime_hash else _RecordBuild(rec)
            code = bytes(w3.eth.get_code(to_checksum_address(rec["address"])))
            got = _keccak_hex(b.mask(code))
            if not code or got != str(rec.get("runtime_bytecode_hash", "")).lower():
                raise VerificationError([Problem("runtime_bytecode_hash", f"the record says {rec.get('runtime_bytecode_hash')}, the code at {rec['address']} hashes to {got} (immutables masked)")], rec["address"])
    except VerificationError as exc:
        raise RecordError(f"{path} does not match the chain (tampered, or for another chain):\n" + "\n".join(f"  - {p}" for p in exc.problems), "record") from None
    except KeyError as exc:
        raise RecordError(f"{path} lacks {exc}", "record") from None
    return old, history


def _send_create(w3: Web3, signer: Signer, tx: Mapping[str, Any], confs: int, timeout: float, poll: float, what: str) -> tuple[Any, bytes, int]:
    nonce = int(w3.eth.get_transaction_count(signer.address, "pending"))
    tx_hash = signer.send({**tx, "nonce": nonce})
    receipt = _wait_confirmations(w3, tx_hash, confs, timeout, poll)
    if receipt["status"] != 1:
        raise DeployError(f"the {what} deployment transaction {_hexstr(bytes(tx_hash))} reverted (block {receipt['blockNumber']})", "deploy")
    return receipt, bytes(tx_hash), nonce


def deploy_vault(
    w3: Web3,
    signer: Signer,
    net: NetworkConfig,
    deal: DealParams,
    *,
    build: Build | None = None,
    extension_build: Build | None = None,
    lens_build: Build | None = None,
    deployments_dir: str | Path = DEPLOYMENTS_DIR,
    redeploy: bool = False,
    accept_genesis: str | None = None,
    confirmations: int | None = None,
    timeout: float = 600.0,
    poll: float | None = None,
    log: Callable[[str], None] | None = None,
) -> DeployResult:
    """Deploy (or find) the vault for ``deal`` on ``net``: preflight, deploy (the lens unless
    the config names one, then the vault), verify, record.

    Returns a DeployResult with ``status`` "existing" (record found and verified, nothing sent)
    or "deployed". Raises DeployError subclasses (PreflightError, RecordError,
    VerificationError, BuildError) with the item named; nothing is sent before preflight passed.
    """
    say = log or (lambda _m: None)
    t0 = time.perf_counter()
    build = build or build_contract()
    if extension_build is None or lens_build is None:
        ext_b, lens_b = companion_builds(build)
        extension_build, lens_build = extension_build or ext_b, lens_build or lens_b
    deployments_dir = Path(deployments_dir)
    path = record_path(deployments_dir, net.name, deal.deal_id)
    identity = check_identity(w3, net, accept_genesis)
    old, history = _existing(w3, path, net, (build, extension_build, lens_build), identity, redeploy)

    if old is not None:
        # the constructor arguments this config + spec give now (needs the pool address)
        pool = net.venues.pool or (old.get("constructor_args", {}).get("decoded", {}) or {}).get("pool")
        now_cfg = constructor_config(net, deal, pool) if not net.missing_for_vault() or pool else None
        changes = []
        if old.get("runtime_bytecode_hash") != build.runtime_hash or old.get("creation_bytecode_hash") != build.creation_hash:
            changes.append(f"build: runtime {old.get('runtime_bytecode_hash')} -> {build.runtime_hash}")
        old_ext, old_lens = old.get("extension") or {}, old.get("lens") or {}
        if old_ext.get("runtime_bytecode_hash") != extension_build.runtime_hash:
            changes.append(f"extension build: runtime {old_ext.get('runtime_bytecode_hash')} -> {extension_build.runtime_hash}")
        if old_lens.get("runtime_bytecode_hash") != lens_build.runtime_hash:
            changes.append(f"lens build: runtime {old_lens.get('runtime_bytecode_hash')} -> {lens_build.runtime_hash}")
        if now_cfg is None:
            changes.append("config: incomplete now")
        else:
            raw_now = _hexstr(encode_constructor(build, now_cfg))
            if old.get("constructor_args", {}).get("raw") != raw_now:
                before = old.get("constructor_args", {}).get("decoded") or {}
                diff = _diff(before, _jsonable(now_cfg))
                changes.append("constructor arguments: " + ("; ".join(diff) or "differ"))
        if not changes:
            say(f"{deal.deal_id}: recorded at {old['address']} (lens {old_lens.get('address')}) with the same build and config; verifying")
            report = _verify_record(w3, old, build, extension_build, lens_build, old["constructor_args"]["decoded"], allow_tightened=True)
            if net.venues.lens is not None and net.venues.lens != old_lens.get("address"):
                report.notes.append(f"the network config names the lens {net.venues.lens}; this deal's record keeps its own {old_lens.get('address')} "
                                    "(any DealVaultLens serves any vault)")
            return DeployResult("existing", old["address"], path, {**old, "history": history}, None, None,
                                time.perf_counter() - t0, report, lens=report.lens, extension=report.extension)
        if not redeploy:
            raise RecordError(
                f"{path} records {deal.deal_id} at {old['address']}, but " + " and ".join(changes)
                + " changed; pass --redeploy (redeploy=True) to deploy a new vault and keep the old record under history",
                "record")
        old["superseded"] = {"at": _now(), "reason": "; ".join(changes)}
        history = [old, *history]

    plan = preflight(w3, net, deal, build, signer.address, accept_genesis=accept_genesis, extension_build=extension_build,
                     lens_build=lens_build)
    say(f"{deal.deal_id}: preflight passed ({len(plan.checks)} checks); deploying, ~{plan.gas_estimate} gas"
        + (f" + the lens ~{plan.lens_gas_estimate} gas" if plan.lens_tx is not None else f" (lens {plan.lens} from the network config)"))
    confs = confirmations if confirmations is not None else max(net.confirmations, deal.confirmations, 1)
    poll = poll if poll is not None else (0.05 if net.ephemeral else 1.0)

    lens_block: dict[str, Any]
    lens_gas = None
    if plan.lens_tx is not None:
        lr, lh, ln = _send_create(w3, signer, plan.lens_tx, confs, timeout, poll, "lens")
        lens = to_checksum_address(lr["contractAddress"])
        lens_gas = int(lr["gasUsed"])
        say(f"{deal.deal_id}: lens deployed at {lens} in block {lr['blockNumber']} ({lens_gas} gas)")
        lens_block = {"source": "deployed", "transaction_hash": _hexstr(lh), "block_number": int(lr["blockNumber"]),
                      "nonce": ln, "gas_used": lens_gas}
    else:
        lens = to_checksum_address(str(plan.lens))
        lens_block = {"source": f"network config venues.lens ({net.path or net.name})"}

    receipt, tx_hash, nonce = _send_create(w3, signer, plan.tx, confs, timeout, poll, "vault")
    address = to_checksum_address(receipt["contractAddress"])
    say(f"{deal.deal_id}: deployed at {address} in block {receipt['blockNumber']} ({receipt['gasUsed']} gas)")

    report = verify_deployment(w3, address, build, plan.config, lens=lens, extension_build=extension_build, lens_build=lens_build)
    block = w3.eth.get_block(receipt["blockNumber"])
    record = {
        "format": RECORD_FORMAT,
        "deal_id": deal.deal_id,
        "contract": build.contract,
        "network": {"name": net.name, "chain_id": plan.identity["chain_id"], "genesis_hash": plan.identity["genesis_hash"],
                    "genesis_accepted_by_flag": plan.identity["genesis_accepted_by_flag"]},
        "address": address,
        "transaction_hash": _hexstr(tx_hash),
        "block_number": int(receipt["blockNumber"]),
        "block_hash": _hexstr(bytes(receipt["blockHash"])),
        "block_timestamp": int(block["timestamp"]),
        "deployer": signer.address,
        "nonce": nonce,
        "gas_used": int(receipt["gasUsed"]),
        "effective_gas_price": int(receipt.get("effectiveGasPrice", plan.gas_price_wei) or 0),
        "confirmations": confs,
        "timestamp": _now(),
        "constructor_args": {"decoded": _jsonable(plan.config), "raw": _hexstr(plan.constructor_args)},
        "compiler": {"name": "solc", "version": build.compiler_version, "settings": build.settings},
        "source_key": build.source_key,
        "source_hash": build.source_hash,
        "creation_bytecode_hash": build.creation_hash,
        "runtime_bytecode_hash": build.runtime_hash,
        "immutable_references": build.immutable_references,
        "immutable_names": build.immutable_names,
        "immutables": report.immutables,
        "extension": {
            "contract": extension_build.contract,
            "address": report.extension,
            "created_by": "the vault's constructor (same transaction)",
            "source_key": extension_build.source_key,
            "creation_bytecode_hash": extension_build.creation_hash,
            "runtime_bytecode_hash": extension_build.runtime_hash,
            "immutable_references": extension_build.immutable_references,
            "immutable_names": extension_build.immutable_names,
            "immutables": report.extension_immutables,
            "abi": extension_build.abi,
        },
        "lens": {
            "contract": lens_build.contract,
            "address": lens,
            **lens_block,
            "source_key": lens_build.source_key,
            "creation_bytecode_hash": lens_build.creation_hash,
            "runtime_bytecode_hash": lens_build.runtime_hash,
            "immutable_references": lens_build.immutable_references,
            "immutable_names": lens_build.immutable_names,
            "abi": lens_build.abi,
        },
        "verification": {"at": _now(), "runtime_code": "the core, the extension and the lens match their builds (immutables masked)",
                         "params": _jsonable(report.params)},
        "preflight": plan.summary(),
        "configs": _configs_block(net, deal),
        "abi": build.abi,
        "standard_json_input": build.standard_json_input,
        "history": history,
    }
    _write_json(path, record)
    say(f"{deal.deal_id}: recorded {path}")
    return DeployResult("deployed", address, path, record, plan, int(receipt["gasUsed"]), time.perf_counter() - t0, report,
                        lens=lens, extension=report.extension, lens_gas_used=lens_gas)


def _diff(before: Mapping[str, Any], after: Mapping[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(before) | set(after)):
        a, b = before.get(k), after.get(k)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += _diff(a, b, f"{prefix}{k}.")
        elif str(a).lower() != str(b).lower():
            out.append(f"{prefix}{k} {a} -> {b}")
    return out


def reverify(w3: Web3, record_file: str | Path, *, build: Build | None = None) -> VerifyReport:
    """``ape run verify_deployment``: re-run step 3 against a record at any time.

    Checks the record's own hashes (core, extension, lens) against the chain; where the current
    build has the same runtime hash it is used for a byte-for-byte check, else the record's
    immutable references. The parameters read back through the recorded lens."""
    rec = load_record(Path(record_file))
    genesis = _genesis(w3)
    net = rec.get("network") or {}
    problems = []
    if int(w3.eth.chain_id) != int(net.get("chain_id", -1)):
        problems.append(Problem("network.chain_id", f"the node reports {w3.eth.chain_id}, the record was made on {net.get('chain_id')}"))
    if net.get("genesis_hash") and net["genesis_hash"] != genesis:
        problems.append(Problem("network.genesis_hash", f"the node's block 0 hash is {genesis}, the record was made on {net['genesis_hash']}"))
    if problems:
        raise VerificationError(problems, rec.get("address", ""))
    ext_build = lens_build = None
    if build is not None and build.runtime_hash == rec.get("runtime_bytecode_hash"):
        ext_build, lens_build = companion_builds(build)
    report = _verify_record(w3, rec, build, ext_build, lens_build, rec["constructor_args"]["decoded"], allow_tightened=True)
    used = _record_builds(rec, build, ext_build, lens_build)
    stale = [b.contract for b in used if isinstance(b, _RecordBuild)]
    if stale:
        report.notes.append(f"checked {', '.join(stale)} against the record's hashes and immutable references "
                            "(no current build given, or the current build differs from the recorded one)")
    return report


# ---------------------------------------------------------------------------------------------
# dry run on a throw-away fork


def dry_run(
    upstream: Web3,
    upstream_url: str,
    net: NetworkConfig,
    deal: DealParams,
    deployer: str,
    *,
    build: Build | None = None,
    deployments_dir: str | Path = DEPLOYMENTS_DIR,
    redeploy: bool = False,
    accept_genesis: str | None = None,
    log: Callable[[str], None] | None = None,
) -> DeployResult:
    """The whole pipeline on a throw-away anvil fork of ``upstream_url``; nothing is sent upstream.

    Preflight runs read-only against the upstream itself (so the opcode probe asks the real
    chain), then deploy + verify + record run on the fork as ``deployer`` (impersonated), with
    the records copied to a temporary folder. Returns the fork's DeployResult (status
    "dry-run", or "existing" when the real record would make it a no-op)."""
    from dealvault.kit.anvil import start_anvil

    build = build or build_contract()
    deployments_dir = Path(deployments_dir)
    existing = record_path(deployments_dir, net.name, deal.deal_id)
    if not (existing.exists() and not redeploy):
        preflight(upstream, net, deal, build, deployer, accept_genesis=accept_genesis)
    with tempfile.TemporaryDirectory(prefix="dealvault-dryrun-") as tmp:
        tmp_dir = Path(tmp)
        if existing.exists():
            dest = record_path(tmp_dir, net.name, deal.deal_id)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(existing, dest)
        node = start_anvil(chain_id=net.chain_id, fork_url=upstream_url)
        try:
            fw3 = node.web3()
            signer = AnvilSigner(fw3, deployer, impersonate=True)
            res = deploy_vault(fw3, signer, net, deal, build=build, deployments_dir=tmp_dir, redeploy=redeploy,
                               accept_genesis=accept_genesis, confirmations=1, poll=0.05, log=log)
        finally:
            node.stop()
    if res.status == "deployed":
        res.status = "dry-run"
    res.record_path = None
    return res


# ---------------------------------------------------------------------------------------------
# command-line glue shared by scripts/deploy.py and scripts/verify_deployment.py (and tests)

EXIT_OK, EXIT_VERIFY_FAILED, EXIT_USAGE = 0, 1, 2


def ape_account(alias: str) -> Any:
    """An ape account by alias; ``TEST::N`` is ape's N-th test account."""
    from ape import accounts

    if alias.startswith("TEST::"):
        try:
            return accounts.test_accounts[int(alias.split("::", 1)[1])]
        except (ValueError, IndexError):
            raise DeployError(f"{alias!r} is not a test account (TEST::0..TEST::9)", "account") from None
    try:
        return accounts.load(alias)
    except Exception:  # noqa: BLE001 - ape raises AccountsError; keep the message ours
        known = ", ".join(sorted(a.alias for a in accounts if getattr(a, "alias", None))) or "none"
        raise DeployError(f"no ape account with alias {alias!r} (known: {known}; `ape accounts list`)", "account") from None


def default_config_path(network_name: str) -> Path:
    """The network config for an ape network name: the local mirror's for local/fork networks."""
    from dealvault.spec.netconfig import CHAIN138_CONFIG, local_config_path

    return local_config_path() if network_name in ("local",) else CHAIN138_CONFIG


def run_deploy(
    w3: Web3,
    *,
    deal_path: str | Path,
    config_path: str | Path,
    signer: Signer | None = None,
    deployer: str | None = None,
    upstream_url: str | None = None,
    dry: bool = False,
    redeploy: bool = False,
    accept_genesis: str | None = None,
    deployments_dir: str | Path = DEPLOYMENTS_DIR,
    resolver: Callable[[str], str] | None = None,
    build: Build | None = None,
    out: Callable[[str], None] = print,
    err: Callable[[str], None] = print,
) -> int:
    """`ape run deploy` without ape: load the spec and config, run the pipeline (or a dry run),
    print the outcome; returns the exit code (0, or 2 with a message naming the item)."""
    from dealvault.spec.netconfig import ConfigError, load_netconfig
    from dealvault.spec import SpecError, load_spec

    try:
        net = load_netconfig(config_path)
        spec = load_spec(deal_path)
        deal = deal_params(spec, resolver=resolver, path=deal_path)
        if dry:
            who = deployer or (signer.address if signer else None)
            if who is None or upstream_url is None:
                raise DeployError("a dry run needs the deployer address and the upstream RPC URL", "dry-run")
            res = dry_run(w3, upstream_url, net, deal, who, build=build, deployments_dir=deployments_dir,
                          redeploy=redeploy, accept_genesis=accept_genesis, log=err)
        else:
            if signer is None:
                raise DeployError("no signer (--account)", "account")
            res = deploy_vault(w3, signer, net, deal, build=build, deployments_dir=deployments_dir, redeploy=redeploy,
                               accept_genesis=accept_genesis, log=err)
    except (DeployError, ConfigError, SpecError, opcodes.UnsupportedOpcode) as exc:
        err(f"error: {exc}")
        return EXIT_USAGE
    summary = {"status": res.status, "deal_id": deal.deal_id, "network": net.name, "address": res.address,
               "record": str(res.record_path) if res.record_path else None, "gas_used": res.gas_used,
               "extension": res.extension or None, "lens": res.lens or None, "lens_gas_used": res.lens_gas_used,
               "seconds": round(res.seconds, 3)}
    if res.plan is not None:
        summary["plan"] = res.plan.summary()
    if res.verify is not None and res.verify.notes:
        summary["notes"] = res.verify.notes
    out(json.dumps(summary, indent=2))
    return EXIT_OK


def run_verify(w3: Web3, *, record_file: str | Path, build: Build | None = None,
               out: Callable[[str], None] = print, err: Callable[[str], None] = print) -> int:
    """`ape run verify_deployment`: 0 verified, 1 mismatch (listed), 2 no/bad record."""
    try:
        report = reverify(w3, record_file, build=build)
    except VerificationError as exc:
        err(f"error: {exc}")
        return EXIT_VERIFY_FAILED
    except DeployError as exc:
        err(f"error: {exc}")
        return EXIT_USAGE
    out(json.dumps({"verified": True, "address": report.address, "runtime_bytecode_hash": report.code_hash,
                    "extension": report.extension, "extension_runtime_bytecode_hash": report.extension_code_hash,
                    "lens": report.lens, "lens_runtime_bytecode_hash": report.lens_code_hash,
                    "params": _jsonable(report.params), "notes": report.notes}, indent=2))
    return EXIT_OK
