"""The Chain 138 market kit: a local chain with what a deal trades on, for tests, the demo and
the benchmarks. Never used by a production deal (nothing in deploy/, run/ or spec/ imports it).

- ``anvil``: start and stop an anvil node (chain id 138, or a fork);
- ``evm``: web3.py helpers over it (send, deploy, impersonate, cheat codes, a pipelined TxBatch);
- ``mirror``: what Chain 138 has, installed at its real addresses (WETH9, WETH10, cUSDT, cUSDC,
  the ETH/USD feed); ``upstream``: the same found on a fork of the real chain;
- ``overlay``: the venues Chain 138 does not publish (Aave V3, Uniswap V2, USDTz, the desk),
  with ``aave`` (the Aave V3 market) and ``fiattoken`` (Circle's FiatToken, for cUSDT/cUSDC/USDTz);
- ``tether``: a Tether-style stablecoin the mirror can put at cUSDT instead of the FiatToken;
- ``features``: what a stablecoin supports (blacklist, pause, bool returns), found by eth_call
  probes, and blacklisting / pausing through whichever mechanism it has;
- ``funding``: any balance of any ERC-20, by writing its storage slot;
- ``errors``: KitError, the root of the kit's errors.

:func:`start_kit` does it in one call: anvil, the mirror, optionally the overlay.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from web3 import Web3

from dealvault.kit.anvil import AnvilNode, start_anvil
from dealvault.kit.errors import KitError

if TYPE_CHECKING:
    from dealvault.kit.mirror import Mirror
    from dealvault.kit.overlay import Overlay

__all__ = ["Kit", "KitError", "address_rows", "start_kit", "vault_config"]

_SYMBOL_ABI = [
    {"name": "symbol", "type": "function", "stateMutability": "view", "inputs": [], "outputs": [{"type": "string"}]},
]


@dataclass
class Kit:
    """A running kit: the anvil node, a web3 on it, the mirror's and the overlay's records."""

    node: AnvilNode
    w3: Web3
    mirror: Mirror
    overlay: Overlay | None
    build_seconds: float

    def stop(self) -> None:
        """Stop the node (everything on it is gone)."""
        self.node.stop()


def start_kit(
    port: int | None = None, *, overlay: bool = True, dump_state: Path | None = None, cusdt_kind: str = "fiattoken",
) -> Kit:
    """Start a Chain 138 mirror on ``port`` (free port if None), with the overlay if asked;
    ``cusdt_kind`` picks the token at cUSDT (see :func:`dealvault.kit.mirror.install_mirror`)."""
    from dealvault.kit.mirror import install_mirror

    node = start_anvil(port, dump_state=dump_state)
    try:
        w3 = node.web3()
        t0 = time.perf_counter()
        mirror = install_mirror(w3, cusdt_kind=cusdt_kind)
        market = None
        if overlay:
            from dealvault.kit.overlay import deploy_overlay

            market = deploy_overlay(w3, mirror)
        return Kit(node, w3, mirror, market, time.perf_counter() - t0)
    except BaseException:
        node.stop()
        raise


def vault_config(mirror: Any, overlay: Any, owner: str, operator: str, guardian: str, risk: Any) -> tuple[Any, ...]:
    """The DealVault constructor's ``Config`` tuple on a kit: the mirror's and the overlay's
    venues in the struct's order, the three roles, and ``risk`` (the RiskParams tuple, in
    IDealVault.RiskParams order). Used by the tests, the fuzzer and the benchmark."""
    return (mirror.weth9, mirror.weth10, mirror.cusdt, mirror.cusdc, overlay.usdtz, overlay.pool,
            overlay.uniswap_router, overlay.desk, mirror.eth_usd_feed, owner, operator, guardian, tuple(risk))


def address_rows(w3: Web3, record: Any, prefix: str = "") -> Iterator[tuple[str, str, str]]:
    """(name, address, symbol-or-blank) for every address field of a kit record and its
    address dicts; nested records (implementation details) are left out."""
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        name = f"{prefix}{f.name}"
        if isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, str) and Web3.is_address(v):
                    yield (f"{name}.{k}", v, _symbol(w3, v))
        elif isinstance(value, str) and Web3.is_address(value):
            yield (name, value, _symbol(w3, value))


def _symbol(w3: Web3, address: str) -> str:
    if not w3.eth.get_code(Web3.to_checksum_address(address)):
        return ""
    try:
        return str(w3.eth.contract(address=Web3.to_checksum_address(address), abi=_SYMBOL_ABI).functions.symbol().call())
    except Exception:
        return ""
