"""A service's rows attached to a ledger item commit with its transfers, or not at all.

Submit stores a request in the ledger group that reserves for it (CreateTransfers.attached):
these tests hold the write path and the group-commit writer to that on real SQLite files and
PostgreSQL schemas, with a probe table standing in for the service's rows.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from orbitq.ledger.model import Code, Kind, Result, Transfer
from orbitq.ledger.store import (
    AttachedWrite,
    AttachedWriteError,
    CreateTransfers,
    GroupCommitWriter,
    LedgerStore,
    Outcomes,
)
from orbitq.services.db.engine import create_engine
from orbitq.services.db.migrate import migrate
from tests.ledger.two_tenants import two_tenants

START_NS = 1_764_979_200_000_000_000
WAIT_SECONDS = 30
PROBE = sa.Table("attached_probe", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))


class Books:
    def __init__(self, db_url: str) -> None:
        engine = create_engine(db_url)
        migrate(engine)
        PROBE.metadata.create_all(engine)
        self.store = LedgerStore(engine)
        self.clock = iter(range(START_NS, START_NS + 10**15, 1_000_000))
        self.store.initialize(next(self.clock))
        books = two_tenants(self.store, self.now, minted=100)
        self.acme, self.globex = books.acme, books.globex

    def now(self) -> int:
        return next(self.clock)

    def pay(self, id: int, amount: int) -> Transfer:
        return Transfer(
            id, self.acme, self.globex, amount, kind=int(Kind.CPU), code=int(Code.TRANSFER)
        )

    def probe_ids(self) -> list[int]:
        with self.store.engine.connect() as connection:
            return sorted(connection.execute(sa.select(PROBE.c.id)).scalars())

    def transfer_ids(self) -> set[int]:
        return {stored.transfer.id for stored in self.store.all_transfers()}


def insert_probe(id: int) -> AttachedWrite:
    def write(connection: sa.Connection) -> None:
        connection.execute(sa.insert(PROBE).values(id=id))

    return write


def results(books: Books, item: CreateTransfers) -> list[Result]:
    [written] = books.store.write([item], books.now())
    assert isinstance(written, Outcomes)
    return [outcome.result for outcome in written]


@pytest.fixture
def books(db_url: str) -> Iterator[Books]:
    opened = Books(db_url)
    try:
        yield opened
    finally:
        opened.store.engine.dispose()


def test_attached_rows_commit_with_a_successful_item(books: Books) -> None:
    item = CreateTransfers((books.pay(10, 5),), attached=insert_probe(1))
    assert results(books, item) == [Result.OK]
    assert books.probe_ids() == [1]
    assert 10 in books.transfer_ids()


def test_attached_rows_are_not_written_when_the_item_fails(books: Books) -> None:
    # Overdraft: acme holds 100.
    item = CreateTransfers((books.pay(11, 500),), attached=insert_probe(2))
    assert results(books, item) == [Result.EXCEEDS_CREDITS]
    assert books.probe_ids() == []


def test_a_failing_attached_write_fails_its_item_alone(books: Books) -> None:
    """Its transfers are not committed; the writer's other items are."""
    assert results(books, CreateTransfers((books.pay(12, 1),), attached=insert_probe(3))) == [
        Result.OK
    ]
    writer = GroupCommitWriter(books.store, books.now)
    writer.start()
    try:
        # The same probe id again: the attached insert breaks the primary key.
        clashing = writer.submit(CreateTransfers((books.pay(13, 1),), attached=insert_probe(3)))
        fine = writer.submit(CreateTransfers((books.pay(14, 1),)))
        with pytest.raises(AttachedWriteError):
            clashing.result(WAIT_SECONDS)
        written = fine.result(WAIT_SECONDS)
        assert isinstance(written, Outcomes)
        assert [o.ok for o in written] == [True]
    finally:
        writer.stop()
    assert books.probe_ids() == [3]
    assert {12, 14} <= books.transfer_ids()
    assert 13 not in books.transfer_ids()
    books.store.check_invariants()
