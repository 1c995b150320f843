"""Deal-record databases for the tests: a fresh SQLite file, or a fresh schema on the PostgreSQL
server named by ``DATABASE_URL`` (``eval "$(bash .ci/postgres.sh)"`` sets one up; `.ci/run` does).

Without ``DATABASE_URL`` the PostgreSQL cases are skipped, saying why.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from dealvault.record import normalize_url

BACKENDS = ("sqlite", "postgresql")
PG_URL = os.environ.get("DATABASE_URL", "")
PG_SKIP_REASON = (
    "PostgreSQL record tests skipped: DATABASE_URL is unset "
    "(run `eval \"$(.ci/postgres.sh)\"` to start a local server and set it)"
)


def pg_enabled() -> bool:
    return PG_URL.startswith(("postgres", "postgresql"))


@contextlib.contextmanager
def pg_schema() -> Iterator[str]:
    """A URL whose ``search_path`` is a new empty schema on the server; dropped on exit."""
    if not pg_enabled():
        pytest.skip(PG_SKIP_REASON)
    base = normalize_url(PG_URL)
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
