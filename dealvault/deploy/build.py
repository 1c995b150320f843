"""The reproducible build: a standard-JSON input made from the sources, compiled by the solc bridge,
checked byte for byte against ape's build.

One input (``contracts/DealVault.sol`` and ``contracts/DealVaultLens.sol`` with everything they
import, OpenZeppelin from node_modules under ape's source names, ape's compiler settings) builds
the three contracts a deal runs: the core, the extension the core's constructor creates, and the
lens. The deployment record stores that input, so an auditor (or Blockscout) reproduces every
bytecode with ``solc-0.8.28 --standard-json``. Compiles go through ``tools/solcx/solc-v0.8.28``
and are cached by input hash under ``.dealvault/solc-cache``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import posixpath
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from eth_utils.crypto import keccak

from dealvault.deploy.errors import BuildError
from dealvault.paths import NODE_MODULES, ROOT, SOLCX_DIR

__all__ = [
    "CACHE_DIR", "CONTRACT", "EXTENSION", "FAMILY", "FAMILY_ROOTS", "LENS", "SOLC_BRIDGE",
    "Build", "build_contract", "build_family", "companion_builds", "compiler_settings", "hexstr", "keccak_hex",
    "run_solc", "sha256_json", "solc_version", "standard_json_input",
]

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


def hexstr(b: bytes) -> str:
    return "0x" + b.hex()


def keccak_hex(b: bytes) -> str:
    return hexstr(keccak(b))


def sha256_json(obj: Any) -> str:
    """sha256 of the canonical JSON of ``obj`` (sorted keys, no spaces)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# the standard-JSON input


def compiler_settings() -> dict[str, Any]:
    """Compiler settings exactly as ape-solidity passes them (so the bytecode is identical)."""
    cfg = yaml.safe_load((ROOT / "ape-config.yaml").read_text()) or {}
    sol: dict[str, Any] = cfg.get("solidity") or {}
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
    if path.startswith(("./", "../")):
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
    settings = dict(settings or compiler_settings())
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


# ---------------------------------------------------------------------------------------------
# the compiler


def run_solc(std_input: dict[str, Any]) -> dict[str, Any]:
    """Compile a standard-JSON input with the bridge (cached by input hash under .dealvault/solc-cache)."""
    digest = sha256_json(std_input)
    cached = CACHE_DIR / f"{digest}.json"
    if cached.exists():
        try:
            out: dict[str, Any] = json.loads(cached.read_text())
            return out
        except ValueError:
            pass
    if not SOLC_BRIDGE.exists():
        raise BuildError(f"solc bridge not found at {SOLC_BRIDGE}", "build")
    proc = subprocess.run([str(SOLC_BRIDGE), "--standard-json"], input=json.dumps(std_input).encode(),
                          capture_output=True, cwd=ROOT, timeout=600, check=False)
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


@functools.cache
def solc_version() -> str:
    """The bridge's compiler version as solc-bin and Blockscout name it (``0.8.28+commit.7893614a``)."""
    proc = subprocess.run([str(SOLC_BRIDGE), "--version"], capture_output=True, text=True, timeout=60, check=False)
    m = re.search(r"Version:\s*(\S+)", proc.stdout)
    v = m.group(1) if m else proc.stdout.strip()
    # solcjs says "0.8.28+commit.7893614a.Emscripten.clang": the same compiler as the native
    # "0.8.28+commit.7893614a" (the name Blockscout and solc-bin use)
    return re.sub(r"\.Emscripten\.clang$", "", v)


# ---------------------------------------------------------------------------------------------
# a build


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
        return sha256_json(self.standard_json_input["sources"])

    @property
    def creation_hash(self) -> str:
        return keccak_hex(self.creation)

    @property
    def runtime_hash(self) -> str:
        return keccak_hex(self.runtime)

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
        return {self.immutable_names.get(k, k): hexstr(code[refs[0]["start"]:refs[0]["start"] + refs[0]["length"]])
                for k, refs in self.immutable_references.items() if refs}

    def mismatch(self, code: bytes) -> str | None:
        """None when ``code`` is this build's runtime (immutables masked), else why not. A build
        without runtime code (a record's view of an old build) matches anything: its hash is checked."""
        if not self.runtime:
            return None
        if len(code) != len(self.runtime):
            return f"{len(code)} bytes, the {self.contract} build has {len(self.runtime)}"
        masked = self.mask(code)
        if masked != self.runtime:
            first = next(i for i, (a, b) in enumerate(zip(masked, self.runtime)) if a != b)
            return f"differs from the {self.contract} build at byte {first} (hash {keccak_hex(masked)} vs {self.runtime_hash})"
        return None


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


class _DivergedError(BuildError):
    pass


# builds of this process, by (contract, input digest, check_ape): the input is re-read from disk
# every time, so an edited source is a new key
_BUILDS: dict[tuple[str, str, bool], Build] = {}


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
        return _build_from_input(contract, key, standard_json_input(roots, settings), check_ape)
    except _DivergedError:
        # the sources may have changed between our compile and ape's (someone is editing them):
        # build both again once from what is on disk now
        _BUILDS.clear()
        return _build_from_input(contract, key, standard_json_input(roots, settings), check_ape)


def build_family(*, settings: Mapping[str, Any] | None = None, check_ape: bool = True) -> dict[str, Build]:
    """The three builds a deal deploys and verifies: {"DealVault", "DealVaultExtension", "DealVaultLens"}."""
    return {c: build_contract(c, settings=settings, check_ape=check_ape) for c in FAMILY}


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
    same = build.settings == compiler_settings()
    settings = None if same else build.settings
    return (build_contract(EXTENSION, settings=settings, check_ape=same),
            build_contract(LENS, settings=settings, check_ape=same))


def _build_from_input(contract: str, key: str, std: dict[str, Any], check_ape: bool) -> Build:
    memo = (contract, sha256_json(std), check_ape)
    if memo in _BUILDS:
        return _BUILDS[memo]
    out = run_solc(std)
    try:
        c = out["contracts"][key][contract]
    except KeyError:
        raise BuildError(f"{contract} not in the compiler output for {key}", "build") from None
    build = Build(
        contract=contract,
        source_key=key,
        compiler_version=solc_version(),
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
        # the ape build may be older than the sources: recompile (artifacts has no public name for it yet)
        artifacts._compile_own(force=True)
        artifacts.refresh_own()
        creation, runtime = ape_code()
    if runtime != build.runtime or creation != build.creation:
        raise _DivergedError(
            f"the standard-JSON build of {build.contract} differs from ape's build "
            f"(runtime {keccak_hex(runtime)} vs {build.runtime_hash}); the settings or sources diverged",
            "build",
        )
