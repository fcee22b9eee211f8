"""Exactly one active scheduler among broker replicas: a PostgreSQL session advisory lock.

Owns: `LeaderLock`. On PostgreSQL each replica's scheduling loop asks, before every cycle and
every pass of time-driven transitions, for a session-level advisory lock
(`pg_try_advisory_lock`) on a connection it keeps open. The replica holding it schedules; the
others skip (their RPCs still serve submissions, reads and cancellations, which go through the
database). When the leader stops it unlocks; when it dies its session ends and PostgreSQL
releases the lock, so the next replica to ask takes over — `fresh` tells it to rebuild its
scheduler from the database first, since another replica placed requests meanwhile.

The key is derived from the database schema's name: brokers of one deployment share it, and
deployments in different schemas of one database do not contend (the test suite runs many).
SQLite is one process's file, so there the lock is simply held.

Does not own: what the leader does (loop.py).
"""

from __future__ import annotations

import hashlib
import logging
import threading

import sqlalchemy as sa

log = logging.getLogger(__name__)


def lock_key(schema: str) -> int:
    """A signed 64-bit advisory lock key for the scheduler of `schema`."""
    digest = hashlib.sha256(b"orbitq/scheduler\x00" + schema.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class LeaderLock:
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._pg = engine.dialect.name == "postgresql"
        self._connection: sa.Connection | None = None
        self._key: int | None = None
        self._held_once = False
        self._lock = threading.Lock()

    def hold(self) -> tuple[bool, bool]:
        """(leading, fresh): whether this replica may schedule now, and whether it has just
        become the leader (it must then rebuild its state from the database)."""
        with self._lock:
            if not self._pg:
                fresh = not self._held_once
                self._held_once = True
                return True, fresh
            if self._connection is not None:
                try:
                    self._connection.exec_driver_sql("SELECT 1")
                except sa.exc.DBAPIError:
                    log.warning("lost the scheduler lock's connection; asking for it again")
                    self._drop()
                else:
                    return True, False
            return self._try(), True

    def _try(self) -> bool:
        connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            if self._key is None:
                schema = connection.exec_driver_sql("SELECT current_schema()").scalar()
                self._key = lock_key(str(schema))
            got = connection.execute(
                sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}
            ).scalar()
        except sa.exc.DBAPIError:
            connection.invalidate()
            connection.close()
            raise
        if got:
            self._connection = connection
            log.info("this broker now runs the scheduler (advisory lock %d)", self._key)
            return True
        connection.close()
        return False

    def release(self) -> None:
        """Stop leading (the broker is stopping): another replica may take over at once."""
        with self._lock:
            if self._connection is None:
                return
            try:
                self._connection.execute(
                    sa.text("SELECT pg_advisory_unlock(:key)"), {"key": self._key}
                )
                self._connection.close()
            except sa.exc.DBAPIError:
                self._drop()
            self._connection = None

    def _drop(self) -> None:
        # The session may still hold the lock: never hand it back to the pool.
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.invalidate()
            connection.close()
