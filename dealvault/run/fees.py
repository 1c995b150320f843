"""What a leg pays for gas: :func:`quote` (from the spec's :class:`~dealvault.spec.GasPolicy` and the
node's latest block) and :func:`bump` (a replacement's fees).

* ``gas: auto`` on a chain whose blocks carry ``baseFeePerGas`` (London and later): EIP-1559,
  ``maxPriorityFeePerGas`` = the node's ``eth_maxPriorityFeePerGas`` (its ``eth_gasPrice`` less the
  base fee where that method is missing) and ``maxFeePerGas`` = 2 x base fee + priority fee, which
  stays includable through six full blocks of base-fee rises (+12.5% each). On a chain without a
  base fee: a legacy ``gasPrice`` = the node's ``eth_gasPrice``. ``max_fee_wei`` (optional) is a
  ceiling on either.
* fixed fees: the spec's caps (``legacy``: type 0 at ``max_fee_wei``).

A replacement (same nonce, same call, or a cancel) must raise every fee field by at least
:data:`BUMP_BPS`: geth and Besu refuse one under +10% ("replacement transaction underpriced"), and
anvil one that is not higher.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dealvault.errors import InputError
from dealvault.units import amount_text

if TYPE_CHECKING:
    from dealvault.spec import GasPolicy

__all__ = ["BUMP_BPS", "FeeError", "Fees", "bump", "quote"]

#: A replacement raises each fee field by at least this much (geth/Besu need +10%; 12.5% leaves room).
BUMP_BPS = 1_250
_GWEI = 9


class FeeError(InputError):
    """The spec's fee ceiling cannot pay the chain's base fee: raise ``gas.max_fee_gwei`` (exit 2, nothing sent)."""


@dataclass(frozen=True)
class Fees:
    """Either ``gas_price`` (type 0) or ``max_fee`` and ``priority`` (EIP-1559, type 2), in wei."""

    gas_price: int | None = None
    max_fee: int | None = None
    priority: int | None = None

    @property
    def legacy(self) -> bool:
        return self.gas_price is not None

    @property
    def per_gas(self) -> int:
        """The most one unit of gas can cost."""
        return int(self.gas_price if self.gas_price is not None else self.max_fee or 0)

    def tx_fields(self) -> dict[str, int]:
        """The web3 transaction fields."""
        if self.gas_price is not None:
            return {"gasPrice": self.gas_price}
        return {"maxFeePerGas": int(self.max_fee or 0), "maxPriorityFeePerGas": int(self.priority or 0)}

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> Fees:
        """The inverse of :meth:`tx_fields` (also what the record keeps per attempt)."""
        if "gasPrice" in fields:
            return cls(gas_price=int(fields["gasPrice"]))
        return cls(max_fee=int(fields["maxFeePerGas"]), priority=int(fields["maxPriorityFeePerGas"]))

    def text(self) -> str:
        if self.gas_price is not None:
            return f"gas price {amount_text(self.gas_price, _GWEI)} gwei"
        return f"max fee {amount_text(int(self.max_fee or 0), _GWEI)} gwei, priority {amount_text(int(self.priority or 0), _GWEI)} gwei"


def quote(policy: GasPolicy, block: Mapping[str, Any], gas_price: int | None, priority: int | None) -> Fees:
    """The fees of a new transaction. ``block``: the latest block (JSON-RPC or web3 form);
    ``gas_price``, ``priority``: the node's ``eth_gasPrice`` and ``eth_maxPriorityFeePerGas``
    (None where not asked or not supported). Raises :class:`FeeError` where a ceiling is below
    the base fee."""
    if not policy.is_auto:
        if policy.legacy:
            return Fees(gas_price=int(policy.max_fee_wei or 0))
        return Fees(max_fee=int(policy.max_fee_wei or 0), priority=int(policy.priority_fee_wei or 0))
    ceiling = policy.max_fee_wei
    base_raw = block.get("baseFeePerGas")
    if base_raw is None:  # no EIP-1559 on this chain: a legacy gas price
        price = int(gas_price or 0)
        return Fees(gas_price=min(price, ceiling) if ceiling is not None else price)
    base = int(base_raw, 16) if isinstance(base_raw, str) else int(base_raw)
    tip = int(priority) if priority is not None else max(int(gas_price or 0) - base, 0)
    max_fee = 2 * base + tip
    if ceiling is not None:
        if ceiling < base:
            raise FeeError(f"gas.max_fee_gwei {amount_text(ceiling, _GWEI)} gwei is below the chain's base fee "
                           f"{amount_text(base, _GWEI)} gwei: no transaction could be mined; raise it; nothing sent")
        max_fee = min(max_fee, ceiling)
        tip = min(tip, max_fee - base)
    return Fees(max_fee=max_fee, priority=tip)


def _raised(v: int) -> int:
    # ceil(v * (1 + BUMP_BPS / 10_000)), and at least v + 1 (a 0 tip must rise too)
    return max(-(-v * (10_000 + BUMP_BPS) // 10_000), v + 1)


def bump(old: Fees, policy: GasPolicy, fresh: Fees) -> Fees | None:
    """A replacement's fees: each field of ``old`` raised by :data:`BUMP_BPS` or to ``fresh``
    (a new :func:`quote`), whichever is higher; None where the policy does not allow that much
    (auto: above its ceiling; fixed: the spec's fees are not that high, until the operator raises
    them). The replacement keeps ``old``'s type."""
    if old.gas_price is not None:
        if not policy.is_auto:  # fixed: the spec's price, if it is enough
            spec_price = int(policy.max_fee_wei or 0)
            return Fees(gas_price=spec_price) if spec_price >= _raised(old.gas_price) else None
        price = max(_raised(old.gas_price), fresh.per_gas)
        return Fees(gas_price=price) if policy.max_fee_wei is None or price <= policy.max_fee_wei else None
    old_max, old_tip = int(old.max_fee or 0), int(old.priority or 0)
    if not policy.is_auto:
        spec = Fees(max_fee=int(policy.max_fee_wei or 0), priority=int(policy.priority_fee_wei or 0))
        ok = int(spec.max_fee or 0) >= _raised(old_max) and int(spec.priority or 0) >= _raised(old_tip)
        return spec if ok else None
    new_tip = max(_raised(old_tip), int(fresh.priority or 0) if not fresh.legacy else 0)
    new_max = max(_raised(old_max), int(fresh.max_fee or 0) if not fresh.legacy else 0, new_tip)
    if policy.max_fee_wei is not None and new_max > policy.max_fee_wei:
        return None
    return Fees(max_fee=new_max, priority=new_tip)
