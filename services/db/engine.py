"""Database engines for the broker: SQLite (the embedded default) and PostgreSQL, by URL.

Owns: URL handling (`sqlite:///path`, `postgresql://...`), the SQLite pragmas that make it a
durable single-file store (WAL, synchronous=FULL, foreign keys, busy timeout), explicit
transaction control on SQLite (deferred for readers, IMMEDIATE for connections carrying the
`orbitq_write` execution option, so a writer never fails to upgrade its lock), the check that
hands out no pooled PostgreSQL connection the server has closed (`server_closed`), commits
left unflushed for a throw-away database only (`durable=False`: the simulator's), and applying
the migrations on start.

`write_transaction` is orbitq.ledger.store.transactions' (the ledger store uses it too),
re-exported here for the services. The services reach the database one way: SQLAlchemy Core
statements over the SQLModel-declared tables, on a connection (`engine.connect()` to read,
`write_transaction` to write); no ORM sessions. A hot path may instead send plain SQL through the
driver's own cursor on such a connection (`driver_row`, `driver_rows`, `driver_execute`;
ReportReceipt's end in the ledger's group, as the ledger store does), where SQLAlchemy's
per-statement work costs more than the database's.

Does not own: table definitions (orbitq.ledger.store.tables, orbitq.services.db.models).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url

from orbitq.ledger.store.dialect import IN_LIST_VALUES_MAX
from orbitq.ledger.store.transactions import WRITE_OPTION, write_transaction

SQLITE_BUSY_TIMEOUT_MS = 10_000
POOL_SIZE = 16


def normalize_url(url: str) -> str:
    """Accept the usual spellings; PostgreSQL goes through psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_engine(url: str, *, durable: bool = True, **options: Any) -> sa.Engine:
    """An engine for `url`, configured for orbitq's durability and locking rules.

    `durable` False is for throw-away databases only (the simulator's scratch file, which dies
    with its run): commits are not flushed to disk before they return (SQLite's
    synchronous=OFF, PostgreSQL's synchronous_commit=off), so a power cut may lose the last
    ones; nothing else changes (the same transactions, locks and order)."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ValueError(
                "orbitq needs a SQLite file (sqlite:///path), not an in-memory database"
            )
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url,
            pool_size=POOL_SIZE,
            max_overflow=POOL_SIZE,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            **options,
        )
        _configure_sqlite(engine, durable=durable)
        return engine
    if parsed.get_backend_name() == "postgresql":
        engine = sa.create_engine(url, pool_size=POOL_SIZE, max_overflow=POOL_SIZE, **options)
        _configure_postgres(engine)
        if not durable:
            _commit_without_flush(engine)
        return engine
    raise ValueError(
        f"unsupported database {parsed.get_backend_name()!r}: use sqlite:///FILE or postgresql://..."
    )


def _commit_without_flush(engine: sa.Engine) -> None:
    """PostgreSQL: each session's commits return before the WAL reaches the disk (a session
    setting, so the URL's own `options`, such as a search_path, are kept)."""

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SET synchronous_commit = off")
        cursor.close()
        dbapi_connection.commit()


def _configure_sqlite(engine: sa.Engine, *, durable: bool) -> None:
    synchronous = "FULL" if durable else "OFF"

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so BEGIN is ours to choose.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: every commit is fsync'd before it returns (acknowledged means durable); OFF
        # only for a throw-away database (create_engine's `durable`).
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: sa.Connection) -> None:
        if connection.get_execution_options().get(WRITE_OPTION):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")


def _configure_postgres(engine: sa.Engine) -> None:
    # Not SQLAlchemy's pre-ping: a ping per checkout is a round trip per ledger group
    # (docs/performance.md, "PostgreSQL"). A restarted server closes every connection it had,
    # and a closed socket is seen without asking the server anything; the pool then reconnects
    # this connection and discards the others it holds. A connection that dies after checkout
    # fails its transaction; the ledger's write path retries such a group once
    # (orbitq.ledger.store.write), other callers see the error as before.
    @event.listens_for(engine, "checkout")
    def on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if server_closed(dbapi_connection):
            raise sa.exc.InvalidatePoolError("the server closed this pooled connection")


def server_closed(dbapi_connection: Any) -> bool:
    """Whether an idle psycopg connection is known to be closed by the server, found without a
    round trip: what the server sent meanwhile is read without waiting (a non-blocking read
    each). A server that terminates a backend sends an error and then closes the socket; the
    first read may take only the error, the second then meets the end."""
    if dbapi_connection.closed or dbapi_connection.broken:
        return True
    pgconn = dbapi_connection.pgconn
    try:
        for _ in range(2):
            pgconn.consume_input()
    except psycopg.OperationalError:
        return True
    return bool(pgconn.status != psycopg.pq.ConnStatus.OK)


def driver_sql(connection: sa.Connection, sql: str) -> str:
    """`sql`, written with `?` placeholders, in the driver's style (psycopg takes `%s`; no `?`
    may appear elsewhere in it)."""
    return sql.replace("?", "%s") if connection.dialect.name == "postgresql" else sql


def driver_row(connection: sa.Connection, sql: str, params: Sequence[Any]) -> dict[str, Any] | None:
    """The first row of `sql` (`?` placeholders) as {column: value}, read through the driver's
    own cursor on `connection` (in its transaction, if one began); values as the driver gives
    them (SQLite's booleans are 0 and 1)."""
    cursor = connection.connection.cursor()
    try:
        cursor.execute(driver_sql(connection, sql), tuple(params))
        row = cursor.fetchone()
        if row is None:
            return None
        return dict(zip([column[0] for column in cursor.description], row, strict=True))
    finally:
        cursor.close()


def driver_rows(
    connection: sa.Connection, sql: str, params: Sequence[Any], limit: int
) -> list[dict[str, Any]]:
    """At most `limit` rows of `sql` as `driver_row` reads one (the statement should bound
    itself too; `limit` keeps a caller's memory bounded whatever it sends)."""
    cursor = connection.connection.cursor()
    try:
        cursor.execute(driver_sql(connection, sql), tuple(params))
        rows = cursor.fetchmany(limit)
        columns = [column[0] for column in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in rows]
    finally:
        cursor.close()


def driver_execute(connection: sa.Connection, sql: str, params: Sequence[Any]) -> int:
    """Run one statement that returns no rows (`?` placeholders) through the driver's cursor
    on `connection`, in its transaction; the rows it changed."""
    cursor = connection.connection.cursor()
    try:
        cursor.execute(driver_sql(connection, sql), tuple(params))
        return int(cursor.rowcount)
    finally:
        cursor.close()


__all__ = [
    "IN_LIST_VALUES_MAX",
    "create_engine",
    "driver_execute",
    "driver_row",
    "driver_rows",
    "driver_sql",
    "normalize_url",
    "server_closed",
    "write_transaction",
]
