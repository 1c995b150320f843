"""Revert data in words: the vault's custom errors (enum arguments by name), Solidity's
Error(string) and Panic(uint256), and Aave V3's numeric error codes by their names (from the
Aave package's own Errors.sol)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import eth_abi
from eth_utils import keccak

from dealvault.vault.abi import abi_type
from dealvault.vault.enums import Leg, OracleStatus, Param, Phase

__all__ = ["revert_data", "decode_error", "explain", "aave_error", "reason_text"]

_ENUMS: dict[str, type] = {"Phase": Phase, "Leg": Leg, "OracleStatus": OracleStatus, "Param": Param}
_PANICS = {0x01: "assert", 0x11: "arithmetic overflow or underflow", 0x12: "division by zero",
           0x21: "bad enum value", 0x32: "array index out of bounds", 0x41: "out of memory"}


@lru_cache(maxsize=1)
def _aave_errors() -> dict[str, str]:
    from dealvault.paths import NODE_MODULES

    path = NODE_MODULES / "@aave" / "core-v3" / "contracts" / "protocol" / "libraries" / "helpers" / "Errors.sol"
    try:
        text = path.read_text()
    except OSError:
        return {}
    return {code: name for name, code in re.findall(r"constant (\w+) = '(\d+)'", text)}


def aave_error(message: str) -> str | None:
    """Aave V3 reverts with a bare number ('50'): its name (BORROW_CAP_EXCEEDED), or None."""
    name = _aave_errors().get(message.strip())
    return f"Aave {name} ({message.strip()})" if name else None


def revert_data(exc: BaseException) -> str | None:
    """The 0x revert data an exception from web3/ape carries, if any."""
    data: Any = None
    for a in getattr(exc, "args", ()):
        if isinstance(a, str) and a.startswith("0x") and len(a) >= 10:
            data = a
        elif isinstance(a, Mapping) and isinstance(a.get("data"), str):
            data = a["data"]
    data = data or getattr(exc, "data", None)
    if isinstance(data, (bytes, bytearray)):
        data = "0x" + bytes(data).hex()
    return data if isinstance(data, str) and data.startswith("0x") and len(data) >= 10 else None


def decode_error(data: str, abi: Sequence[Mapping[str, Any]]) -> str | None:
    """``Name(arg=value, ...)`` for revert data of a custom error declared in ``abi`` (enum
    arguments by name, e.g. ``param=TwapWindow(9)``), ``Error(reason)`` (an Aave code by its
    name), ``Panic(...)``, or None."""
    if not isinstance(data, str) or not data.startswith("0x") or len(data) < 10:
        return None
    body = bytes.fromhex(data[10:])
    if data[:10] == "0x08c379a0":
        try:
            msg = eth_abi.decode(["string"], body)[0]
        except Exception:  # malformed: not decodable
            return None
        return aave_error(msg) or f"Error({msg})"
    if data[:10] == "0x4e487b71":
        try:
            code = eth_abi.decode(["uint256"], body)[0]
        except Exception:
            return None
        return f"Panic(0x{code:02x}: {_PANICS.get(code, 'panic')})"
    sel = bytes.fromhex(data[2:10])
    for item in abi:
        if item.get("type") != "error":
            continue
        types = [abi_type(i) for i in item.get("inputs", [])]
        if keccak(text=f"{item['name']}({','.join(types)})")[:4] != sel:
            continue
        try:
            vals: Sequence[Any] = eth_abi.decode(types, body)
        except Exception:
            vals = ()
        shown = []
        for i, raw in zip(item.get("inputs", []), vals):
            internal = str(i.get("internalType", ""))
            enum = _ENUMS.get(internal.removeprefix("enum ").split(".")[-1]) if internal.startswith("enum ") else None
            v: Any = raw
            if enum is not None and isinstance(raw, int) and raw in {m.value for m in enum}:  # type: ignore[attr-defined]
                v = f"{enum(raw).name}({raw})"
            elif isinstance(raw, bytes):
                v = "0x" + raw.hex()
            shown.append(f"{i.get('name') or '?'}={v}")
        return f"{item['name']}({', '.join(shown)})"
    return None


def explain(exc: BaseException, abi: Sequence[Mapping[str, Any]] | None = None) -> str:
    """A revert from eth_call / estimate_gas / a receipt in words (the vault's ABI by default)."""
    from dealvault.vault.abi import vault_abi

    data = revert_data(exc)
    if data is not None:
        text = decode_error(data, abi if abi is not None else vault_abi())
        if text is not None:
            return text
    msg = str(exc)
    m = re.search(r"execution reverted:?\s*(\d+)\b", msg)
    if m and (name := aave_error(m.group(1))):
        return msg.replace(m.group(0), f"execution reverted: {name}")
    return msg


def reason_text(reason_hex: str, abi: Sequence[Mapping[str, Any]] | None = None) -> str:
    """RedemptionFailed.reason (the desk's or the approve's revert data, or the vault's own
    ApproveFailed/ShortPayment) in words."""
    from dealvault.vault.abi import vault_abi

    if reason_hex in ("0x", ""):
        return "empty revert data"
    return decode_error(reason_hex, abi if abi is not None else vault_abi()) or reason_hex
