"""The audit's view of a stored ledger: one consistent, read-only snapshot of every row.

Owns: opening one transaction that sees the whole ledger as of one instant (a WAL snapshot on
SQLite, REPEATABLE READ on PostgreSQL), so a broker may keep appending while
`orbitq ledger verify` runs, and reading its rows in large pages through the DBAPI cursor for
orbitq.ledger.audit (which reads them through its `AuditSource` protocol).

Does not own: what the rows must satisfy (orbitq.ledger.audit), or any write.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from orbitq.ledger.errors import (
    AccountIntegrityError,
    CheckpointIntegrityError,
    InvariantViolationError,
)
from orbitq.ledger.model import Account
from orbitq.ledger.store.dialect import Dialect
from orbitq.ledger.store.rows import (
    ACCOUNT_COLUMNS,
    TRANSFER_COLUMNS,
    TRANSFER_TIMESTAMP_AT,
    account_of,
)


@contextmanager
def open_snapshot(engine: sa.Engine, dialect: Dialect) -> Iterator[LedgerSnapshot]:
    """One consistent, read-only view of the whole stored ledger (see the module docstring)."""
    conn = engine.connect()
    if dialect.postgres:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    try:
        with conn.begin():
            yield LedgerSnapshot(conn, dialect)
    finally:
        conn.close()


class LedgerSnapshot:
    """Raw rows of the ledger for the audit, in large pages through the DBAPI cursor.

    Rows are returned as the driver gives them (tuples of ints, bytes, str, None), without a
    per-row conversion: the audit reads a million entries in a few seconds, and any per-row
    Python work here would be a noticeable share of it.
    """

    ENTRY_PAGE_ROWS = 50_000
    TRANSFER_PAGE_ROWS = 50_000
    EVIDENCE_PAGE_ROWS = 50_000

    def __init__(self, conn: sa.Connection, dialect: Dialect) -> None:
        self._conn = conn
        self._sql = dialect.sql

    def _cursor(self) -> Any:
        return self._conn.connection.cursor()

    def head(self) -> tuple[Any, ...] | None:
        """(size, last_timestamp_ns, next_account_id, checkpoints, checkpoint_hash) of the head
        row, as stored; None if there is no head row (or more than one row claims it)."""
        cursor = self._cursor()
        cursor.execute(
            "SELECT id, size, last_timestamp_ns, next_account_id, checkpoints, checkpoint_hash"
            " FROM ledger_head"
        )
        rows = cursor.fetchall()
        if len(rows) != 1 or rows[0][0] != 1:
            return None
        return tuple(rows[0][1:])

    def entry_pages(self) -> Iterator[list[tuple[int, bytes, bytes]]]:
        """(idx, data, hashes) of every stored entry in index order, in pages."""
        cursor = self._cursor()
        sql = self._sql(
            "SELECT idx, data, hashes FROM ledger_entries WHERE idx >= ? ORDER BY idx LIMIT ?"
        )
        position = 0
        while True:
            cursor.execute(sql, (position, self.ENTRY_PAGE_ROWS))
            rows: list[tuple[int, bytes, bytes]] = cursor.fetchall()
            if not rows:
                return
            yield rows
            position = int(rows[-1][0]) + 1

    def transfer_pages(self) -> Iterator[list[tuple[Any, ...]]]:
        """Every transfer row (the columns of `TRANSFER_COLUMNS`) in timestamp order, which is
        the order of their entries in the log (A6), in pages."""
        cursor = self._cursor()
        first = f"SELECT {TRANSFER_COLUMNS} FROM ledger_transfers ORDER BY timestamp_ns LIMIT ?"
        rest = self._sql(
            f"SELECT {TRANSFER_COLUMNS} FROM ledger_transfers WHERE timestamp_ns > ?"
            " ORDER BY timestamp_ns LIMIT ?"
        )
        cursor.execute(self._sql(first), (self.TRANSFER_PAGE_ROWS,))
        while True:
            rows: list[tuple[Any, ...]] = cursor.fetchall()
            if not rows:
                return
            yield rows
            cursor.execute(rest, (rows[-1][TRANSFER_TIMESTAMP_AT], self.TRANSFER_PAGE_ROWS))

    def evidence_pages(self) -> Iterator[list[tuple[Any, ...]]]:
        """Every evidence row (entry_index, digest, kind, node, request_id) in entry order,
        in pages."""
        cursor = self._cursor()
        sql = self._sql(
            "SELECT entry_index, digest, kind, node, request_id FROM ledger_evidence"
            " WHERE entry_index >= ? ORDER BY entry_index LIMIT ?"
        )
        position = 0
        while True:
            cursor.execute(sql, (position, self.EVIDENCE_PAGE_ROWS))
            rows: list[tuple[Any, ...]] = cursor.fetchall()
            if not rows:
                return
            yield rows
            position = int(rows[-1][0]) + 1  # an integer primary key on both databases

    # The audit reads tampered databases: a value of the wrong type (SQLite stores any type in
    # any column) becomes a LedgerIntegrityError naming the row, never a crash.

    def accounts(self) -> list[Account]:
        cursor = self._cursor()
        cursor.execute(f"SELECT {ACCOUNT_COLUMNS} FROM ledger_accounts ORDER BY id")
        accounts = []
        for row in cursor.fetchall():
            try:
                accounts.append(account_of(row))
            except (TypeError, ValueError) as error:
                raise AccountIntegrityError(row[0], "?", f"the row is malformed: {error}") from None
        return accounts

    def checkpoints(self) -> list[tuple[int, bytes, str, int]]:
        """(size, root_hash, note, timestamp_ns) of every stored checkpoint, smallest first."""
        cursor = self._cursor()
        cursor.execute(
            "SELECT size, root_hash, note, timestamp_ns FROM ledger_checkpoints ORDER BY size"
        )
        rows = []
        for size, root, note, timestamp_ns in cursor.fetchall():
            if not (
                isinstance(size, int)
                and isinstance(root, bytes)
                and isinstance(note, str)
                and isinstance(timestamp_ns, int)
            ):
                raise CheckpointIntegrityError(
                    size if isinstance(size, int) else -1, "the stored row is malformed"
                )
            rows.append((size, root, note, timestamp_ns))
        return rows

    def pending(self) -> list[tuple[bytes, int, int]]:
        """(id, status, expires_ns) of every row of the pending-transfer status table."""
        cursor = self._cursor()
        cursor.execute("SELECT id, status, expires_ns FROM ledger_pending ORDER BY id")
        rows: list[tuple[bytes, int, int]] = cursor.fetchall()
        for row in rows:
            if not (isinstance(row[0], bytes) and isinstance(row[1], int)):
                raise InvariantViolationError(f"pending status row {row[0]!r} is malformed")
        return rows
