"""What the vault's constructor gets: the deal's parameters (from its spec, the one source of
truth) and the network's addresses, as ``IDealVault.Config`` by Solidity field name, ABI-encoded
against the build's constructor (and decoded back, for the record)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from eth_abi.abi import decode, encode
from eth_utils.address import to_checksum_address

from dealvault.deploy.build import Build
from dealvault.deploy.errors import BuildError, DeployError
from dealvault.spec import DealSpec, GasPolicy, Roles
from dealvault.spec.netconfig import TOKEN_KEYS, NetworkConfig
from dealvault.vault.abi import abi_type

__all__ = ["CONFIG_VENUES", "ROLES", "DealParams", "constructor_config", "deal_params", "decode_constructor", "encode_constructor"]

#: The Config fields that name the vault's venues and tokens (read back from ``setup().venues``).
CONFIG_VENUES: tuple[str, ...] = (*TOKEN_KEYS, "pool", "router", "desk", "ethUsdFeed")
#: The roles the constructor grants (owner, operator, guardian), as the deal spec names them.
ROLES: tuple[str, ...] = tuple(f.name for f in fields(Roles))


@dataclass(frozen=True)
class DealParams:
    """What a deployment needs from a deal spec."""

    deal_id: str
    roles: dict[str, str]          # owner/operator/guardian -> checksum address
    risk: dict[str, Any]           # IDealVault.RiskParams by Solidity field name
    stablecoin: str                # the deal's borrow stablecoin key ("cusdt" | "cusdc")
    confirmations: int = 1
    gas: GasPolicy | None = None   # None: the provider's estimate
    spec_path: str | None = None
    spec_sha256: str | None = None


def deal_params(spec: DealSpec, resolver: Callable[[str], str] | None = None, path: str | Path | None = None) -> DealParams:
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


def constructor_config(net: NetworkConfig, deal: DealParams, pool: str) -> dict[str, Any]:
    """IDealVault.Config by Solidity field name (the network's addresses, the deal's roles and risk)."""
    addresses = {k: net.tokens[k].address for k in TOKEN_KEYS}
    addresses.update(pool=pool, router=net.venues.router, desk=net.venues.desk, ethUsdFeed=net.feed.address)
    return {**{k: addresses[k] for k in CONFIG_VENUES}, **{r: deal.roles[r] for r in ROLES}, "risk": dict(deal.risk)}


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


def _constructor_input(abi: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    inputs: list[Mapping[str, Any]] = next((list(i.get("inputs", [])) for i in abi if i.get("type") == "constructor"), [])
    if len(inputs) != 1 or inputs[0]["type"] != "tuple":
        raise BuildError("expected constructor(Config memory cfg)", "constructor")
    return inputs[0]


def encode_constructor(build: Build, config: Mapping[str, Any]) -> bytes:
    """The constructor's arguments, ABI-encoded (what follows the creation code in the transaction)."""
    cfg = _constructor_input(build.abi)
    return encode([abi_type(cfg)], [_to_abi(cfg, config, "cfg")])


def decode_constructor(build_abi: Sequence[Mapping[str, Any]], raw: bytes) -> dict[str, Any]:
    """ABI-encoded constructor arguments back to Config by field name."""
    cfg = _constructor_input(build_abi)
    (value,) = decode([abi_type(cfg)], raw)

    def named(p: Mapping[str, Any], v: Any) -> Any:
        if p["type"] == "tuple":
            return {c["name"]: named(c, x) for c, x in zip(p["components"], v)}
        if p["type"] == "address":
            return to_checksum_address(v)
        if isinstance(v, (list, tuple)):
            return [int(x) for x in v]
        return v

    out: dict[str, Any] = named(cfg, value)
    return out
