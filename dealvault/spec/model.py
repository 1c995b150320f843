"""What a validated deal spec is: frozen dataclasses, money in int (chain units) or Decimal.

:class:`DealSpec` holds the deal (capital, wrapper, stablecoin, target LTV, policies) with its
:class:`NetworkSpec`, :class:`Roles` and :class:`VaultParams` (IDealVault.RiskParams, each field
described once in :mod:`dealvault.vault.params`). Built by :func:`dealvault.spec.parse.parse_spec`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from decimal import Decimal
from typing import Any

from dealvault.spec.validate import SPEC_FIELDS, SpecError
from dealvault.units import BPS, E6, ETH_DECIMALS, from_units
from dealvault.vault.params import BY_NAME, MAX_EXPOSURE_BPS, MAX_LTV_BPS, PARAMS, RISK_PARAMS_FIELDS, ParamSpec

__all__ = [
    "DEFAULT_BUCKETS", "MONETIZE_VIA", "STABLECOINS", "STABLECOIN_KEYS", "VAULT_FIELDS", "WRAPPERS", "WRAPPER_KEYS",
    "DealSpec", "GasPolicy", "LadderPolicy", "MonetizePolicy", "NetworkSpec", "RoleRef", "Roles", "VaultParams",
]

#: The deal's wrapper and stablecoin choices -> the network config's token key (and the vault
#: Config field) for each: the one place a symbol becomes an address key.
WRAPPER_KEYS: Mapping[str, str] = {"WETH9": "weth9", "WETH10": "weth10"}
STABLECOIN_KEYS: Mapping[str, str] = {"cUSDT": "cusdt", "cUSDC": "cusdc"}
WRAPPERS = tuple(WRAPPER_KEYS)
STABLECOINS = tuple(STABLECOIN_KEYS)
MONETIZE_VIA = ("redeem", "sell", "redeem-then-sell")

DEFAULT_BUCKETS = (5000, 3000, 2000)


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
            raise SpecError("", f"role is the ape account alias {self.value!r}; resolve it first")
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

    def resolve(self, resolver: Callable[[str], Any]) -> dict[str, str]:
        """Addresses for all three roles. ``resolver(alias) -> address`` handles aliases (e.g.
        ``lambda a: ape.accounts.load(a).address`` or the test accounts). Raises SpecError if
        two roles resolve to the same address or one resolves to zero."""
        out: dict[str, str] = {}
        for name, ref in self.items():
            addr = ref.value if not ref.is_alias else resolver(ref.value)
            out[name] = SPEC_FIELDS.address(f"roles.{name}", str(addr))
        check_distinct_roles({k: v.lower() for k, v in out.items()})
        return out


def check_distinct_roles(values: Mapping[str, Any]) -> None:
    """SpecError naming the second role that repeats an earlier one (owner, operator, guardian)."""
    seen: dict[Any, str] = {}
    for name, v in values.items():
        if v in seen:
            shown = v[1] if isinstance(v, tuple) else v
            raise SpecError(f"roles.{name}", f"{shown} is also roles.{seen[v]}; owner, operator and guardian must be distinct")
        seen[v] = name


@dataclass(frozen=True)
class VaultParams:
    """The vault's risk parameters (IDealVault.RiskParams), in struct order, in chain units.

    bps are ints; ``rungs`` are 6-dp stablecoin units; ``sell_floor_price`` (stablecoin per USDTz)
    and ``eth_floor_price`` (USD per ETH) are Decimals, converted by ``sell_floor_price_e6`` and
    ``eth_floor_price_e8``. Each field's unit, limit and direction: :data:`VAULT_FIELDS`.
    """

    max_ltv_bps: int = MAX_LTV_BPS
    max_exposure_bps: int = MAX_EXPOSURE_BPS
    core_bps: int = DEFAULT_BUCKETS[0]
    working_bps: int = DEFAULT_BUCKETS[1]
    opportunistic_bps: int = DEFAULT_BUCKETS[2]
    rungs: tuple[int, int, int] = (50_000 * E6, 250_000 * E6, 1_000_000 * E6)
    max_desk_fee_bps: int = 50
    oracle_max_age: int = 3600
    min_discount_bps: int = 500
    max_slippage_bps: int = 100
    sell_floor_price: Decimal = Decimal("0.85")
    eth_floor_price: Decimal = Decimal("1500")
    max_operator_loss_bps: int = 50
    twap_window: int = 1800
    loosen_delay: int = 86400
    min_tranche: int = 1_000 * E6

    @property
    def sell_floor_price_e6(self) -> int:
        return int(BY_NAME["sellFloorPrice"].to_chain(self.sell_floor_price))

    @property
    def eth_floor_price_e8(self) -> int:
        return int(BY_NAME["ethFloorPrice"].to_chain(self.eth_floor_price))

    def risk_params_tuple(self) -> tuple[Any, ...]:
        """The RiskParams struct, in IDealVault field order, ready for abi encoding."""
        return tuple(_to_chain(p, getattr(self, attr)) for p, attr in VAULT_FIELDS)

    def risk_params_dict(self) -> dict[str, Any]:
        """The RiskParams struct keyed by the Solidity field names."""
        return dict(zip(RISK_PARAMS_FIELDS, self.risk_params_tuple(), strict=True))

    @classmethod
    def from_onchain(cls, params: Any) -> VaultParams:
        """From the RiskParams as read on chain: a tuple/list in struct order, a mapping keyed by
        the Solidity names, an object with those attributes (ape struct, RiskParams dataclass) or
        a VaultParams."""
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
        return cls(**{attr: _from_chain(p, v) for (p, attr), v in zip(VAULT_FIELDS, values, strict=True)})


#: (the parameter's description, the VaultParams field holding it), in RiskParams struct order.
VAULT_FIELDS: tuple[tuple[ParamSpec, str], ...] = tuple(zip(PARAMS, (f.name for f in fields(VaultParams)), strict=True))


def _to_chain(p: ParamSpec, value: Any) -> Any:
    if p.name == "rungs":
        return list(value)
    return p.to_chain(value)


def _from_chain(p: ParamSpec, value: Any) -> Any:
    if p.name == "rungs":
        return tuple(int(r) for r in value)
    if p.decimals is not None:
        return p.from_chain(value)
    return int(value)


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
class GuardPolicy:
    """What ``ape run guard`` watches on this deal (issue 15; deals/README.md). LTV: act when the
    vault's LTV is within ``ltv_margin_bps`` of its cap, bring it back to ``hysteresis_bps`` below
    that trigger (the rule clears there); a rule acts again only after ``cooldown_s``. Alerts:
    interest accrued since the debt last changed above ``interest_alert_bps`` of the deal's
    expected spread on it (debt x min_discount_bps), the loss budget used above
    ``loss_budget_alert_bps``, Aave's health factor below ``health_floor_wad`` (18 dp)."""

    ltv_margin_bps: int = 200
    hysteresis_bps: int = 50
    cooldown_s: int = 60
    interest_alert_bps: int = 5_000
    loss_budget_alert_bps: int = 5_000
    health_floor_wad: int = 1_500_000_000_000_000_000


#: Seconds a broadcast leg may stay unmined before it is replaced at a higher fee (spec default).
REPLACE_AFTER_S = 60


@dataclass(frozen=True)
class GasPolicy:
    """``mode == "auto"``: fees from the node (:mod:`dealvault.run.fees`): EIP-1559 from the
    latest base fee where the chain has one, a legacy gas price where it has none;
    ``max_fee_wei``, if set, is a ceiling no fee or replacement goes above. ``mode == "fixed"``:
    EIP-1559 caps in wei (``max_fee_wei``, ``priority_fee_wei``); ``legacy`` True sends type-0
    transactions with ``gas_price = max_fee_wei``. A leg not mined ``replace_after_s`` seconds
    after its broadcast is replaced by the same call at a higher fee (auto), or at the spec's
    fees once they are higher than the pending transaction's (fixed: raise them and --resume)."""

    mode: str = "auto"
    max_fee_wei: int | None = None
    priority_fee_wei: int | None = None
    legacy: bool = False
    replace_after_s: int = REPLACE_AFTER_S

    @property
    def is_auto(self) -> bool:
        return self.mode == "auto"


@dataclass(frozen=True)
class DealSpec:
    """One deal: what it runs on, who holds the roles, the vault's parameters, the capital and
    the deal's own (tighter) limits and policies."""

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
    guard: GuardPolicy = field(default_factory=GuardPolicy)
    description: str = ""
    source: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def deploy(self) -> bool:
        """True when the vault is to be deployed (``vault_address: deploy``)."""
        return self.vault_address is None

    @property
    def capital_eth(self) -> Decimal:
        return from_units(self.capital_wei, ETH_DECIMALS)

    @property
    def wrapper_key(self) -> str:
        """The wrapper's token key (``weth9`` / ``weth10``: the network config's and the vault
        Config's name for it); SpecError for anything else."""
        return _token_key("wrapper", self.wrapper, WRAPPER_KEYS)

    @property
    def stablecoin_key(self) -> str:
        """The stablecoin's token key (``cusdt`` / ``cusdc``); SpecError for anything else
        (never "not cUSDT, so cUSDC")."""
        return _token_key("stablecoin", self.stablecoin, STABLECOIN_KEYS)

    def risk_params_tuple(self) -> tuple[Any, ...]:
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
        out: dict[str, Any] = _jsonable(
            {
                "deal_id": self.deal_id,
                "description": self.description,
                "network": asdict(self.network),
                "roles": {k: str(v) for k, v in self.roles.items()},
                "vault": asdict(self.vault),
                "vault_address": self.vault_address or "deploy",
                "capital_wei": self.capital_wei,
                "wrapper": self.wrapper,
                "stablecoin": self.stablecoin,
                "target_ltv_bps": self.target_ltv_bps,
                "min_discount_bps": self.min_discount_bps,
                "max_slippage_bps": self.max_slippage_bps,
                "ladder": asdict(self.ladder),
                "monetize": asdict(self.monetize),
                "confirmations": self.confirmations,
                "gas": asdict(self.gas),
            }
        )
        return out


def _token_key(what: str, symbol: str, keys: Mapping[str, str]) -> str:
    if symbol not in keys:
        raise SpecError(what, f"{symbol!r} is not allowed; allowed: {' | '.join(keys)}")
    return keys[symbol]


def _hash_text(h: str | bytes | None) -> str | None:
    if h is None:
        return None
    if isinstance(h, bytes | bytearray):
        return "0x" + bytes(h).hex()
    if hasattr(h, "hex") and not isinstance(h, str):
        h = h.hex()
    h = str(h).lower()
    return h if h.startswith("0x") else "0x" + h


def _jsonable(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, Decimal):
        return str(v)
    return v
