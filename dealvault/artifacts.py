"""Contract artifacts: real protocol bytecode from npm packages, and our own contracts from
ape's build manifest. Library linking for artifacts that need it (Aave V3 Pool, FiatTokenV2_2)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from dealvault.errors import DealVaultError
from dealvault.paths import BUILD_MANIFEST, NODE_MODULES, ROOT, ensure_tool_env

__all__ = [
    "Artifact", "ArtifactError", "ArtifactNotFoundError", "ContractNotBuiltError", "LinkError", "aave", "fiat_token",
    "own", "refresh_own", "uniswap",
]


class ArtifactError(DealVaultError):
    """A contract artifact is missing or cannot be used; the message says which and what to run."""


class ArtifactNotFoundError(ArtifactError, FileNotFoundError):
    """An npm package's artifact is not installed (``make setup`` runs ``npm ci``)."""


class ContractNotBuiltError(ArtifactError, KeyError):
    """One of our contracts is not in ape's build manifest."""


class LinkError(ArtifactError, ValueError):
    """Creation code could not be linked: a library's address is missing."""


@dataclass(frozen=True)
class Artifact:
    """A contract's ABI, creation and runtime code (and where its library placeholders are)."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str  # creation code, 0x-prefixed, may contain unlinked placeholders
    deployed_bytecode: str
    link_references: Mapping[str, Mapping[str, list[dict[str, int]]]] = field(default_factory=dict)

    def linked(self, libraries: Mapping[str, str]) -> str:
        """Creation code with every library placeholder replaced by its address.

        ``libraries`` maps a library name (e.g. ``"SupplyLogic"``) to its address. The byte
        offsets come from the artifact's ``linkReferences`` (hardhat format).
        """
        hexcode = self.bytecode[2:]
        missing = []
        for _source, libs in self.link_references.items():
            for lib_name, refs in libs.items():
                if lib_name not in libraries:
                    missing.append(lib_name)
                    continue
                addr = libraries[lib_name].lower().removeprefix("0x")
                for ref in refs:
                    start = ref["start"] * 2
                    hexcode = hexcode[:start] + addr + hexcode[start + ref["length"] * 2 :]
        if missing:
            raise LinkError(f"{self.name}: libraries not given for linking: {sorted(set(missing))}")
        return "0x" + hexcode


def _hardhat(path: str) -> Artifact:
    data = json.loads((NODE_MODULES / path).read_text())
    return Artifact(
        name=data["contractName"],
        abi=data["abi"],
        bytecode=data["bytecode"],
        deployed_bytecode=data["deployedBytecode"],
        link_references=data.get("linkReferences") or {},
    )


@cache
def aave(name: str) -> Artifact:
    """An Aave V3 core artifact by contract name (searched under @aave/core-v3/artifacts)."""
    base = NODE_MODULES / "@aave" / "core-v3" / "artifacts"
    hits = [p for p in base.rglob(f"{name}.json") if not p.name.endswith(".dbg.json")]
    if not hits:
        raise ArtifactNotFoundError(f"Aave artifact {name} not found under {base}")
    return _hardhat(str(hits[0].relative_to(NODE_MODULES)))


@cache
def fiat_token(name: str) -> Artifact:
    """A Circle stablecoin-evm artifact (FiatTokenProxy, FiatTokenV2_2, SignatureChecker...)."""
    base = NODE_MODULES / "@offchainlabs" / "stablecoin-evm" / "artifacts" / "hardhat" / "contracts"
    hits = [p for p in base.rglob(f"{name}.json") if not p.name.endswith(".dbg.json")]
    if not hits:
        raise ArtifactNotFoundError(f"stablecoin-evm artifact {name} not found under {base}")
    return _hardhat(str(hits[0].relative_to(NODE_MODULES)))


@cache
def uniswap(name: str) -> Artifact:
    """A Uniswap V2 artifact (waffle format) from v2-core or v2-periphery build folders."""
    for pkg in ("v2-core", "v2-periphery"):
        p = NODE_MODULES / "@uniswap" / pkg / "build" / f"{name}.json"
        if p.exists():
            data = json.loads(p.read_text())
            return Artifact(
                name=name,
                abi=data["abi"],
                bytecode="0x" + data["evm"]["bytecode"]["object"],
                deployed_bytecode="0x" + data["evm"]["deployedBytecode"]["object"],
            )
    raise ArtifactNotFoundError(f"Uniswap artifact {name} not found")


def _compile_own(force: bool = False) -> None:
    """``ape compile`` (``force``: rebuild everything; ape's incremental build does not recompile
    a contract when only a file it imports changed, which leaves its metadata hash stale)."""
    ensure_tool_env()
    ape = ROOT / ".venv" / "bin" / "ape"
    subprocess.run([str(ape), "compile", *(["--force"] if force else [])], cwd=ROOT, check=True, capture_output=True)


@cache
def _manifest_types() -> dict[str, Any]:
    if not BUILD_MANIFEST.exists():
        _compile_own()
    types: dict[str, Any] = json.loads(BUILD_MANIFEST.read_text()).get("contractTypes", {})
    return types


def own(name: str) -> Artifact:
    """One of our contracts (contracts/**), from ape's build manifest (compiles if missing)."""
    types = _manifest_types()
    if name not in types:
        _manifest_types.cache_clear()
        _compile_own()
        types = _manifest_types()
    if name not in types:
        raise ContractNotBuiltError(f"contract {name} is not in {BUILD_MANIFEST}; is it under contracts/?")
    ct = types[name]
    return Artifact(
        name=name,
        abi=ct["abi"],
        bytecode=ct["deploymentBytecode"]["bytecode"],
        deployed_bytecode=ct["runtimeBytecode"]["bytecode"],
    )


def refresh_own() -> None:
    """Forget cached build output (after contracts changed and were recompiled)."""
    _manifest_types.cache_clear()
