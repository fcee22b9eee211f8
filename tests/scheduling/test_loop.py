"""The scheduling loop in-process, on SQLite and PostgreSQL: preemption made durable, a
restarted broker rebuilding its scheduler from the database, one active scheduler among
replicas (PostgreSQL's advisory lock), new contacts added without a rebuild, reservations owed
after a crash resolved by the next pass, an orphaned reservation released by its own timeout,
fair-share usage, and the broker's jobs (a submission triggers a cycle off the RPC thread)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from orbitq.ledger.model import Kind, SystemAccount
from orbitq.services.broker import Broker
from orbitq.services.clock import SimulatedClock, to_ns
from orbitq.services.config import load_config
from orbitq.services.requests import RequestState
from orbitq.services.requests.lifecycle import Move
from orbitq.services.requests.reservations import transfer_id
from orbitq.services.requests.store import new_request_id
from orbitq.services.scheduler import Cost
from orbitq.services.scheduling.placing import tenant_usage
from tests.conftest import BrokerHandle
from tests.requests.books import check_books
from tests.requests.sky import HOUR, MINTED, OPERATOR, T0, add_tenant, at, build_world, spec
from tests.scheduling.support import stored

# The clock starts and completes placed work (no node agent runs in these tests).
pytestmark = pytest.mark.settlement("plan")

S = RequestState


def test_preemption_is_durable_and_the_displaced_request_waits(broker: BrokerHandle) -> None:
    b = broker.broker
    build_world(b)
    acme = add_tenant(b, "acme")
    # A first request finds a node; every later one is pinned to that node, so it fills up.
    first, _ = b.requests.submit(acme, spec(cpu=4000, run=3600, not_before=T0 + HOUR), "0")
    b.scheduling.run_cycle()
    node = stored(b, first.id).placement
    assert node is not None
    pinned = replace(spec(cpu=4000, run=3600, not_before=T0 + HOUR), node_ids=(node.node,))
    low = [first.id]
    for index in range(1, 8):
        request, _ = b.requests.submit(acme, pinned, str(index))
        low.append(request.id)
        report = b.scheduling.run_cycle()
        if report.pending:
            break
    else:
        pytest.fail("the node never filled up")
    assert stored(b, low[-1]).state is S.PENDING
    high, _ = b.requests.submit(acme, replace(pinned, priority=5), "high")
    report = b.scheduling.run_cycle()
    assert high.id in report.placed
    assert len(report.displaced) == 1
    victim = stored(b, report.displaced[0])
    history = b.requests.store.transitions(victim.id, 0, 10)
    moves = [(t.from_state, t.to_state) for t in history]
    # Displaced, then placed again in the same cycle or left waiting.
    assert moves[2:4] == [(S.PENDING, S.PLACED), (S.PLACED, S.PENDING)]
    assert history[3].reason.startswith("displaced by a higher-priority request")
    if victim.state is S.PENDING:
        assert victim.placement is None
        assert len(history) == 4
    else:
        assert moves[4:] == [(S.PENDING, S.PLACED)]
    # The scheduler and the database agree on who is placed.
    booked = {r.id for r in b.scheduling.scheduler.placed_requests()}
    assert booked == b.requests.store.ids_in(frozenset({S.PLACED}))
    check_books(b, {"acme": MINTED})


def test_a_restarted_broker_rebuilds_its_scheduler_from_the_database(
    broker: BrokerHandle, clock: SimulatedClock, db_url: str
) -> None:
    b = broker.broker
    build_world(b)
    acme = add_tenant(b, "acme")
    ids = [b.requests.submit(acme, spec(), str(i))[0].id for i in range(6)]
    b.scheduling.run_cycle()
    before = {p.request: p for p in b.scheduling.scheduler.placements()}
    assert set(before) == set(ids)
    b.scheduling.close()  # the old broker stops scheduling (on PostgreSQL: unlocks)
    config = replace(
        load_config(broker.data_dir, db_url=db_url),
        checkpoint_interval_seconds=3600,
        settlement=b.config.settlement,
    )
    again = Broker(config, clock)
    again.writer.start()
    try:
        report = again.scheduling.run_cycle()
        assert report.ran
        assert report.evacuated == ()
        after = {p.request: p for p in again.scheduling.scheduler.placements()}
        assert after == before
        # New work is placed around what was restored.
        late, _ = again.requests.submit(acme, spec(), "late")
        again.scheduling.run_cycle()
        assert stored(again, late.id).state is S.PLACED
        assert again.scheduling.schedule_document()["placements"]
    finally:
        again.scheduling.close()
        again.requests.close()
        again.writer.stop()
        again.engine.dispose()


# Replicas share a PostgreSQL database; a SQLite file belongs to one broker process.
@pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_one_replica_schedules_at_a_time(
    broker: BrokerHandle, clock: SimulatedClock, db_url: str
) -> None:
    b = broker.broker
    build_world(b)
    acme = add_tenant(b, "acme")
    config = replace(
        load_config(broker.data_dir, db_url=db_url),
        checkpoint_interval_seconds=3600,
        settlement=b.config.settlement,
    )
    other = Broker(config, clock)
    other.writer.start()
    try:
        assert b.scheduling.run_cycle().ran
        # The other replica takes submissions, but does not schedule while the first leads.
        request, _ = other.requests.submit(acme, spec(), "from-the-other")
        assert not other.scheduling.run_cycle().ran
        assert not other.scheduling.advance().ran
        assert stored(b, request.id).state is S.PENDING
        assert request.id in b.scheduling.run_cycle().placed
        # The leader dies (its session ends): the other takes over and rebuilds first.
        connection = b.scheduling._leader._connection
        assert connection is not None
        backend = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        connection.invalidate()
        b.scheduling._leader._connection = None
        # The server ends the dead session (and frees its lock) a moment after the socket
        # closes: wait for that, not for a time.
        _await_session_end(other, backend)
        report = other.scheduling.run_cycle()
        assert report.ran
        booked = {r.id for r in other.scheduling.scheduler.placed_requests()}
        assert booked == {request.id}
        assert not b.scheduling.run_cycle().ran  # the old leader is now a follower
    finally:
        other.scheduling.close()
        other.requests.close()
        other.writer.stop()
        other.engine.dispose()


def _await_session_end(broker: Broker, backend: int, attempts: int = 2000) -> None:
    """Until PostgreSQL no longer lists session `backend` (bounded: each probe is a round
    trip; 2,000 of them is far beyond the milliseconds the server takes)."""
    for _ in range(attempts):
        with broker.engine.connect() as probe:
            listed = probe.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = %(pid)s", {"pid": backend}
            ).scalar_one()
        if listed == 0:
            return
    raise AssertionError(f"session {backend} still open after {attempts} probes")


def test_new_contacts_are_added_without_a_rebuild(
    broker: BrokerHandle, clock: SimulatedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    b = broker.broker
    build_world(b, hours=6)
    acme = add_tenant(b, "acme")
    b.scheduling.run_cycle()
    # A request whose window lies beyond the known contacts waits.
    later, _ = b.requests.submit(
        acme, spec(not_before=T0 + 7 * HOUR, deadline=T0 + 11 * HOUR), "later"
    )
    assert later.id in b.scheduling.run_cycle().pending
    rebuilt: list[int] = []
    original = b.scheduling.world_sync._rebuild

    def counted(*args: Any) -> list[str]:
        rebuilt.append(1)
        return original(*args)

    monkeypatch.setattr(b.scheduling.world_sync, "_rebuild", counted)
    clock.set(at(T0 + 3 * HOUR))
    b.constellation.refresh_contacts(horizon_hours=12)
    report = b.scheduling.run_cycle()
    assert later.id in report.placed
    assert rebuilt == []


def test_reservations_owed_after_a_crash_are_resolved_by_the_next_pass(
    broker: BrokerHandle,
) -> None:
    b = broker.broker
    build_world(b)
    acme = add_tenant(b, "acme")
    request, _ = b.requests.submit(acme, spec(), "k")
    # As if the broker died between the transition and the release in the ledger.
    (moved,) = b.requests.store.apply(
        [Move(request.id, frozenset({S.PENDING}), S.CANCELLED, "cancelled")], 0
    )
    assert moved is not None
    assert moved.reservation_open
    escrow = b.quota.system_accounts()[(SystemAccount.ESCROW, Kind.CPU)]
    assert escrow.credits_pending == request.reserved.cpu
    report = b.scheduling.advance()
    assert report.resolved == (request.id,)
    assert not stored(b, request.id).reservation_open
    assert b.scheduling.advance().resolved == ()  # once
    check_books(b, {"acme": MINTED})


def test_an_orphaned_reservation_is_released_by_its_own_timeout(
    broker: BrokerHandle, clock: SimulatedClock
) -> None:
    b = broker.broker
    add_tenant(b, "acme")
    # As if the broker died between the reservation and storing the request.
    orphan = new_request_id()
    deadline = T0 + HOUR
    b.requests._reservations.reserve(orphan, "acme", Cost(10, 20, 30), deadline + 3600 - T0)
    escrow = b.quota.system_accounts()[(SystemAccount.ESCROW, Kind.LINK)]
    assert escrow.credits_pending == 30
    clock.set(at(deadline + 3600 + 1))  # the timeout counts from the ledger's timestamp
    b.expire_due()
    for kind in Kind:
        assert b.quota.system_accounts()[(SystemAccount.ESCROW, kind)].credits_pending == 0
    expired = b.store.transfer(transfer_id(orphan, 1, Kind.CPU))
    assert expired is not None
    check_books(b, {"acme": MINTED})


def test_fair_share_measures_recent_consumption(
    broker: BrokerHandle, clock: SimulatedClock
) -> None:
    b = broker.broker
    build_world(b)
    acme = add_tenant(b, "acme")
    add_tenant(b, "globex")
    request, _ = b.requests.submit(acme, spec(), "k")
    b.scheduling.run_cycle()
    finish = stored(b, request.id).placement
    assert finish is not None
    clock.set(at(finish.finish))
    b.scheduling.advance()
    usage = tenant_usage(b.requests.store, to_ns(clock.now()))
    assert usage == {"acme": 3.0}  # all of each kind settled so far was acme's
    clock.advance(86_400 + 1)
    assert tenant_usage(b.requests.store, to_ns(clock.now())) == {}


def test_a_submission_triggers_a_cycle_off_the_rpc_thread(broker: BrokerHandle) -> None:
    b = broker.broker
    build_world(b)
    acme = add_tenant(b, "acme")
    b.start()
    try:
        request, _ = b.requests.submit(acme, spec(), "k")
        seen = []
        for transition, _ in b.requests.watch(OPERATOR, request.id):
            seen.append(transition.to_state)
            if transition.to_state is S.PLACED:
                break
    finally:
        b.stop()
    assert seen == [S.SUBMITTED, S.PENDING, S.PLACED]
