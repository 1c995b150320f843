"""The vault's risk parameters, each described once: its place in IDealVault.RiskParams, its unit,
which way is tighter, its hard limit and floor (contracts/libraries/ParamTable.sol), and how the
deal spec writes it. The spec's validation, the deploy pipeline's read-back check, the status
flags, the owner's batches and the orchestrator all use this table.

Pinned to the contract by ``tests/unit/vault/test_vault_mirror.py`` (ParamTable's limits, floors
and directions; the RiskParams struct's field order)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from dealvault.units import STABLE_DECIMALS, USD_DECIMALS, from_units, to_units
from dealvault.vault.enums import Param

__all__ = [
    "MAX_BOOK_WEI",
    "ParamSpec", "PARAMS", "RISK_PARAMS_FIELDS", "BY_NAME", "BY_KEY", "BY_PARAM", "MAX_LTV_BPS", "MAX_EXPOSURE_BPS",
    "MAX_FEE_BPS", "MAX_PRICE", "MIN_LOOSEN_DELAY", "MAX_LOOSEN_DELAY", "is_tighter", "tighter_word",
]

# ParamTable.sol's constants
MAX_LTV_BPS = 3000
MAX_EXPOSURE_BPS = 2500
MAX_FEE_BPS = 1000  # maxDeskFeeBps, maxSlippageBps, maxOperatorLossBps
MAX_PRICE = 10**16  # OracleLib.MAX_PRICE: ethFloorPrice <= 1e16 (8 dp)
MAX_BOOK_WEI = 2**80 - 1  # the ETH books (fundedCapital, coreEth...) are uint80 (DealVaultStorage): ~1.2M ETH
MIN_LOOSEN_DELAY = 3600
MAX_LOOSEN_DELAY = 30 * 86400
UINT16_MAX = 2**16 - 1
UINT32_MAX = 2**32 - 1


@dataclass(frozen=True)
class ParamSpec:
    """One field of IDealVault.RiskParams.

    ``param``: the IDealVault.Param the owner sets it by (None: fixed at deployment). ``unit``: "bps",
    "seconds", "priceE6" (1e6 = $1 per USDTz), "usd8" (8-dp USD per ETH) or "units6" (6-dp
    stablecoin); ``decimals``: how the deal spec writes it (a Decimal of that many decimals; None:
    an integer in the chain's unit). ``higher_is_tighter``: which way a change tightens (None: not
    ordered, e.g. the bucket split must be equal). ``limit`` / ``floor``: ParamTable's hard limit and
    the smallest value a deal may have."""

    name: str
    key: str
    unit: str
    param: Param | None = None
    higher_is_tighter: bool | None = None
    limit: int | None = None
    floor: int = 0
    decimals: int | None = None

    def to_chain(self, value: Any) -> Any:
        """A deal-spec value (Decimal for priced fields) in the chain's integer unit."""
        if self.decimals is None:
            return value
        return to_units(value, self.decimals)

    def from_chain(self, value: Any) -> Any:
        if self.decimals is None:
            return value
        return from_units(int(value), self.decimals)


PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("maxLtvBps", "max_ltv_bps", "bps", Param.MaxLtvBps, False, MAX_LTV_BPS),
    ParamSpec("maxExposureBps", "max_exposure_bps", "bps", Param.MaxExposureBps, False, MAX_EXPOSURE_BPS),
    ParamSpec("coreBps", "buckets.core", "bps"),
    ParamSpec("workingBps", "buckets.working", "bps"),
    ParamSpec("opportunisticBps", "buckets.opportunistic", "bps"),
    ParamSpec("rungs", "rungs", "units6", None, False),  # each rung: smaller is tighter
    ParamSpec("maxDeskFeeBps", "max_desk_fee_bps", "bps", Param.MaxDeskFeeBps, False, MAX_FEE_BPS),
    ParamSpec("oracleMaxAge", "oracle_max_age", "seconds", Param.OracleMaxAge, False, UINT32_MAX, 1),
    ParamSpec("minDiscountBps", "min_discount_bps", "bps", Param.MinDiscountBps, True, 9999),
    ParamSpec("maxSlippageBps", "max_slippage_bps", "bps", Param.MaxSlippageBps, False, MAX_FEE_BPS),
    ParamSpec("sellFloorPrice", "sell_floor_price", "priceE6", Param.SellFloorPrice, True, 10**6, 1, STABLE_DECIMALS),
    ParamSpec("ethFloorPrice", "eth_floor_price", "usd8", Param.EthFloorPrice, True, MAX_PRICE, 1, USD_DECIMALS),
    ParamSpec("maxOperatorLossBps", "max_operator_loss_bps", "bps", Param.MaxOperatorLossBps, False, MAX_FEE_BPS),
    ParamSpec("twapWindow", "twap_window", "seconds", Param.TwapWindow, True, UINT16_MAX, 1),
    ParamSpec("loosenDelay", "loosen_delay", "seconds", Param.LoosenDelay, True, MAX_LOOSEN_DELAY, MIN_LOOSEN_DELAY),
    ParamSpec("minTranche", "min_tranche", "units6", None, True, None, 1),
)

#: IDealVault.RiskParams, in struct order.
RISK_PARAMS_FIELDS: tuple[str, ...] = tuple(p.name for p in PARAMS)
BY_NAME: dict[str, ParamSpec] = {p.name: p for p in PARAMS}
BY_KEY: dict[str, ParamSpec] = {p.key: p for p in PARAMS}
BY_PARAM: dict[Param, ParamSpec] = {p.param: p for p in PARAMS if p.param is not None}


def is_tighter(name: str, value: Any, than: Any) -> bool:
    """Whether ``value`` is tighter than or as tight as ``than`` for the parameter ``name``
    (element-wise for the rungs; equal for the unordered bucket split)."""
    spec = BY_NAME[name]
    if name == "rungs":
        return all(int(a) <= int(b) for a, b in zip(value, than, strict=True))
    if spec.higher_is_tighter is None:
        return bool(value == than)
    return bool(value >= than) if spec.higher_is_tighter else bool(value <= than)


def tighter_word(name: str) -> str:
    """'<=' or '>=' (how a value must compare to be as tight), for messages."""
    spec = BY_NAME[name]
    if spec.higher_is_tighter is None:
        return "=="
    return ">=" if spec.higher_is_tighter else "<="


def spec_decimal(name: str, value: int) -> Decimal | int:
    """A chain value as the deal spec writes it."""
    return BY_NAME[name].from_chain(value)  # type: ignore[no-any-return]
