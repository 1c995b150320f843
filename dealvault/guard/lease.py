"""Which guard watches which deal: leases shared through the deal record (issue 15, "Scale").

Several guard processes, on one host or several, share the deals of one record: each deal is
watched by exactly one of them at a time, and when a guard dies the others take its deals on their
next :meth:`Leases.claim`. A lease says who *watches* a deal; it is not the deal's lock
(:meth:`dealvault.record.Record.lock`), which a guard takes only while it *acts*, so that
``execute_deal`` and the guard never drive a deal at the same moment.

    with Leases(record, guard_id="1234@host-a") as leases:
        while running:
            mine = leases.claim(deal_ids)  # every interval: keeps, takes, releases
            ...  # watch the deals in ``mine``; act on one under record.lock(deal_id)

PostgreSQL: a session-level advisory lock per deal (key ``advisory_key("guard-lease:" + deal_id)``,
never the key of the deal's lock) on one dedicated AUTOCOMMIT connection, and a ``guard_leases``
row (migration 0005) naming the holder. When the guard dies, SIGKILL included, its connection
closes and the server frees all its leases at once; TCP keepalives (both ends) bound how long a
guard whose host vanished keeps them. When the connection is lost (terminated, server restart),
every lease is lost with it: the next :meth:`Leases.claim` notices, reconnects and starts over.

SQLite: an ``fcntl.flock`` per deal on a file beside the database
(``<db>.locks/guard-leases/<deal_id>.lock``), naming the guard while it is held. One host only:
a SQLite record is not shared across hosts (neither are its locks).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, create_engine, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.pool import NullPool
from sqlalchemy.types import BigInteger, String

from dealvault.record import Record, RecordError, open_record
from dealvault.record.lock import DealLocked, FileLock, advisory_key
from dealvault.record.store import record_lock_dir

__all__ = ["LEASE_PREFIX", "Leases", "default_guard_id", "lease_key"]

log = logging.getLogger(__name__)

#: Prefix of a lease's advisory-lock name: a lease key is never a deal lock's key.
LEASE_PREFIX = "guard-lease:"

#: libpq settings of the lease connection: connect and notice a dead server within seconds.
CONNECT_ARGS: dict[str, Any] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,  # ms
}
#: The server side of the lease connection: the server notices a guard whose host vanished (no
#: FIN) within about 11 s and frees its leases. A killed process is noticed at once (its kernel
#: closes the socket). No effect over a Unix socket.
SERVER_KEEPALIVES = {"tcp_keepalives_idle": 5, "tcp_keepalives_interval": 2, "tcp_keepalives_count": 3}
#: How often claim() also deletes rows whose guard no longer holds the lease.
STALE_SWEEP_SECONDS = 10.0
_MAX_DEAL_ID = 64  # guard_leases.deal_id


def default_guard_id() -> str:
    """``<pid>@<host>``: this process."""
    return f"{os.getpid()}@{socket.gethostname()}"


def lease_key(deal_id: str) -> int:
    """The advisory-lock key of ``deal_id``'s lease (never the key of the deal's own lock)."""
    return advisory_key(LEASE_PREFIX + deal_id)


class Leases:
    """This guard's leases on the deals of one record.

    ``record``: a :class:`~dealvault.record.Record` (left open by :meth:`close`) or a record URL
    (opened, migrated and closed here). ``guard_id``: how other guards, status and metrics name
    this one (default ``<pid>@<host>``). Not thread-safe: one thread claims.
    """

    def __init__(self, record: Record | str, guard_id: str | None = None) -> None:
        self._own_record = not isinstance(record, Record)
        self.record: Record = open_record(record) if isinstance(record, str) else record
        self.guard_id = guard_id or default_guard_id()
        self._backend: _PgLeases | _FileLeases = (
            _PgLeases(self.record.engine, self.guard_id) if self.record.dialect == "postgresql"
            else _FileLeases(record_lock_dir(self.record.url) / "guard-leases", self.guard_id))

    @property
    def held(self) -> frozenset[str]:
        """The deals this guard believes it holds (as of its last :meth:`claim`)."""
        return frozenset(self._backend.held)

    @property
    def reconnects(self) -> int:
        """How many times the lease connection was found lost and opened again (PostgreSQL)."""
        return self._backend.reconnects

    @property
    def last_error(self) -> str | None:
        """Why the last :meth:`claim` could not reach the record, if it could not."""
        return self._backend.last_error

    def claim(self, deal_ids: Iterable[str], *, share: bool = False) -> frozenset[str]:
        """Keep the leases held among ``deal_ids``, take every one nobody holds, release those not
        in ``deal_ids``; returns the deals this guard holds now. Never blocks on another guard.

        ``share``: hold at most an equal share, ``ceil(len(deal_ids) / guards alive)`` (the guards
        that have claimed on this record and are still alive, :meth:`guards`), releasing any
        excess, so that guards spread the deals. Only for guards that all claim the same deals:
        with other sets, shares can leave deals unheld. A released deal is taken by another
        guard's next claim (unwatched until then). The default takes every free deal.

        A lost connection (PostgreSQL) is noticed here: every lease went with it, so the
        connection is opened again and the claim starts over; if the record cannot be reached,
        nothing is held (``frozenset()``, the reason in :attr:`last_error`) and the next call
        tries again. Raises :class:`~dealvault.record.RecordError` only for an invalid deal id."""
        wanted = list(dict.fromkeys(deal_ids))
        for d in wanted:
            _check_deal_id(d)
        return frozenset(self._backend.claim(wanted, share))

    def guards(self) -> int:
        """How many guards are members of this record now: those alive that have claimed (this
        one included once it has)."""
        return self._backend.guards()

    def release_all(self) -> None:
        """Release every lease this guard holds (its deals go to the other guards' next claim)."""
        self._backend.release_all()

    def holders(self) -> dict[str, str]:
        """Deal id -> the guard id holding its lease, every guard of this record (for status and
        metrics). From the database (PostgreSQL: the advisory locks held now, named by their
        ``guard_leases`` rows) or the lock files (SQLite), not from this guard's beliefs. Raises
        the record's error if the database cannot be read (unlike :meth:`claim`)."""
        if isinstance(self._backend, _PgLeases):
            return self._backend.holders(self.record.engine)
        return self._backend.holders()

    def close(self) -> None:
        """Release every lease and close the lease connection (and the record if opened here)."""
        try:
            self._backend.close()
        finally:
            if self._own_record:
                self.record.close()

    def __enter__(self) -> Leases:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _share(deals: int, guards: int) -> int:
    """An equal share of ``deals`` among ``guards`` (this one counted even before it is seen)."""
    return -(-deals // max(guards, 1))


def _plan(held: Mapping[str, object], wanted: list[str], limit: int | None) -> tuple[list[str], int | None]:
    """What a claim releases (held but no longer wanted, or beyond ``limit``) and how many more it
    may take (None: all)."""
    kept = [d for d in wanted if d in held]
    keep = set(kept if limit is None else kept[:limit])
    dropped = [d for d in held if d not in keep]
    return dropped, None if limit is None else max(0, limit - len(keep))


def _check_deal_id(deal_id: str) -> None:
    if not isinstance(deal_id, str) or not deal_id or len(deal_id) > _MAX_DEAL_ID or "/" in deal_id or "\0" in deal_id:
        raise RecordError(f"not a deal id a lease can name: {deal_id!r} (1..{_MAX_DEAL_ID} characters, no '/')")


# ------------------------------------------------------------------------------------ PostgreSQL

_KEYS = ARRAY(BigInteger)
_IDS = ARRAY(String)

# the advisory locks of a key space: pg_locks splits a bigint key into classid (high 32 bits) and
# objid (low 32 bits), objsubid 1
_LOCK_KEY = "((l.classid::bigint << 32) | l.objid::bigint)"
_ADVISORY = ("l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted "
             "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())")

_HELD_BY_ME = text(f"SELECT {_LOCK_KEY} AS k FROM pg_locks l WHERE {_ADVISORY} AND l.pid = pg_backend_pid()")

# a guard's membership: the two-int advisory lock (the record's namespace, the backend's pid) its
# lease connection holds for as long as it lives (pg_locks: classid, objid, objsubid 2)
_JOIN = text("SELECT pg_try_advisory_lock(:ns, pg_backend_pid())")
_MEMBERS = text(
    "SELECT count(*) FROM pg_locks l WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.granted "
    "AND l.classid::bigint = (CAST(:ns AS bigint) & 4294967295) "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())")

# take the free leases (at most :room; NULL: all) and name this guard, in one statement (one round
# trip whatever the count); the lock function runs only on the rows the LIMIT lets through
_TAKE = text(
    "WITH t AS (SELECT d, k FROM unnest(:ids, :keys) AS t(d, k)), "
    f"free AS MATERIALIZED (SELECT d, k FROM t WHERE NOT EXISTS (SELECT 1 FROM pg_locks l WHERE {_ADVISORY} "
    f"AND {_LOCK_KEY} = t.k) LIMIT :room), "
    "got AS (SELECT d, k FROM free WHERE pg_try_advisory_lock(k)) "
    "INSERT INTO guard_leases (deal_id, guard_id, lock_key, backend_pid, acquired_at) "
    "SELECT d, :g, k, pg_backend_pid(), now() FROM got "
    "ON CONFLICT (deal_id) DO UPDATE SET guard_id = EXCLUDED.guard_id, lock_key = EXCLUDED.lock_key, "
    "backend_pid = EXCLUDED.backend_pid, acquired_at = EXCLUDED.acquired_at "
    "RETURNING deal_id"
).bindparams(bindparam("ids", type_=_IDS), bindparam("keys", type_=_KEYS))

# this guard's rows first (never another's: a deal released may be taken at once), then the locks
_FORGET = text("DELETE FROM guard_leases WHERE deal_id = ANY(:ids) AND backend_pid = pg_backend_pid()").bindparams(
    bindparam("ids", type_=_IDS))
_UNLOCK = text("SELECT pg_advisory_unlock(k) FROM unnest(:keys) AS t(k)").bindparams(bindparam("keys", type_=_KEYS))

# rows whose backend no longer holds the lease: their guard died or lost its connection. Run in
# a REPEATABLE READ transaction (:meth:`_PgLeases.sweep`): a row another guard takes over while
# the sweep runs (its lock granted, its row updated after the sweep's snapshot) fails the sweep
# with a serialization error instead of being deleted. Under READ COMMITTED the sweep deleted
# such rows (pg_locks read once into a hash anti-join, or a stale row version rechecked), so a
# guard held a lease with no row naming it: status and metrics showed the deal unheld.
_SWEEP = text(
    "DELETE FROM guard_leases g WHERE NOT EXISTS (SELECT 1 FROM pg_locks l "
    f"WHERE {_ADVISORY} AND l.pid = g.backend_pid AND {_LOCK_KEY} = g.lock_key)")
_SERIALIZATION_FAILURE = "40001"

# every lease held now, with the row naming it (the row of an old holder while a takeover commits)
_HOLDERS = text(
    f"SELECT g.deal_id, g.guard_id, g.backend_pid, l.pid AS holder_pid FROM guard_leases g "
    f"JOIN pg_locks l ON {_ADVISORY} AND {_LOCK_KEY} = g.lock_key")


class _PgLeases:
    """Advisory locks on one dedicated connection (a NullPool engine: closing it closes the
    session, and the server frees its locks)."""

    def __init__(self, engine: Engine, guard_id: str) -> None:
        self.guard_id = guard_id
        self.engine = create_engine(engine.url, poolclass=NullPool, connect_args=CONNECT_ARGS)
        self.held: dict[str, int] = {}  # deal id -> key
        self._connects = 0
        self.last_error: str | None = None
        self._conn: Connection | None = None
        self._swept_at = 0.0
        self._ns = 0  # the record's membership namespace (int4, from its schema)

    def claim(self, wanted: list[str], share: bool) -> set[str]:
        for attempt in (1, 2):  # a lost connection: once more on a new one, from nothing
            try:
                self._claim(wanted, share)
                self.last_error = None
                return set(self.held)
            except SQLAlchemyError as exc:
                self.last_error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                log.warning("guard %s: lease connection lost (%s)%s", self.guard_id, self.last_error,
                            "; reconnecting" if attempt == 1 else "; holding nothing until the next claim")
                self._drop()
        return set()

    def _claim(self, wanted: list[str], share: bool) -> None:
        conn = self._connection()
        # the server is the truth: what this session holds (a lost session holds nothing)
        mine = {int(k) for k in conn.execute(_HELD_BY_ME).scalars()}
        lost = [d for d, k in self.held.items() if k not in mine]
        if lost:
            log.warning("guard %s: leases lost: %s", self.guard_id, sorted(lost))
            for d in lost:
                del self.held[d]
        limit = _share(len(wanted), int(conn.execute(_MEMBERS, {"ns": self._ns}).scalar_one())) if share else None
        dropped, room = _plan(self.held, wanted, limit)
        if dropped:
            self._release(conn, dropped)
        todo = [d for d in wanted if d not in self.held]
        if todo and room != 0:
            keys = [lease_key(d) for d in todo]
            got = set(conn.execute(_TAKE, {"ids": todo, "keys": keys, "g": self.guard_id, "room": room}).scalars())
            self.held.update((d, k) for d, k in zip(todo, keys, strict=True) if d in got)
        if time.monotonic() - self._swept_at >= STALE_SWEEP_SECONDS:
            self.sweep()
            self._swept_at = time.monotonic()

    def sweep(self) -> int | None:
        """Delete the rows whose guard no longer holds their lease; returns how many, or None if
        a takeover ran at the same time (nothing deleted; the next sweep tries again). Raises
        :class:`~sqlalchemy.exc.SQLAlchemyError` if the connection is lost."""
        conn = self._connection()
        conn.exec_driver_sql("BEGIN ISOLATION LEVEL REPEATABLE READ")
        try:
            n = conn.execute(_SWEEP).rowcount
            conn.exec_driver_sql("COMMIT")
            return n
        except DBAPIError as exc:
            with contextlib.suppress(SQLAlchemyError):
                conn.exec_driver_sql("ROLLBACK")
            if getattr(exc.orig, "sqlstate", None) != _SERIALIZATION_FAILURE:
                raise
            log.info("guard %s: stale-row sweep skipped (a takeover ran beside it)", self.guard_id)
            return None

    def _release(self, conn: Connection, deals: list[str]) -> None:
        conn.execute(_FORGET, {"ids": deals})
        conn.execute(_UNLOCK, {"keys": [self.held[d] for d in deals]})
        for d in deals:
            del self.held[d]

    def _connection(self) -> Connection:
        if self._conn is None:
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                for name, value in {**SERVER_KEEPALIVES, "application_name": f"dealvault guard {self.guard_id}"[:63]}.items():
                    conn.execute(text("SELECT set_config(:n, :v, false)"), {"n": name, "v": str(value)})
                schema = conn.execute(text("SELECT current_schema()")).scalar_one()
                self._ns = advisory_key(f"guard-member:{schema}") >> 32
                conn.execute(_JOIN, {"ns": self._ns})
            except BaseException:
                conn.close()
                raise
            self._connects += 1
            self._conn = conn
        return self._conn

    @property
    def reconnects(self) -> int:
        return max(0, self._connects - 1)

    def _drop(self) -> None:
        """Forget the connection and everything held on it (closing it frees what the server
        still holds)."""
        self.held.clear()
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.invalidate()
            with contextlib.suppress(Exception):
                conn.close()

    def release_all(self) -> None:
        if self._conn is not None and self.held:
            try:
                self._release(self._conn, list(self.held))
            except SQLAlchemyError as exc:
                log.warning("guard %s: releasing leases: %s", self.guard_id, exc)
                self._drop()

    def guards(self) -> int:
        if self._conn is None:
            return 0
        try:
            return int(self._conn.execute(_MEMBERS, {"ns": self._ns}).scalar_one())
        except SQLAlchemyError:
            self._drop()
            return 0

    def holders(self, engine: Engine) -> dict[str, str]:
        """One read; while a takeover commits (the new holder's lock is granted, its row not yet
        visible) the read is repeated briefly."""
        for _ in range(20):
            with engine.connect() as conn:
                rows = conn.execute(_HOLDERS).all()
            if all(r.backend_pid == r.holder_pid for r in rows):
                break
            time.sleep(0.005)
        return {r.deal_id: (r.guard_id if r.backend_pid == r.holder_pid else f"backend {r.holder_pid}") for r in rows}

    def close(self) -> None:
        self.release_all()
        if self._conn is not None:  # the membership too, before the session ends (which frees it later)
            with contextlib.suppress(SQLAlchemyError):
                self._conn.execute(text("SELECT pg_advisory_unlock_all()"))
        self._drop()
        self.engine.dispose()


# ------------------------------------------------------------------------------------ SQLite


class _FileLeases:
    """``flock`` files in one directory, one per deal (one host)."""

    def __init__(self, directory: Path, guard_id: str) -> None:
        self.directory = directory
        self.guard_id = guard_id
        self.held: dict[str, FileLock] = {}
        self.reconnects = 0
        self.last_error: str | None = None
        self._member: FileLock | None = None

    def claim(self, wanted: list[str], share: bool) -> set[str]:
        self.last_error = None
        try:
            self._join()
        except OSError as exc:
            self.last_error = str(exc)
            log.warning("guard %s: membership file: %s", self.guard_id, exc)
        dropped, room = _plan(self.held, wanted, _share(len(wanted), self.guards()) if share else None)
        for d in dropped:
            self.held.pop(d).release()
        for d in wanted:
            if room is not None and room <= 0:
                break
            if d in self.held:
                continue
            lk = FileLock(self.directory / f"{d}.lock", d, info={"guard": self.guard_id})
            try:
                lk.acquire(timeout=0.0)
            except DealLocked:
                continue
            except OSError as exc:
                self.last_error = str(exc)
                log.warning("guard %s: lease file for %s: %s", self.guard_id, d, exc)
                continue
            self.held[d] = lk
            room = None if room is None else room - 1
        return set(self.held)

    def _join(self) -> None:
        if self._member is None:
            lk = FileLock(self.directory / "members" / f"{os.getpid()}-{uuid.uuid4().hex}.lock", "guard member",
                          info={"guard": self.guard_id})
            lk.acquire()
            self._member = lk

    def guards(self) -> int:
        """The member files whose lock is held (those of dead guards, a minute old, are removed)."""
        members = self.directory / "members"
        n = 0
        for path in members.glob("*.lock") if members.is_dir() else ():
            if _file_holder(path) is not None:
                n += 1
            else:
                with contextlib.suppress(OSError):
                    if time.time() - path.stat().st_mtime > 60:
                        path.unlink()
        return n

    def release_all(self) -> None:
        while self.held:
            self.held.popitem()[1].release()

    def holders(self) -> dict[str, str]:
        """Probes each lease file with a shared ``flock``: a guard claiming at that instant may
        miss that deal until its next claim."""
        out = {d: self.guard_id for d in self.held}
        if not self.directory.is_dir():
            return out
        for path in sorted(self.directory.glob("*.lock")):
            d = path.name[: -len(".lock")]
            if d not in out and (holder := _file_holder(path)) is not None:
                out[d] = holder
        return out

    def close(self) -> None:
        self.release_all()
        if self._member is not None:
            with contextlib.suppress(OSError):
                self._member.path.unlink()
            self._member.release()
            self._member = None


def _file_holder(path: Path) -> str | None:
    """Who holds the ``flock`` of ``path`` (its guard id, else ``pid@host``), or None if free."""
    try:
        fh = open(path)  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return None
    with fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pass
        else:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            return None
        for _ in range(20):  # the holder writes its name just after it locks
            fh.seek(0)
            content = fh.read().strip()
            if content:
                try:
                    h = json.loads(content)
                    return str(h.get("guard") or f"{h['pid']}@{h['host']}")
                except (ValueError, KeyError, TypeError, AttributeError):
                    return content
            time.sleep(0.005)
        return "holder unknown"
