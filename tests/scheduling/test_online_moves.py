"""The online policy made durable, on SQLite and PostgreSQL: a request placed in an earlier
cycle is moved (PLACED → PENDING → PLACED in one cycle, each transition with its reason) to
make room for a later arrival that only fits where it was, its reservation untouched; and the
broker's guard keeps a placement whose ticket may be aboard where it is."""

from __future__ import annotations

from dataclasses import replace

import pytest

from orbitq.services.requests import RequestState
from orbitq.services.scheduling import displace_guard_seconds
from orbitq.services.scheduling.placing import REASON_MOVED
from tests.conftest import BrokerHandle
from tests.requests.books import check_books
from tests.requests.sky import HOUR, MINTED, T0, add_tenant, at, build_world, spec
from tests.scheduling.support import stored

# The clock starts and completes placed work (no node agent runs in these tests).
pytestmark = pytest.mark.settlement("plan")

S = RequestState


def test_a_placed_request_moves_for_a_later_arrival_and_keeps_its_reservation(
    broker: BrokerHandle,
) -> None:
    b = broker.broker
    build_world(b)
    acme = add_tenant(b, "acme")
    # A whole node's cpu for an hour, anywhere in a wide window: placed at the earliest.
    wide = spec(cpu=4000, run=HOUR, not_before=T0 + HOUR, deadline=T0 + 10 * HOUR)
    first, _ = b.requests.submit(acme, wide, "first")
    assert first.id in b.scheduling.run_cycle(at(T0)).placed
    placed = stored(b, first.id)
    before = placed.placement
    assert before is not None
    assert before.uplink.at > T0 + b.scheduling.scheduler.config.displace_guard_seconds
    reserved = placed.reserved
    # The same on the same node, but it must be done by when the first is: only its slot fits.
    tight = replace(
        spec(cpu=4000, run=HOUR, not_before=T0 + HOUR, deadline=before.finish),
        node_ids=(before.node,),
    )
    later, _ = b.requests.submit(acme, tight, "later")
    report = b.scheduling.run_cycle(at(T0 + 60))
    assert later.id in report.placed
    assert report.displaced == (first.id,)
    assert first.id in report.placed  # placed again at once
    moved = stored(b, first.id)
    assert moved.state is S.PLACED
    assert moved.placement is not None
    assert moved.placement != before
    assert moved.reserved == reserved
    assert moved.reservation_open
    history = b.requests.store.transitions(first.id, 0, 10)
    assert [(t.from_state, t.to_state) for t in history[3:]] == [
        (S.PLACED, S.PENDING),
        (S.PENDING, S.PLACED),
    ]
    assert history[3].reason == REASON_MOVED
    assert history[4].reason.startswith(f"placed on node {moved.placement.node}")
    # The scheduler and the database agree on who is placed, and the books balance.
    booked = {r.id for r in b.scheduling.scheduler.placed_requests()}
    assert booked == b.requests.store.ids_in(frozenset({S.PLACED}))
    check_books(b, {"acme": MINTED})


def test_the_broker_guards_placements_whose_ticket_may_be_aboard(broker: BrokerHandle) -> None:
    b = broker.broker
    guard = b.scheduling.scheduler.config.displace_guard_seconds
    config = b.config
    assert guard == displace_guard_seconds(
        config.ticket_pull_lead_seconds, config.contact_tolerance_seconds
    )
    assert guard > config.ticket_pull_lead_seconds + config.contact_tolerance_seconds
    build_world(b)
    acme = add_tenant(b, "acme")
    wide = spec(cpu=4000, run=HOUR, not_before=T0 + HOUR, deadline=T0 + 10 * HOUR)
    first, _ = b.requests.submit(acme, wide, "first")
    b.scheduling.run_cycle(at(T0))
    before = stored(b, first.id).placement
    assert before is not None
    tight = replace(
        spec(cpu=4000, run=HOUR, not_before=T0 + HOUR, deadline=before.finish),
        node_ids=(before.node,),
    )
    later, _ = b.requests.submit(acme, tight, "later")
    # A cycle inside the guard: the first placement's ticket may be aboard, it stays.
    report = b.scheduling.run_cycle(at(before.uplink.at - guard))
    assert report.displaced == ()
    assert stored(b, first.id).placement == before
    assert stored(b, later.id).state is S.PENDING
