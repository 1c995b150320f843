"""Deal-record databases for the tests: a fresh SQLite file, or a fresh schema on the PostgreSQL
server named by ``DATABASE_URL`` (``eval "$(bash .ci/postgres.sh)"`` sets one up; `.ci/run` does).

Without ``DATABASE_URL`` the PostgreSQL cases are skipped, saying why.
"""

from __future__ import annotations

import contextlib
import functools
import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import ProgrammingError

from dealvault.record import normalize_url

BACKENDS = ("sqlite", "postgresql")
PG_URL = os.environ.get("DATABASE_URL", "")
PG_SKIP_REASON = (
    "PostgreSQL record tests skipped: DATABASE_URL is unset "
    "(run `eval \"$(.ci/postgres.sh)\"` to start a local server and set it)"
)


def pg_enabled() -> bool:
    return PG_URL.startswith(("postgres", "postgresql"))


@functools.cache
def _worker_database() -> str:
    """The URL of this pytest-xdist worker's own database on the server (created once, kept empty).

    PostgreSQL's advisory locks (a deal's lock, a vault's lock, a guard's lease) are per database, not
    per schema, and every worker's kit deploys the demo deal's vault at the same address under the
    same deal id: two workers' tests in one database would take each other's locks (seen: a test's
    run refused with DealLocked while the other worker's resume held 'demo-001'). Without the right
    to create databases, schemas of DATABASE_URL's database are used and that isolation is lost."""
    base = normalize_url(PG_URL)
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return base
    url = make_url(base)
    name = f"{url.database}_{worker}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar() is None:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    except ProgrammingError:  # no CREATEDB: share DATABASE_URL's database
        return base
    finally:
        admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


@contextlib.contextmanager
def pg_schema() -> Iterator[str]:
    """A URL whose ``search_path`` is a new empty schema on the server (in this worker's own
    database); dropped on exit."""
    if not pg_enabled():
        pytest.skip(PG_SKIP_REASON)
    base = _worker_database()
    schema = f"dv_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextlib.contextmanager
def db_factory(backend: str, tmp_path) -> Iterator:
    """``make(name)`` -> the URL of a new empty database of ``backend`` (all dropped on exit)."""
    assert backend in BACKENDS, backend
    with contextlib.ExitStack() as stack:

        def make(name: str = "deals") -> str:
            if backend == "sqlite":
                path = tmp_path / f"{name}.db"
                assert not path.exists(), f"{path} is already used in this test"
                return f"sqlite:///{path}"
            return stack.enter_context(pg_schema())

        yield make
