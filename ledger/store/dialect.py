"""The one SQL-dialect helper of the ledger store: the same SQL text on SQLite and PostgreSQL.

Owns: what differs between the two databases as the store's raw DBAPI cursors see them — the
placeholder style (sqlite3 takes `?`, psycopg `%s`; the store writes `?` everywhere and `sql()`
translates), bulk inserts (`insert_rows`: COPY on PostgreSQL), the row lock of
`SELECT ... FOR UPDATE` (SQLite has none: its immediate transaction already holds the
database's write lock), `IN (...)` lookups by many keys
(`select_in`) in chunks far below both databases' parameter limits, the statements sent
without waiting on each other (`pipeline`: one round trip on PostgreSQL), and recognising a unique
violation (sqlite3.IntegrityError, psycopg's UniqueViolation) without importing either driver.

Every module of orbitq.ledger.store issues its SQL through one `Dialect`; none spells a
placeholder or a lock itself.

Does not own: connections and transactions (orbitq.ledger.store.transactions, SQLAlchemy's
pool), or any statement.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

# Bound on the values of one IN (...) list: far below SQLite's (32,766) and PostgreSQL's
# (65,535) parameter limits.
IN_LIST_VALUES_MAX = 500

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Dialect:
    """SQL text for one database: write statements with `?` and pass them through `sql()`."""

    postgres: bool

    @classmethod
    def of(cls, engine: sa.Engine) -> Dialect:
        return cls(postgres=engine.dialect.name == "postgresql")

    @property
    def for_update(self) -> str:
        """The suffix that row-locks what a SELECT reads (nothing on SQLite, see above)."""
        return " FOR UPDATE" if self.postgres else ""

    def sql(self, text: str) -> str:
        """`text` with its `?` placeholders in the driver's style (no `?` may appear elsewhere:
        the store's statements carry no string literals)."""
        return text.replace("?", "%s") if self.postgres else text

    def insert_rows(
        self, cursor: Any, table: str, columns: str, rows: Iterable[Sequence[Any]]
    ) -> None:
        """Insert `rows` (tuples in the order of `columns`, a comma-separated list) into `table`.

        PostgreSQL takes them by `COPY ... FROM STDIN` (binary-safe, one round trip per batch:
        about twice the rate of a pipelined executemany on this machine, bench/ledger_postgres.py);
        SQLite by executemany, already in-process. Both enforce every constraint, so a unique
        violation surfaces the same way (`is_unique_violation`).
        """
        if self.postgres:
            with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        count = len(columns.split(","))
        cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({placeholders(count)})", rows)

    def pipeline(self, cursor: Any) -> AbstractContextManager[Any]:
        """A block whose statements go to the server without waiting for each other's replies:
        psycopg's pipeline mode on PostgreSQL (one round trip for the block instead of one per
        statement; an error surfaces, as the same exception, when the block ends), nothing on
        SQLite (in-process: there is no round trip to save). Only for statements whose results
        the block does not read; COPY cannot run inside it."""
        if self.postgres:
            pipeline: AbstractContextManager[Any] = cursor.connection.pipeline()
            return pipeline
        return nullcontext()

    def select_in(self, cursor: Any, select: str, keys: Sequence[Any]) -> list[Any]:
        """Every row of `select` (a statement ending in `WHERE <column>`) whose column is one of
        `keys`, in chunked `IN (...)` queries on `cursor`; rows in no particular order."""
        rows: list[Any] = []
        for chunk in chunks(keys):
            cursor.execute(self.sql(f"{select} IN ({placeholders(len(chunk))})"), chunk)
            rows.extend(cursor.fetchall())
        return rows


def placeholders(count: int) -> str:
    """`count` placeholders `?, ?, ...` for an IN (...) list (then through `Dialect.sql`)."""
    assert 0 < count <= IN_LIST_VALUES_MAX, count
    return ", ".join(["?"] * count)


def chunks(values: Sequence[_T]) -> Iterator[list[_T]]:
    """`values` in lists of at most IN_LIST_VALUES_MAX, one IN (...) query each."""
    for start in range(0, len(values), IN_LIST_VALUES_MAX):
        yield list(values[start : start + IN_LIST_VALUES_MAX])


def is_unique_violation(error: BaseException) -> bool:
    """Whether a DBAPI (or SQLAlchemy) error is a primary-key or unique-index violation."""
    if isinstance(error, IntegrityError):
        return True
    return type(error).__name__ in {"IntegrityError", "UniqueViolation"}
