"""Give any account any amount of any ERC-20, by writing its balance slot.

This works the same on the local mirror and on a fork of the real Chain 138, where nobody can
mint. How the slot is found, with no knowledge of the token's layout:

1. ``eth_createAccessList`` on ``balanceOf(account)`` lists the storage slots the call reads
   in the token's own storage (for a proxy that is the proxy's storage, for an ERC-7201
   namespaced layout the hashed slot: no layout guessing needed);
2. each candidate gets a probe value with ``anvil_setStorageAt``; if ``balanceOf`` then returns
   the probe, that is the slot, otherwise the slot is restored and the next one tried.

Found slots are cached per (token, code hash, account), and when the slot is an entry of a
plain Solidity mapping, its base slot per (token, code hash), so other accounts of that token
skip discovery. Every write is read back through ``balanceOf``, so a stale entry (another
contract at the same address after a snapshot revert) falls back to discovery. Bits of the slot that are not the balance (FiatToken V2_2 keeps the
blacklist flag in bit 255) are preserved. If ``totalSupply()`` is a plain storage slot it is
raised by the same amount; for WETH9 and WETH10 the token's ETH balance is raised instead, so
the funded WETH can be unwrapped.
"""

from __future__ import annotations

from eth_typing import ChecksumAddress, HexStr
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import Web3

from dealvault import chain138
from dealvault.kit.errors import KitError
from dealvault.kit.evm import get_storage, rpc, set_balance, set_storage

__all__ = [
    "WRAPPED_ETH", "FundingError", "balance_of", "clear_cache", "find_balance_slot", "fund", "fund_eth", "set_token_balance",
]

# Tokens whose supply is backed 1:1 by the ETH they hold (withdraw pays out of that balance).
WRAPPED_ETH = frozenset(to_checksum_address(a) for a in (chain138.WETH9, chain138.WETH10))

_BALANCE_OF = keccak(text="balanceOf(address)")[:4]
_TOTAL_SUPPLY = keccak(text="totalSupply()")[:4]
_SYMBOL = keccak(text="symbol()")[:4]
_U256 = (1 << 256) - 1
_TOP_BIT = 1 << 255
# A value no balance holds by chance; 80 bits, so it also fits balances packed into the low
# bits of a slot (uint96, uint128) next to other fields.
_PROBE = 0xD5A1_7FE5_0000_0000_1357

# (token, code hash, account) -> balance slot; (token, code hash) -> totalSupply slot or None.
_balance_slots: dict[tuple[str, bytes, str], int] = {}
# (token, code hash) -> base slot of a plain Solidity balance mapping, when it is one.
_mapping_bases: dict[tuple[str, bytes], int] = {}
_supply_slots: dict[tuple[str, bytes], int | None] = {}


class FundingError(KitError):
    """No balance slot could be found or written; the message names the token."""


_NAMES = {_BALANCE_OF: "balanceOf(address)", _TOTAL_SUPPLY: "totalSupply()"}


def _call_uint(w3: Web3, token: ChecksumAddress, data: bytes) -> int:
    try:
        raw = w3.eth.call({"to": token, "data": HexStr("0x" + data.hex())})
    except Exception as exc:
        what = _NAMES.get(data[:4], "0x" + data[:4].hex())
        raise FundingError(f"{_describe(w3, token)}: {what} reverted ({exc}); is it an ERC-20?") from exc
    if len(raw) < 32:
        what = _NAMES.get(data[:4], "0x" + data[:4].hex())
        raise FundingError(f"{_describe(w3, token)}: {what} returned {len(raw)} bytes, not a uint256; is it an ERC-20?")
    return int.from_bytes(raw[:32], "big")


def balance_of(w3: Web3, token: str, account: str) -> int:
    """``token.balanceOf(account)``, read with a bare eth_call."""
    holder = to_checksum_address(account)
    return _call_uint(w3, to_checksum_address(token), _BALANCE_OF + bytes(12) + bytes.fromhex(holder[2:]))


def _describe(w3: Web3, token: ChecksumAddress) -> str:
    """``"cUSDT (0x93E6...)"`` when symbol() answers, else just the address."""
    try:
        raw = w3.eth.call({"to": token, "data": HexStr("0x" + _SYMBOL.hex())})
        if len(raw) >= 96:
            n = int.from_bytes(raw[32:64], "big")
            sym = raw[64 : 64 + n].decode("utf-8", "replace")
        else:  # bytes32 symbols (MKR style)
            sym = raw[:32].strip(b"\0").decode("utf-8", "replace")
        if sym and sym.isprintable() and len(sym) <= 32:
            return f"{sym} ({token})"
        return f"token {token}"
    except Exception:
        return f"token {token}"


def _code_hash(w3: Web3, token: ChecksumAddress) -> bytes:
    code = w3.eth.get_code(token)
    if not code:
        raise FundingError(f"{token} has no code: not a token on this chain")
    return keccak(code)


def _accessed_slots(w3: Web3, token: ChecksumAddress, data: bytes) -> list[int]:
    """Storage slots of ``token`` itself read by a call to it with ``data``, in access order."""
    res = rpc(w3, "eth_createAccessList", [{"to": token, "data": "0x" + data.hex()}, "latest"])
    slots: list[int] = []
    for entry in res.get("accessList") or []:
        if to_checksum_address(entry["address"]) == token:
            slots += [int(k, 16) for k in entry.get("storageKeys") or []]
    return slots


def _write_balance(w3: Web3, token: ChecksumAddress, account: str, slot: int, new_balance: int) -> bool:
    """Write ``new_balance`` into ``slot`` keeping the slot's non-balance bits; True if it reads back.

    The non-balance bits are those of the raw slot that ``balanceOf`` does not report (for
    FiatToken V2_2 the blacklist flag in bit 255). On a mismatch the slot is restored.
    """
    raw = get_storage(w3, token, slot)
    old_balance = balance_of(w3, token, account)
    flags = raw & ~old_balance & _U256 if raw & old_balance == old_balance else 0
    if new_balance & flags:
        raise FundingError(f"{_describe(w3, token)}: balance {new_balance} would overwrite flag bits {flags:#x} of its slot")
    set_storage(w3, token, slot, new_balance | flags)
    if balance_of(w3, token, account) == new_balance:
        return True
    set_storage(w3, token, slot, raw)
    return False


def _probe(w3: Web3, token: ChecksumAddress, account: str, slot: int) -> bool:
    """Does ``balanceOf(account)`` report what is written to the low bits of ``slot``? (restored)"""
    raw = get_storage(w3, token, slot)
    # Keep the top bit (FiatToken V2_2's blacklist flag), replace the rest with the probe.
    set_storage(w3, token, slot, (raw & _TOP_BIT) | _PROBE)
    try:
        return balance_of(w3, token, account) == _PROBE
    except Exception:
        return False
    finally:
        set_storage(w3, token, slot, raw)


def _mapping_slot(base: int, account: str) -> int:
    """Solidity's slot of ``mapping(address => ...)`` at ``base``, entry ``account``."""
    return int.from_bytes(keccak(bytes(12) + bytes.fromhex(account[2:]) + base.to_bytes(32, "big")), "big")


def find_balance_slot(w3: Web3, token: str, account: str) -> int:
    """The storage slot of ``token`` that holds ``account``'s balance (probed, then restored).

    Once a slot is found, if it is a Solidity mapping entry at a small base slot (< 256) the
    base is cached for the token, so other accounts need no access-list discovery.
    """
    token, account = to_checksum_address(token), to_checksum_address(account)
    code_hash = _code_hash(w3, token)
    key = (token, code_hash, account)
    if key in _balance_slots:
        return _balance_slots[key]
    base = _mapping_bases.get((token, code_hash))
    if base is not None:
        slot = _mapping_slot(base, account)
        if _probe(w3, token, account, slot):
            _balance_slots[key] = slot
            return slot
        _mapping_bases.pop((token, code_hash), None)
    data = _BALANCE_OF + bytes(12) + bytes.fromhex(account[2:])
    candidates = _accessed_slots(w3, token, data)
    # Mapping entries are hashes; try them before small fixed slots (decimals, paused, owner...).
    candidates.sort(key=lambda s: s < 2**64)
    for slot in dict.fromkeys(candidates):
        if _probe(w3, token, account, slot):
            _balance_slots[key] = slot
            for b in range(256):
                if _mapping_slot(b, account) == slot:
                    _mapping_bases[(token, code_hash)] = b
                    break
            return slot
    raise FundingError(
        f"{_describe(w3, token)}: no storage slot holds the balance of {account} "
        f"(balanceOf read {len(candidates)} slot(s) of the token, none took a probe value)"
    )


def _supply_slot(w3: Web3, token: ChecksumAddress, code_hash: bytes) -> int | None:
    """A plain storage slot that ``totalSupply()`` returns verbatim, or None."""
    key = (token, code_hash)
    if key in _supply_slots:
        return _supply_slots[key]
    found = None
    try:
        supply = _call_uint(w3, token, _TOTAL_SUPPLY)
        for slot in dict.fromkeys(_accessed_slots(w3, token, _TOTAL_SUPPLY)):
            raw = get_storage(w3, token, slot)
            if raw != supply:
                continue
            set_storage(w3, token, slot, raw ^ 1)
            hit = _call_uint(w3, token, _TOTAL_SUPPLY) == raw ^ 1
            set_storage(w3, token, slot, raw)
            if hit:
                found = slot
                break
    except Exception:  # no totalSupply(), or a computed one: leave the supply alone
        found = None
    _supply_slots[key] = found
    return found


def set_token_balance(w3: Web3, token: str, account: str, balance: int) -> None:
    """Make ``balanceOf(account)`` exactly ``balance`` (supply and ETH backing follow the change)."""
    token, account = to_checksum_address(token), to_checksum_address(account)
    if balance < 0:
        raise ValueError(f"negative balance {balance}")
    code_hash = _code_hash(w3, token)
    old = balance_of(w3, token, account)
    delta = balance - old
    slot = find_balance_slot(w3, token, account)
    if not _write_balance(w3, token, account, slot, balance):
        # A stale cache entry: find the slot again once.
        _balance_slots.pop((token, code_hash, account), None)
        _mapping_bases.pop((token, code_hash), None)
        slot = find_balance_slot(w3, token, account)
        if not _write_balance(w3, token, account, slot, balance):
            raise FundingError(f"{_describe(w3, token)}: writing slot {slot:#x} did not set the balance of {account}")
    if delta == 0:
        return
    if token in WRAPPED_ETH:
        set_balance(w3, token, max(w3.eth.get_balance(token) + delta, 0))
        return
    supply_slot = _supply_slot(w3, token, code_hash)
    if supply_slot is not None:
        supply = get_storage(w3, token, supply_slot)
        set_storage(w3, token, supply_slot, max(supply + delta, 0))


def fund(w3: Web3, token: str, account: str, amount: int) -> int:
    """Give ``account`` ``amount`` more of ``token`` (base units); return its new balance.

    For WETH9 and WETH10 the token's ETH balance rises by ``amount`` too, so the funded WETH
    unwraps; for tokens with a plain ``totalSupply`` slot the supply rises by ``amount``.
    """
    if amount < 0:
        raise ValueError(f"fund() adds tokens; got a negative amount {amount}")
    _code_hash(w3, to_checksum_address(token))  # a clear error for an address without code
    new = balance_of(w3, token, account) + amount
    set_token_balance(w3, token, account, new)
    return new


def fund_eth(w3: Web3, account: str, wei: int) -> int:
    """Give ``account`` ``wei`` more ETH; return its new balance."""
    account = to_checksum_address(account)
    new = w3.eth.get_balance(account) + wei
    set_balance(w3, account, new)
    return new


def clear_cache() -> None:
    """Forget discovered slots (they are re-verified on use anyway)."""
    _balance_slots.clear()
    _mapping_bases.clear()
    _supply_slots.clear()
