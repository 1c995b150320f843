"""The deal spec: one YAML file per deal, validated into frozen dataclasses.

One source of truth for a deal's parameters: the orchestrator (``execute_deal``) and the deploy
pipeline (``deploy``) both read it. ``load_spec(path)`` / ``parse_spec(mapping)`` return a
:class:`DealSpec` or raise :class:`SpecError` naming the key (dotted path), the bad value and the
allowed range or type. Money is ``int`` (wei, 6-dp stablecoin units, 8-dp USD) or ``Decimal``;
a float is never accepted (YAML numbers with a fraction are read as ``Decimal`` by ``load_spec``).

- ``model``: the dataclasses (DealSpec, NetworkSpec, Roles, VaultParams, the policies);
- ``parse``: load_spec / parse_spec, and the spec's bounds on the vault's parameters;
- ``vault_rules``: check_against_vault (the spec may only be tighter than the deployed vault);
- ``validate``: the field validators and errors, shared with ``netconfig``;
- ``netconfig``: the network configs (``deployments/*.config.yaml``).

Each risk parameter (its unit, hard limit, floor, which way is tighter) is described once, in
:mod:`dealvault.vault.params`; units in :mod:`dealvault.units`.
"""

from __future__ import annotations

from dealvault.spec.model import (
    MONETIZE_VIA,
    STABLECOIN_KEYS,
    STABLECOINS,
    WRAPPER_KEYS,
    WRAPPERS,
    DealSpec,
    GasPolicy,
    GuardPolicy,
    LadderPolicy,
    MonetizePolicy,
    NetworkSpec,
    RoleRef,
    Roles,
    VaultParams,
)
from dealvault.spec.parse import load_spec, parse_spec, vault_bounds
from dealvault.spec.validate import FieldError, SpecError, SpecErrors
from dealvault.spec.vault_rules import check_against_vault
from dealvault.units import BPS, ETH_DECIMALS, STABLE_DECIMALS, USD_DECIMALS
from dealvault.vault.params import (
    MAX_EXPOSURE_BPS,
    MAX_FEE_BPS,
    MAX_LOOSEN_DELAY,
    MAX_LTV_BPS,
    MIN_LOOSEN_DELAY,
    RISK_PARAMS_FIELDS,
)

__all__ = [
    "BPS",
    "ETH_DECIMALS",
    "MAX_EXPOSURE_BPS",
    "MAX_FEE_BPS",
    "MAX_LOOSEN_DELAY",
    "MAX_LTV_BPS",
    "MIN_LOOSEN_DELAY",
    "MONETIZE_VIA",
    "RISK_PARAMS_FIELDS",
    "STABLECOINS",
    "STABLECOIN_KEYS",
    "STABLE_DECIMALS",
    "USD_DECIMALS",
    "WRAPPERS",
    "WRAPPER_KEYS",
    "DealSpec",
    "FieldError",
    "GasPolicy",
    "GuardPolicy",
    "LadderPolicy",
    "MonetizePolicy",
    "NetworkSpec",
    "RoleRef",
    "Roles",
    "SpecError",
    "SpecErrors",
    "VaultParams",
    "check_against_vault",
    "load_spec",
    "parse_spec",
    "vault_bounds",
]
