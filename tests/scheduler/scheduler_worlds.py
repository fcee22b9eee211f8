"""Small random worlds for the scheduler's property tests: nodes, stations, synthetic contacts
and requests, as hypothesis strategies, plus a helper that exports a scheduler's state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from orbitq.services.scheduler import (
    Contact,
    Node,
    Request,
    Scheduler,
    Station,
    schedule_document,
)

BASE = 1_733_443_200  # 2024-12-06T00:00:00Z
HORIZON = 4 * 3600


@dataclass(frozen=True)
class SmallWorld:
    nodes: list[Node]
    stations: list[Station]
    contacts: list[Contact]


@st.composite
def worlds(draw: st.DrawFn, nodes_max: int = 4, stations_max: int = 3) -> SmallWorld:
    node_count = draw(st.integers(1, nodes_max))
    station_count = draw(st.integers(1, stations_max))
    nodes = [
        Node(
            id=f"n{i}",
            cpu_millicores=draw(st.sampled_from([2000, 4000])),
            storage_mb=draw(st.sampled_from([4000, 16000])),
            downlink_mbps=draw(st.sampled_from([10, 50, 200])),
            uplink_mbps=draw(st.sampled_from([5, 20])),
            labels={"plane": str(i % 2)},
        )
        for i in range(node_count)
    ]
    stations = [
        Station(
            id=f"s{j}",
            antennas=draw(st.integers(1, 2)),
            labels={"country": ["NO", "US", "AU"][j % 3]},
        )
        for j in range(station_count)
    ]
    contacts: list[Contact] = []
    for node in nodes:
        for station in stations:
            cursor = BASE
            for k in range(draw(st.integers(1, 8))):
                start = cursor + draw(st.integers(0, HORIZON // 8))
                end = start + draw(st.integers(30, 900))
                if end > BASE + HORIZON:
                    break
                contact_id = f"c-{node.id}-{station.id}-{k}"
                contacts.append(Contact(contact_id, node.id, station.id, start, end))
                cursor = end
    return SmallWorld(nodes, stations, contacts)


@st.composite
def requests(
    draw: st.DrawFn,
    world: SmallWorld,
    count_max: int = 12,
    prefix: str = "r",
    priorities: tuple[int, int] = (0, 9),
) -> list[Request]:
    out = []
    for i in range(draw(st.integers(0, count_max))):
        not_before = BASE + draw(st.integers(0, HORIZON // 2))
        deadline = not_before + draw(st.integers(600, HORIZON))
        selector = draw(st.integers(0, 5))
        out.append(
            Request(
                id=f"{prefix}{i}",
                tenant=f"t{draw(st.integers(0, 2))}",
                cpu_millicores=draw(st.sampled_from([0, 250, 1000, 2000, 3000, 5000])),
                run_seconds=draw(st.integers(1, 1200)),
                storage_mb=draw(st.sampled_from([0, 100, 1000, 3000])),
                input_mb=draw(st.sampled_from([0, 1, 20])),
                output_mb=draw(st.sampled_from([0, 1, 50, 400])),
                not_before=not_before,
                deadline=deadline,
                priority=draw(st.integers(*priorities)),
                node_labels={"plane": "0"} if selector == 1 else {},
                station_countries=("NO",) if selector == 2 else (),
                node_ids=(world.nodes[0].id,) if selector == 3 else (),
                submitted_at=BASE,
            )
        )
    return out


def document(
    scheduler: Scheduler,
    world: SmallWorld,
    every_request: list[Request],
    rejected: dict[str, str] | None = None,
) -> dict[str, Any]:
    return schedule_document(
        (BASE, BASE + HORIZON),
        world.nodes,
        world.stations,
        world.contacts,
        every_request,
        scheduler.placements(),
        rejected or {},
    )
