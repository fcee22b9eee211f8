"""The ledger's write path on PostgreSQL against raw inserts of the same rows on the same server.

`LedgerStore.write` of CreateTransfers batches (1,000 transfers, random 128-bit ids, the log
appended, one durable commit per batch) into a fresh schema, against the very rows it stored —
its transfer rows and its log entries, read back byte for byte — written straight into tables
of the same shape (migrated the same way, same indexes) one commit per batch, two ways: psycopg
`executemany` (pipelined) and `COPY`. What the ledger does beyond that (validation, balances,
the Merkle frontier, account rows) is what the ratios price: `executemany_ratio` and
`copy_ratio` (target >= 0.5 for each).

Skipped, and said so, when no PostgreSQL answers (ORBITQ_BENCH_PG_URL or the tests' default).
"""

from __future__ import annotations

import os
import time
from typing import Any

import psycopg

from bench.common import peak_rss_mb, publish
from bench.ledger import (
    RAW_COLUMNS,
    START_NS,
    batches_of,
    open_store,
    write_batches,
)
from bench.postgres import postgres_schema
from orbitq.services.db.engine import create_engine
from orbitq.services.db.migrate import migrate

TRANSFERS = int(os.environ.get("ORBITQ_BENCH_PG_TRANSFERS", "50000"))
BATCH = 1000
TARGET_RATIO = 0.5


Rows = list[tuple[Any, ...]]
TRANSFER_ROWS = f"SELECT {RAW_COLUMNS} FROM ledger_transfers ORDER BY timestamp_ns"
ENTRY_ROWS = "SELECT idx, data, hashes FROM ledger_entries ORDER BY idx"


def _ledger_rate(url: str) -> tuple[float, Rows, Rows]:
    """(transfers/s through the ledger, the transfer rows and entry rows it stored)."""
    store, accounts = open_store(url)
    seconds, _now = write_batches(store, batches_of(accounts, TRANSFERS, BATCH), START_NS)
    store.check_invariants()
    with store.engine.connect() as connection:
        transfers = [tuple(row) for row in connection.exec_driver_sql(TRANSFER_ROWS)]
        entries = [tuple(row) for row in connection.exec_driver_sql(ENTRY_ROWS)]
    store.engine.dispose()
    return TRANSFERS / seconds, transfers, entries


def _psycopg_conninfo(url: str) -> str:
    """The SQLAlchemy URL as libpq understands it (driver name dropped)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _write(cursor: psycopg.Cursor[Any], table: str, columns: str, rows: Rows, copy: bool) -> None:
    if copy:
        with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as out:
            for row in rows:
                out.write_row(row)
    else:
        marks = ", ".join(["%s"] * len(columns.split(",")))
        cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)


def _raw_rate(url: str, transfers: Rows, entries: Rows, *, copy: bool) -> float:
    """Transfers/s writing the ledger's own rows straight in, one commit per batch (a batch:
    BATCH transfers and as many of the entries, in order)."""
    engine = create_engine(url)
    migrate(engine)  # the very same tables and indexes, in a schema of its own
    engine.dispose()
    batches = range(0, max(len(transfers), len(entries)), BATCH)
    with psycopg.connect(_psycopg_conninfo(url)) as connection:
        began = time.perf_counter()
        for start in batches:
            with connection.cursor() as cursor:
                chunk = entries[start : start + BATCH]
                _write(cursor, "ledger_entries", "idx, data, hashes", chunk, copy)
                chunk = transfers[start : start + BATCH]
                _write(cursor, "ledger_transfers", RAW_COLUMNS, chunk, copy)
            connection.commit()
        seconds = time.perf_counter() - began
    return len(transfers) / seconds


def main() -> None:
    figures: dict[str, float] = {}
    with postgres_schema() as url:
        if url is None:
            return
        figures["ledger"], transfers, entries = _ledger_rate(url)
    for name in ("executemany", "copy"):
        with postgres_schema() as url:
            assert url is not None
            figures[name] = _raw_rate(url, transfers, entries, copy=name == "copy")
    result: dict[str, Any] = {
        "benchmark": "ledger_postgres",
        "transfers": TRANSFERS,
        "batch_transfers": BATCH,
        "ledger_transfers_per_s": round(figures["ledger"]),
        "raw_executemany_transfers_per_s": round(figures["executemany"]),
        "raw_copy_transfers_per_s": round(figures["copy"]),
        "executemany_ratio": round(figures["ledger"] / figures["executemany"], 3),
        "copy_ratio": round(figures["ledger"] / figures["copy"], 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "targets": {"executemany_ratio": TARGET_RATIO, "copy_ratio": TARGET_RATIO},
    }
    publish("ledger_postgres", result)


if __name__ == "__main__":
    main()
