"""Talking to one vault: its state, typed, read through its lens in one round trip (a JSON-RPC
batch), what never changes cached, and its events and reverts decoded.

    client = VaultClient(w3, vault, lens)
    reading = client.read(twap=[cusdt])          # riskView + params + twap, one HTTP request
    reading.risk.ltvBps, reading.params.maxLtvBps, reading.twaps[cusdt].readyAt
    client.events(receipt)                        # [Event(name, args)], LegCompleted's snapshot typed

Field names are the Solidity ones (``risk.coreEth``): one name per idea in the contract, the
harness and the docs. ``tests/unit/vault/test_vault_mirror.py`` pins every dataclass to the ABI.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, ClassVar

import eth_abi
from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from web3 import Web3
from web3.contract import Contract

from dealvault.vault.abi import abi_type, lens_abi, vault_abi
from dealvault.vault.enums import Leg, OracleStatus, Phase

__all__ = ["RiskView", "Params", "Twap", "Venues", "Setup", "Snapshot", "Event", "Reading", "VaultClient", "from_abi",
           "lens_call_data", "decode_lens"]


def _convert(cls: type, name: str, value: Any) -> Any:
    conv = getattr(cls, "_CONVERT", {}).get(name)
    if conv is not None:
        return conv(value)
    if isinstance(value, (list, tuple)):
        return tuple(int(x) if isinstance(x, int) else x for x in value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return to_checksum_address(value)
    return value


def from_abi(cls: type, value: Any) -> Any:
    """A dataclass of ``cls`` from an ABI tuple (in field order) or a mapping keyed by field name."""
    names = [f.name for f in dataclasses.fields(cls)]
    if isinstance(value, Mapping):
        items = {n: value[n] for n in names}
    else:
        vals = list(value)
        if len(vals) != len(names):
            raise ValueError(f"{cls.__name__}: {len(names)} fields, got {len(vals)} values")
        items = dict(zip(names, vals))
    return cls(**{n: _convert(cls, n, v) for n, v in items.items()})


@dataclass(frozen=True)
class RiskView:
    """IDealVaultLens.RiskView: the whole risk picture, as the caps see it (see its NatSpec)."""

    phase: Phase
    phaseBeforeHolding: Phase
    paused: bool
    coreEth: int
    workingEth: int
    opportunisticEth: int
    collateralWeth: int
    collateralValue: int
    debt: int
    debtValue: int
    ltvBps: int
    poolCollateralBase: int
    poolDebtBase: int
    healthFactor: int
    stableHeld: int
    usdtzHeld: int
    usdtzCost: int
    nav: int
    exposureValue: int
    exposureBps: int
    rung: int
    rungProgress: int
    redeemedTotal: int
    feesPaid: int
    realizedPnlEth: int
    realizedPnlUsd: int
    writtenOffUsdtz: int
    ethPrice: int
    priceUpdatedAt: int
    oracleStatus: OracleStatus
    legSeq: int
    fundedCapital: int
    ownerRepaid: int
    repaidOnBehalf: int
    poolDebt: int
    operatorLoss: int
    lossBudget: int
    splitValue: int
    ethReturned: int
    collateralBooked: int

    _CONVERT: ClassVar[dict[str, Any]] = {"phase": Phase, "phaseBeforeHolding": Phase, "oracleStatus": OracleStatus}

    def as_dict(self) -> dict[str, Any]:
        """The fields by their Solidity names, enums as ints, with ``phaseName``,
        ``phaseBeforeHoldingName`` and ``oracleStatusName`` (what the deal record stores)."""
        out: dict[str, Any] = {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}
        out["phaseName"] = self.phase.name
        out["phaseBeforeHoldingName"] = self.phaseBeforeHolding.name
        out["oracleStatusName"] = self.oracleStatus.name
        return out


@dataclass(frozen=True)
class Params:
    """IDealVaultLens.Params: the risk parameters now (or as the constructor set them)."""

    maxLtvBps: int
    maxExposureBps: int
    maxDeskFeeBps: int
    oracleMaxAge: int
    minDiscountBps: int
    maxSlippageBps: int
    sellFloorPrice: int
    ethFloorPrice: int
    maxOperatorLossBps: int
    twapWindow: int
    loosenDelay: int
    coreBps: int
    workingBps: int
    opportunisticBps: int
    rungs: tuple[int, int, int]
    minTranche: int

    def as_dict(self) -> dict[str, Any]:
        """Keyed like IDealVault.RiskParams (rungs a list)."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class Twap:
    """IDealVaultLens.Twap: a pair's spot price, its TWAP since the vault's observation, and the
    first time a buy may use that observation."""

    spotE6: int
    twapE6: int
    observedAt: int
    readyAt: int
    spotX112: int
    twapX112: int


@dataclass(frozen=True)
class Venues:
    """IDealVaultTypes.Venues: the vault's venues and tokens (its immutables)."""

    weth9: str
    weth10: str
    cusdt: str
    cusdc: str
    usdtz: str
    pool: str
    router: str
    desk: str
    ethUsdFeed: str
    aWeth9: str
    aWeth10: str
    debtCusdt: str
    debtCusdc: str
    pairCusdt: str
    pairCusdc: str


def _venues(value: Any) -> Venues:
    return from_abi(Venues, value)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Setup:
    """IDealVaultTypes.Setup: everything fixed at deployment."""

    venues: Venues
    usdtzIs0T: bool
    usdtzIs0C: bool
    coreBps: int
    workingBps: int
    opportunisticBps: int
    rungs: tuple[int, int, int]
    minTranche: int

    _CONVERT: ClassVar[dict[str, Any]] = {"venues": _venues}


@dataclass(frozen=True)
class Snapshot:
    """IDealVaultTypes.Snapshot, as LegCompleted emits it (marks zero and Unread for a light leg)."""

    phase: Phase
    coreEth: int
    workingEth: int
    opportunisticEth: int
    collateralWeth: int
    debt: int
    ltvBps: int
    nav: int
    exposureBps: int
    rung: int
    rungProgress: int
    redeemedTotal: int
    stableHeld: int
    usdtzHeld: int
    ethPrice: int
    oracleStatus: OracleStatus

    _CONVERT: ClassVar[dict[str, Any]] = {"phase": Phase, "oracleStatus": OracleStatus}

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}
        out["phaseName"] = self.phase.name
        out["oracleStatusName"] = self.oracleStatus.name
        return out


def _plain(v: Any) -> Any:
    return int(v) if isinstance(v, int) and not isinstance(v, bool) else (list(v) if isinstance(v, tuple) else v)


@dataclass(frozen=True)
class Event:
    """One decoded vault event: its name, its arguments (LegCompleted's ``leg`` a Leg, its
    ``snapshot`` a Snapshot), where it was logged."""

    name: str
    args: dict[str, Any]
    log_index: int = 0
    tx_hash: str = ""
    block_number: int = 0


@dataclass(frozen=True)
class Reading:
    """What one round trip read: the risk view, the parameters, the TWAPs asked for, the block."""

    risk: RiskView
    params: Params
    twaps: dict[str, Twap] = field(default_factory=dict)
    block: Any = "latest"


class VaultClient:
    """One vault at ``vault``, read through the DealVaultLens at ``lens``."""

    def __init__(self, w3: Web3, vault: str, lens: str) -> None:
        self.w3 = w3
        self.address = to_checksum_address(vault)
        self.lens_address = to_checksum_address(lens)
        self.contract: Contract = _cached(w3, self.address, "vault")
        self.lens: Contract = _cached(w3, self.lens_address, "lens")
        self._setup: Setup | None = None
        self._initial: Params | None = None

    # -- reads
    def read(self, *, twap: Sequence[str] = (), block: Any = "latest") -> Reading:
        """riskView, params and the TWAP of each stablecoin in ``twap``, in one JSON-RPC batch."""
        lf = self.lens.functions
        stables = [to_checksum_address(s) for s in twap]
        with self.w3.batch_requests() as batch:
            batch.add(lf.riskView(self.address).call(block_identifier=block))
            batch.add(lf.params(self.address).call(block_identifier=block))
            for s in stables:
                batch.add(lf.twap(self.address, s).call(block_identifier=block))
            out = batch.execute()
        return Reading(
            risk=from_abi(RiskView, out[0]),
            params=from_abi(Params, out[1]),
            twaps={s: from_abi(Twap, t) for s, t in zip(stables, out[2:])},
            block=block,
        )

    def risk_view(self, block: Any = "latest") -> RiskView:
        return from_abi(RiskView, self.lens.functions.riskView(self.address).call(block_identifier=block))  # type: ignore[no-any-return]

    def risk_view_data(self) -> str:
        """The calldata (0x hex) of ``lens.riskView(vault)``, for a raw or simulated call to
        :attr:`lens_address`; :meth:`decode_risk_view` reads its answer."""
        return lens_call_data("riskView", self.address)

    def decode_risk_view(self, output: str | bytes) -> RiskView:
        """The RiskView in the return data (0x hex or bytes) of a :meth:`risk_view_data` call."""
        return decode_lens(RiskView, "riskView", output)  # type: ignore[no-any-return]

    def owner(self) -> str:
        """The vault's owner (``owner()``)."""
        return to_checksum_address(self.contract.functions.owner().call())

    def params(self, block: Any = "latest") -> Params:
        return from_abi(Params, self.lens.functions.params(self.address).call(block_identifier=block))  # type: ignore[no-any-return]

    def initial_params(self) -> Params:
        """The constructor's values (cached: they never change)."""
        if self._initial is None:
            self._initial = from_abi(Params, self.lens.functions.initialParams(self.address).call())
        return self._initial

    def queued_params(self) -> dict[int, tuple[int, int]]:
        """Queued loosenings: {Param: (value, validAt)} for those queued."""
        values, valid_at = self.lens.functions.queuedParams(self.address).call()
        return {p: (int(v), int(t)) for p, (v, t) in enumerate(zip(values, valid_at)) if t}

    def twap(self, stable: str, block: Any = "latest") -> Twap:
        return from_abi(Twap, self.lens.functions.twap(self.address, to_checksum_address(stable)).call(block_identifier=block))  # type: ignore[no-any-return]

    def setup(self) -> Setup:
        """The vault's immutables (cached)."""
        if self._setup is None:
            self._setup = from_abi(Setup, self.contract.functions.setup().call())
        return self._setup

    # -- events
    def events(self, receipt: Mapping[str, Any], names: Sequence[str] | None = None) -> list[Event]:
        """The vault's events in ``receipt`` (only ``names`` if given), in log order."""
        out: list[Event] = []
        wanted = set(names) if names else None
        for item in vault_abi():
            if item.get("type") != "event" or (wanted is not None and item["name"] not in wanted):
                continue
            ev = getattr(self.contract.events, item["name"])()
            for log in ev.process_receipt(receipt, errors=_DISCARD):
                if to_checksum_address(log["address"]) != self.address:
                    continue
                args = dict(log["args"])
                if item["name"] == "LegCompleted":
                    args["leg"] = Leg(int(args["leg"]))
                    args["snapshot"] = from_abi(Snapshot, args["snapshot"])
                out.append(Event(item["name"], args, int(log["logIndex"]), "0x" + bytes(log["transactionHash"]).hex(),
                                 int(log["blockNumber"])))
        out.sort(key=lambda e: e.log_index)
        return out


@cache
def _lens_function(name: str) -> tuple[bytes, tuple[str, ...], tuple[str, ...]]:
    """(selector, input types, output types) of the lens function ``name`` (one overload)."""
    item = next(x for x in lens_abi() if x.get("type") == "function" and x.get("name") == name)
    ins = tuple(abi_type(i) for i in item["inputs"])
    return function_signature_to_4byte_selector(f"{name}({','.join(ins)})"), ins, tuple(abi_type(o) for o in item["outputs"])


def lens_call_data(name: str, *args: Any) -> str:
    """The calldata (0x hex) of the lens's ``name(*args)`` (no Contract object: cheap for many vaults)."""
    sel, ins, _ = _lens_function(name)
    if all(t == "address" for t in ins) and all(isinstance(a, str) and len(a) == 42 for a in args):
        return "0x" + sel.hex() + "".join("0" * 24 + a[2:].lower() for a in args)  # addresses only: no eth_abi
    return "0x" + (sel + eth_abi.encode(list(ins), list(args))).hex()


def decode_lens(cls: type, name: str, output: str | bytes) -> Any:
    """The ``cls`` dataclass (RiskView, Params, Twap) in the return data (0x hex or bytes) of the
    lens's ``name``; raises ValueError (eth_abi's DecodingError) on data that is not one. A
    return of only static words (RiskView, Params) is read word by word (a guard poll decodes
    thousands: eth_abi takes ~0.5 ms each), checked like eth_abi checks them."""
    raw = bytes.fromhex(output[2:]) if isinstance(output, str) else bytes(output)
    types = _lens_function(name)[2]
    words = _static_words(types)
    if words is not None:
        if len(raw) != 32 * len(words):
            raise ValueError(f"{name}: {len(raw)} bytes of return data, expected {32 * len(words)}")
        flat = [_static_word(t, raw[32 * i:32 * i + 32]) for i, t in enumerate(words)]
        return from_abi(cls, _regroup(types, iter(flat)))
    (value,) = eth_abi.decode(list(types), raw)
    return from_abi(cls, value)


_STATIC = re.compile(r"^(uint|int)(\d*)$|^bool$")


@cache
def _static_words(types: tuple[str, ...]) -> tuple[str, ...] | None:
    """One type per 32-byte word of a return of ``types`` (one tuple of uintN / intN / bool and
    fixed arrays of them), or None when it has anything else."""
    if len(types) != 1 or not types[0].startswith("(") or not types[0].endswith(")"):
        return None
    out: list[str] = []
    for t in _split(types[0][1:-1]):
        base, _, rest = t.partition("[")
        if not _STATIC.match(base) or (rest and not rest[:-1].isdigit()) or t.count("[") > 1:
            return None
        out += [base] * (int(rest[:-1]) if rest else 1)
    return tuple(out)


def _split(inner: str) -> list[str]:
    return inner.split(",") if "(" not in inner else ["("]  # nested tuples: not static words here


def _static_word(t: str, w: bytes) -> int | bool:
    v = int.from_bytes(w, "big")
    if t == "bool":
        if v > 1:
            raise ValueError(f"bool word {v:#x}")
        return v == 1
    bits = int(t.lstrip("uint") or 256)
    if t.startswith("u"):
        if v >> bits:
            raise ValueError(f"{t} word {v:#x} out of range")
        return v
    s = v - (1 << 256) if v >> 255 else v
    if not -(1 << (bits - 1)) <= s < (1 << (bits - 1)):
        raise ValueError(f"{t} word {v:#x} out of range")
    return s


def _regroup(types: tuple[str, ...], flat: Any) -> tuple[Any, ...]:
    out: list[Any] = []
    for t in _split(types[0][1:-1]):
        _, _, rest = t.partition("[")
        out.append(tuple(next(flat) for _ in range(int(rest[:-1]))) if rest else next(flat))
    return tuple(out)


def _cached(w3: Web3, address: str, kind: str) -> Contract:
    # building a Contract from an ABI costs ~5-10 ms of Python: cache it on the Web3 instance
    cache: dict[tuple[str, str], Contract] = w3.__dict__.setdefault("_dealvault_contracts", {})
    c = cache.get((address, kind))
    if c is None:
        c = cache[(address, kind)] = w3.eth.contract(address=address, abi=vault_abi() if kind == "vault" else lens_abi())  # type: ignore[call-overload]
    return c


def _discard() -> Any:
    from web3.logs import DISCARD

    return DISCARD


_DISCARD = _discard()
