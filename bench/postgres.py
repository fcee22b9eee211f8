"""A private PostgreSQL schema for a benchmark, when a server is reachable.

ORBITQ_BENCH_PG_URL, else the tests' default (127.0.0.1:5432, database `test`). Benchmarks are
not tests: an unreachable server means the PostgreSQL figures are left out, and said so.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import sqlalchemy as sa

from orbitq.services.db.engine import create_engine
from orbitq.services.db.migrate import migrate

PG_URL = os.environ.get("ORBITQ_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextmanager
def postgres_schema() -> Iterator[str | None]:
    """The URL of a fresh schema (dropped afterwards), or None when no server answers."""
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    schema = f"bench_{secrets.token_hex(6)}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    except sa.exc.OperationalError as error:
        print(
            f"PostgreSQL not reachable at {PG_URL}: its figures are left out ({error.orig})",
            file=sys.stderr,
        )
        admin.dispose()
        yield None
        return
    separator = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def psycopg_conninfo(url: str) -> str:
    """The SQLAlchemy URL as libpq understands it (driver name dropped)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def raw_connection(url: str) -> psycopg.Connection[Any]:
    """A connection to a schema holding the broker's very tables and indexes (migrated the same
    way), for raw inserts to measure against."""
    engine = create_engine(url)
    migrate(engine)
    engine.dispose()
    return psycopg.connect(psycopg_conninfo(url))
