"""The write-transaction convention the ledger store and the broker's services share.

Owns: `write_transaction(engine)`, a connection in a transaction that may write, marked with
the `orbitq_write` execution option. An engine built by orbitq.services.db.engine turns that
mark into `BEGIN IMMEDIATE` on SQLite, so the transaction holds the write lock from its first
statement (a deferred transaction that reads and then writes fails at once with "database is
locked" when another writer committed in between: WAL mode cannot upgrade a stale snapshot, and
no busy timeout helps). On PostgreSQL the mark changes nothing.

On SQLite the writers of one process also queue on a lock of their own before BEGIN IMMEDIATE.
SQLite's busy handler waits for a held write lock by sleeping in growing steps (up to 100 ms
each), so a writer that arrives while another commits sleeps long after the lock is free: the
ledger writer behind a scheduling cycle's commit lost tens of milliseconds per group that way.
A thread waiting on a Python lock wakes the moment it is released. Other processes (a CLI on the
same file) still meet the busy handler; when the local wait exceeds its bound the transaction
goes on to BEGIN IMMEDIATE anyway, so the lock never fails a write the busy timeout would let
through.

Does not own: configuring engines (orbitq.services.db.engine) or what is written.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

WRITE_OPTION = "orbitq_write"
# How long a writer waits for the process's other writers before leaving the wait to SQLite's
# busy handler (the engine's busy timeout is 10 s; a group commit takes milliseconds).
LOCAL_WAIT_SECONDS = 10.0

# One lock per SQLite engine, gone with the engine (a broker has one; tests make many).
_writer_locks: weakref.WeakKeyDictionary[sa.Engine, threading.Lock] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def _writer_lock(engine: sa.Engine) -> threading.Lock | None:
    if engine.dialect.name != "sqlite":
        return None
    with _registry_lock:
        lock = _writer_locks.get(engine)
        if lock is None:
            lock = _writer_locks[engine] = threading.Lock()
        return lock


@contextmanager
def write_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """Commits when the block ends normally, rolls back when it raises."""
    lock = _writer_lock(engine)
    held = lock is not None and lock.acquire(timeout=LOCAL_WAIT_SECONDS)
    try:
        with (
            engine.connect().execution_options(**{WRITE_OPTION: True}) as connection,
            connection.begin(),
        ):
            yield connection
    finally:
        if held:
            assert lock is not None
            lock.release()
