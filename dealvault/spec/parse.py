"""Reading a deal spec: ``load_spec(path)`` / ``parse_spec(mapping)`` -> :class:`DealSpec`.

Every key is checked (unknown keys get a did-you-mean, missing ones are named); the vault's
parameters are bounded by the contract's hard limits and floors (:mod:`dealvault.vault.params`),
tightened where the deal spec has its own policy (:data:`SPEC_FLOORS`, :data:`SPEC_LIMITS`);
the deal's own target LTV, discount and slippage by its vault's parameters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from dealvault.spec.model import (
    DEFAULT_BUCKETS,
    MONETIZE_VIA,
    REPLACE_AFTER_S,
    STABLECOINS,
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
    check_distinct_roles,
)
from dealvault.spec.validate import SPEC_FIELDS as F
from dealvault.spec.validate import SpecError, did_you_mean, load_yaml, stable_text, typename
from dealvault.units import BPS, ETH_DECIMALS, STABLE_DECIMALS, from_units
from dealvault.vault.params import BY_KEY, MAX_BOOK_WEI

__all__ = ["SPEC_FLOORS", "SPEC_LIMITS", "load_spec", "parse_spec", "vault_bounds", "vault_floor"]

GWEI_DECIMALS = 9  # gas prices in the spec are gwei
MAX_GWEI = Decimal(100_000)

#: The deal spec's own bounds where it is stricter than the contract (vault.params holds the
#: contract's): a zero LTV or exposure cap makes no deal, a working bucket of 0 has nothing to
#: borrow against, and an oracle answer older than a week is not a price.
SPEC_FLOORS: Mapping[str, int] = {"max_ltv_bps": 1, "max_exposure_bps": 1, "buckets.working": 1}
SPEC_LIMITS: Mapping[str, int] = {"oracle_max_age": 7 * 86400}

# Words for a parameter's unit in messages.
_UNIT_WORDS = {"seconds": "seconds", "priceE6": "stablecoin per USDTz", "usd8": "USD per ETH"}

_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")  # ape aliases, incl. TEST::0


def vault_floor(key: str) -> int:
    """The lowest chain value the deal spec accepts for ``vault.<key>``: the contract's floor,
    raised by :data:`SPEC_FLOORS`."""
    return max(BY_KEY[key].floor, SPEC_FLOORS.get(key, 0))


def vault_bounds(key: str) -> tuple[int, int]:
    """(lowest, highest) chain value the deal spec accepts for ``vault.<key>``: the contract's
    floor and hard limit, tightened by :data:`SPEC_FLOORS` / :data:`SPEC_LIMITS`; a bucket's
    limit is the whole (10000 bps). KeyError for the rungs and the minimum tranche, whose upper
    bounds depend on the rungs."""
    p = BY_KEY[key]
    limit = SPEC_LIMITS.get(key, p.limit)
    if limit is None:
        if p.unit != "bps":
            raise KeyError(f"vault.{key} has no fixed upper bound")
        limit = BPS
    return vault_floor(key), limit


def load_spec(path: str | Path) -> DealSpec:
    """Read and validate a deal spec YAML file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError("", f"cannot read deal spec {path}: {exc.strerror or exc}") from exc
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        raise SpecError("", f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, Mapping):
        raise SpecError("", f"{path}: a deal spec is a YAML mapping, got {typename(data)}")
    return parse_spec(data)


# Top-level keys: name -> required?
_TOP_KEYS = {
    "deal_id": True,
    "description": False,
    "network": True,
    "roles": True,
    "vault": True,
    "vault_address": True,
    "capital": True,
    "wrapper": True,
    "stablecoin": True,
    "target_ltv_bps": True,
    "min_discount_bps": False,
    "max_slippage_bps": False,
    "ladder": False,
    "monetize": False,
    "confirmations": False,
    "gas": False,
    "guard": False,
}


def parse_spec(mapping: Mapping[str, Any]) -> DealSpec:
    """Validate a deal spec given as a mapping (e.g. parsed YAML) and return a DealSpec."""
    data = F.mapping("", mapping)
    F.check_keys("", data, _TOP_KEYS)

    deal_id = F.text("deal_id", data["deal_id"])
    if not _SLUG.match(deal_id):
        F.fail(
            "deal_id",
            f"{deal_id!r} is not a slug; allowed: 1-64 characters of a-z, 0-9 and '-', "
            "starting and ending with a letter or digit",
        )
    description = F.text("description", data.get("description", ""), allow_empty=True)
    network = _parse_network(data["network"])
    roles = _parse_roles(data["roles"], network)
    vault = _parse_vault(data["vault"])

    va = data["vault_address"]
    vault_address = None if isinstance(va, str) and va == "deploy" else F.address("vault_address", va, what='an address or "deploy"')

    capital_wei = F.amount("capital", data["capital"], ETH_DECIMALS, unit="ETH", minimum=from_units(1, ETH_DECIMALS),
                           maximum=from_units(MAX_BOOK_WEI, ETH_DECIMALS))  # what the vault's ETH books can hold
    wrapper = F.choice("wrapper", data["wrapper"], WRAPPERS)
    stablecoin = F.choice("stablecoin", data["stablecoin"], STABLECOINS)
    target_ltv_bps = F.integer("target_ltv_bps", data["target_ltv_bps"], 1, vault.max_ltv_bps, hint="vault.max_ltv_bps")
    min_discount_bps = F.integer(
        "min_discount_bps", data.get("min_discount_bps", vault.min_discount_bps), vault.min_discount_bps,
        vault_bounds("min_discount_bps")[1], hint="at least vault.min_discount_bps",
    )
    max_slippage_bps = F.integer(
        "max_slippage_bps", data.get("max_slippage_bps", vault.max_slippage_bps), 0, vault.max_slippage_bps,
        hint="vault.max_slippage_bps",
    )
    return DealSpec(
        deal_id=deal_id,
        network=network,
        roles=roles,
        vault=vault,
        vault_address=vault_address,
        capital_wei=capital_wei,
        wrapper=wrapper,
        stablecoin=stablecoin,
        target_ltv_bps=target_ltv_bps,
        min_discount_bps=min_discount_bps,
        max_slippage_bps=max_slippage_bps,
        ladder=_parse_ladder(data.get("ladder", {})),
        monetize=_parse_monetize(data.get("monetize", {})),
        confirmations=F.integer("confirmations", data.get("confirmations", 1), 0, 64),
        gas=_parse_gas(data.get("gas", "auto")),
        guard=_parse_guard(data.get("guard", {}), vault.max_ltv_bps, target_ltv_bps),
        description=description,
        source=dict(data),
    )


# --------------------------------------------------------------------------------------------
# network and roles

# Known network names: shorthand -> NetworkSpec
_MAINNET = NetworkSpec("chain138-mainnet", 138, "chain138:mainnet:node", None, False)
_FORK = NetworkSpec("chain138-fork", 138, "chain138:mainnet-fork:foundry", None, True)
_NETWORK_PRESETS: Mapping[str, NetworkSpec] = {
    "chain138-local": NetworkSpec("chain138-local", 138, None, None, True),
    "chain138-mainnet": _MAINNET,
    "chain138:mainnet": _MAINNET,
    "chain138:mainnet:node": _MAINNET,
    "chain138:mainnet-fork": _FORK,
    "chain138:mainnet-fork:foundry": _FORK,
}
_NETWORK_KEYS = {"name": True, "chain_id": True, "ape": False, "genesis_hash": False, "local": False}


def _parse_network(value: Any) -> NetworkSpec:
    if isinstance(value, str):
        preset = _NETWORK_PRESETS.get(value)
        if preset is None:
            F.fail(
                "network",
                f"unknown network {value!r}; allowed: one of {sorted(_NETWORK_PRESETS)}{did_you_mean(value, _NETWORK_PRESETS)}, "
                "or a mapping {name, chain_id, ape?, genesis_hash?, local?}",
            )
        return preset
    data = F.mapping("network", value, what="a network name or a mapping")
    F.check_keys("network", data, _NETWORK_KEYS)
    name = F.text("network.name", data["name"])
    chain_id = F.integer("network.chain_id", data["chain_id"], 1, 2**63 - 1)
    ape_choice = data.get("ape")
    if ape_choice is not None:
        ape_choice = F.text("network.ape", ape_choice)
        if len(ape_choice.split(":")) not in (2, 3):
            F.fail("network.ape", f"{ape_choice!r} is not an ape network choice; allowed: ecosystem:network[:provider]")
    genesis = F.block_hash("network.genesis_hash", data.get("genesis_hash"))
    default_local = bool(ape_choice and (":local" in ape_choice or "fork" in ape_choice)) or "local" in name
    local = F.boolean("network.local", data.get("local", default_local))
    return NetworkSpec(name=name, chain_id=chain_id, ape=ape_choice, genesis_hash=genesis, local=local)


_ROLE_KEYS = {"owner": True, "operator": True, "guardian": True}


def _parse_roles(value: Any, network: NetworkSpec) -> Roles:
    data = F.mapping("roles", value)
    F.check_keys("roles", data, _ROLE_KEYS)
    refs: dict[str, RoleRef] = {}
    for name in _ROLE_KEYS:
        key = f"roles.{name}"
        raw = data[name]
        if isinstance(raw, str) and raw.startswith("alias:"):
            alias = raw[len("alias:"):]
            if not _ALIAS.match(alias):
                F.fail(key, f"{raw!r}: bad ape account alias; allowed: alias:NAME with NAME of letters, digits, '_', '-', '.', ':' (e.g. alias:TEST::0)")
            if not network.local:
                F.fail(
                    key,
                    f"{raw!r}: an ape account alias is only allowed on a local chain; "
                    f"network {network.name!r} needs a 0x address (the owner is a multisig)",
                )
            refs[name] = RoleRef("alias", alias)
        else:
            refs[name] = RoleRef("address", F.address(key, raw, what='a 0x address or "alias:NAME"'))
    check_distinct_roles({k: (r.kind, r.value.lower()) for k, r in refs.items()})
    return Roles(**refs)


# --------------------------------------------------------------------------------------------
# the vault's parameters

_VAULT_KEYS = {
    "max_ltv_bps": False,
    "max_exposure_bps": False,
    "buckets": False,
    "rungs": False,
    "max_desk_fee_bps": False,
    "oracle_max_age": False,
    "min_discount_bps": False,
    "max_slippage_bps": False,
    "sell_floor_price": False,
    "eth_floor_price": True,
    "max_operator_loss_bps": False,
    "twap_window": False,
    "loosen_delay": False,
    "min_tranche": False,
}
_BUCKET_KEYS = {"core": True, "working": True, "opportunistic": True}


def _vault_int(key: str, value: Any) -> int:
    """``vault.<key>``, an integer parameter, within :func:`vault_bounds`."""
    low, high = vault_bounds(key)
    return F.integer(f"vault.{key}", value, low, high, unit=_UNIT_WORDS.get(BY_KEY[key].unit, ""))


def _vault_price(key: str, value: Any) -> Decimal:
    """``vault.<key>``, a priced parameter, as the Decimal the spec writes, within :func:`vault_bounds`."""
    p = BY_KEY[key]
    assert p.decimals is not None
    low, high = (from_units(v, p.decimals).normalize() for v in vault_bounds(key))
    return F.decimal(f"vault.{key}", value, p.decimals, low=low, high=high, unit=_UNIT_WORDS[p.unit])


def _parse_vault(value: Any) -> VaultParams:
    data = F.mapping("vault", value)
    F.check_keys("vault", data, _VAULT_KEYS)
    d = VaultParams()
    max_ltv = _vault_int("max_ltv_bps", data.get("max_ltv_bps", d.max_ltv_bps))
    max_exp = _vault_int("max_exposure_bps", data.get("max_exposure_bps", d.max_exposure_bps))
    core, working, opp = _parse_buckets(data["buckets"]) if "buckets" in data else DEFAULT_BUCKETS
    rungs = _parse_rungs(data["rungs"]) if "rungs" in data else d.rungs
    fee = _vault_int("max_desk_fee_bps", data.get("max_desk_fee_bps", d.max_desk_fee_bps))
    age = _vault_int("oracle_max_age", data.get("oracle_max_age", d.oracle_max_age))
    disc = _vault_int("min_discount_bps", data.get("min_discount_bps", d.min_discount_bps))
    slip = _vault_int("max_slippage_bps", data.get("max_slippage_bps", d.max_slippage_bps))
    sell_floor = _vault_price("sell_floor_price", data.get("sell_floor_price", d.sell_floor_price))
    eth_floor = _vault_price("eth_floor_price", data["eth_floor_price"])
    loss = _vault_int("max_operator_loss_bps", data.get("max_operator_loss_bps", d.max_operator_loss_bps))
    window = _vault_int("twap_window", data.get("twap_window", d.twap_window))
    delay = _vault_int("loosen_delay", data.get("loosen_delay", d.loosen_delay))
    if "min_tranche" in data:
        tranche = F.amount(
            "vault.min_tranche", data["min_tranche"], STABLE_DECIMALS, unit="stablecoin units (at most rung 1's size)",
            minimum=from_units(vault_floor("min_tranche"), STABLE_DECIMALS).normalize(),
            maximum=from_units(rungs[0], STABLE_DECIMALS),
        )
    else:
        tranche = min(d.min_tranche, rungs[0])
    return VaultParams(
        max_ltv_bps=max_ltv,
        max_exposure_bps=max_exp,
        core_bps=core,
        working_bps=working,
        opportunistic_bps=opp,
        rungs=rungs,
        max_desk_fee_bps=fee,
        oracle_max_age=age,
        min_discount_bps=disc,
        max_slippage_bps=slip,
        sell_floor_price=sell_floor,
        eth_floor_price=eth_floor,
        max_operator_loss_bps=loss,
        twap_window=window,
        loosen_delay=delay,
        min_tranche=tranche,
    )


def _parse_buckets(value: Any) -> tuple[int, int, int]:
    b = F.mapping("vault.buckets", value)
    F.check_keys("vault.buckets", b, _BUCKET_KEYS)
    core, working, opp = (F.integer(f"vault.buckets.{k}", b[k], *vault_bounds(f"buckets.{k}")) for k in _BUCKET_KEYS)
    if core + working + opp != BPS:
        F.fail(
            "vault.buckets",
            f"core {core} + working {working} + opportunistic {opp} = {core + working + opp} bps; "
            f"the split must sum to exactly {BPS}",
        )
    return core, working, opp


def _parse_rungs(raw: Any) -> tuple[int, int, int]:
    if not isinstance(raw, list | tuple) or len(raw) != 3:
        F.fail("vault.rungs", f"{raw!r}: expected a list of exactly 3 rung sizes in whole stablecoin units")
    r0, r1, r2 = (
        F.amount(f"vault.rungs[{i}]", r, STABLE_DECIMALS, unit="stablecoin units", minimum=Decimal(1))  # a whole unit at least
        for i, r in enumerate(raw)
    )
    rungs = (r0, r1, r2)
    for i in (1, 2):
        if rungs[i] <= rungs[i - 1]:
            F.fail(
                f"vault.rungs[{i}]",
                f"{stable_text(rungs[i])} is not above rung {i - 1} ({stable_text(rungs[i - 1])}); rungs must be strictly increasing",
            )
    return rungs


# --------------------------------------------------------------------------------------------
# the deal's policies

_LADDER_KEYS = {"rungs": False, "tranche_bps": False, "max_tranches": False}


def _parse_ladder(value: Any) -> LadderPolicy:
    data = F.mapping("ladder", value)
    F.check_keys("ladder", data, _LADDER_KEYS)
    d = LadderPolicy()
    return LadderPolicy(
        rungs=F.integer("ladder.rungs", data.get("rungs", d.rungs), 1, 3),
        tranche_bps=F.integer("ladder.tranche_bps", data.get("tranche_bps", d.tranche_bps), 1, BPS),
        max_tranches=F.integer("ladder.max_tranches", data.get("max_tranches", d.max_tranches), 1, 1000),
    )


_MONETIZE_KEYS = {"monetize_bps": False, "via": False}


def _parse_monetize(value: Any) -> MonetizePolicy:
    data = F.mapping("monetize", value)
    F.check_keys("monetize", data, _MONETIZE_KEYS)
    d = MonetizePolicy()
    return MonetizePolicy(
        monetize_bps=F.integer("monetize.monetize_bps", data.get("monetize_bps", d.monetize_bps), 0, BPS),
        via=F.choice("monetize.via", data.get("via", d.via), MONETIZE_VIA),
    )


_GUARD_KEYS = {"ltv_margin_bps": False, "hysteresis_bps": False, "cooldown_seconds": False, "interest_alert_bps": False,
               "loss_budget_alert_bps": False, "health_floor": False}


def _parse_guard(value: Any, max_ltv_bps: int, target_ltv_bps: int) -> GuardPolicy:
    data = F.mapping("guard", value)
    F.check_keys("guard", data, _GUARD_KEYS)
    d = GuardPolicy()
    hysteresis = F.integer("guard.hysteresis_bps", data.get("hysteresis_bps", d.hysteresis_bps), 1, max_ltv_bps - 1,
                           hint="below vault.max_ltv_bps")
    # the guard restores the LTV to max - margin - hysteresis: never below the deal's own target
    room = max_ltv_bps - target_ltv_bps - hysteresis
    if "ltv_margin_bps" not in data:
        margin = max(1, min(d.ltv_margin_bps, room))  # the default, narrowed for a target near the cap
    else:
        margin = F.integer("guard.ltv_margin_bps", data["ltv_margin_bps"], 1, max(room, 1),
                           hint=f"vault.max_ltv_bps {max_ltv_bps} - ltv_margin_bps - hysteresis_bps {hysteresis} must stay "
                                f">= target_ltv_bps {target_ltv_bps}")
    floor = F.amount("guard.health_floor", data.get("health_floor", "1.5"), 18, unit="(Aave health factor)",
                     minimum=Decimal(1), maximum=Decimal(100))
    return GuardPolicy(
        ltv_margin_bps=margin, hysteresis_bps=hysteresis,
        cooldown_s=F.integer("guard.cooldown_seconds", data.get("cooldown_seconds", d.cooldown_s), 0, 86_400, unit="s"),
        interest_alert_bps=F.integer("guard.interest_alert_bps", data.get("interest_alert_bps", d.interest_alert_bps), 1, BPS),
        loss_budget_alert_bps=F.integer("guard.loss_budget_alert_bps",
                                        data.get("loss_budget_alert_bps", d.loss_budget_alert_bps), 1, BPS),
        health_floor_wad=floor,
    )


_GAS_KEYS = {"mode": False, "max_fee_gwei": False, "priority_fee_gwei": False, "legacy": False, "replace_after_seconds": False}
_GAS_HINT = ('"auto" or a mapping {mode: auto, max_fee_gwei?, replace_after_seconds?} or '
             "{max_fee_gwei, priority_fee_gwei, legacy?, replace_after_seconds?}")


def _parse_gas(value: Any) -> GasPolicy:
    if isinstance(value, str):
        if value == "auto":
            return GasPolicy()
        F.fail("gas", f"{value!r}: allowed: {_GAS_HINT}")
    data = F.mapping("gas", value, what=_GAS_HINT)
    F.check_keys("gas", data, _GAS_KEYS)
    mode = data.get("mode", "fixed")
    if mode not in ("auto", "fixed"):
        F.fail("gas.mode", f"{mode!r}: allowed: auto, fixed")
    replace = F.integer("gas.replace_after_seconds", data.get("replace_after_seconds", REPLACE_AFTER_S), 1, 3600, unit="s")
    if mode == "auto":
        for key in ("priority_fee_gwei", "legacy"):
            if key in data:
                F.fail(f"gas.{key}", "not with mode auto (the fees come from the node: EIP-1559 from the base fee, "
                                     "legacy where the chain has none)")
        ceiling = (F.amount("gas.max_fee_gwei", data["max_fee_gwei"], GWEI_DECIMALS, unit="gwei",
                            minimum=from_units(1, GWEI_DECIMALS), maximum=MAX_GWEI) if "max_fee_gwei" in data else None)
        return GasPolicy(mode="auto", max_fee_wei=ceiling, replace_after_s=replace)
    for key in ("max_fee_gwei", "priority_fee_gwei"):
        if key not in data:
            F.fail(f"gas.{key}", f"missing (required with fixed fees); allowed: {_GAS_HINT}")
    max_fee = F.amount("gas.max_fee_gwei", data["max_fee_gwei"], GWEI_DECIMALS, unit="gwei",
                       minimum=from_units(1, GWEI_DECIMALS), maximum=MAX_GWEI)
    prio = F.amount("gas.priority_fee_gwei", data["priority_fee_gwei"], GWEI_DECIMALS, unit="gwei",
                    minimum=Decimal(0), maximum=MAX_GWEI)
    if prio > max_fee:
        F.fail(
            "gas.priority_fee_gwei",
            f"{_gwei(prio)} gwei is above gas.max_fee_gwei {_gwei(max_fee)} gwei; allowed: 0..max_fee_gwei",
        )
    return GasPolicy(mode="fixed", max_fee_wei=max_fee, priority_fee_wei=prio,
                     legacy=F.boolean("gas.legacy", data.get("legacy", False)), replace_after_s=replace)


def _gwei(wei: int) -> str:
    return f"{from_units(wei, GWEI_DECIMALS).normalize():f}"
