"""The deal spec: one YAML file per deal, validated into frozen dataclasses.

One source of truth for a deal's parameters: the orchestrator (``execute_deal``) and the deploy
pipeline (``deploy``) both read it. ``load_spec(path)`` / ``parse_spec(mapping)`` return a
:class:`DealSpec` or raise :class:`SpecError` naming the key (dotted path), the bad value and the
allowed range or type. Money is ``int`` (wei, 6-dp stablecoin units, 8-dp USD) or ``Decimal``;
a float is never accepted (YAML numbers with a fraction are read as ``Decimal`` by ``load_spec``).

The vault's on-chain parameters rule: :func:`check_against_vault` lists every spec value looser
than the deployed vault's (the spec may only be tighter).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml
from eth_utils import is_checksum_address, to_checksum_address

__all__ = [
    "SpecError",
    "SpecErrors",
    "NetworkSpec",
    "RoleRef",
    "Roles",
    "VaultParams",
    "LadderPolicy",
    "MonetizePolicy",
    "GasPolicy",
    "DealSpec",
    "load_spec",
    "parse_spec",
    "check_against_vault",
    "RISK_PARAMS_FIELDS",
    "MAX_LTV_BPS",
    "MAX_EXPOSURE_BPS",
    "BPS",
    "STABLE_DECIMALS",
    "USD_DECIMALS",
    "WRAPPERS",
    "STABLECOINS",
]

# On-chain hard limits (contracts/libraries/ParamTable.sol; pinned by tests/unit/test_spec.py).
MAX_LTV_BPS = 3000
MAX_EXPOSURE_BPS = 2500
MAX_FEE_BPS = 1000  # maxDeskFeeBps, maxSlippageBps, maxOperatorLossBps
MAX_ETH_FLOOR_USD = Decimal(10**8)  # ethFloorPrice <= 1e16 (8 dp): OracleLib.MAX_PRICE
MAX_LOOSEN_DELAY = 30 * 86400
MIN_LOOSEN_DELAY = 3600  # ParamTable.MIN_LOOSEN_DELAY: the guardian's least time to revoke a loosening
MAX_TWAP_WINDOW = 2**16 - 1  # twapWindow is a uint16 of seconds, >= 1
MAX_MIN_DISCOUNT_BPS = 9_999
BPS = 10_000
STABLE_DECIMALS = 6  # cUSDT, cUSDC, USDTz
USD_DECIMALS = 8  # oracle / ethFloorPrice
ETH_DECIMALS = 18
GWEI = 10**9
UINT16_MAX = 2**16 - 1
UINT32_MAX = 2**32 - 1

WRAPPERS = ("WETH9", "WETH10")
STABLECOINS = ("cUSDT", "cUSDC")
MONETIZE_VIA = ("redeem", "sell", "redeem-then-sell")

DEFAULT_BUCKETS = (5000, 3000, 2000)
DEFAULT_RUNGS_WHOLE = (50_000, 250_000, 1_000_000)

# IDealVault.RiskParams, in struct order.
RISK_PARAMS_FIELDS = (
    "maxLtvBps",
    "maxExposureBps",
    "coreBps",
    "workingBps",
    "opportunisticBps",
    "rungs",
    "maxDeskFeeBps",
    "oracleMaxAge",
    "minDiscountBps",
    "maxSlippageBps",
    "sellFloorPrice",
    "ethFloorPrice",
    "maxOperatorLossBps",
    "twapWindow",
    "loosenDelay",
    "minTranche",
)

_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
_HEX_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HASH32 = re.compile(r"^0x[0-9a-fA-F]{64}$")
_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")  # ape aliases, incl. TEST::0
_ZERO_ADDRESS = "0x" + "0" * 40


# --------------------------------------------------------------------------------------------
# errors


class SpecError(ValueError):
    """A bad deal spec. ``key`` is the dotted path of the offending key (``vault.max_ltv_bps``)."""

    def __init__(self, key: str, message: str):
        self.key = key
        self.detail = message
        super().__init__(f"{key}: {message}" if key else message)


class SpecErrors(SpecError):
    """More than one problem (e.g. from :func:`check_against_vault` via ``raise_for``)."""

    def __init__(self, errors: Sequence[str], key: str = ""):
        self.errors = list(errors)
        super().__init__(key, "; ".join(self.errors))


# --------------------------------------------------------------------------------------------
# dataclasses


@dataclass(frozen=True)
class NetworkSpec:
    """Which chain the deal runs on and how to recognise it.

    ``name``: a label (``chain138-mainnet``, ``chain138-local``); ``ape``: the ape network choice
    (``ecosystem:network:provider``) or ``None`` when the CLI ``--network`` decides; ``chain_id``:
    expected ``eth_chainId``; ``genesis_hash``: expected hash of block 0, or ``None`` = not
    pinned by the spec (for Chain 138 mainnet the deploy config
    ``deployments/chain138.config.yaml`` pins it); ``local``: a throw-away chain (local mirror,
    fork) where roles may be ape account aliases and the owner is an account, not a multisig.
    """

    name: str
    chain_id: int
    ape: str | None = None
    genesis_hash: str | None = None
    local: bool = False

    def identity_errors(self, chain_id: int, genesis_hash: str | bytes | None) -> list[str]:
        """Compare the connected chain with this spec; empty list = it is the expected network."""
        errors = []
        if int(chain_id) != self.chain_id:
            errors.append(f"network: chain id is {int(chain_id)}, the spec expects {self.chain_id} ({self.name})")
        if self.genesis_hash is not None:
            got = _hash_text(genesis_hash)
            if got != self.genesis_hash:
                errors.append(f"network: genesis hash is {got}, the spec expects {self.genesis_hash} ({self.name})")
        return errors


@dataclass(frozen=True)
class RoleRef:
    """An account: ``kind`` is ``"address"`` (value = checksum address) or ``"alias"`` (value =
    an ape account alias, local chains only)."""

    kind: str
    value: str

    @property
    def is_alias(self) -> bool:
        return self.kind == "alias"

    @property
    def address(self) -> str:
        if self.kind != "address":
            raise ValueError(f"role is the ape account alias {self.value!r}; resolve it first")
        return self.value

    def __str__(self) -> str:
        return f"alias:{self.value}" if self.is_alias else self.value


@dataclass(frozen=True)
class Roles:
    owner: RoleRef
    operator: RoleRef
    guardian: RoleRef

    def items(self) -> tuple[tuple[str, RoleRef], ...]:
        return (("owner", self.owner), ("operator", self.operator), ("guardian", self.guardian))

    def resolve(self, resolver) -> dict[str, str]:
        """Addresses for all three roles. ``resolver(alias) -> address`` handles aliases (e.g.
        ``lambda a: ape.accounts.load(a).address`` or the test accounts). Raises SpecError if
        two roles resolve to the same address or one resolves to zero."""
        out: dict[str, str] = {}
        for name, ref in self.items():
            addr = ref.value if not ref.is_alias else resolver(ref.value)
            addr = _address(f"roles.{name}", str(addr))
            out[name] = addr
        _check_distinct({k: v.lower() for k, v in out.items()})
        return out


@dataclass(frozen=True)
class VaultParams:
    """The vault's risk parameters (IDealVault.RiskParams), in chain units.

    bps are ints; ``rungs`` are 6-dp stablecoin units; ``sell_floor_price`` (stablecoin per USDTz)
    and ``eth_floor_price`` (USD per ETH) are Decimals, converted by ``sell_floor_price_e6`` and
    ``eth_floor_price_e8``.
    """

    max_ltv_bps: int = MAX_LTV_BPS
    max_exposure_bps: int = MAX_EXPOSURE_BPS
    core_bps: int = DEFAULT_BUCKETS[0]
    working_bps: int = DEFAULT_BUCKETS[1]
    opportunistic_bps: int = DEFAULT_BUCKETS[2]
    rungs: tuple[int, int, int] = tuple(r * 10**STABLE_DECIMALS for r in DEFAULT_RUNGS_WHOLE)  # type: ignore[assignment]
    max_desk_fee_bps: int = 50
    oracle_max_age: int = 3600
    min_discount_bps: int = 500
    max_slippage_bps: int = 100
    sell_floor_price: Decimal = Decimal("0.85")
    eth_floor_price: Decimal = Decimal("1500")
    max_operator_loss_bps: int = 50
    twap_window: int = 1800
    loosen_delay: int = 86400
    min_tranche: int = 1_000 * 10**STABLE_DECIMALS

    @property
    def sell_floor_price_e6(self) -> int:
        return _scale_exact(self.sell_floor_price, STABLE_DECIMALS)

    @property
    def eth_floor_price_e8(self) -> int:
        return _scale_exact(self.eth_floor_price, USD_DECIMALS)

    def risk_params_tuple(self) -> tuple:
        """The RiskParams struct, in IDealVault field order, ready for abi encoding."""
        return (
            self.max_ltv_bps,
            self.max_exposure_bps,
            self.core_bps,
            self.working_bps,
            self.opportunistic_bps,
            list(self.rungs),
            self.max_desk_fee_bps,
            self.oracle_max_age,
            self.min_discount_bps,
            self.max_slippage_bps,
            self.sell_floor_price_e6,
            self.eth_floor_price_e8,
            self.max_operator_loss_bps,
            self.twap_window,
            self.loosen_delay,
            self.min_tranche,
        )

    def risk_params_dict(self) -> dict[str, Any]:
        """The RiskParams struct keyed by the Solidity field names."""
        return dict(zip(RISK_PARAMS_FIELDS, self.risk_params_tuple()))

    @classmethod
    def from_onchain(cls, params: Any) -> "VaultParams":
        """From the RiskParams as read on chain: a tuple/list in struct order, a mapping keyed by
        the Solidity names, an object with those attributes (ape struct) or a VaultParams."""
        if isinstance(params, VaultParams):
            return params
        if isinstance(params, Mapping):
            values = [params[name] for name in RISK_PARAMS_FIELDS]
        elif hasattr(params, "maxLtvBps"):
            values = [getattr(params, name) for name in RISK_PARAMS_FIELDS]
        else:
            values = list(params)
            if len(values) != len(RISK_PARAMS_FIELDS):
                raise ValueError(f"RiskParams has {len(RISK_PARAMS_FIELDS)} fields, got {len(values)}")
        (ltv, exp, core, working, opp, rungs, fee, age, disc, slip, sell_e6, eth_e8, loss, window, delay, tranche) = values
        return cls(
            max_ltv_bps=int(ltv),
            max_exposure_bps=int(exp),
            core_bps=int(core),
            working_bps=int(working),
            opportunistic_bps=int(opp),
            rungs=tuple(int(r) for r in rungs),  # type: ignore[arg-type]
            max_desk_fee_bps=int(fee),
            oracle_max_age=int(age),
            min_discount_bps=int(disc),
            max_slippage_bps=int(slip),
            sell_floor_price=Decimal(int(sell_e6)).scaleb(-STABLE_DECIMALS),
            eth_floor_price=Decimal(int(eth_e8)).scaleb(-USD_DECIMALS),
            max_operator_loss_bps=int(loss),
            twap_window=int(window),
            loosen_delay=int(delay),
            min_tranche=int(tranche),
        )


@dataclass(frozen=True)
class LadderPolicy:
    """Progressive redemption. ``rungs``: how many of the vault's three rungs the deal may climb
    (1..3; the vault numbers them 0..2, so the deal stops before rung index ``rungs``);
    each tranche is ``tranche_bps`` of the current rung size (10000 = a full rung), capped by
    what is left to monetize; at most ``max_tranches`` tranches."""

    rungs: int = 3
    tranche_bps: int = BPS
    max_tranches: int = 20

    @property
    def top_rung_index(self) -> int:
        """The highest vault rung index (0-based) the deal may redeem at."""
        return self.rungs - 1

    def tranche_size(self, rung_size: int, remaining: int) -> int:
        """Size (6-dp units) of the next tranche at a rung of ``rung_size`` with ``remaining``
        USDTz still to monetize."""
        return max(0, min(rung_size * self.tranche_bps // BPS, remaining))


@dataclass(frozen=True)
class MonetizePolicy:
    """How much of the USDTz bought is monetized (``monetize_bps``; the rest is kept) and how:
    ``redeem`` at the desk (the ladder), ``sell`` on the router (never below the floor), or
    ``redeem-then-sell`` (redeem up the ladder, sell what is left)."""

    monetize_bps: int = BPS
    via: str = "redeem"

    @property
    def keep_bps(self) -> int:
        return BPS - self.monetize_bps

    def amount_to_monetize(self, usdtz_held: int) -> int:
        return usdtz_held * self.monetize_bps // BPS


@dataclass(frozen=True)
class GasPolicy:
    """``mode == "auto"``: the provider's fee estimate. ``mode == "fixed"``: EIP-1559 caps in wei
    (``max_fee_wei``, ``priority_fee_wei``); ``legacy`` True sends type-0 transactions with
    ``gas_price = max_fee_wei`` (Chain 138 defaults to type 0)."""

    mode: str = "auto"
    max_fee_wei: int | None = None
    priority_fee_wei: int | None = None
    legacy: bool = False

    @property
    def is_auto(self) -> bool:
        return self.mode == "auto"


@dataclass(frozen=True)
class DealSpec:
    deal_id: str
    network: NetworkSpec
    roles: Roles
    vault: VaultParams
    vault_address: str | None  # None = "deploy"
    capital_wei: int
    wrapper: str  # "WETH9" | "WETH10"
    stablecoin: str  # "cUSDT" | "cUSDC"
    target_ltv_bps: int
    min_discount_bps: int
    max_slippage_bps: int
    ladder: LadderPolicy = field(default_factory=LadderPolicy)
    monetize: MonetizePolicy = field(default_factory=MonetizePolicy)
    confirmations: int = 1
    gas: GasPolicy = field(default_factory=GasPolicy)
    description: str = ""
    source: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def deploy(self) -> bool:
        """True when the vault is to be deployed (``vault_address: deploy``)."""
        return self.vault_address is None

    @property
    def capital_eth(self) -> Decimal:
        return Decimal(self.capital_wei).scaleb(-ETH_DECIMALS)

    def risk_params_tuple(self) -> tuple:
        """IDealVault.RiskParams for the constructor, in struct order."""
        return self.vault.risk_params_tuple()

    def bucket_wei(self) -> dict[str, int]:
        """The split of the capital as the vault computes it (core/working floor, rest to
        opportunistic)."""
        core = self.capital_wei * self.vault.core_bps // BPS
        working = self.capital_wei * self.vault.working_bps // BPS
        return {"core": core, "working": working, "opportunistic": self.capital_wei - core - working}

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict of the validated spec (Decimals as strings, ints as ints)."""
        return _jsonable(
            {
                "deal_id": self.deal_id,
                "description": self.description,
                "network": self.network.__dict__,
                "roles": {k: str(v) for k, v in self.roles.items()},
                "vault": {**self.vault.__dict__, "rungs": list(self.vault.rungs)},
                "vault_address": self.vault_address or "deploy",
                "capital_wei": self.capital_wei,
                "wrapper": self.wrapper,
                "stablecoin": self.stablecoin,
                "target_ltv_bps": self.target_ltv_bps,
                "min_discount_bps": self.min_discount_bps,
                "max_slippage_bps": self.max_slippage_bps,
                "ladder": self.ladder.__dict__,
                "monetize": self.monetize.__dict__,
                "confirmations": self.confirmations,
                "gas": self.gas.__dict__,
            }
        )


# --------------------------------------------------------------------------------------------
# loading


class _SpecLoader(yaml.SafeLoader):
    """YAML without floats (a number with a fraction becomes an exact ``Decimal``) and with
    ``0x...`` kept as text (YAML 1.1 would read an unquoted address as a hex integer)."""


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    text = loader.construct_scalar(node).replace("_", "")  # type: ignore[arg-type]
    try:
        return Decimal(text)
    except InvalidOperation:
        return text  # .inf / .nan: left as text, rejected by the validators


def _construct_int(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    text = loader.construct_scalar(node)  # type: ignore[arg-type]
    if text.lower().lstrip("+-").startswith("0x"):
        return text
    return yaml.SafeLoader.construct_yaml_int(loader, node)  # type: ignore[arg-type]


_SpecLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)
_SpecLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def load_spec(path: str | Path) -> DealSpec:
    """Read and validate a deal spec YAML file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError("", f"cannot read deal spec {path}: {exc.strerror or exc}") from exc
    try:
        data = yaml.load(text, Loader=_SpecLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise SpecError("", f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, Mapping):
        raise SpecError("", f"{path}: a deal spec is a YAML mapping, got {_typename(data)}")
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
}


def parse_spec(mapping: Mapping[str, Any]) -> DealSpec:
    """Validate a deal spec given as a mapping (e.g. parsed YAML) and return a DealSpec."""
    data = _mapping("", mapping)
    _check_keys("", data, _TOP_KEYS)

    deal_id = _str("deal_id", data["deal_id"])
    if not _SLUG.match(deal_id):
        raise SpecError(
            "deal_id",
            f"{deal_id!r} is not a slug; allowed: 1-64 characters of a-z, 0-9 and '-', "
            "starting and ending with a letter or digit",
        )
    description = _str("description", data.get("description", ""), allow_empty=True)
    network = _parse_network(data["network"])
    roles = _parse_roles(data["roles"], network)
    vault = _parse_vault(data["vault"])

    va = data["vault_address"]
    if isinstance(va, str) and va == "deploy":
        vault_address = None
    else:
        vault_address = _address("vault_address", va, what='an address or "deploy"')

    capital_wei = _amount("capital", data["capital"], ETH_DECIMALS, unit="ETH", minimum=Decimal(1).scaleb(-ETH_DECIMALS))
    wrapper = _choice("wrapper", data["wrapper"], WRAPPERS)
    stablecoin = _choice("stablecoin", data["stablecoin"], STABLECOINS)
    target_ltv_bps = _int("target_ltv_bps", data["target_ltv_bps"], 1, vault.max_ltv_bps, hint="vault.max_ltv_bps")
    min_discount_bps = _int(
        "min_discount_bps", data.get("min_discount_bps", vault.min_discount_bps), vault.min_discount_bps, BPS - 1,
        hint="at least vault.min_discount_bps",
    )
    max_slippage_bps = _int(
        "max_slippage_bps", data.get("max_slippage_bps", vault.max_slippage_bps), 0, vault.max_slippage_bps,
        hint="vault.max_slippage_bps",
    )
    ladder = _parse_ladder(data.get("ladder", {}))
    monetize = _parse_monetize(data.get("monetize", {}))
    confirmations = _int("confirmations", data.get("confirmations", 1), 0, 64)
    gas = _parse_gas(data.get("gas", "auto"))

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
        ladder=ladder,
        monetize=monetize,
        confirmations=confirmations,
        gas=gas,
        description=description,
        source=dict(data),
    )


# Known network names: shorthand -> (label, chain id, ape choice, local)
_NETWORK_PRESETS: dict[str, tuple[str, int, str | None, bool]] = {
    "chain138-local": ("chain138-local", 138, None, True),
    "chain138-mainnet": ("chain138-mainnet", 138, "chain138:mainnet:node", False),
    "chain138:mainnet": ("chain138-mainnet", 138, "chain138:mainnet:node", False),
    "chain138:mainnet:node": ("chain138-mainnet", 138, "chain138:mainnet:node", False),
    "chain138:mainnet-fork": ("chain138-fork", 138, "chain138:mainnet-fork:foundry", True),
    "chain138:mainnet-fork:foundry": ("chain138-fork", 138, "chain138:mainnet-fork:foundry", True),
}
_NETWORK_KEYS = {"name": True, "chain_id": True, "ape": False, "genesis_hash": False, "local": False}


def _parse_network(value: Any) -> NetworkSpec:
    if isinstance(value, str):
        preset = _NETWORK_PRESETS.get(value)
        if preset is None:
            raise SpecError(
                "network",
                f"unknown network {value!r}; allowed: one of {sorted(_NETWORK_PRESETS)}{_did_you_mean(value, _NETWORK_PRESETS)}, "
                "or a mapping {name, chain_id, ape?, genesis_hash?, local?}",
            )
        name, chain_id, ape_choice, local = preset
        return NetworkSpec(name=name, chain_id=chain_id, ape=ape_choice, genesis_hash=None, local=local)
    data = _mapping("network", value, what="a network name or a mapping")
    _check_keys("network", data, _NETWORK_KEYS)
    name = _str("network.name", data["name"])
    chain_id = _int("network.chain_id", data["chain_id"], 1, 2**63 - 1)
    ape_choice = data.get("ape")
    if ape_choice is not None:
        ape_choice = _str("network.ape", ape_choice)
        if len(ape_choice.split(":")) not in (2, 3):
            raise SpecError("network.ape", f"{ape_choice!r} is not an ape network choice; allowed: ecosystem:network[:provider]")
    genesis = data.get("genesis_hash")
    if genesis is not None:
        genesis = _str("network.genesis_hash", genesis)
        if not _HASH32.match(genesis):
            raise SpecError("network.genesis_hash", f"{genesis!r} is not a block hash; allowed: 0x followed by 64 hex digits, or null")
        genesis = genesis.lower()
    default_local = bool(ape_choice and (":local" in ape_choice or "fork" in ape_choice)) or "local" in name
    local = _bool("network.local", data.get("local", default_local))
    return NetworkSpec(name=name, chain_id=chain_id, ape=ape_choice, genesis_hash=genesis, local=local)


_ROLE_KEYS = {"owner": True, "operator": True, "guardian": True}


def _parse_roles(value: Any, network: NetworkSpec) -> Roles:
    data = _mapping("roles", value)
    _check_keys("roles", data, _ROLE_KEYS)
    refs: dict[str, RoleRef] = {}
    for name in _ROLE_KEYS:
        key = f"roles.{name}"
        raw = data[name]
        if isinstance(raw, str) and raw.startswith("alias:"):
            alias = raw[len("alias:"):]
            if not _ALIAS.match(alias):
                raise SpecError(key, f"{raw!r}: bad ape account alias; allowed: alias:NAME with NAME of letters, digits, '_', '-', '.', ':' (e.g. alias:TEST::0)")
            if not network.local:
                raise SpecError(
                    key,
                    f"{raw!r}: an ape account alias is only allowed on a local chain; "
                    f"network {network.name!r} needs a 0x address (the owner is a multisig)",
                )
            refs[name] = RoleRef("alias", alias)
        else:
            refs[name] = RoleRef("address", _address(key, raw, what='a 0x address or "alias:NAME"'))
    _check_distinct({k: (r.kind, r.value.lower()) for k, r in refs.items()})
    return Roles(**refs)


def _check_distinct(values: Mapping[str, Any]) -> None:
    seen: dict[Any, str] = {}
    for name, v in values.items():
        if v in seen:
            shown = v[1] if isinstance(v, tuple) else v
            raise SpecError(f"roles.{name}", f"{shown} is also roles.{seen[v]}; owner, operator and guardian must be distinct")
        seen[v] = name


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


def _parse_vault(value: Any) -> VaultParams:
    data = _mapping("vault", value)
    _check_keys("vault", data, _VAULT_KEYS)
    d = VaultParams()
    max_ltv = _int("vault.max_ltv_bps", data.get("max_ltv_bps", d.max_ltv_bps), 1, MAX_LTV_BPS)
    max_exp = _int("vault.max_exposure_bps", data.get("max_exposure_bps", d.max_exposure_bps), 1, MAX_EXPOSURE_BPS)

    if "buckets" in data:
        b = _mapping("vault.buckets", data["buckets"])
        _check_keys("vault.buckets", b, _BUCKET_KEYS)
        core = _int("vault.buckets.core", b["core"], 0, BPS)
        working = _int("vault.buckets.working", b["working"], 1, BPS)
        opp = _int("vault.buckets.opportunistic", b["opportunistic"], 0, BPS)
        if core + working + opp != BPS:
            raise SpecError(
                "vault.buckets",
                f"core {core} + working {working} + opportunistic {opp} = {core + working + opp} bps; "
                f"the split must sum to exactly {BPS}",
            )
    else:
        core, working, opp = DEFAULT_BUCKETS

    if "rungs" in data:
        raw = data["rungs"]
        if not isinstance(raw, (list, tuple)) or len(raw) != 3:
            raise SpecError("vault.rungs", f"{raw!r}: expected a list of exactly 3 rung sizes in whole stablecoin units")
        rungs = tuple(
            _amount(f"vault.rungs[{i}]", r, STABLE_DECIMALS, unit="stablecoin units", minimum=Decimal(1)) for i, r in enumerate(raw)
        )
        for i in (1, 2):
            if rungs[i] <= rungs[i - 1]:
                raise SpecError(
                    f"vault.rungs[{i}]",
                    f"{_units(rungs[i])} is not above rung {i - 1} ({_units(rungs[i - 1])}); rungs must be strictly increasing",
                )
    else:
        rungs = d.rungs

    fee = _int("vault.max_desk_fee_bps", data.get("max_desk_fee_bps", d.max_desk_fee_bps), 0, MAX_FEE_BPS)
    age = _int("vault.oracle_max_age", data.get("oracle_max_age", d.oracle_max_age), 1, 7 * 86400, unit="seconds")
    disc = _int("vault.min_discount_bps", data.get("min_discount_bps", d.min_discount_bps), 0, MAX_MIN_DISCOUNT_BPS)
    slip = _int("vault.max_slippage_bps", data.get("max_slippage_bps", d.max_slippage_bps), 0, MAX_FEE_BPS)
    sell_floor = _decimal(
        "vault.sell_floor_price", data.get("sell_floor_price", d.sell_floor_price), STABLE_DECIMALS,
        low=Decimal("0.000001"), high=Decimal(1), unit="stablecoin per USDTz",
    )
    eth_floor = _decimal(
        "vault.eth_floor_price", data["eth_floor_price"], USD_DECIMALS,
        low=Decimal("0.00000001"), high=MAX_ETH_FLOOR_USD, unit="USD per ETH",
    )
    loss = _int("vault.max_operator_loss_bps", data.get("max_operator_loss_bps", d.max_operator_loss_bps), 0, MAX_FEE_BPS)
    window = _int("vault.twap_window", data.get("twap_window", d.twap_window), 1, MAX_TWAP_WINDOW, unit="seconds")
    delay = _int("vault.loosen_delay", data.get("loosen_delay", d.loosen_delay), MIN_LOOSEN_DELAY, MAX_LOOSEN_DELAY, unit="seconds")
    if "min_tranche" in data:
        tranche = _amount("vault.min_tranche", data["min_tranche"], STABLE_DECIMALS, unit="stablecoin units (at most rung 0)",
                          minimum=Decimal("0.000001"), maximum=Decimal(rungs[0]).scaleb(-STABLE_DECIMALS))
    else:
        tranche = min(d.min_tranche, rungs[0])
    if tranche > rungs[0]:
        raise SpecError("vault.min_tranche", f"{_units(tranche)} is above rung 0 ({_units(rungs[0])}); the smallest tranche must fit the first rung")
    return VaultParams(
        max_ltv_bps=max_ltv,
        max_exposure_bps=max_exp,
        core_bps=core,
        working_bps=working,
        opportunistic_bps=opp,
        rungs=rungs,  # type: ignore[arg-type]
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


_LADDER_KEYS = {"rungs": False, "tranche_bps": False, "max_tranches": False}


def _parse_ladder(value: Any) -> LadderPolicy:
    data = _mapping("ladder", value)
    _check_keys("ladder", data, _LADDER_KEYS)
    d = LadderPolicy()
    return LadderPolicy(
        rungs=_int("ladder.rungs", data.get("rungs", d.rungs), 1, 3),
        tranche_bps=_int("ladder.tranche_bps", data.get("tranche_bps", d.tranche_bps), 1, BPS),
        max_tranches=_int("ladder.max_tranches", data.get("max_tranches", d.max_tranches), 1, 1000),
    )


_MONETIZE_KEYS = {"monetize_bps": False, "via": False}


def _parse_monetize(value: Any) -> MonetizePolicy:
    data = _mapping("monetize", value)
    _check_keys("monetize", data, _MONETIZE_KEYS)
    d = MonetizePolicy()
    return MonetizePolicy(
        monetize_bps=_int("monetize.monetize_bps", data.get("monetize_bps", d.monetize_bps), 0, BPS),
        via=_choice("monetize.via", data.get("via", d.via), MONETIZE_VIA),
    )


_GAS_KEYS = {"max_fee_gwei": True, "priority_fee_gwei": True, "legacy": False}


def _parse_gas(value: Any) -> GasPolicy:
    if isinstance(value, str):
        if value == "auto":
            return GasPolicy()
        raise SpecError("gas", f"{value!r}: allowed: \"auto\" or a mapping {{max_fee_gwei, priority_fee_gwei, legacy?}}")
    data = _mapping("gas", value, what='"auto" or a mapping')
    _check_keys("gas", data, _GAS_KEYS)
    max_fee = _amount("gas.max_fee_gwei", data["max_fee_gwei"], 9, unit="gwei", minimum=Decimal("0.000000001"), maximum=Decimal(100_000))
    prio = _amount("gas.priority_fee_gwei", data["priority_fee_gwei"], 9, unit="gwei", minimum=Decimal(0), maximum=Decimal(100_000))
    if prio > max_fee:
        raise SpecError(
            "gas.priority_fee_gwei",
            f"{_gwei(prio)} gwei is above gas.max_fee_gwei {_gwei(max_fee)} gwei; allowed: 0..max_fee_gwei",
        )
    return GasPolicy(mode="fixed", max_fee_wei=max_fee, priority_fee_wei=prio, legacy=_bool("gas.legacy", data.get("legacy", False)))


# --------------------------------------------------------------------------------------------
# tighter than the vault


def check_against_vault(spec: DealSpec, onchain_params: Any) -> list[str]:
    """Every way ``spec`` is looser than the vault's on-chain RiskParams (empty = OK).

    ``onchain_params``: the RiskParams as read from the vault (tuple in struct order, mapping or
    object keyed by the Solidity names, or a VaultParams). The vault rules: the spec may be
    tighter, never looser; each message names the key and both values. A different bucket split
    is also reported (the vault splits with its own)."""
    chain = VaultParams.from_onchain(onchain_params)
    mine = spec.vault
    errors: list[str] = []

    def at_most(key: str, spec_value, chain_value, chain_key: str, fmt=str) -> None:
        if spec_value > chain_value:
            errors.append(f"{key} {fmt(spec_value)} is looser than the vault's {chain_key} {fmt(chain_value)} (the spec may only be tighter: <= {fmt(chain_value)})")

    def at_least(key: str, spec_value, chain_value, chain_key: str, fmt=str) -> None:
        if spec_value < chain_value:
            errors.append(f"{key} {fmt(spec_value)} is looser than the vault's {chain_key} {fmt(chain_value)} (the spec may only be tighter: >= {fmt(chain_value)})")

    at_most("vault.max_ltv_bps", mine.max_ltv_bps, chain.max_ltv_bps, "maxLtvBps")
    at_most("target_ltv_bps", spec.target_ltv_bps, chain.max_ltv_bps, "maxLtvBps")
    at_most("vault.max_exposure_bps", mine.max_exposure_bps, chain.max_exposure_bps, "maxExposureBps")
    for name, sol in (("core", "coreBps"), ("working", "workingBps"), ("opportunistic", "opportunisticBps")):
        s, c = getattr(mine, f"{name}_bps"), getattr(chain, f"{name}_bps")
        if s != c:
            errors.append(f"vault.buckets.{name} {s} differs from the vault's {sol} {c} (the vault splits with its own)")
    for i, (s, c) in enumerate(zip(mine.rungs, chain.rungs)):
        at_most(f"vault.rungs[{i}]", s, c, f"rungs[{i}]", fmt=_units)
    at_most("vault.max_desk_fee_bps", mine.max_desk_fee_bps, chain.max_desk_fee_bps, "maxDeskFeeBps")
    at_most("vault.oracle_max_age", mine.oracle_max_age, chain.oracle_max_age, "oracleMaxAge")
    at_least("vault.min_discount_bps", mine.min_discount_bps, chain.min_discount_bps, "minDiscountBps")
    at_least("min_discount_bps", spec.min_discount_bps, chain.min_discount_bps, "minDiscountBps")
    at_most("vault.max_slippage_bps", mine.max_slippage_bps, chain.max_slippage_bps, "maxSlippageBps")
    at_most("max_slippage_bps", spec.max_slippage_bps, chain.max_slippage_bps, "maxSlippageBps")
    at_least("vault.sell_floor_price", mine.sell_floor_price, chain.sell_floor_price, "sellFloorPrice")
    at_least("vault.eth_floor_price", mine.eth_floor_price, chain.eth_floor_price, "ethFloorPrice")
    at_most("vault.max_operator_loss_bps", mine.max_operator_loss_bps, chain.max_operator_loss_bps, "maxOperatorLossBps")
    at_least("vault.twap_window", mine.twap_window, chain.twap_window, "twapWindow")
    at_least("vault.loosen_delay", mine.loosen_delay, chain.loosen_delay, "loosenDelay")
    at_least("vault.min_tranche", mine.min_tranche, chain.min_tranche, "minTranche", fmt=_units)
    return errors


# --------------------------------------------------------------------------------------------
# validators


def _typename(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def _did_you_mean(key: str, allowed: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(key), list(allowed), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _mapping(key: str, value: Any, what: str = "a mapping") -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError(key or "<spec>", f"expected {what}, got {_typename(value)} {value!r}")
    return value


def _check_keys(prefix: str, data: Mapping[str, Any], allowed: Mapping[str, bool]) -> None:
    for k in data:
        if k not in allowed:
            path = f"{prefix}.{k}" if prefix else str(k)
            raise SpecError(path, f"unknown key{_did_you_mean(str(k), allowed)}; allowed keys here: {', '.join(allowed)}")
    for k, required in allowed.items():
        if required and k not in data:
            path = f"{prefix}.{k}" if prefix else k
            raise SpecError(path, "missing required key")


def _str(key: str, value: Any, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise SpecError(key, f"expected a string, got {_typename(value)} {value!r}")
    if not allow_empty and not value.strip():
        raise SpecError(key, "must not be empty")
    return value


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SpecError(key, f"expected true or false, got {_typename(value)} {value!r}")
    return value


def _choice(key: str, value: Any, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        hint = _did_you_mean(value, allowed) if isinstance(value, str) else ""
        raise SpecError(key, f"{value!r} is not allowed{hint}; allowed: {' | '.join(allowed)}")
    return value


def _int(key: str, value: Any, low: int, high: int, hint: str = "", unit: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(key, f"expected an integer{' (' + unit + ')' if unit else ''} in {low}..{high}, got {_typename(value)} {value!r}")
    if not low <= value <= high:
        extra = f" ({hint})" if hint else ""
        raise SpecError(key, f"{value} is out of range; allowed: {low}..{high}{extra}{' ' + unit if unit else ''}")
    return value


def _to_decimal(key: str, value: Any, what: str) -> Decimal:
    if isinstance(value, float):
        raise SpecError(key, f"{value!r} is a float; money is exact: write it as a string or Decimal, e.g. \"{value}\" ({what})")
    if isinstance(value, bool) or not isinstance(value, (int, str, Decimal)):
        raise SpecError(key, f"expected a number ({what}), got {_typename(value)} {value!r}")
    try:
        d = Decimal(str(value).replace("_", "").strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise SpecError(key, f"{value!r} is not a number ({what})") from None
    if not d.is_finite():
        raise SpecError(key, f"{value!r} is not a finite number ({what})")
    return d


def _decimal(key: str, value: Any, decimals: int, low: Decimal, high: Decimal, unit: str) -> Decimal:
    what = f"{unit}, {low:f}..{high:f}, at most {decimals} decimals"
    d = _to_decimal(key, value, what)
    if not low <= d <= high:
        raise SpecError(key, f"{d} is out of range; allowed: {low:f}..{high:f} {unit}")
    if not _fits(d, decimals):
        raise SpecError(key, f"{d} has more than {decimals} decimals; allowed: at most {decimals} ({unit})")
    return d


def _amount(
    key: str, value: Any, decimals: int, unit: str, minimum: Decimal, maximum: Decimal | None = None
) -> int:
    """A quantity in human units (ETH, whole stablecoins, gwei) -> an exact int in base units."""
    rng = f"{minimum:f}..{maximum:f}" if maximum is not None else f">= {minimum:f}"
    d = _to_decimal(key, value, f"{unit}, {rng}")
    if d < minimum or (maximum is not None and d > maximum):
        raise SpecError(key, f"{d} is out of range; allowed: {rng} {unit}")
    if not _fits(d, decimals):
        raise SpecError(key, f"{d} has more than {decimals} decimals; allowed: at most {decimals} ({unit})")
    return _scale_exact(d, decimals)


def _address(key: str, value: Any, what: str = "a 0x address") -> str:
    if not isinstance(value, str):
        raise SpecError(key, f"expected {what} (quote it in YAML), got {_typename(value)} {value!r}")
    if not _HEX_ADDRESS.match(value):
        raise SpecError(key, f"{value!r} is not {what}; allowed: 0x followed by 40 hex digits")
    if value[2:] != value[2:].lower() and value[2:] != value[2:].upper() and not is_checksum_address(value):
        raise SpecError(key, f"{value!r} has a bad EIP-55 checksum; expected {to_checksum_address(value)}")
    if value.lower() == _ZERO_ADDRESS:
        raise SpecError(key, "the zero address is not allowed")
    return to_checksum_address(value)


def _fits(d: Decimal, decimals: int) -> bool:
    """True when ``d`` has at most ``decimals`` significant decimals (trailing zeros ignored)."""
    try:
        _scale_exact(d, decimals)
    except ValueError:
        return False
    return True


def _scale_exact(d: Decimal, decimals: int) -> int:
    """``d * 10**decimals`` as an exact int, from the digits (no Decimal context, no rounding,
    whatever the magnitude); ValueError if that is not an integer."""
    sign, digits, exp = d.as_tuple()
    if not isinstance(exp, int):
        raise ValueError(f"{d} is not finite")
    n = int("".join(map(str, digits)) or "0")
    shift = exp + decimals
    if shift >= 0:
        n *= 10**shift
    else:
        n, rest = divmod(n, 10**-shift)
        if rest:
            raise ValueError(f"{d} has more than {decimals} decimals")
    return -n if sign else n


def _units(v: int) -> str:
    return f"{Decimal(v).scaleb(-STABLE_DECIMALS).normalize():f}"


def _gwei(v: int) -> str:
    return f"{Decimal(v).scaleb(-9).normalize():f}"


def _hash_text(h: str | bytes | None) -> str | None:
    if h is None:
        return None
    if isinstance(h, (bytes, bytearray)):
        return "0x" + bytes(h).hex()
    if hasattr(h, "hex") and not isinstance(h, str):
        h = h.hex()
    h = str(h).lower()
    return h if h.startswith("0x") else "0x" + h


def _jsonable(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, Decimal):
        return str(v)
    return v
