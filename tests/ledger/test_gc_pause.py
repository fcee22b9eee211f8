"""The cyclic collector is off during a group commit and back as it was afterwards."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from orbitq.ledger.gc_pause import collector_paused
from orbitq.ledger.store import CreateTransfers, LedgerStore
from orbitq.services.db.engine import create_engine
from orbitq.services.db.migrate import migrate

START_NS = 1_764_979_200_000_000_000


@pytest.fixture
def collector_restored() -> Iterator[None]:
    was = gc.isenabled()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


@pytest.mark.usefixtures("collector_restored")
def test_the_collector_is_off_in_the_block_and_on_after_it() -> None:
    gc.enable()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


@pytest.mark.usefixtures("collector_restored")
def test_the_collector_comes_back_when_the_block_raises() -> None:
    gc.enable()
    with pytest.raises(RuntimeError, match="boom"), collector_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


@pytest.mark.usefixtures("collector_restored")
def test_a_collector_turned_off_stays_off() -> None:
    gc.disable()
    with collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


@pytest.mark.usefixtures("collector_restored")
def test_a_group_commit_runs_with_the_collector_off(db_url: str) -> None:
    """An attached write runs inside the group's transaction: it sees what the group sees."""
    engine = create_engine(db_url)
    try:
        migrate(engine)
        store = LedgerStore(engine)
        store.initialize(START_NS)
        gc.enable()
        seen: list[bool] = []

        def observe(connection: sa.Connection) -> None:
            seen.append(gc.isenabled())

        store.write([CreateTransfers((), attached=observe)], START_NS + 1)
        assert seen == [False]
        assert gc.isenabled()
    finally:
        engine.dispose()
