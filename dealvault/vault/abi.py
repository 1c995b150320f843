"""The vault's and the lens's ABIs, from the project's build (ape's manifest)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

__all__ = ["vault_abi", "lens_abi", "core_abi", "merged_abi", "abi_type"]


def abi_type(p: Mapping[str, Any]) -> str:
    """The canonical ABI type of an input/output (tuples spelled out)."""
    t = str(p["type"])
    if t.startswith("tuple"):
        return "(" + ",".join(abi_type(c) for c in p["components"]) + ")" + t[len("tuple"):]
    return t


def merged_abi(*abis: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The union of ABIs (the first wins for a repeated name and signature); constructors,
    fallbacks and receives are left out."""
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, str, str]] = set()
    for abi in abis:
        for item in abi:
            key = (str(item.get("type")), str(item.get("name", "")), ",".join(abi_type(i) for i in item.get("inputs", [])))
            if item.get("type") in ("constructor", "fallback", "receive") or key in seen:
                continue
            seen.add(key)
            out.append(dict(item))
    return out


@cache
def _vault_abi() -> tuple[dict[str, Any], ...]:
    from dealvault.artifacts import own

    extra = [x for c in ("DealVault", "DealVaultExtension") for x in own(c).abi if x.get("type") == "error"]
    return tuple(merged_abi(own("IDealVault").abi, extra))


def vault_abi() -> list[dict[str, Any]]:
    """The whole vault's ABI at its address (IDealVault: the core's legs and the extension's
    functions), plus the errors only the builds declare (SafeCast, SafeERC20), so every revert
    decodes by name."""
    return list(_vault_abi())


def core_abi() -> list[dict[str, Any]]:
    """The core's own ABI (with its constructor): what deploys the vault."""
    from dealvault.artifacts import own

    return list(own("DealVault").abi)


@cache
def _lens_abi() -> tuple[dict[str, Any], ...]:
    from dealvault.artifacts import own

    return tuple(own("DealVaultLens").abi)


def lens_abi() -> list[dict[str, Any]]:
    """DealVaultLens's ABI (riskView, params, twap, stableOf... of any vault)."""
    return list(_lens_abi())
