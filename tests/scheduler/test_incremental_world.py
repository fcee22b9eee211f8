"""Incremental updates of the scheduler's world equal a rebuild.

A node state change, a moved, removed or added contact, a release or a new cycle is applied in
place (`set_node_state`, `replace_contacts`, ...); after every step the world must be exactly
the world a rebuild gives: `set_world` with the same nodes, stations and contacts, then every
surviving placement reserved again with `place_existing` (which must succeed). Placements a
moved contact no longer holds must be released, and no other.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from orbitq.services.scheduler import Contact, Node, Request, Scheduler, Station
from orbitq.services.scheduler.model import NODE_STATES

T0 = 1_000_000
HORIZON = 6 * 3600
NODES = 4
STATIONS = 2

nodes = [
    Node(f"n{index}", 4000, 64_000, 100 * (index + 1), 20, labels={"plane": str(index % 2)})
    for index in range(NODES)
]
stations = [Station(f"s{index}", 1 + index, {"country": "NO"}) for index in range(STATIONS)]


def _contacts() -> list[Contact]:
    """Every node sees each station for 10 minutes every 90 minutes, offset per pair."""
    out = []
    for node in range(NODES):
        for station in range(STATIONS):
            for orbit in range(HORIZON // 5400):
                start = T0 + orbit * 5400 + node * 400 + station * 900
                out.append(
                    Contact(
                        f"c{node}-{station}-{orbit}", f"n{node}", f"s{station}", start, start + 600
                    )
                )
    return out


def _request(index: int, offset: int) -> Request:
    return Request(
        id=f"r{index:03d}",
        tenant=f"t{index % 3}",
        cpu_millicores=1000 + 500 * (index % 4),
        run_seconds=300 + 60 * (index % 7),
        storage_mb=1000,
        input_mb=index % 3 * 10,
        output_mb=100 + 50 * (index % 5),
        not_before=T0 + offset,
        deadline=T0 + HORIZON,
        priority=index % 4,
    )


def _rebuilt(scheduler: Scheduler) -> Scheduler:
    world = scheduler.world
    again = Scheduler()
    contacts = [
        Contact(
            cid,
            world.nodes[ref.node].node.id,
            world.stations[ref.station].station.id,
            ref.start,
            ref.end,
        )
        for cid, ref in world.contacts.items()
    ]
    again.set_world(
        [info.node for info in world.nodes], [s.station for s in world.stations], contacts
    )
    for request in scheduler.placed_requests():
        placement = scheduler.placement(request.id)
        assert placement is not None
        assert again.place_existing(request, placement).ok, placement
    return again


step = st.one_of(
    st.tuples(
        st.just("state"), st.integers(0, NODES - 1), st.sampled_from(NODE_STATES), st.just(0)
    ),
    st.tuples(
        st.just("move"), st.integers(0, 10_000), st.integers(-900, 900), st.integers(-500, 900)
    ),
    st.tuples(st.just("remove"), st.integers(0, 10_000), st.just(0), st.just(0)),
    st.tuples(
        st.just("add"),
        st.integers(0, NODES * STATIONS - 1),
        st.integers(0, HORIZON - 1200),
        st.integers(60, 1200),
    ),
    st.tuples(st.just("place"), st.integers(1, 6), st.integers(0, HORIZON // 2), st.just(0)),
    st.tuples(st.just("release"), st.integers(0, 10_000), st.just(0), st.just(0)),
)


@given(steps=st.lists(step, min_size=1, max_size=12))
def test_incremental_updates_equal_a_rebuild(steps: list[tuple[str, int, object, int]]) -> None:
    scheduler = Scheduler()
    scheduler.set_world(nodes, stations, _contacts())
    first = [_request(index, 600 * index) for index in range(8)]
    scheduler.run_cycle(first, T0)
    assert scheduler.placements(), "the starting world holds placements"
    issued = len(first)
    now = T0
    for kind, a, b, c in steps:
        world = scheduler.world
        if kind == "state":
            assert isinstance(b, str)
            placed = {p.request for p in scheduler.placements()}
            gone = scheduler.set_node_state(f"n{a}", b, now)  # type: ignore[arg-type]
            assert set(gone) <= placed
        elif kind in ("move", "remove"):
            ids = sorted(world.contacts)
            contact_id = ids[a % len(ids)]
            ref = world.contacts[contact_id]
            added: list[Contact] = []
            if kind == "move":
                assert isinstance(b, int)
                start, end = ref.start + b, ref.end + b + c
                if end <= start:
                    end = start + 1
                added = [
                    Contact(
                        contact_id,
                        world.nodes[ref.node].node.id,
                        world.stations[ref.station].station.id,
                        start,
                        end,
                    )
                ]
            users = {
                p.request
                for p in scheduler.placements()
                if contact_id in {p.uplink.contact, *(s.contact for s in p.downlink)}
            }
            earlier = {p.request: p for p in scheduler.placements()}
            lost = scheduler.replace_contacts([contact_id], added)
            assert set(lost) <= users, "only placements on the changed contact may go"
            for request_id, placement in earlier.items():
                if request_id not in lost:
                    assert scheduler.placement(request_id) == placement, "kept placements stay put"
            assert all(scheduler.placement(request_id) is None for request_id in lost)
        elif kind == "add":
            assert isinstance(b, int)
            node, station = divmod(a, STATIONS)
            contact = Contact(f"x{issued}-{a}", f"n{node}", f"s{station}", T0 + b, T0 + b + c)
            issued += 1
            if not any(
                ref.node == node and ref.start < contact.end and contact.start < ref.end
                for ref in world.contacts.values()
            ):  # a node's radio talks to one station at a time: plans never overlap per node
                scheduler.replace_contacts([], [contact])
        elif kind == "place":
            assert isinstance(b, int)
            now = max(now, T0 + b)
            batch = [_request(issued + index, now - T0) for index in range(a)]
            issued += a
            scheduler.run_cycle(batch, now)
        else:
            ordered = sorted(p.request for p in scheduler.placements())
            if ordered:
                assert scheduler.release(ordered[a % len(ordered)])
        assert scheduler.world.fingerprint() == _rebuilt(scheduler).world.fingerprint()


def test_a_moved_contact_keeps_placements_it_still_holds_and_releases_the_rest() -> None:
    scheduler = Scheduler()
    scheduler.set_world(nodes, stations, _contacts())
    scheduler.run_cycle([_request(0, 0)], T0)
    placement = scheduler.placements()[0]
    uplink = placement.uplink
    ref = scheduler.world.contacts[uplink.contact]
    node, station = placement.node, uplink.station
    # Widened by a minute at each end: the uplink still fits, nothing moves.
    wider = Contact(uplink.contact, node, station, ref.start - 60, ref.end + 60)
    assert scheduler.replace_contacts([uplink.contact], [wider]) == ()
    assert scheduler.placement(placement.request) == placement
    # Moved past the uplink: the placement no longer fits and is handed back.
    later = replace(wider, start=uplink.end + 3600, end=uplink.end + 4200)
    assert scheduler.replace_contacts([uplink.contact], [later]) == (placement.request,)
    assert scheduler.placement(placement.request) is None
    assert scheduler.world.fingerprint() == _rebuilt(scheduler).world.fingerprint()
