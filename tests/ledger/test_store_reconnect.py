"""A restarted PostgreSQL server: the ledger's next group is written, and written once.

The engine's pool checks a connection without a round trip (no pre-ping): a connection the
server closed is seen closed at checkout and replaced, a live one is handed out again. A
connection that dies after checkout fails its group; the write path writes such a group once
more when the connection died before COMMIT was sent, and never when it died during COMMIT (the
outcome is then unknown: the caller's retry with the same transfer ids decides).

The server's side is real: the backends are terminated from a second connection
(`pg_terminate_backend`, waiting until they are gone), between groups, inside a group (from the
engine the store runs, after the group's first statements), and as COMMIT is about to be sent.
PostgreSQL only: a SQLite file has no server to lose.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import count
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from orbitq.ledger.engine import Engine, WorkingSet
from orbitq.ledger.model import Code, Kind, Transfer
from orbitq.ledger.store import LedgerStore
from orbitq.services.db.engine import create_engine
from orbitq.services.db.migrate import migrate
from tests.conftest import PG_URL
from tests.ledger.two_tenants import two_tenants

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("db_url", ["postgres"], indirect=True),
]

START_NS = 1_764_979_200_000_000_000
# pg_terminate_backend waits up to this long (ms) for the backend to be gone.
TERMINATE_WAIT_MS = 10_000
BATCH = 20


@dataclass
class Ledger:
    store: LedgerStore
    clock: Iterator[int]
    acme: int
    globex: int
    # Backend pids of the connections the pool opened, and of the last one checked out.
    opened: list[int] = field(default_factory=list)
    checked_out: list[int] = field(default_factory=list)
    # Engines built, one per attempt at a group; `hook` runs before each is built.
    engines: int = 0
    hook: Callable[[], None] | None = None
    ids: Iterator[int] = field(default_factory=lambda: count(1000))

    def batch(self) -> list[Transfer]:
        """BATCH payments of one token from acme to globex, with fresh ids."""
        return [
            Transfer(
                next(self.ids),
                self.acme,
                self.globex,
                1,
                kind=int(Kind.CPU),
                code=int(Code.TRANSFER),
            )
            for _ in range(BATCH)
        ]

    def stored_ids(self) -> list[int]:
        return [stored.transfer.id for stored in self.store.all_transfers()]


def terminate(pids: list[int]) -> None:
    """End these backends from another connection, as a server restart ends them all."""
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for pid in pids:
                conn.exec_driver_sql(
                    "SELECT pg_terminate_backend(%s, %s)", (pid, TERMINATE_WAIT_MS)
                )
    finally:
        admin.dispose()


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    engine = create_engine(db_url)
    migrate(engine)
    holder: list[Ledger] = []

    def rules(state: WorkingSet, now_ns: int) -> Engine:
        if not holder:  # the ledger's own setup
            return Engine(state, now_ns)
        opened = holder[0]
        opened.engines += 1
        hook, opened.hook = opened.hook, None
        if hook is not None:
            hook()
        return Engine(state, now_ns)

    store = LedgerStore(engine, rules=rules)
    clock = count(START_NS, 1_000_000)
    store.initialize(next(clock))
    books = two_tenants(store, clock.__next__, minted=10**6)
    opened = Ledger(store, clock, books.acme, books.globex)
    holder.append(opened)

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        opened.opened.append(dbapi_connection.info.backend_pid)

    @event.listens_for(engine, "checkout")
    def on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        opened.checked_out.append(dbapi_connection.info.backend_pid)

    # Every connection the pool holds from here on is one this test knows the pid of.
    engine.dispose()
    try:
        yield opened
    finally:
        engine.dispose()


def _write_ok(ledger: Ledger, transfers: list[Transfer]) -> None:
    outcomes = ledger.store.create_transfers(transfers, next(ledger.clock))
    assert [outcome.ok for outcome in outcomes] == [True] * len(transfers)


def _assert_stored_once(ledger: Ledger, expected: list[Transfer]) -> None:
    ids = ledger.stored_ids()
    assert len(ids) == len(set(ids))
    assert set(ids) == {1} | {transfer.id for transfer in expected}
    ledger.store.check_invariants()
    (globex,) = (a for a in ledger.store.accounts_of("globex") if a.kind is Kind.CPU)
    assert globex.credits_posted == len(expected)


def test_a_live_pooled_connection_is_handed_out_again(ledger: Ledger) -> None:
    _write_ok(ledger, ledger.batch())
    opened = list(ledger.opened)
    for _ in range(3):
        _write_ok(ledger, ledger.batch())
    # The check at checkout found nothing wrong: no connection was replaced.
    assert ledger.opened == opened
    assert set(ledger.checked_out[-3:]) <= set(opened)


def test_a_group_after_the_server_closed_the_pools_connections_is_written(ledger: Ledger) -> None:
    first = ledger.batch()
    _write_ok(ledger, first)
    dead = list(ledger.opened)
    assert dead
    terminate(dead)
    checkouts_before = len(ledger.checked_out)
    engines_before = ledger.engines

    second = ledger.batch()
    _write_ok(ledger, second)

    # The dead connection was replaced at checkout, before the group began: no dead
    # connection was handed out, and the group took one attempt.
    handed_out = ledger.checked_out[checkouts_before:]
    assert handed_out
    assert not set(handed_out) & set(dead)
    assert ledger.engines == engines_before + 1
    _assert_stored_once(ledger, first + second)


def test_a_group_whose_connection_dies_before_commit_is_written_once_more(
    ledger: Ledger,
) -> None:
    first = ledger.batch()
    _write_ok(ledger, first)
    engines_before = ledger.engines
    # Runs inside the group, on its connection's backend, after the head was locked.
    ledger.hook = lambda: terminate([ledger.checked_out[-1]])

    second = ledger.batch()
    _write_ok(ledger, second)

    # The first attempt failed on its next statement and was rolled back; the second wrote.
    assert ledger.engines == engines_before + 2
    _assert_stored_once(ledger, first + second)


def test_a_group_whose_connection_dies_at_commit_is_not_retried(ledger: Ledger) -> None:
    first = ledger.batch()
    _write_ok(ledger, first)
    engines_before = ledger.engines
    commits: list[int] = []

    @event.listens_for(ledger.store.engine, "commit")
    def on_commit(_conn: sa.Connection) -> None:
        # SQLAlchemy calls this before it sends COMMIT: the backend is gone when it arrives.
        if not commits:
            commits.append(ledger.checked_out[-1])
            terminate(commits)

    second = ledger.batch()
    with pytest.raises(sa.exc.OperationalError, match=r"terminat|closed"):
        ledger.store.create_transfers(second, next(ledger.clock))
    assert ledger.engines == engines_before + 1  # no second attempt
    # The server never saw COMMIT: nothing of the group is stored.
    _assert_stored_once(ledger, first)

    # The caller's retry, with the same ids, writes it once.
    _write_ok(ledger, second)
    _assert_stored_once(ledger, first + second)
