"""One way to turn the harness's values into JSON data (reports, deployment records, the deal
record's columns): mappings and dataclasses as objects, sequences as lists, Decimals as strings
(money stays exact), bytes as 0x hex, datetimes as ISO 8601; ints, strings, bools, None and
floats (durations, never money) as they are."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

__all__ = ["jsonable"]


def jsonable(v: Any) -> Any:
    """``v`` as plain JSON data (see the module)."""
    if isinstance(v, Mapping):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset)):
        return [jsonable(x) for x in v]
    if isinstance(v, Decimal):
        return format(v, "f")  # exact, never exponent notation ("0E-18" is "0.000000000000000000")
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "0x" + bytes(v).hex()
    if isinstance(v, datetime):
        return v.isoformat()
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return jsonable({f.name: getattr(v, f.name) for f in dataclasses.fields(v)})
    return str(v)
