"""What a stablecoin supports, found on chain by ``eth_call`` probes (nothing is sent).

:func:`token_features` asks the token at an address, with read-only calls:

* a **FiatToken-style blacklist** (Circle): ``blacklister()`` names a non-zero account and
  ``isBlacklisted(address)`` answers; the blacklister calls ``blacklist`` / ``unBlacklist``, and a
  blacklisted account can neither send nor receive;
* a **Tether-style blacklist**: ``isBlackListed(address)`` answers and ``owner()`` names a
  non-zero account; the owner calls ``addBlackList`` / ``removeBlackList``, and a blacklisted
  account cannot send (it still receives);
* a **pause**: ``paused()`` answers and ``pauser()`` (FiatToken) or else ``owner()`` (Tether)
  names the account that calls ``pause()`` / ``unpause()``;
* whether ``approve`` **returns a bool** (an ``approve(spender, 0)`` from a fresh account: 32
  bytes of true, or nothing as USDT does).

Every probe and what it gave is kept in :attr:`TokenFeatures.probes`, so a test that needs a
missing mechanism can say exactly what was asked (:meth:`TokenFeatures.missing`). The helpers
below (:func:`blacklist_account`, :func:`pause_token`, ...) act through whichever mechanism was
found, impersonating the admin read from the token itself, so they work the same on the local
mirror and on a fork of the real chain.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_abi.abi import decode, encode
from eth_typing import HexStr
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import Web3

from dealvault.kit.errors import KitError
from dealvault.kit.evm import act_as, contract_at, role_address

__all__ = [
    "FIATTOKEN", "TETHER", "FeatureMissingError", "TokenFeatures", "blacklist_account", "is_blacklisted", "is_paused",
    "pause_token", "token_features", "unblacklist_account", "unpause_token",
]

FIATTOKEN = "fiattoken"  # Circle's FiatToken: blacklister() + isBlacklisted / blacklist / unBlacklist, pauser()
TETHER = "tether"  # Tether's TetherToken: owner() + isBlackListed / addBlackList / removeBlackList, pause by owner

ZERO = "0x0000000000000000000000000000000000000000"
# The account the approve probe is sent from (never holds anything) and the spender it names.
PROBE_HOLDER = role_address("features.probe.holder")
PROBE_SPENDER = role_address("features.probe.spender")

# (getter, setter on, setter off) by mechanism
_BLACKLIST_FUNCTIONS = {FIATTOKEN: ("isBlacklisted", "blacklist", "unBlacklist"),
                        TETHER: ("isBlackListed", "addBlackList", "removeBlackList")}


class FeatureMissingError(KitError):
    """The token has no such mechanism; the message names the token and what was probed."""


def _fn(name: str, inputs: list[str], outputs: list[str], mutability: str = "nonpayable") -> dict[str, object]:
    return {"type": "function", "name": name, "stateMutability": mutability,
            "inputs": [{"type": t, "name": f"a{i}"} for i, t in enumerate(inputs)],
            "outputs": [{"type": t, "name": ""} for t in outputs]}


_ADMIN_ABI = [
    _fn("blacklist", ["address"], []), _fn("unBlacklist", ["address"], []),
    _fn("addBlackList", ["address"], []), _fn("removeBlackList", ["address"], []),
    _fn("pause", [], []), _fn("unpause", [], []),
    _fn("isBlacklisted", ["address"], ["bool"], "view"), _fn("isBlackListed", ["address"], ["bool"], "view"),
    _fn("paused", [], ["bool"], "view"),
]


@dataclass(frozen=True)
class TokenFeatures:
    """What :func:`token_features` found at ``address``.

    ``blacklist`` and ``pause`` are :data:`FIATTOKEN`, :data:`TETHER` or None (not found);
    ``blacklist_admin`` / ``pause_admin`` the account that may act (read from the token);
    ``returns_bool`` True / False, or None when the approve probe reverted; ``probes`` every call
    made and what it gave (``"blacklister() -> 0x..."``, ``"isBlackListed(address) -> reverted"``).
    """

    address: str
    symbol: str
    blacklist: str | None
    blacklist_admin: str | None
    pause: str | None
    pause_admin: str | None
    returns_bool: bool | None
    probes: tuple[str, ...]

    @property
    def where(self) -> str:
        """``"cUSDT at 0x93E6..."`` (the address alone when the token has no symbol)."""
        return f"{self.symbol} at {self.address}" if self.symbol else f"the token at {self.address}"

    def missing(self, what: str) -> str:
        """``"<token> at <address> has no <what>: <every probe and its answer>"``."""
        return f"{self.where} has no {what}: probed " + "; ".join(self.probes)

    def require(self, what: str) -> None:
        """Raise :class:`FeatureMissingError` unless ``what`` ("blacklist" or "pause") was found."""
        if getattr(self, what) is None:
            raise FeatureMissingError(self.missing(what))


def _call(w3: Web3, address: str, signature: str, args: tuple[object, ...] = (), sender: str | None = None) -> bytes | None:
    """Raw eth_call of ``signature`` with ``args``; None if it reverts."""
    types = signature[signature.index("(") + 1 : -1]
    data = keccak(text=signature)[:4] + (encode(types.split(","), list(args)) if types else b"")
    tx: dict[str, str] = {"to": address, "data": HexStr("0x" + data.hex())}
    if sender is not None:
        tx["from"] = sender
    try:
        return bytes(w3.eth.call(tx))  # type: ignore[arg-type]
    except Exception:
        return None


class _Prober:
    def __init__(self, w3: Web3, address: str) -> None:
        self.w3, self.address = w3, address
        self.probes: list[str] = []

    def address_of(self, getter: str) -> str | None:
        """``getter()`` as an address; None (and the reason in the probes) if it is missing or zero."""
        raw = _call(self.w3, self.address, f"{getter}()")
        if raw is None or len(raw) < 32:
            self.probes.append(f"{getter}() -> {'reverted' if raw is None else 'no answer'}")
            return None
        who = to_checksum_address(raw[12:32])
        self.probes.append(f"{getter}() -> {who}")
        return None if who == ZERO else who

    def answers_bool(self, signature: str, args: tuple[object, ...] = ()) -> bool:
        """Does the view answer with a 32-byte word (a bool)?"""
        raw = _call(self.w3, self.address, signature, args)
        if raw is None:
            answer = "reverted"
        elif len(raw) < 32:
            answer = "no answer"
        else:
            answer = str(int.from_bytes(raw[:32], "big") != 0).lower()
        self.probes.append(f"{signature} -> {answer}")
        return answer not in ("reverted", "no answer")


def _symbol(w3: Web3, address: str) -> str:
    raw = _call(w3, address, "symbol()")
    try:
        return str(decode(["string"], raw)[0]) if raw else ""
    except Exception:
        return ""


def token_features(w3: Web3, address: str) -> TokenFeatures:
    """Probe the token at ``address`` (eth_call only) for a blacklist, a pause and bool returns."""
    address = to_checksum_address(address)
    p = _Prober(w3, address)
    blacklist: str | None = None
    blacklist_admin = p.address_of("blacklister")
    if blacklist_admin is not None and p.answers_bool("isBlacklisted(address)", (ZERO,)):
        blacklist = FIATTOKEN
    else:
        blacklist_admin = None
    pauser = p.address_of("pauser")
    owner = p.address_of("owner")
    if blacklist is None and owner is not None and p.answers_bool("isBlackListed(address)", (ZERO,)):
        blacklist, blacklist_admin = TETHER, owner
    pause: str | None = None
    pause_admin: str | None = None
    if (pauser or owner) and p.answers_bool("paused()"):
        pause, pause_admin = (FIATTOKEN, pauser) if pauser else (TETHER, owner)
    raw = _call(w3, address, "approve(address,uint256)", (PROBE_SPENDER, 0), sender=PROBE_HOLDER)
    returns_bool = None if raw is None else len(raw) >= 32
    p.probes.append(f"approve(address,uint256) -> {'reverted' if raw is None else f'{len(raw)} bytes'}")
    return TokenFeatures(address, _symbol(w3, address), blacklist, blacklist_admin, pause, pause_admin, returns_bool,
                         tuple(p.probes))


# --- acting through what was found ------------------------------------------------------------------


def _blacklist_fns(features: TokenFeatures) -> tuple[str, str, str, str]:
    features.require("blacklist")
    assert features.blacklist is not None and features.blacklist_admin is not None  # require() checked
    getter, on, off = _BLACKLIST_FUNCTIONS[features.blacklist]
    return getter, on, off, features.blacklist_admin


def blacklist_account(w3: Web3, features: TokenFeatures, account: str) -> None:
    """Blacklist ``account`` as the token's own blacklister (FiatToken) or owner (Tether)."""
    _getter, on, _off, admin = _blacklist_fns(features)
    c = contract_at(w3, features.address, _ADMIN_ABI)
    act_as(w3, admin, getattr(c.functions, on)(to_checksum_address(account)))


def unblacklist_account(w3: Web3, features: TokenFeatures, account: str) -> None:
    """Take ``account`` off the blacklist, through the mechanism found."""
    _getter, _on, off, admin = _blacklist_fns(features)
    c = contract_at(w3, features.address, _ADMIN_ABI)
    act_as(w3, admin, getattr(c.functions, off)(to_checksum_address(account)))


def is_blacklisted(w3: Web3, features: TokenFeatures, account: str) -> bool:
    """Whether ``account`` is on the token's blacklist."""
    getter, _on, _off, _admin = _blacklist_fns(features)
    c = contract_at(w3, features.address, _ADMIN_ABI)
    return bool(getattr(c.functions, getter)(to_checksum_address(account)).call())


def _pause(w3: Web3, features: TokenFeatures, fn: str) -> None:
    features.require("pause")
    assert features.pause_admin is not None  # require() checked
    act_as(w3, features.pause_admin, getattr(contract_at(w3, features.address, _ADMIN_ABI).functions, fn)())


def pause_token(w3: Web3, features: TokenFeatures) -> None:
    """Pause the token as its pauser (FiatToken) or owner (Tether)."""
    _pause(w3, features, "pause")


def unpause_token(w3: Web3, features: TokenFeatures) -> None:
    """Unpause the token, through the mechanism found."""
    _pause(w3, features, "unpause")


def is_paused(w3: Web3, features: TokenFeatures) -> bool:
    """Whether the token is paused now."""
    features.require("pause")
    return bool(contract_at(w3, features.address, _ADMIN_ABI).functions.paused().call())
