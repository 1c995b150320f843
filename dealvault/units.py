"""Units, written once: token decimals, basis points, Aave's ray, and exact conversions between
whole amounts (``Decimal``) and the chain's integers. Never a float."""

from __future__ import annotations

from decimal import Decimal

__all__ = [
    "BPS", "ETH_DECIMALS", "STABLE_DECIMALS", "USD_DECIMALS", "WAD_DECIMALS", "RAY", "WEI", "E6", "E8", "STABLE_TO_E26",
    "to_units", "from_units", "amount_text",
]

BPS = 10_000
ETH_DECIMALS = 18  # wei
STABLE_DECIMALS = 6  # cUSDT, cUSDC, USDTz; also priceE6 (1e6 = $1 per USDTz)
USD_DECIMALS = 8  # the ETH/USD feed; ethFloorPrice; the vault's USD values
WAD_DECIMALS = 18  # Aave's health factor (1e18 = 1.0)
WEI = 10**ETH_DECIMALS
E6 = 10**STABLE_DECIMALS
E8 = 10**USD_DECIMALS
STABLE_TO_E26 = 10**20  # 6-dp units -> USD x 1e26 (wei x 8-dp price), RiskLib's E26
RAY = 10**27


def to_units(amount: Decimal | int | str, decimals: int) -> int:
    """``amount`` whole units as an integer of ``decimals`` decimals, exactly (from the digits:
    no Decimal context, no rounding, whatever the magnitude); ValueError if it has more decimals
    than that (or is not finite)."""
    d = amount if isinstance(amount, Decimal) else Decimal(amount)
    sign, digits, exponent = d.as_tuple()
    if not isinstance(exponent, int):
        raise ValueError(f"{d} is not finite")
    n = int("".join(map(str, digits)) or "0")
    shift = exponent + decimals
    if shift >= 0:
        n *= 10**shift
    else:
        divisor: int = 10**-shift
        n, rest = divmod(n, divisor)
        if rest:
            raise ValueError(f"{d} has more than {decimals} decimals")
    return -n if sign else n


def from_units(value: int, decimals: int) -> Decimal:
    """An integer of ``decimals`` decimals as whole units, exactly (``Decimal.scaleb`` would
    round to the context's 28 digits)."""
    sign, digits, exponent = Decimal(int(value)).as_tuple()
    return Decimal((sign, digits, int(exponent) - decimals))


def amount_text(value: int, decimals: int, *, grouped: bool = True) -> str:
    """An integer amount of ``decimals`` decimals for people: exact, thousands separated, no
    trailing zeros (``1,500``, ``0.25``, ``0``; never ``0E-18``). ``grouped=False``: no
    separators, as a command line argument (``1500.5``)."""
    s = f"{from_units(value, decimals):,f}" if grouped else f"{from_units(value, decimals):f}"
    return s.rstrip("0").rstrip(".") if "." in s else s
