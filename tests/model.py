"""Independent integer math the tests compute expectations with (never the vault's own code)."""

from __future__ import annotations

from typing import Any

from dealvault.spec import VaultParams

# The vault's RiskParams the tests deploy with: the deal spec's defaults (VaultParams), except a
# $1,000 ETH floor (the owner's deleverage bound when the oracle is not fresh), which the crisis
# tests price against, and a 60 s TWAP window (TWAP_WINDOW: a test advances the chain that long
# between `split` (or `observe`) and a buy), short against the feed's 3600 s max age.
TWAP_WINDOW = 60
DEFAULT_RISK = {**VaultParams().risk_params_dict(), "ethFloorPrice": 1_000 * 10**8, "twapWindow": TWAP_WINDOW}


# The lens (one per chain) the `lens` session fixture deployed (tests/conftest.py sets "address").
LENS: dict[str, str] = {}


def ceil_div(a: int, b: int) -> int:
    """Integer division rounded up (for amounts rounded against the vault)."""
    return -(-a // b)


def uni_out(amount_in: int, r_in: int, r_out: int) -> int:
    """UniswapV2Library.getAmountOut (0.3% fee), exact integers."""
    a = amount_in * 997
    return a * r_out // (r_in * 1000 + a)


def reserves(w3, market: Any, pair: str, token_in: str) -> tuple[int, int]:
    """(reserveIn, reserveOut) of a Uniswap V2 pair for a swap selling ``token_in``."""
    pc = market.pair_contract(w3, pair)
    r0, r1, _ = pc.functions.getReserves().call()
    t0 = pc.functions.token0().call()
    return (r0, r1) if t0.lower() == str(token_in).lower() else (r1, r0)
