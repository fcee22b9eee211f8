"""The broker's scheduler world follows the database in place, on SQLite and PostgreSQL: a node
state change (SetNodeState's path), a node going down (evacuation) and an imported contact plan
that moves and removes contacts are applied to the live world without a rebuild (the
`rebuilds` counter stays put), the next cycle respects them, and the updated world equals the
world a rebuild from the database gives."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from orbitq.services.broker import Broker
from orbitq.services.clock import NANOS_PER_SECOND, from_ns
from orbitq.services.requests import RequestState
from orbitq.services.scheduler import Scheduler
from orbitq.services.scheduling.moves import Moves
from orbitq.services.scheduling.world_sync import WorldSync
from tests.conftest import BrokerHandle
from tests.requests.sky import HOUR, OPERATOR, T0, add_tenant, build_world, spec
from tests.scheduling.support import stored

# The clock starts and completes placed work (no node agent runs in these tests).
pytestmark = pytest.mark.settlement("plan")

S = RequestState


def _rebuilt_fingerprint(b: Broker) -> tuple[object, ...]:
    """The world a scheduler rebuilt from the database holds (it must restore everything)."""
    scheduler = Scheduler()
    sync = WorldSync(scheduler, b.constellation, Moves(b.requests.store, b.requests.hub))
    now_s = b.clock.now().timestamp()
    assert sync.sync(int(now_s), int(now_s) * NANOS_PER_SECOND, fresh=True) == ()
    return scheduler.world.fingerprint()


def test_a_node_state_change_is_applied_without_a_rebuild(broker: BrokerHandle) -> None:
    b = broker.broker
    build_world(b)
    acme = add_tenant(b, "acme")
    first, _ = b.requests.submit(acme, spec(not_before=T0 + HOUR), "first")
    b.scheduling.run_cycle()
    placed = stored(b, first.id).placement
    assert placed is not None
    node = placed.node
    sync = b.scheduling.world_sync
    rebuilds, updates = sync.rebuilds, sync.updates
    pinned = replace(spec(not_before=T0 + HOUR), node_ids=(node,))

    b.constellation.set_node_state(OPERATOR, node, "degraded")
    waiting, _ = b.requests.submit(acme, pinned, "pinned")
    report = b.scheduling.run_cycle()
    assert waiting.id in report.pending, "a degraded node takes no new work"
    assert (
        b.scheduling.scheduler.world.nodes[b.scheduling.scheduler.world.node_index[node]].node.state
        == "degraded"
    )
    assert stored(b, first.id).state is S.PLACED, "it keeps what it has"
    assert (sync.rebuilds, sync.updates) == (rebuilds, updates + 1)

    b.constellation.set_node_state(OPERATOR, node, "ready")
    report = b.scheduling.run_cycle()
    assert waiting.id in report.placed
    assert (sync.rebuilds, sync.updates) == (rebuilds, updates + 2)

    b.constellation.set_node_state(OPERATOR, node, "down")
    report = b.scheduling.run_cycle()
    assert {first.id, waiting.id} <= set(report.evacuated)
    assert all(p.node != node for p in b.scheduling.scheduler.placements())
    assert (sync.rebuilds, sync.updates) == (rebuilds, updates + 3)
    assert b.scheduling.scheduler.world.fingerprint() == _rebuilt_fingerprint(b)


def test_an_imported_contact_plan_is_applied_without_a_rebuild(broker: BrokerHandle) -> None:
    b = broker.broker
    build_world(b)
    acme = add_tenant(b, "acme")
    ids = [b.requests.submit(acme, spec(not_before=T0 + HOUR), str(i))[0].id for i in range(4)]
    b.scheduling.run_cycle()
    sync = b.scheduling.world_sync
    rebuilds, updates = sync.rebuilds, sync.updates
    first = stored(b, ids[0]).placement
    assert first is not None
    station = first.uplink.station
    # The station's windows replaced by booked ones: each computed window of the first node
    # shrunk by a minute at each end (moved), every other node's gone.
    computed = [
        c
        for c in b.constellation.contacts_between(
            from_ns(T0 * NANOS_PER_SECOND),
            from_ns((T0 + 12 * HOUR) * NANOS_PER_SECOND),
            station=station,
        )
        if c.node == first.node and c.los_ns - c.aos_ns > 300 * NANOS_PER_SECOND
    ]
    assert computed
    windows = [
        {
            "node": c.node,
            "station": c.station,
            "start": from_ns(c.aos_ns + 60 * NANOS_PER_SECOND).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": from_ns(c.los_ns - 60 * NANOS_PER_SECOND).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        for c in computed
    ]
    plan = {"stations": {station: "replace"}, "windows": windows}
    b.constellation.import_contact_plan(OPERATOR, json.dumps(plan))
    report = b.scheduling.run_cycle()
    assert (sync.rebuilds, sync.updates) == (rebuilds, updates + 1)
    world = b.scheduling.scheduler.world
    at_station = [
        ref for ref in world.contacts.values() if world.stations[ref.station].station.id == station
    ]
    assert at_station
    assert all(world.nodes[ref.node].node.id == first.node for ref in at_station)
    # Every request is placed on the new plan (again, where its contact moved).
    for request_id in ids:
        request = stored(b, request_id)
        assert request.state is S.PLACED, request.reason
        assert request.placement is not None
        for contact in (
            request.placement.uplink.contact,
            *(s.contact for s in request.placement.downlink),
        ):
            assert contact in world.contacts
    assert report.ran
    assert world.fingerprint() == _rebuilt_fingerprint(b)
