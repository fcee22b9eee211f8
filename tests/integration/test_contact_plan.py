"""The stored contact plan over a rolling horizon, driven by the simulated clock, and read back
through ListContacts, on SQLite and PostgreSQL. Twenty satellites, three stations: fast."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent

from orbitq.clients import InvalidArgumentError
from orbitq.services.auth import SYSTEM
from orbitq.services.broker import Broker
from orbitq.services.clock import SimulatedClock, to_ns
from orbitq.services.constellation import NodeImport, StoredContact, contact_id
from orbitq.services.errors import NotFoundError
from orbitq.services.orbits import compute_contacts
from tests.conftest import EPOCH, BrokerHandle, ServerHandle
from tests.integration.sky import operator, starlink_text, stations_csv

HOUR = timedelta(hours=1)
WIDE = timedelta(days=60)


def _world(server: ServerHandle) -> None:
    with operator(server) as admin:
        admin.import_nodes(starlink_text())
        admin.import_stations(stations_csv())


def _stored(broker: Broker) -> dict[str, StoredContact]:
    everything = broker.constellation.contacts_between(EPOCH - WIDE, EPOCH + WIDE)
    return {contact.id: contact for contact in everything}


def test_refresh_stores_the_horizon_and_is_idempotent(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    _world(server)
    broker = server.broker
    report = broker.refresh_contacts()
    assert report.applied
    # Exactly what the orbital model computes for [now, now + 24 h).
    expected = compute_contacts(
        [node.elements for node in broker.constellation.nodes()],
        broker.constellation.stations(),
        EPOCH,
        EPOCH + 24 * HOUR,
    )
    stored = _stored(broker)
    assert report.inserted == len(expected) == len(stored) > 50
    assert sorted((c.window() for c in stored.values()), key=lambda w: (w.aos, w.node)) == sorted(
        expected, key=lambda w: (w.aos, w.node)
    )
    for contact in stored.values():
        assert contact.id.startswith(contact_id(contact.node, contact.station, contact.aos_ns))
    plan = broker.constellation.plan()
    assert (plan.horizon_start_ns, plan.horizon_end_ns) == (to_ns(EPOCH), to_ns(EPOCH + 24 * HOUR))
    # Idempotent: the same world at the same instant writes nothing.
    again = broker.refresh_contacts()
    assert (again.inserted, again.updated, again.deleted, again.truncated) == (0, 0, 0, 0)
    assert again.unchanged == len(expected)
    assert _stored(broker) == stored
    assert broker.constellation.plan().version == plan.version + 1


def test_the_window_rolls_keeping_ids_the_past_and_contacts_in_progress(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    _world(server)
    broker = server.broker
    broker.refresh_contacts()
    before = _stored(broker)
    six = EPOCH + 6 * HOUR
    in_progress = [c for c in before.values() if c.aos < six < c.los]
    clock.advance(6 * 3600)
    report = broker.refresh_contacts()
    after = _stored(broker)
    # The past is kept as it was.
    past = {i: c for i, c in before.items() if c.los <= six}
    assert past
    assert all(after[i] == c for i, c in past.items())
    # Contacts in progress keep their id and their real AOS (the computation starts at now).
    for contact in in_progress:
        assert after[contact.id].aos_ns == contact.aos_ns
    # Future contacts keep their ids; those cut at the old horizon end now reach their LOS.
    cut = [c for c in before.values() if c.los_ns == to_ns(EPOCH + 24 * HOUR)]
    for contact in cut:
        assert after[contact.id].aos_ns == contact.aos_ns
        assert after[contact.id].los_ns > contact.los_ns
    assert report.updated == len(cut)
    # New contacts fill [24 h, 30 h).
    new = [c for i, c in after.items() if i not in before]
    assert new
    assert all(EPOCH + 24 * HOUR <= c.aos <= EPOCH + 30 * HOUR for c in new)
    assert report.inserted == len(new)
    assert broker.constellation.plan().horizon_end_ns == to_ns(EPOCH + 30 * HOUR)


def test_old_contacts_are_pruned_after_the_retention(
    server: ServerHandle, clock: SimulatedClock
) -> None:
    _world(server)
    broker = server.broker
    broker.refresh_contacts()
    first = _stored(broker)
    clock.advance(9 * 86400)  # past the 7-day retention of everything the first plan held
    report = broker.refresh_contacts()
    assert report.pruned == len(first)
    after = _stored(broker)
    assert not set(first) & set(after)
    now = EPOCH + timedelta(days=9)
    assert all(now <= c.aos < now + 24 * HOUR for c in after.values())


def test_station_change_replaces_its_contacts(server: ServerHandle, clock: SimulatedClock) -> None:
    _world(server)
    broker = server.broker
    broker.refresh_contacts()
    before = _stored(broker)
    with operator(server) as admin:
        admin.upsert_station(
            "hartebeesthoek",
            name="Hartebeesthoek",
            latitude_deg=-25.89,
            longitude_deg=27.69,
            altitude_m=1415,
            min_elevation_deg=30,
            antennas=2,
        )
    report = broker.refresh_contacts()
    after = _stored(broker)
    high = [c for c in after.values() if c.station == "hartebeesthoek"]
    low = [c for c in before.values() if c.station == "hartebeesthoek"]
    assert 0 < len(high) < len(low)
    assert report.deleted == len(low) - len(high)
    assert all(c.max_elevation_deg >= 30 for c in high)
    # Surviving passes keep their ids (matched by overlap), only shorter.
    for contact in high:
        old = before[contact.id]
        assert old.aos_ns < contact.aos_ns < contact.los_ns <= old.los_ns
    others = {i: c for i, c in before.items() if c.station != "hartebeesthoek"}
    assert all(after[i] == c for i, c in others.items())


def test_list_contacts_filters_and_pages(server: ServerHandle, clock: SimulatedClock) -> None:
    _world(server)
    server.broker.refresh_contacts()
    everything = sorted(_stored(server.broker).values(), key=lambda c: (c.aos_ns, c.id))
    with operator(server) as admin:
        listed, token = [], ""
        while True:
            page = admin.list_contacts(page_size=40, page_token=token)
            listed.extend(page.items)
            token = page.next_page_token
            if not token:
                break
        assert [c.id for c in listed] == [c.id for c in everything]
        assert (listed[0].aos, listed[0].los) == (everything[0].aos, everything[0].los)
        node = everything[0].node
        by_node = admin.list_contacts(node=node, page_size=1000).items
        assert by_node == [c for c in listed if c.node == node]
        station = by_node[0].station
        both = admin.list_contacts(node=node, station=station, page_size=1000).items
        assert both == [c for c in by_node if c.station == station]
        assert len(both) < len(by_node) or len({c.station for c in by_node}) == 1
        start, end = EPOCH + 3 * HOUR, EPOCH + 5 * HOUR
        window = admin.list_contacts(start=start, end=end, page_size=1000).items
        assert window == [c for c in listed if c.los > start and c.aos < end]
        assert any(c.aos < start for c in window)  # open at start: overlap, not aos in range
        assert admin.list_contacts(node="99999").items == []
        with pytest.raises(InvalidArgumentError, match="end must be after start"):
            admin.list_contacts(start=end, end=start)
        with pytest.raises(ValueError, match="aware"):
            admin.list_contacts(start=start.replace(tzinfo=None))
    between = server.broker.constellation.contacts_between(start, end)
    assert [c.id for c in between] == [c.id for c in window]


def test_broker_jobs_refresh_on_start_and_after_changes(broker: BrokerHandle) -> None:
    instance = broker.broker
    constellation = instance.constellation
    # The refresh a change queues (job "contacts-now") reports its windows when it finishes.
    planned = threading.Event()

    def on_job(event: JobExecutionEvent) -> None:
        if event.job_id == "contacts-now" and event.retval is not None and event.retval.computed:
            planned.set()

    instance.jobs.add_listener(on_job, EVENT_JOB_EXECUTED)
    instance.start()
    try:
        job = instance.jobs.get_job("contacts")
        assert job is not None
        assert job.trigger.interval == timedelta(seconds=600)
        constellation.import_stations(SYSTEM, stations_csv())
        constellation.import_nodes(SYSTEM, NodeImport(text=starlink_text(5)))
        assert planned.wait(timeout=60), "no refresh followed the import"
        contacts = constellation.contacts_between(EPOCH, EPOCH + 24 * HOUR)
        assert contacts
        assert {c.node for c in contacts} <= {n.id for n in constellation.nodes()}
    finally:
        instance.stop()


def test_the_world_version_counts_node_and_station_writes(broker: BrokerHandle) -> None:
    """Schedulers compare this one row each cycle: every node or station write moves it (even
    at one simulated instant), a refresh moves only the plan's version, a failed write nothing."""
    constellation = broker.broker.constellation
    start = constellation.world_version()
    constellation.import_stations(SYSTEM, stations_csv())
    stations = constellation.world_version()
    assert stations.world_revision > start.world_revision
    assert stations.plan_version == start.plan_version
    constellation.import_nodes(SYSTEM, NodeImport(text=starlink_text(2)))
    nodes = constellation.world_version()
    assert nodes.world_revision > stations.world_revision
    node = constellation.nodes()[0]
    constellation.set_node_state(SYSTEM, node.id, "degraded")
    degraded = constellation.world_version()
    assert degraded.world_revision > nodes.world_revision
    with pytest.raises(NotFoundError):
        constellation.set_node_state(SYSTEM, "99999", "down")
    assert constellation.world_version() == degraded
    constellation.refresh_contacts(horizon_hours=2)
    refreshed = constellation.world_version()
    assert refreshed.plan_version > degraded.plan_version
    assert refreshed.world_revision == degraded.world_revision
