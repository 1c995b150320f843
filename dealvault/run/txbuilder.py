"""The Safe Transaction Builder's ``meta.checksum``, computed exactly as the builder computes it.

The builder (safe-global/safe-react-apps, apps/tx-builder/src/lib/checksum.ts, the version whose
``calculateChecksum`` sets ``meta.name`` to null first, so renaming a batch keeps its checksum)
serializes the batch with its own ``serializeJSONObject`` and hashes the string with web3's
``sha3`` (keccak-256 of its UTF-8 bytes, 0x-prefixed hex). On import it deletes ``meta.checksum``,
recomputes, and warns "This file was modified since it was generated" on a mismatch. This module
follows that algorithm (the origin of every rule below); it was checked against the builder's own
test vector and against a batch the builder exported (tests/unit/test_owner.py).

    from dealvault.run.txbuilder import add_checksum, checksum, checksum_valid
    batch = add_checksum(batch)          # a copy with meta.checksum set
    checksum_valid(batch)                # what the builder's import checks

``serializeJSONObject``: an array is ``[a,b]`` (each element serialized); an object is ``{`` +
``JSON.stringify`` of its sorted key list + each value serialized and followed by ``,`` + ``}``;
anything else is ``JSON.stringify`` of it (undefined as null). What JSON.stringify does is
reproduced here, not borrowed from Python's json: strings keep non-ASCII characters as they are
and escape only ``"``, ``\\``, control characters (``\\b \\f \\n \\r \\t``, others ``\\u00xx``) and
lone surrogates; numbers are JavaScript Numbers (a double: an integer above 2**53 loses its last
digits, 1e21 and up in exponent form), which is why every amount in a batch is a string.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeVar

from eth_utils import keccak

__all__ = ["add_checksum", "checksum", "checksum_valid", "js_number", "js_string", "serialize"]

B = TypeVar("B", bound=Mapping[str, Any])

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def js_string(s: str) -> str:
    """``JSON.stringify(s)`` (ECMAScript QuoteJSONString, well-formed since ES2019)."""
    # a surrogate pair given as two code points is one character to JavaScript
    s = s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    out = []
    for ch in s:
        c = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif c < 0x20 or 0xD800 <= c <= 0xDFFF:
            out.append(f"\\u{c:04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def js_number(x: int | float) -> str:
    """``JSON.stringify(x)`` for a JavaScript Number (ECMAScript Number::toString): ``x`` as the
    nearest double, shortest digits, plain up to 1e21, exponent form beyond; NaN and infinities
    are ``null``."""
    f = float(x)
    if math.isnan(f) or math.isinf(f):
        return "null"
    if f == 0:
        return "0"
    t = Decimal(repr(abs(f))).normalize().as_tuple()
    digits = "".join(map(str, t.digits))
    k = len(digits)
    n = int(t.exponent) + k  # the value is 0.digits x 10**n
    if k <= n <= 21:
        s = digits + "0" * (n - k)
    elif 0 < n <= 21:
        s = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        s = "0." + "0" * -n + digits
    else:
        e = n - 1
        s = (digits if k == 1 else digits[0] + "." + digits[1:]) + "e" + ("+" if e >= 0 else "-") + str(abs(e))
    return ("-" if f < 0 else "") + s


def _sort_key(key: str) -> bytes:
    # Array.prototype.sort() compares UTF-16 code units; big-endian UTF-16 bytes order the same way
    return key.encode("utf-16-be", "surrogatepass")


def serialize(value: Any) -> str:
    """The builder's ``serializeJSONObject(value)`` for a JSON value (dict, list, str, int, float,
    bool, None)."""
    if isinstance(value, Mapping):
        keys = sorted((str(k) for k in value), key=_sort_key)
        return "{[" + ",".join(js_string(k) for k in keys) + "]" + "".join(serialize(value[k]) + "," for k in keys) + "}"
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return "[" + ",".join(serialize(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return js_number(value)
    if isinstance(value, str):
        return js_string(value)
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def checksum(batch: Mapping[str, Any]) -> str:
    """The builder's ``calculateChecksum``: keccak-256 of the serialized batch with ``meta.name``
    set to null, 0x-prefixed (over ``meta.checksum`` too if the batch has one: see
    :func:`add_checksum` and :func:`checksum_valid`)."""
    meta = batch.get("meta")
    named_out = {**batch, "meta": {**(meta if isinstance(meta, Mapping) else {}), "name": None}}
    return "0x" + keccak(serialize(named_out).encode("utf-8")).hex()


def add_checksum(batch: B) -> B:
    """A copy of ``batch`` with ``meta.checksum`` set, as the builder's export does (computed
    without a checksum field: a stale one is dropped first)."""
    out: Any = copy.deepcopy(dict(batch))
    meta = {k: v for k, v in dict(out.get("meta") or {}).items() if k != "checksum"}
    out["meta"] = {**meta, "checksum": checksum({**out, "meta": meta})}
    return out  # type: ignore[no-any-return]


def checksum_valid(batch: Mapping[str, Any]) -> bool:
    """What the builder's import checks (``validateChecksum``): ``meta.checksum`` equals the
    checksum of the batch without it."""
    meta = dict(batch.get("meta") or {})
    given = meta.pop("checksum", None)
    return isinstance(given, str) and given == checksum({**batch, "meta": meta})
