"""The write-transaction convention the ledger store and the broker's services share.

Owns: `write_transaction(engine)`, a connection in a transaction that may write, marked with
the `orbitq_write` execution option. An engine built by orbitq.services.db.engine turns that
mark into `BEGIN IMMEDIATE` on SQLite, so the transaction holds the write lock from its first
statement (a deferred transaction that reads and then writes fails at once with "database is
locked" when another writer committed in between: WAL mode cannot upgrade a stale snapshot, and
no busy timeout helps). On PostgreSQL the mark changes nothing.

Does not own: configuring engines (orbitq.services.db.engine) or what is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

WRITE_OPTION = "orbitq_write"


@contextmanager
def write_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """Commits when the block ends normally, rolls back when it raises."""
    with (
        engine.connect().execution_options(**{WRITE_OPTION: True}) as connection,
        connection.begin(),
    ):
        yield connection
