"""The deal record's tables (SQLAlchemy 2 declarative models).

The schema itself is created and evolved only by the Alembic migrations in ``migrations/``;
these models must match the head revision (``tests/unit/test_record.py`` checks it).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

from dealvault.jsonable import jsonable

LEG_STATUSES = ("planned", "signed", "broadcast", "confirmed", "failed", "reverted")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UInt256(TypeDecorator[int]):
    """An exact non-negative or negative integer of any size (token amounts, wei).

    PostgreSQL: NUMERIC(78, 0). SQLite: text (SQLite's NUMERIC would turn big values into REAL).
    Python side: ``int``.
    """

    impl = String(80)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(78, 0))
        return dialect.type_descriptor(String(80))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Decimal | str | None:
        if value is None:
            return None
        if isinstance(value, (bool, float)):
            raise TypeError(f"an integer amount is required, got {type(value).__name__} {value!r}")
        v = int(value)
        if isinstance(value, Decimal) and value != v:
            raise TypeError(f"an integer amount is required, got {value!r}")
        return Decimal(v) if dialect.name == "postgresql" else str(v)

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        return int(value)


class Base(DeclarativeBase):
    pass


class Deal(Base):
    __tablename__ = "deals"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    network: Mapped[str] = mapped_column(String(128), nullable=False)
    chain_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    genesis_hash: Mapped[str | None] = mapped_column(String(66))
    vault_address: Mapped[str | None] = mapped_column(String(42))
    # the DealVaultLens the deal reads its vault through (migration 0002)
    lens_address: Mapped[str | None] = mapped_column(String(42))
    status: Mapped[str] = mapped_column(String(32), nullable=False, default="created")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow)


class Leg(Base):
    __tablename__ = "legs"
    __table_args__ = (
        UniqueConstraint("deal_id", "leg_seq", name="uq_legs_deal_leg_seq"),
        UniqueConstraint("deal_id", "tx_hash", name="uq_legs_deal_tx_hash"),  # migration 0003
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in LEG_STATUSES) + ")", name="ck_legs_status"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deal_id: Mapped[str] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"), nullable=False, index=True)
    leg_seq: Mapped[int | None] = mapped_column(BigInteger)
    step: Mapped[int] = mapped_column(Integer, nullable=False)
    leg: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="planned")
    args: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    raw_tx: Mapped[str | None] = mapped_column(Text)
    nonce: Mapped[int | None] = mapped_column(BigInteger)
    tx_hash: Mapped[str | None] = mapped_column(String(66))
    sender: Mapped[str | None] = mapped_column(String(42))
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    gas_used: Mapped[int | None] = mapped_column(BigInteger)
    effective_gas_price: Mapped[int | None] = mapped_column(UInt256)
    risk_before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    risk_after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    signed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    broadcast_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow)


ATTEMPT_KINDS = ("leg", "replacement", "cancel")


class LegAttempt(Base):
    """Every transaction signed for a leg, persisted before its broadcast (migration 0004): the
    leg's first transaction, each fee-bumped replacement (same nonce, same call) and a cancel (a
    0-value transfer to the sender at the leg's nonce, which releases it). Whichever is mined
    decides the leg; ``legs.tx_hash``/``raw_tx`` follow the latest leg or replacement attempt."""

    __tablename__ = "leg_attempts"
    __table_args__ = (
        UniqueConstraint("deal_id", "tx_hash", name="uq_leg_attempts_deal_tx_hash"),
        CheckConstraint("kind IN (" + ", ".join(f"'{k}'" for k in ATTEMPT_KINDS) + ")", name="ck_leg_attempts_kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    leg_id: Mapped[int] = mapped_column(ForeignKey("legs.id", ondelete="CASCADE"), nullable=False, index=True)
    deal_id: Mapped[str] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    tx_hash: Mapped[str] = mapped_column(String(66), nullable=False)
    raw_tx: Mapped[str] = mapped_column(Text, nullable=False)
    nonce: Mapped[int] = mapped_column(BigInteger, nullable=False)
    fees: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # {"gasPrice"} or {"maxFeePerGas", "maxPriorityFeePerGas"}, wei
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)


class Tranche(Base):
    __tablename__ = "tranches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deal_id: Mapped[str] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"), nullable=False, index=True)
    leg_id: Mapped[int | None] = mapped_column(ForeignKey("legs.id", ondelete="SET NULL"))
    rung: Mapped[int] = mapped_column(Integer, nullable=False)
    size: Mapped[int] = mapped_column(UInt256, nullable=False)
    received: Mapped[int] = mapped_column(UInt256, nullable=False)
    fee: Mapped[int] = mapped_column(UInt256, nullable=False)
    ok: Mapped[bool] = mapped_column(Boolean, nullable=False)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)


class DealLock(Base):
    """Who holds a deal's lock (informational: the lock itself is a PostgreSQL advisory lock or a
    file lock; this row only names the holder in the error the other process gets)."""

    __tablename__ = "deal_locks"

    deal_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    pid: Mapped[int] = mapped_column(Integer, nullable=False)
    host: Mapped[str] = mapped_column(String(255), nullable=False)
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)


class GuardLease(Base):
    """Which guard watches a deal (issue 15, migration 0005; :class:`dealvault.guard.lease.Leases`).

    Informational like :class:`DealLock`: the lease itself is a session-level PostgreSQL advisory
    lock on key ``lock_key`` held by backend ``backend_pid``; a row whose backend no longer holds
    that lock is stale (its guard died) and names nobody. SQLite records keep their leases in
    files, not here."""

    __tablename__ = "guard_leases"

    deal_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    guard_id: Mapped[str] = mapped_column(String(255), nullable=False)
    lock_key: Mapped[int] = mapped_column(BigInteger, nullable=False)
    backend_pid: Mapped[int] = mapped_column(Integer, nullable=False)
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)


def json_dumps(value: Any) -> str:
    """JSON for the record's JSON columns (:func:`dealvault.jsonable.jsonable`: Decimals as
    strings, bytes as 0x hex, ints exact), keys sorted."""
    return json.dumps(jsonable(value), sort_keys=True)
