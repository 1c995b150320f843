"""The deal record API: deals, legs (the audit trail of every transaction) and tranches."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, delete, event, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from dealvault.errors import InputError
from dealvault.paths import ROOT
from dealvault.record.lock import FileLock, PgAdvisoryLock, RecordError, advisory_key
from dealvault.record.models import ATTEMPT_KINDS, LEG_STATUSES, Deal, Leg, LegAttempt, Tranche, json_dumps
from dealvault.record.stats import wilson_lower_bound
from dealvault.vault.enums import rung_number

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
DEFAULT_DB = ROOT / ".dealvault" / "deals.db"
PENDING = ("signed", "broadcast")


def default_url() -> str:
    """``DATABASE_URL`` if set, else SQLite at ``<project>/.dealvault/deals.db``."""
    return os.environ.get("DATABASE_URL") or f"sqlite:///{DEFAULT_DB}"


def normalize_url(url: str) -> str:
    """``postgres://`` / ``postgresql://`` -> the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


# --------------------------------------------------------------------------------------------
# plain snapshots returned by the API (no live ORM objects escape a session)


@dataclass(frozen=True)
class DealInfo:
    id: str
    spec: dict[str, Any]
    network: str
    chain_id: int
    genesis_hash: str | None
    vault_address: str | None
    status: str
    created_at: datetime
    updated_at: datetime
    lens_address: str | None = None  # the DealVaultLens the deal reads its vault through


@dataclass(frozen=True)
class LegInfo:
    id: int
    deal_id: str
    leg_seq: int | None
    step: int
    leg: str
    status: str
    args: dict[str, Any] | None
    raw_tx: str | None
    nonce: int | None
    tx_hash: str | None
    sender: str | None
    block_number: int | None
    gas_used: int | None
    effective_gas_price: int | None
    risk_before: dict[str, Any] | None
    risk_after: dict[str, Any] | None
    error: str | None
    created_at: datetime
    signed_at: datetime | None
    broadcast_at: datetime | None
    confirmed_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class AttemptInfo:
    """One transaction signed for a leg (see :class:`~dealvault.record.models.LegAttempt`)."""

    id: int
    leg_id: int
    deal_id: str
    kind: str
    tx_hash: str
    raw_tx: str
    nonce: int
    fees: dict[str, Any] | None
    created_at: datetime


@dataclass(frozen=True)
class TrancheInfo:
    id: int
    deal_id: str
    leg_id: int | None
    rung: int
    size: int
    received: int
    fee: int
    ok: bool
    reason: str | None
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """As the reports print it: the rung by its number (1..3, :func:`~dealvault.vault.enums.rung_number`)."""
        return _jsonable(self.__dict__ | {"rung": rung_number(self.rung)})  # type: ignore[no-any-return]


@dataclass(frozen=True)
class RungStats:
    attempted: int = 0
    succeeded: int = 0
    size: int = 0
    received: int = 0
    fee: int = 0


@dataclass(frozen=True)
class TrancheStats:
    """Observed redemption results of a deal. Amounts in 6-dp units; rates as Decimal."""

    attempted: int
    succeeded: int
    failed: int
    success_rate: Decimal  # succeeded / attempted, 0 when none
    wilson_lower: Decimal  # Wilson lower bound (z = 1.96) on the success probability
    size_total: int
    received_total: int
    fee_total: int
    by_rung: dict[int, RungStats] = field(default_factory=dict)
    highest_rung_ok: int | None = None  # highest rung (index) with a successful tranche
    last_ok: bool | None = None

    def to_json(self) -> dict[str, Any]:
        """As the reports print it: rungs by their numbers (1..3, :func:`~dealvault.vault.enums.rung_number`)."""
        hi = self.highest_rung_ok
        return _jsonable(self.__dict__ | {  # type: ignore[no-any-return]
            "by_rung": {rung_number(k): v.__dict__ for k, v in self.by_rung.items()},
            "highest_rung_ok": rung_number(hi) if hi is not None else None})


_Info = TypeVar("_Info", "DealInfo", "LegInfo", "TrancheInfo", "AttemptInfo")


def _snap(cls: type[_Info], row: Deal | Leg | Tranche | LegAttempt) -> _Info:
    """A plain snapshot of an ORM row, its datetimes zone-aware (SQLite drops the zone; we
    always store UTC)."""
    values = {f.name: getattr(row, f.name) for f in fields(cls)}
    for k, v in values.items():
        if isinstance(v, datetime) and v.tzinfo is None:
            values[k] = v.replace(tzinfo=UTC)
    return cls(**values)


def _deal_info(row: Deal) -> DealInfo:
    return _snap(DealInfo, row)


def _leg_info(row: Leg) -> LegInfo:
    return _snap(LegInfo, row)


def _tranche_info(row: Tranche) -> TrancheInfo:
    return _snap(TrancheInfo, row)


def _now() -> datetime:
    return datetime.now(UTC)


def _hex(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "0x" + bytes(v).hex()
    if not isinstance(v, str) and hasattr(v, "hex"):
        v = v.hex()
    text_ = str(v)
    return (text_ if text_.startswith("0x") else "0x" + text_).lower()


def _field(obj: Any, *names: str) -> Any:
    for n in names:
        if isinstance(obj, Mapping) and n in obj:
            return obj[n]
        if hasattr(obj, n):
            return getattr(obj, n)
    return None


def _jsonable(v: Any) -> Any:
    """Round-trip through the record's JSON encoder so what is stored is what is returned."""
    import json

    return None if v is None else json.loads(json_dumps(v))


# --------------------------------------------------------------------------------------------


@dataclass
class _Held:
    """A deal lock this Record holds, and how many nested ``lock()`` blocks use it."""

    lock: FileLock | PgAdvisoryLock
    depth: int = 1


class Record:
    """The deal record. Create with :func:`open_record`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.url = engine.url
        self._session = sessionmaker(engine, expire_on_commit=False)
        self._held: dict[str, _Held] = {}

    # ---- lifecycle

    def close(self) -> None:
        for deal_id in list(self._held):
            self._held.pop(deal_id).lock.release()
        self.engine.dispose()

    def __enter__(self) -> Record:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def schema_revision(self) -> str | None:
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    # ---- deals

    def create_deal(
        self,
        spec: Any,
        *,
        deal_id: str | None = None,
        network: str | None = None,
        chain_id: int | None = None,
        genesis_hash: str | None = None,
        vault_address: str | None = None,
        status: str = "created",
        exist_ok: bool = False,
        lens_address: str | None = None,
    ) -> DealInfo:
        """Record a deal from its :class:`~dealvault.spec.DealSpec` (or a spec mapping plus the
        keyword fields). With ``exist_ok`` an existing deal is returned unchanged."""
        if hasattr(spec, "to_json"):
            spec_json = spec.to_json()
            deal_id = deal_id or spec.deal_id
            network = network or spec.network.name
            chain_id = chain_id if chain_id is not None else spec.network.chain_id
            genesis_hash = genesis_hash or spec.network.genesis_hash
            vault_address = vault_address or spec.vault_address
        else:
            spec_json = _jsonable(dict(spec))
            deal_id = deal_id or spec_json.get("deal_id")
        if not deal_id or network is None or chain_id is None:
            raise RecordError("create_deal needs deal_id, network and chain_id (from the spec or as arguments)")
        with self._session() as s:
            existing = s.get(Deal, deal_id)
            if existing is not None:
                if exist_ok:
                    return _deal_info(existing)
                raise RecordError(f"deal {deal_id!r} is already recorded (status {existing.status})")
            row = Deal(
                id=deal_id,
                spec=spec_json,
                network=network,
                chain_id=int(chain_id),
                genesis_hash=_hex(genesis_hash),
                vault_address=vault_address,
                lens_address=lens_address,
                status=status,
            )
            s.add(row)
            try:
                s.commit()
            except IntegrityError as exc:
                s.rollback()
                found = s.get(Deal, deal_id)
                if exist_ok and found is not None:
                    return _deal_info(found)
                raise RecordError(f"deal {deal_id!r} is already recorded") from exc
            return _deal_info(row)

    def get_deal(self, deal_id: str) -> DealInfo | None:
        with self._session() as s:
            row = s.get(Deal, _deal_id(deal_id))
            return _deal_info(row) if row else None

    def list_deals(self) -> list[DealInfo]:
        with self._session() as s:
            return [_deal_info(r) for r in s.scalars(select(Deal).order_by(Deal.created_at, Deal.id))]

    def update_deal(self, deal: Any, **changes: Any) -> DealInfo:
        """Change ``status``, ``vault_address``, ``lens_address`` or ``genesis_hash`` of a deal."""
        allowed = {"status", "vault_address", "lens_address", "genesis_hash"}
        bad = set(changes) - allowed
        if bad:
            raise RecordError(f"update_deal: cannot change {sorted(bad)}; allowed: {sorted(allowed)}")
        with self._session() as s:
            row = self._deal_row(s, deal)
            for k, v in changes.items():
                setattr(row, k, _hex(v) if k == "genesis_hash" else v)
            row.updated_at = _now()
            s.commit()
            return _deal_info(row)

    def set_status(self, deal: Any, status: str) -> DealInfo:
        return self.update_deal(deal, status=status)

    # ---- legs

    def plan_leg(self, deal: Any, step: int, leg: str, *, args: Any = None, risk_before: Any = None) -> LegInfo:
        """An intended leg, before it is signed (optional: ``record_signed`` can create the row)."""
        with self._session() as s:
            self._deal_row(s, deal)
            row = Leg(deal_id=_deal_id(deal), step=int(step), leg=leg, status="planned",
                      args=_jsonable(args), risk_before=_jsonable(risk_before))
            s.add(row)
            s.commit()
            return _leg_info(row)

    def record_signed(
        self,
        deal: Any,
        step: int,
        leg: str,
        raw_tx: Any,
        nonce: int,
        tx_hash: Any,
        *,
        sender: str | None = None,
        args: Any = None,
        risk_before: Any = None,
        planned: Any = None,
        fees: Mapping[str, int] | None = None,
    ) -> LegInfo:
        """Persist a signed transaction BEFORE it is broadcast (status ``signed``), and it as the
        leg's first attempt (``fees``: what it pays, wei).

        Idempotent for the same hash and raw transaction (returns the existing leg); the same hash
        with a different raw transaction is an error. ``planned``: a leg from :meth:`plan_leg` to
        fill in instead of inserting a new row."""
        raw = _hex(raw_tx)
        h = _hex(tx_hash)
        if not raw or not h:
            raise RecordError("record_signed needs the raw transaction and its hash")
        with self._session() as s:
            self._deal_row(s, deal)
            existing = s.scalars(select(Leg).where(Leg.tx_hash == h, Leg.deal_id == _deal_id(deal))).first()
            if existing is not None:
                if existing.raw_tx == raw and existing.status == "failed":
                    # the same bytes signed again after the leg was abandoned unsent (a rebroadcast
                    # that no longer applied, re-planned identically): it is pending again
                    self._transition(existing, "signed", ("failed",))
                    existing.error = None
                    s.commit()
                if existing.raw_tx == raw:
                    return _leg_info(existing)
                raise RecordError(f"transaction {h} is already recorded for another leg (leg id {existing.id})")
            if planned is not None:
                row = self._leg_row(s, planned)
                if row.status != "planned":
                    raise RecordError(f"leg {row.id} is {row.status}, not planned")
            else:
                row = Leg(deal_id=_deal_id(deal), step=int(step), leg=leg, created_at=_now())
                s.add(row)
            row.step, row.leg, row.status = int(step), leg, "signed"
            row.raw_tx, row.nonce, row.tx_hash, row.sender = raw, int(nonce), h, sender
            if args is not None:
                row.args = _jsonable(args)
            if risk_before is not None:
                row.risk_before = _jsonable(risk_before)
            row.signed_at = _now()
            s.flush()
            s.add(LegAttempt(leg_id=row.id, deal_id=row.deal_id, kind="leg", tx_hash=h, raw_tx=raw, nonce=int(nonce),
                             fees=_jsonable(dict(fees)) if fees else None, created_at=row.signed_at))
            s.commit()
            return _leg_info(row)

    def record_attempt(self, leg: Any, kind: str, raw_tx: Any, tx_hash: Any, *, fees: Mapping[str, int] | None = None) -> AttemptInfo:
        """Persist another transaction for ``leg`` BEFORE it is broadcast: a ``replacement`` (the
        same call at the same nonce, higher fees: it becomes the leg's ``tx_hash``/``raw_tx``) or a
        ``cancel`` (a 0-value transfer to the sender at the leg's nonce). The leg must be pending."""
        if kind not in ATTEMPT_KINDS or kind == "leg":
            raise RecordError(f"attempt kind {kind!r}: allowed: replacement, cancel")
        raw, h = _hex(raw_tx), _hex(tx_hash)
        if not raw or not h:
            raise RecordError("record_attempt needs the raw transaction and its hash")
        with self._session() as s:
            row = self._leg_row(s, leg)
            if row.status not in PENDING:
                raise RecordError(f"leg {row.id} ({row.leg}) is {row.status}: no {kind} for it")
            a = LegAttempt(leg_id=row.id, deal_id=row.deal_id, kind=kind, tx_hash=h, raw_tx=raw, nonce=int(row.nonce or 0),
                           fees=_jsonable(dict(fees)) if fees else None, created_at=_now())
            s.add(a)
            if kind == "replacement":
                row.tx_hash, row.raw_tx = h, raw
            try:
                s.commit()
            except IntegrityError as exc:
                s.rollback()
                raise RecordError(f"transaction {h} is already recorded for deal {row.deal_id}") from exc
            return _snap(AttemptInfo, a)

    def attempts(self, leg: Any) -> list[AttemptInfo]:
        """The transactions signed for ``leg``, oldest first."""
        with self._session() as s:
            row = self._leg_row(s, leg)
            q = select(LegAttempt).where(LegAttempt.leg_id == row.id).order_by(LegAttempt.id)
            return [_snap(AttemptInfo, a) for a in s.scalars(q)]

    def mark_broadcast(self, leg: Any) -> LegInfo:
        """The signed transaction was handed to the node (idempotent)."""
        with self._session() as s:
            row = self._leg_row(s, leg)
            if row.status == "broadcast":
                return _leg_info(row)
            self._transition(row, "broadcast", ("signed",))
            row.broadcast_at = _now()
            s.commit()
            return _leg_info(row)

    def mark_confirmed(self, leg: Any, receipt: Any, leg_seq: int | None, snapshot_after: Any = None) -> LegInfo:
        """The transaction was mined. ``receipt``: a web3 receipt (mapping) or an ape receipt.
        A receipt with status 0 marks the leg ``reverted`` instead. ``leg_seq``: from the
        ``LegCompleted`` event; ``snapshot_after``: its RiskView."""
        status = _field(receipt, "status")
        reverted = status is not None and int(status) == 0
        with self._session() as s:
            row = self._leg_row(s, leg)
            target = "reverted" if reverted else "confirmed"
            if row.status == target and row.block_number is not None:
                return _leg_info(row)
            self._transition(row, target, ("signed", "broadcast", "failed"))
            rhash = _hex(_field(receipt, "transactionHash", "txn_hash", "transaction_hash"))
            if rhash and row.tx_hash and rhash != row.tx_hash:
                # a replacement, or the first transaction after all (whichever the chain mined)
                mined = s.scalars(select(LegAttempt).where(LegAttempt.leg_id == row.id, LegAttempt.tx_hash == rhash,
                                                           LegAttempt.kind != "cancel")).first()
                if mined is None:
                    raise RecordError(f"receipt is for {rhash}, leg {row.id} sent {row.tx_hash}")
                row.tx_hash, row.raw_tx = mined.tx_hash, mined.raw_tx
            block = _field(receipt, "blockNumber", "block_number")
            gas = _field(receipt, "gasUsed", "gas_used")
            price = _field(receipt, "effectiveGasPrice", "effective_gas_price", "gas_price")
            row.block_number = int(block) if block is not None else None
            row.gas_used = int(gas) if gas is not None else None
            row.effective_gas_price = int(price) if price is not None else None
            row.leg_seq = int(leg_seq) if leg_seq is not None else None
            if snapshot_after is not None:
                row.risk_after = _jsonable(snapshot_after)
            if reverted:
                row.error = row.error or "transaction reverted"
            else:
                row.error = None
            row.confirmed_at = _now()
            try:
                s.commit()
            except IntegrityError as exc:
                s.rollback()
                raise RecordError(f"legSeq {leg_seq} is already recorded for deal {row.deal_id}") from exc
            return _leg_info(row)

    def mark_reverted(self, leg: Any, receipt: Any, error: str = "transaction reverted") -> LegInfo:
        info = self.mark_confirmed(leg, {**_receipt_dict(receipt), "status": 0}, None)
        with self._session() as s:
            row = self._leg_row(s, info.id)
            row.error = error
            s.commit()
            return _leg_info(row)

    def mark_failed(self, leg: Any, error: str) -> LegInfo:
        """The leg failed without a mined transaction (simulation, signing, dropped, RPC)."""
        with self._session() as s:
            row = self._leg_row(s, leg)
            self._transition(row, "failed", ("planned", "signed", "broadcast", "failed"))
            row.error = str(error)
            s.commit()
            return _leg_info(row)

    def mark_rewound(self, leg: Any, reason: str) -> LegInfo:
        """A mined leg whose transaction the chain no longer has (a reorg, a rewound node): back to
        ``broadcast`` with its legSeq, block, gas, risk after and tranches cleared, so that the
        next reconciliation finds it again by its hash (and rebroadcasts the same raw tx)."""
        with self._session() as s:
            row = self._leg_row(s, leg)
            self._transition(row, "broadcast", ("confirmed", "reverted"))
            row.leg_seq = row.block_number = row.gas_used = row.effective_gas_price = None
            row.risk_after = None
            row.confirmed_at = None
            row.error = str(reason)
            s.execute(delete(Tranche).where(Tranche.leg_id == row.id))
            s.commit()
            return _leg_info(row)

    def get_leg(self, leg: Any) -> LegInfo:
        with self._session() as s:
            return _leg_info(self._leg_row(s, leg))

    def legs(self, deal: Any) -> list[LegInfo]:
        with self._session() as s:
            q = select(Leg).where(Leg.deal_id == _deal_id(deal)).order_by(Leg.id)
            return [_leg_info(r) for r in s.scalars(q)]

    def pending_legs(self, deal: Any) -> list[LegInfo]:
        """Legs signed or broadcast but not confirmed: on resume, look each hash up on chain;
        if unknown and its nonce unused, rebroadcast the same ``raw_tx``."""
        with self._session() as s:
            q = select(Leg).where(Leg.deal_id == _deal_id(deal), Leg.status.in_(PENDING)).order_by(Leg.id)
            return [_leg_info(r) for r in s.scalars(q)]

    def last_leg_seq(self, deal: Any) -> int | None:
        with self._session() as s:
            q = select(Leg.leg_seq).where(Leg.deal_id == _deal_id(deal), Leg.leg_seq.is_not(None))
            seqs = [int(x) for x in s.scalars(q) if x is not None]
            return max(seqs) if seqs else None

    # ---- tranches

    def add_tranche(
        self,
        deal: Any,
        rung: int,
        size: int,
        received: int,
        fee: int,
        ok: bool,
        reason: str | None = None,
        leg: Any = None,
    ) -> TrancheInfo:
        """One redemption tranche (amounts in 6-dp units, ints)."""
        for name, v in (("rung", rung), ("size", size), ("received", received), ("fee", fee)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise RecordError(f"add_tranche: {name} must be a non-negative int, got {v!r}")
        with self._session() as s:
            self._deal_row(s, deal)
            leg_id = self._leg_row(s, leg).id if leg is not None else None
            row = Tranche(deal_id=_deal_id(deal), leg_id=leg_id, rung=rung, size=size, received=received,
                          fee=fee, ok=bool(ok), reason=reason)
            s.add(row)
            s.commit()
            return _tranche_info(row)

    def tranches(self, deal: Any) -> list[TrancheInfo]:
        with self._session() as s:
            q = select(Tranche).where(Tranche.deal_id == _deal_id(deal)).order_by(Tranche.id)
            return [_tranche_info(r) for r in s.scalars(q)]

    def tranche_stats(self, deal: Any) -> TrancheStats:
        ts = self.tranches(deal)
        by: dict[int, RungStats] = {}
        for t in ts:
            r = by.get(t.rung, RungStats())
            by[t.rung] = RungStats(r.attempted + 1, r.succeeded + int(t.ok), r.size + t.size,
                                   r.received + t.received, r.fee + t.fee)
        n = len(ts)
        ok = sum(1 for t in ts if t.ok)
        return TrancheStats(
            attempted=n,
            succeeded=ok,
            failed=n - ok,
            success_rate=(Decimal(ok) / Decimal(n)) if n else Decimal(0),
            wilson_lower=wilson_lower_bound(ok, n),
            size_total=sum(t.size for t in ts),
            received_total=sum(t.received for t in ts),
            fee_total=sum(t.fee for t in ts),
            by_rung=dict(sorted(by.items())),
            highest_rung_ok=max((t.rung for t in ts if t.ok), default=None),
            last_ok=ts[-1].ok if ts else None,
        )

    # ---- the per-deal lock

    @contextlib.contextmanager
    def lock(self, deal_id: str, timeout: float = 0.0) -> Iterator[None]:
        """Hold the deal's lock for the block; raises :class:`DealLocked` (naming the holder)
        if another process holds it for longer than ``timeout`` seconds. Re-entrant within
        this Record."""
        deal_id = _deal_id(deal_id)
        held = self._held.get(deal_id)
        if held is not None:
            held.depth += 1
            try:
                yield
            finally:
                held.depth -= 1
            return
        lk = self._make_lock(deal_id)
        lk.acquire(timeout=timeout)
        self._held[deal_id] = _Held(lk)
        try:
            yield
        finally:
            entry = self._held.get(deal_id)
            if entry is not None:
                entry.depth -= 1
                if entry.depth == 0:
                    del self._held[deal_id]
                    lk.release()

    def _make_lock(self, deal_id: str) -> FileLock | PgAdvisoryLock:
        if self.dialect == "postgresql":
            return PgAdvisoryLock(self.engine, deal_id)
        return FileLock(record_lock_dir(self.url) / f"{deal_id}.lock", deal_id)

    # ---- internals

    def _deal_row(self, s: Session, deal: Any) -> Deal:
        row = s.get(Deal, _deal_id(deal))
        if row is None:
            raise RecordError(f"unknown deal {_deal_id(deal)!r}")
        return row

    def _leg_row(self, s: Session, leg: Any) -> Leg:
        if isinstance(leg, LegInfo):
            row = s.get(Leg, leg.id)
        elif isinstance(leg, int) and not isinstance(leg, bool):
            row = s.get(Leg, leg)
        else:
            h = _hex(leg)
            row = s.scalars(select(Leg).where(Leg.tx_hash == h)).first()
            if row is None:  # an earlier transaction of the leg (replaced) or its cancel
                a = s.scalars(select(LegAttempt).where(LegAttempt.tx_hash == h)).first()
                row = s.get(Leg, a.leg_id) if a is not None else None
        if row is None:
            raise RecordError(f"unknown leg {leg!r}")
        return row

    @staticmethod
    def _transition(row: Leg, target: str, allowed_from: tuple[str, ...]) -> None:
        assert target in LEG_STATUSES
        if row.status not in allowed_from:
            raise RecordError(
                f"leg {row.id} ({row.leg}, step {row.step}) is {row.status}; cannot mark it {target} "
                f"(only from {', '.join(allowed_from)})"
            )
        row.status = target
        row.updated_at = _now()


def _deal_id(deal: Any) -> str:
    if isinstance(deal, str):
        return deal
    for attr in ("deal_id", "id"):
        v = getattr(deal, attr, None)
        if isinstance(v, str):
            return v
    raise RecordError(f"not a deal or deal id: {deal!r}")


def _receipt_dict(receipt: Any) -> dict[str, Any]:
    keys = ("transactionHash", "blockNumber", "gasUsed", "effectiveGasPrice")
    alt = {"transactionHash": ("txn_hash",), "blockNumber": ("block_number",), "gasUsed": ("gas_used",),
           "effectiveGasPrice": ("effective_gas_price", "gas_price")}
    return {k: _field(receipt, k, *alt[k]) for k in keys}


def _sqlite_path(url: URL) -> Path | None:
    db = url.database
    if not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(db).resolve()


def record_lock_dir(url: URL) -> Path:
    """Where a SQLite record keeps its lock files (beside the database); a temporary directory otherwise."""
    path = _sqlite_path(url)
    if path is None:
        return Path(tempfile.gettempdir()) / f"dealvault-locks-{os.getuid()}"
    return path.with_name(path.name + ".locks")


# --------------------------------------------------------------------------------------------


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        path = _sqlite_path(u)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, json_serializer=json_dumps, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            if path is not None:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.close()

        return engine
    return create_engine(url, json_serializer=json_dumps, pool_pre_ping=True)


def alembic_config(engine: Engine | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine is not None:
        cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RecordError(f"no migration head in {MIGRATIONS_DIR}")
    return head


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the migrations up to ``revision``, serialized across processes."""
    cfg = alembic_config(engine)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": advisory_key("__migrations__")})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
        return
    lk = FileLock(record_lock_dir(engine.url) / "__migrations__.lock", "__migrations__")
    lk.acquire(timeout=120)
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    finally:
        lk.release()


def open_record(url: str | None = None, *, migrate: bool = True) -> Record:
    """Open the deal record at ``url`` (default: ``DATABASE_URL``, else SQLite at
    ``<project>/.dealvault/deals.db``) and upgrade its schema to the head revision."""
    target = url or default_url()
    try:
        engine = make_engine(target)
        if migrate:
            upgrade(engine)
    except (ArgumentError, OperationalError, InterfaceError) as exc:
        raise RecordUrlError(_shown_url(target), str(exc).strip().splitlines()[0]) from None
    return Record(engine)


class RecordUrlError(InputError):
    """The deal record's URL (``--db`` / ``DATABASE_URL``) is malformed or its database cannot be
    reached: exit 2, nothing sent."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"deal record {url}: {reason} (--db or DATABASE_URL: sqlite:///<file> or "
                         "postgresql://<user>@<host>/<db>); nothing sent")


def _shown_url(url: str) -> str:
    """``url`` with its password hidden, as far as it parses."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # unparseable: shown as given, minus anything after a '@'
        return url.rsplit("@", maxsplit=1)[-1] if "@" in url else url
