"""One lock per deal (and one per vault), across processes (and hosts, on PostgreSQL), and the record's errors.

PostgreSQL: a session-level ``pg_advisory_lock`` on a dedicated connection, plus a
``deal_locks`` row naming the holder. SQLite: an ``fcntl.flock`` on a file beside the database
(``<db>.locks/<deal_id>.lock``) holding the holder's pid/host. Both are released by the
operating system / server when the holding process dies (SIGKILL included), so a crash never
leaves a deal locked.

:func:`host_vault_lock`: a vault's lock on this host whatever record drives it (an ``flock`` in
:func:`host_lock_dir`), so that two databases on one host never drive one vault at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, Engine, text

from dealvault.errors import DealVaultError

__all__ = ["DealLocked", "FileLock", "PgAdvisoryLock", "RecordError", "advisory_key", "vault_lock_name", "VAULT_LOCK_PREFIX",
           "host_lock_dir", "host_vault_lock"]


class RecordError(DealVaultError, RuntimeError):
    """A deal-record problem (unknown deal, impossible leg transition, ...)."""


class DealLocked(RecordError):  # noqa: N818 - the public name since v1 (the orchestrator and scripts catch it)
    """Another process drives this deal."""

    def __init__(self, deal_id: str, holder: str) -> None:
        self.deal_id = deal_id
        self.holder = holder
        what = (f"vault {deal_id.split('-', 2)[2]} (chain {deal_id.split('-', 2)[1]})" if deal_id.startswith(VAULT_LOCK_PREFIX)
                else f"deal {deal_id!r}")
        super().__init__(f"{what} is already being driven: its lock is held by {holder}")


#: Lock names of vaults (:func:`vault_lock_name`): a vault is driven by one deal at a time.
VAULT_LOCK_PREFIX = "vault-"


def vault_lock_name(chain_id: int, vault: str) -> str:
    """The lock name of ``vault`` on chain ``chain_id``: held with the deal's own lock, so that
    two deal ids in one record never drive one vault at the same moment."""
    return f"{VAULT_LOCK_PREFIX}{int(chain_id)}-{vault.lower()}"


def _me() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "acquired_at": datetime.now(UTC).isoformat()}


def advisory_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for ``name``."""
    return int.from_bytes(hashlib.sha256(b"dealvault:" + name.encode()).digest()[:8], "big", signed=True)


class FileLock:
    """An exclusive ``flock`` on ``path`` (SQLite records). The file names the holder while it is
    held: its pid, host and time, plus ``info`` (e.g. a guard's id)."""

    def __init__(self, path: Path, deal_id: str, info: Mapping[str, Any] | None = None) -> None:
        self.path = path
        self.deal_id = deal_id
        self.info = dict(info or {})
        self._fh: IO[str] | None = None

    def acquire(self, timeout: float = 0.0, poll: float = 0.05) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")  # noqa: SIM115 - held open for as long as the lock is
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    fh.seek(0)
                    holder = fh.read().strip() or "holder unknown"
                    fh.close()
                    raise DealLocked(self.deal_id, _describe(holder)) from None
                time.sleep(poll)
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(_me() | self.info))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            try:
                self._fh.seek(0)
                self._fh.truncate()
                self._fh.flush()
                fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            finally:
                self._fh.close()
                self._fh = None


class PgAdvisoryLock:
    """A session-level PostgreSQL advisory lock on its own connection (PostgreSQL records)."""

    def __init__(self, engine: Engine, deal_id: str) -> None:
        self.engine = engine
        self.deal_id = deal_id
        self.key = advisory_key(deal_id)
        self._conn: Connection | None = None

    def acquire(self, timeout: float = 0.0, poll: float = 0.1) -> None:
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        deadline = time.monotonic() + timeout
        try:
            while not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar():
                if time.monotonic() >= deadline:
                    row = conn.execute(
                        text("SELECT pid, host, acquired_at FROM deal_locks WHERE deal_id = :d"), {"d": self.deal_id}
                    ).first()
                    holder = (
                        json.dumps({"pid": row.pid, "host": row.host, "acquired_at": row.acquired_at.isoformat()})
                        if row
                        else "holder unknown"
                    )
                    raise DealLocked(self.deal_id, _describe(holder))
                time.sleep(poll)
            me = _me()
            conn.execute(text("DELETE FROM deal_locks WHERE deal_id = :d"), {"d": self.deal_id})
            conn.execute(
                text("INSERT INTO deal_locks (deal_id, pid, host, acquired_at) VALUES (:d, :pid, :host, :at)"),
                {"d": self.deal_id, "pid": me["pid"], "host": me["host"], "at": datetime.now(UTC)},
            )
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(
                    text("DELETE FROM deal_locks WHERE deal_id = :d AND pid = :pid AND host = :host"),
                    {"d": self.deal_id, "pid": os.getpid(), "host": socket.gethostname()},
                )
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            finally:
                self._conn.close()
                self._conn = None


def _describe(holder: str) -> str:
    try:
        h = json.loads(holder)
        return f"pid {h['pid']} on host {h['host']} since {h['acquired_at']}"
    except (ValueError, KeyError, TypeError):
        return holder


def host_lock_dir() -> Path:
    """Where this host's vault locks live: ``DEALVAULT_LOCK_DIR``, else ``~/.dealvault/locks``
    (one directory per user: every checkout and every record of that user share it)."""
    return Path(os.environ.get("DEALVAULT_LOCK_DIR") or Path.home() / ".dealvault" / "locks")


_HOST_HELD: dict[str, int] = {}  # lock name -> depth, this process


@contextlib.contextmanager
def host_vault_lock(chain_id: int, vault: str, timeout: float = 0.0) -> Iterator[None]:
    """This host's lock of ``vault``, whatever record (SQLite file or PostgreSQL database) drives
    it: two records on one host never drive one vault at the same moment (the record's own vault
    lock covers every host that shares a PostgreSQL record). Re-entrant within a process; released
    by the operating system if the process dies. Raises :class:`DealLocked` naming the holder."""
    name = vault_lock_name(chain_id, vault)
    if name in _HOST_HELD:
        _HOST_HELD[name] += 1
        try:
            yield
        finally:
            _HOST_HELD[name] -= 1
        return
    lk = FileLock(host_lock_dir() / f"{name}.lock", name)
    lk.acquire(timeout=timeout)
    _HOST_HELD[name] = 1
    try:
        yield
    finally:
        del _HOST_HELD[name]
        lk.release()
