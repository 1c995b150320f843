"""Before the position step: the Aave V3 pool's limits for this deal, read (two round trips) and
checked off-chain, so that a cap, a frozen reserve or a short pool is named with its numbers
before anything is sent, instead of a borrow reverting with a bare code after the collateral was
supplied (issue 13).

Checked: both reserves active, not frozen, not paused; the stablecoin borrowable; the wrapper's
supply cap and the stablecoin's borrow cap against what is there plus the deal's amounts; the
stablecoin the pool can lend; the pool's LTV for the wrapper against the deal's target LTV. Said,
not refused: a wrapper the pool lets anyone borrow (its liquidity can run dry before the close
withdraws the collateral).

The reserve configuration is Aave V3's ``ReserveConfigurationMap`` bit layout (v3.0.x, the
deployed kind: ``ReserveConfiguration.sol``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from dealvault.run.chain import RpcFailure, batch, eth_call, rpc_guard
from dealvault.units import BPS, ETH_DECIMALS, STABLE_TO_E26, amount_text

if TYPE_CHECKING:
    from web3 import Web3

__all__ = ["Reserve", "read_reserves", "reserve_call", "decode_reserves", "pool_problems"]

_GET_RESERVE_DATA = keccak(text="getReserveData(address)")[:4]
_TOTAL_SUPPLY = keccak(text="totalSupply()")[:4]
_BALANCE_OF = keccak(text="balanceOf(address)")[:4]
# DataTypes.ReserveData (v3.0.x): configuration, 5 x uint128 indexes and rates, uint40, uint16, 4 addresses, 3 x uint128
_RESERVE_DATA = ["uint256", "uint128", "uint128", "uint128", "uint128", "uint128", "uint40", "uint16",
                 "address", "address", "address", "address", "uint128", "uint128", "uint128"]
_CAP_MASK = (1 << 36) - 1


@dataclass(frozen=True)
class Reserve:
    """One Aave reserve's configuration and token addresses."""

    asset: str
    config: int
    a_token: str
    stable_debt: str
    variable_debt: str

    @property
    def ltv_bps(self) -> int:
        return self.config & 0xFFFF

    @property
    def decimals(self) -> int:
        return (self.config >> 48) & 0xFF

    @property
    def active(self) -> bool:
        return bool(self.config >> 56 & 1)

    @property
    def frozen(self) -> bool:
        return bool(self.config >> 57 & 1)

    @property
    def borrowing_enabled(self) -> bool:
        return bool(self.config >> 58 & 1)

    @property
    def paused(self) -> bool:
        return bool(self.config >> 60 & 1)

    @property
    def borrow_cap(self) -> int:
        """Whole tokens; 0 = none."""
        return self.config >> 80 & _CAP_MASK

    @property
    def supply_cap(self) -> int:
        """Whole tokens; 0 = none."""
        return self.config >> 116 & _CAP_MASK


def _answers(raw: Sequence[object], what: str) -> list[bytes]:
    out = []
    for a in raw:
        if isinstance(a, RpcFailure) or not isinstance(a, str):
            raise ValueError(f"{what}: the pool did not answer ({a})")
        out.append(bytes.fromhex(a[2:]))
    return out


def reserve_call(pool: str, asset: str) -> tuple[str, list[Any]]:
    """The raw JSON-RPC call of ``pool.getReserveData(asset)`` (to ride in another batch)."""
    return eth_call(pool, _GET_RESERVE_DATA + abi_encode(["address"], [asset]))


def decode_reserves(assets: Sequence[str], answers: Sequence[object]) -> list[Reserve]:
    """The :class:`Reserve` of each asset from its ``getReserveData`` answer."""
    out = []
    for asset, data in zip(assets, _answers(answers, "getReserveData")):
        try:
            d = abi_decode(_RESERVE_DATA, data)
        except Exception as exc:  # no Aave pool there: not decodable
            raise ValueError(f"getReserveData({asset}): not an Aave V3 pool's answer ({type(exc).__name__})") from None
        out.append(Reserve(to_checksum_address(asset), int(d[0]), to_checksum_address(d[8]), to_checksum_address(d[9]),
                           to_checksum_address(d[10])))
    return out


def read_reserves(w3: Web3, pool: str, assets: Sequence[str]) -> list[Reserve]:
    """``pool.getReserveData(asset)`` for each asset, in one batch."""
    with rpc_guard("getReserveData"):
        raw = batch(w3, [reserve_call(pool, a) for a in assets])
    return decode_reserves(assets, raw)


def pool_problems(w3: Web3, pool: str, *, wrapper: str, wrapper_name: str, stable: str, stable_name: str,
                  supply_wei: int, eth_price_e8: int, target_ltv_bps: int,
                  reserves: Sequence[Reserve] | None = None) -> tuple[list[str], list[str]]:
    """(problems, notes) for supplying ``supply_wei`` of ``wrapper`` and borrowing ``stable`` up to
    ``target_ltv_bps`` of it at ``eth_price_e8``; each problem names the limit and the numbers.
    ``reserves``: the two reserves if already read (:func:`reserve_call` in another batch)."""
    coll, debt = reserves if reserves is not None else read_reserves(w3, pool, [wrapper, stable])
    ask = supply_wei * eth_price_e8 * target_ltv_bps // (STABLE_TO_E26 * BPS)  # as the borrow step computes it
    calls = [eth_call(coll.a_token, _TOTAL_SUPPLY), eth_call(debt.variable_debt, _TOTAL_SUPPLY), eth_call(debt.stable_debt, _TOTAL_SUPPLY),
             eth_call(stable, _BALANCE_OF + abi_encode(["address"], [debt.a_token]))]
    with rpc_guard("the pool's totals"):
        raw = batch(w3, calls)
    supplied, var_debt, stable_debt, liquidity = (int.from_bytes(b[:32], "big") for b in _answers(raw, "totals"))
    borrowed = var_debt + stable_debt

    def coll_units(v: int) -> str:
        return f"{amount_text(v, ETH_DECIMALS)} {wrapper_name}"

    def debt_units(v: int) -> str:
        return f"{amount_text(v, debt.decimals)} {stable_name}"

    problems: list[str] = []
    for r, name, use in ((coll, wrapper_name, "supply"), (debt, stable_name, "borrow")):
        for bad, what in ((not r.active, "is not active"), (r.frozen, "is frozen"), (r.paused, "is paused")):
            if bad:
                problems.append(f"Aave reserve {name} {what}: the deal's {use} would revert")
    if not debt.borrowing_enabled:
        problems.append(f"Aave reserve {stable_name}: borrowing is disabled")
    if coll.supply_cap and supplied + supply_wei > coll.supply_cap * 10**coll.decimals:
        problems.append(f"Aave supply cap of {wrapper_name}: {coll.supply_cap:,} {wrapper_name}, {coll_units(supplied)} supplied, "
                        f"the deal supplies {coll_units(supply_wei)}")
    if debt.borrow_cap and borrowed + ask > debt.borrow_cap * 10**debt.decimals:
        problems.append(f"Aave borrow cap of {stable_name}: {debt.borrow_cap:,} {stable_name}, {debt_units(borrowed)} borrowed, "
                        f"the deal borrows {debt_units(ask)}")
    if liquidity < ask:
        problems.append(f"Aave has {debt_units(liquidity)} to lend, the deal borrows {debt_units(ask)}")
    if coll.ltv_bps < target_ltv_bps:
        problems.append(f"Aave's LTV for {wrapper_name} is {coll.ltv_bps} bps, below the deal's target {target_ltv_bps} bps: "
                        "the borrow would revert (COLLATERAL_CANNOT_COVER_NEW_BORROW)")
    notes = []
    if coll.borrowing_enabled:
        notes.append(f"Aave lets anyone borrow {wrapper_name}: its liquidity can run dry before the close withdraws the collateral")
    return problems, notes
