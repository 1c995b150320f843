"""Reading input files and checking their fields, once for the deal spec and the network config.

:class:`Fields` holds the validators (integers in a range, exact decimals, amounts, addresses,
block hashes, known keys with a did-you-mean...) bound to the error class of the file being read
(:class:`SpecError` for a deal spec, ``ConfigError`` for a network config); each error names the
dotted key, the bad value and what is allowed. :func:`load_yaml` reads YAML without floats and
with ``0x...`` kept as text.

Errors derive from :class:`dealvault.errors.InputError` (a script stops with exit code 2) and
stay ``ValueError``s for the callers that catch those.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn

import yaml
from eth_utils.address import is_checksum_address, to_checksum_address

from dealvault.errors import InputError
from dealvault.units import STABLE_DECIMALS, from_units, to_units

__all__ = [
    "SPEC_FIELDS", "FieldError", "Fields", "SpecError", "SpecErrors", "did_you_mean", "fits", "load_yaml", "stable_text", "typename",
]

_HEX_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HASH32 = re.compile(r"^0x[0-9a-fA-F]{64}$")
_ZERO_ADDRESS = "0x" + "0" * 40


class FieldError(InputError, ValueError):
    """A bad field of an input file. ``key`` is its dotted path (``vault.max_ltv_bps``),
    ``detail`` what is wrong with it."""

    def __init__(self, key: str, message: str, where: str = ""):
        self.key = key
        self.detail = message
        super().__init__(where + (f"{key}: {message}" if key else message))


class SpecError(FieldError):
    """A bad deal spec. ``key`` is the dotted path of the offending key (``vault.max_ltv_bps``)."""


class SpecErrors(SpecError):  # noqa: N818 - the plural of SpecError, a public name
    """More than one problem (e.g. from :func:`check_against_vault` via ``raise_for``)."""

    def __init__(self, errors: Sequence[str], key: str = ""):
        self.errors = list(errors)
        super().__init__(key, "; ".join(self.errors))


# --------------------------------------------------------------------------------------------
# YAML


class _ExactLoader(yaml.SafeLoader):
    """YAML without floats (a number with a fraction becomes an exact ``Decimal``), with
    ``0x...`` kept as text (YAML 1.1 would read an unquoted address as a hex integer), and with
    a key given twice in one mapping refused (YAML keeps the last one silently)."""


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    text = str(loader.construct_scalar(node)).replace("_", "")  # type: ignore[arg-type]
    try:
        return Decimal(text)
    except InvalidOperation:
        return text  # .inf / .nan: left as text, rejected by the validators


def _construct_int(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    if text.lower().lstrip("+-").startswith("0x"):
        return text
    return yaml.SafeLoader.construct_yaml_int(loader, node)  # type: ignore[arg-type]


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _value in node.value:
        key = loader.construct_object(key_node)  # type: ignore[no-untyped-call]
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {seen[key] + 1}, again on line {key_node.start_mark.line + 1})",
                key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node)


_ExactLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_ExactLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)
_ExactLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def load_yaml(text: str) -> Any:
    """Parse YAML text exactly (see :class:`_ExactLoader`); raises ``yaml.YAMLError``."""
    return yaml.load(text, Loader=_ExactLoader)  # a SafeLoader subclass


# --------------------------------------------------------------------------------------------
# small helpers


def typename(v: Any) -> str:
    """A value's type as a message says it (``null`` for None)."""
    return "null" if v is None else type(v).__name__


def did_you_mean(key: str, allowed: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest allowed name, or nothing."""
    close = difflib.get_close_matches(str(key), list(allowed), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def fits(d: Decimal, decimals: int) -> bool:
    """True when ``d`` has at most ``decimals`` significant decimals (trailing zeros ignored)."""
    try:
        to_units(d, decimals)
    except ValueError:
        return False
    return True


def stable_text(v: int) -> str:
    """6-dp stablecoin units as whole units, for messages (``50000000000`` -> ``50000``)."""
    return f"{from_units(v, STABLE_DECIMALS).normalize():f}"


# --------------------------------------------------------------------------------------------
# the validators


class Fields:
    """The validators, raising ``error(key, message)``; ``root`` names the whole document in an
    error about it (``<spec>``, ``<config>``)."""

    def __init__(self, error: Callable[[str, str], FieldError], root: str):
        self.error = error
        self.root = root

    def fail(self, key: str, message: str) -> NoReturn:
        raise self.error(key, message)

    def mapping(self, key: str, value: Any, what: str = "a mapping") -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            self.fail(key or self.root, f"expected {what}, got {typename(value)} {value!r}")
        return value

    def check_keys(self, prefix: str, data: Mapping[str, Any], allowed: Mapping[str, bool]) -> None:
        """Every key of ``data`` is in ``allowed`` (name -> required?) and every required one is there."""
        for k in data:
            if k not in allowed:
                path = f"{prefix}.{k}" if prefix else str(k)
                self.fail(path, f"unknown key{did_you_mean(str(k), allowed)}; allowed keys here: {', '.join(allowed)}")
        for k, required in allowed.items():
            if required and k not in data:
                self.fail(f"{prefix}.{k}" if prefix else k, "missing required key")

    def text(self, key: str, value: Any, allow_empty: bool = False) -> str:
        if not isinstance(value, str):
            self.fail(key, f"expected a string, got {typename(value)} {value!r}")
        if not allow_empty and not value.strip():
            self.fail(key, "must not be empty")
        return value

    def boolean(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            self.fail(key, f"expected true or false, got {typename(value)} {value!r}")
        return value

    def choice(self, key: str, value: Any, allowed: Sequence[str]) -> str:
        if not isinstance(value, str) or value not in allowed:
            hint = did_you_mean(value, allowed) if isinstance(value, str) else ""
            self.fail(key, f"{value!r} is not allowed{hint}; allowed: {' | '.join(allowed)}")
        return value

    def integer(self, key: str, value: Any, low: int, high: int, hint: str = "", unit: str = "") -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"expected an integer{' (' + unit + ')' if unit else ''} in {low}..{high}, got {typename(value)} {value!r}")
        if not low <= value <= high:
            extra = f" ({hint})" if hint else ""
            self.fail(key, f"{value} is out of range; allowed: {low}..{high}{extra}{' ' + unit if unit else ''}")
        return value

    def number(self, key: str, value: Any, what: str) -> Decimal:
        """An exact number (int, str or Decimal; never a float)."""
        if isinstance(value, float):
            self.fail(key, f"{value!r} is a float; money is exact: write it as a string or Decimal, e.g. \"{value}\" ({what})")
        if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
            self.fail(key, f"expected a number ({what}), got {typename(value)} {value!r}")
        try:
            d = value if isinstance(value, Decimal) else Decimal(str(value).replace("_", "").strip())
        except InvalidOperation:
            d = None
        if d is None:
            self.fail(key, f"{value!r} is not a number ({what})")
        if not d.is_finite():
            self.fail(key, f"{value!r} is not a finite number ({what})")
        return d

    def decimal(self, key: str, value: Any, decimals: int, low: Decimal, high: Decimal, unit: str) -> Decimal:
        """A Decimal in ``low..high`` with at most ``decimals`` decimals."""
        d = self.number(key, value, f"{unit}, {low:f}..{high:f}, at most {decimals} decimals")
        if not low <= d <= high:
            self.fail(key, f"{d} is out of range; allowed: {low:f}..{high:f} {unit}")
        if not fits(d, decimals):
            self.fail(key, f"{d} has more than {decimals} decimals; allowed: at most {decimals} ({unit})")
        return d

    def amount(self, key: str, value: Any, decimals: int, unit: str, minimum: Decimal, maximum: Decimal | None = None) -> int:
        """A quantity in human units (ETH, whole stablecoins, gwei) -> an exact int in base units."""
        rng = f"{minimum:f}..{maximum:f}" if maximum is not None else f">= {minimum:f}"
        d = self.number(key, value, f"{unit}, {rng}")
        if d < minimum or (maximum is not None and d > maximum):
            self.fail(key, f"{d} is out of range; allowed: {rng} {unit}")
        if not fits(d, decimals):
            self.fail(key, f"{d} has more than {decimals} decimals; allowed: at most {decimals} ({unit})")
        return to_units(d, decimals)

    def address(self, key: str, value: Any, what: str = "a 0x address") -> str:
        """A non-zero address with a valid EIP-55 checksum when mixed-case; returned checksummed."""
        return self._address(key, value, what, nullable=False)

    def optional_address(self, key: str, value: Any) -> str | None:
        """An address, or None for null (not known on this network)."""
        return None if value is None else self._address(key, value, "a 0x address or null", nullable=True)

    def _address(self, key: str, value: Any, what: str, nullable: bool) -> str:
        null = ", or null" if nullable else ""
        if not isinstance(value, str):
            self.fail(key, f"expected {what} (quote it in YAML), got {typename(value)} {value!r}")
        if not _HEX_ADDRESS.match(value):
            self.fail(key, f"{value!r} is not {what}; allowed: 0x followed by 40 hex digits{null}")
        if value[2:] != value[2:].lower() and value[2:] != value[2:].upper() and not is_checksum_address(value):
            self.fail(key, f"{value!r} has a bad EIP-55 checksum; expected {to_checksum_address(value)}")
        if value.lower() == _ZERO_ADDRESS:
            self.fail(key, "the zero address is not allowed" + (" (use null for unknown)" if nullable else ""))
        return str(to_checksum_address(value))

    def block_hash(self, key: str, value: Any) -> str | None:
        """A lower-case 0x block hash, or None for null (not pinned)."""
        if value is None:
            return None
        if not isinstance(value, str) or not _HASH32.match(value):
            self.fail(key, f"{value!r} is not a block hash; allowed: 0x followed by 64 hex digits, or null")
        return value.lower()


#: The validators of a deal spec.
SPEC_FIELDS = Fields(SpecError, "<spec>")
