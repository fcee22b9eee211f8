"""The scheduler's models, converted from the constellation's stored nodes, stations and contacts.

Owns: the conversions — a node's capacity, labels and state; a station's antennas and labels;
a contact in whole seconds with its AOS rounded up and its LOS rounded down (so every second
the scheduler uses lies inside the real window), dropping contacts shorter than a second — and
two caps of the scheduler's model: it indexes at most WORLD_STATIONS_MAX (62) stations, as bits of a
machine word, so a larger ground network is scheduled on its first 62 stations by id (the rest
are logged and unused), and a station serves at most 64 satellites at once in its model.

Does not own: when the world is rebuilt (world_sync.py), the stored world (the constellation)
or the scheduler's indexed world (orbitq.services.scheduler.world).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence

from orbitq.services.clock import NANOS_PER_SECOND
from orbitq.services.constellation import NodeRecord, StoredContact
from orbitq.services.orbits import GroundStation
from orbitq.services.scheduler import Contact, Node, Station
from orbitq.services.scheduler.world import WORLD_STATIONS_MAX

log = logging.getLogger(__name__)

STATION_ANTENNAS_MAX = 64


def scheduler_node(record: NodeRecord) -> Node:
    capacity = record.capacity
    return Node(
        id=record.id,
        cpu_millicores=capacity.cpu_millicores,
        storage_mb=capacity.storage_mb,
        downlink_mbps=capacity.downlink_mbps,
        uplink_mbps=capacity.uplink_mbps,
        labels=dict(record.labels),
        state=record.state,
        agent=record.agent is not None,
    )


def node_shape(record: NodeRecord) -> Hashable:
    """Everything about a node the scheduler's world depends on, except its state (an agent
    enrolling changes it: the world is rebuilt, which enrollments are rare enough for)."""
    return (
        record.id,
        record.capacity,
        tuple(sorted(record.labels.items())),
        record.agent is not None,
    )


def scheduler_stations(stations: Sequence[GroundStation]) -> list[Station]:
    chosen = sorted(stations, key=lambda station: station.id)
    if len(chosen) > WORLD_STATIONS_MAX:
        log.warning(
            "the scheduler indexes at most %d ground stations; %d stations (%s ...) are not"
            " scheduled",
            WORLD_STATIONS_MAX,
            len(chosen) - WORLD_STATIONS_MAX,
            ", ".join(
                station.id for station in chosen[WORLD_STATIONS_MAX : WORLD_STATIONS_MAX + 5]
            ),
        )
        chosen = chosen[:WORLD_STATIONS_MAX]
    return [
        Station(
            id=station.id,
            antennas=min(station.antennas, STATION_ANTENNAS_MAX),
            labels=dict(station.labels),
        )
        for station in chosen
    ]


def scheduler_contact(contact: StoredContact) -> Contact | None:
    """The contact in whole seconds (AOS up, LOS down), or None if no whole second is left."""
    start = -(-contact.aos_ns // NANOS_PER_SECOND)
    end = contact.los_ns // NANOS_PER_SECOND
    if start >= end:
        return None
    return Contact(contact.id, contact.node, contact.station, start, end)
