"""The deployed vault rules: a deal spec may be tighter than the vault's on-chain parameters,
never looser. :func:`check_against_vault` lists every way it is looser, parameter by parameter in
RiskParams order, with the direction of each from :func:`dealvault.vault.params.is_tighter`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dealvault.spec.model import VAULT_FIELDS, DealSpec, VaultParams
from dealvault.spec.validate import stable_text
from dealvault.vault.params import is_tighter, tighter_word

__all__ = ["DEAL_KEYS", "check_against_vault"]

#: The deal's own keys bounded by a vault parameter (besides ``vault.<key>``): Solidity name ->
#: the DealSpec attributes.
DEAL_KEYS: Mapping[str, tuple[str, ...]] = {
    "maxLtvBps": ("target_ltv_bps",),
    "minDiscountBps": ("min_discount_bps",),
    "maxSlippageBps": ("max_slippage_bps",),
}


def check_against_vault(spec: DealSpec, onchain_params: Any) -> list[str]:
    """Every way ``spec`` is looser than the vault's on-chain RiskParams (empty = OK).

    ``onchain_params``: the RiskParams as read from the vault (tuple in struct order, mapping or
    object keyed by the Solidity names, or a VaultParams). The vault rules: the spec may be
    tighter, never looser; each message names the key and both values. A different bucket split
    is also reported (the vault splits with its own)."""
    chain = VaultParams.from_onchain(onchain_params)
    errors: list[str] = []
    for p, attr in VAULT_FIELDS:
        mine, theirs = getattr(spec.vault, attr), getattr(chain, attr)
        key = f"vault.{p.key}"
        if p.higher_is_tighter is None:  # the bucket split: must be the vault's
            if mine != theirs:
                errors.append(f"{key} {mine} differs from the vault's {p.name} {theirs} (the vault splits with its own)")
            continue
        fmt: Callable[[Any], str] = stable_text if p.unit == "units6" else str
        if p.name == "rungs":
            for i, (s, c) in enumerate(zip(mine, theirs, strict=True)):
                if not is_tighter(p.name, (s,), (c,)):
                    errors.append(_looser(f"{key}[{i}]", s, f"{p.name}[{i}]", c, "rungs", fmt))
            continue
        checks = [(key, mine)] + [(k, getattr(spec, k)) for k in DEAL_KEYS.get(p.name, ())]
        errors += [_looser(k, v, p.name, theirs, p.name, fmt) for k, v in checks if not is_tighter(p.name, v, theirs)]
    return errors


def _looser(key: str, value: Any, chain_key: str, chain_value: Any, name: str, fmt: Callable[[Any], str]) -> str:
    return (
        f"{key} {fmt(value)} is looser than the vault's {chain_key} {fmt(chain_value)} "
        f"(the spec may only be tighter: {tighter_word(name)} {fmt(chain_value)})"
    )
