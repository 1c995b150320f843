"""A Tether-style stablecoin (our ``contracts/test/TetherStyleToken.sol``) for the mirror's cUSDT.

The token behaves as Tether's deployed TetherToken: ``transfer`` / ``transferFrom`` / ``approve``
return nothing, an approve from a non-zero allowance to another non-zero value reverts, and one
``owner`` pauses transfers and keeps a blacklist (a blacklisted account cannot send). It has no
constructor state: :func:`place_tether_token` writes its runtime code at a canonical address with
``anvil_setCode`` and calls ``initialize`` there, the way :func:`dealvault.kit.fiattoken.place_fiat_token`
puts Circle's FiatToken at cUSDT and cUSDC. The owner is a named kit account whose key nobody
holds; tests act for it by impersonation (through :mod:`dealvault.kit.features`, which finds the
owner on chain, so the same helpers work on a fork).
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.contract import Contract

from dealvault.artifacts import own
from dealvault.kit.errors import KitError
from dealvault.kit.evm import at, has_code, impersonating, role_address, send, set_code

__all__ = ["ARTIFACT", "TetherToken", "TetherTokenError", "place_tether_token"]

ARTIFACT = "TetherStyleToken"
# Who sends ``initialize``: never the owner (anyone may initialize an uninitialized token).
DEPLOYER_LABEL = "tether.deployer"


class TetherTokenError(KitError):
    """A Tether-style token could not be placed; the message names the address."""


@dataclass(frozen=True)
class TetherToken:
    """A placed Tether-style token: its address, metadata and owner."""

    address: str
    name: str
    symbol: str
    decimals: int
    owner: str

    def contract(self, w3: Web3) -> Contract:
        """The token bound at its address (TetherStyleToken's ABI)."""
        return at(w3, own(ARTIFACT), self.address)


def place_tether_token(w3: Web3, address: str, name: str, symbol: str, owner: str, *, decimals: int = 6) -> TetherToken:
    """Put a Tether-style token at ``address`` and initialize it (``owner`` is an address or a
    kit role label). Refuses an address that already has code."""
    address = to_checksum_address(address)
    if has_code(w3, address):
        raise TetherTokenError(f"{symbol}: {address} already has code; refusing to overwrite it")
    code = own(ARTIFACT).deployed_bytecode
    if not code or code in ("0x", "0x0"):
        raise TetherTokenError(f"{ARTIFACT} has no runtime bytecode in the build output; run `ape compile`")
    who = to_checksum_address(owner) if Web3.is_address(owner) else role_address(owner)
    set_code(w3, address, code)
    token = TetherToken(address, name, symbol, decimals, who)
    with impersonating(w3, role_address(DEPLOYER_LABEL)) as deployer:
        send(w3, token.contract(w3).functions.initialize(name, symbol, decimals, who), deployer)
    return token
