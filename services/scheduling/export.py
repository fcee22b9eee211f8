"""The schedule document (brief §9) of what the broker has stored, in-process.

Owns: choosing what goes in — every request whose window [not_before, deadline) overlaps the
horizon; the placements of those that are PLACED, RUNNING or COMPLETED, with the contacts they
use as the scheduler saw them (whole seconds); those that ended UNSCHEDULABLE, EXPIRED or
FAILED as `rejected` with their reason; every node and every station (antennas capped at the
scheduler's 64) — and the default horizon: from the earliest not_before to the latest deadline
of all requests. The document itself is orbitq.services.scheduler.document's.

`orbitq schedule export` writes the same document from a running broker, built client-side
from ListRequests, ListNodes and ListStations (placements carry their contacts); a test checks
that both are equal.

Does not own: the JSON shape (scheduler.document) or files.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from orbitq.services.clock import NANOS_PER_SECOND, to_ns
from orbitq.services.constellation import Constellation, NodeRecord
from orbitq.services.errors import InvalidArgumentError
from orbitq.services.orbits import GroundStation
from orbitq.services.requests.model import RequestState, StoredRequest
from orbitq.services.requests.store import RequestStore
from orbitq.services.scheduler import Contact, Station, schedule_document
from orbitq.services.scheduling.convert import STATION_ANTENNAS_MAX, scheduler_node

S = RequestState
PLACED_IN_DOCUMENT = frozenset({S.PLACED, S.RUNNING, S.COMPLETED})
REJECTED_IN_DOCUMENT = frozenset({S.UNSCHEDULABLE, S.EXPIRED, S.FAILED})


def document_station(station: GroundStation) -> Station:
    return Station(
        id=station.id,
        antennas=min(station.antennas, STATION_ANTENNAS_MAX),
        labels={k: v for k, v in station.labels.items() if k in ("country", "operator")},
    )


def default_horizon(requests: Sequence[StoredRequest]) -> tuple[int, int]:
    if not requests:
        raise InvalidArgumentError("there are no requests: give the horizon (start and end)")
    return (
        min(r.spec.not_before for r in requests),
        max(r.spec.deadline for r in requests),
    )


def schedule_of(
    requests: Iterable[StoredRequest],
    nodes: Sequence[NodeRecord],
    stations: Sequence[GroundStation],
    horizon: tuple[int | None, int | None] = (None, None),
) -> dict[str, Any]:
    everything = list(requests)
    start, end = horizon
    if start is None or end is None:
        first, last = default_horizon(everything)
        start = first if start is None else start
        end = last if end is None else end
    if end <= start:
        raise InvalidArgumentError("the horizon's end must be after its start")
    chosen = sorted(
        (r for r in everything if r.spec.not_before < end and r.spec.deadline > start),
        key=lambda r: r.id,
    )
    placed = [r for r in chosen if r.state in PLACED_IN_DOCUMENT and r.placement is not None]
    contacts: dict[str, Contact] = {}
    for request in placed:
        for contact in request.contacts:
            contacts[contact.id] = contact
    return schedule_document(
        (start, end),
        [scheduler_node(node) for node in nodes],
        [document_station(s) for s in sorted(stations, key=lambda s: s.id)],
        contacts.values(),
        [r.request() for r in chosen],
        [r.placement for r in placed if r.placement is not None],
        {r.id: r.reason for r in chosen if r.state in REJECTED_IN_DOCUMENT},
    )


def stored_schedule(
    store: RequestStore,
    constellation: Constellation,
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict[str, Any]:
    """The §9 document of the stored schedule over [start, end) (default: the span of all
    requests' windows), the horizon rounded outwards to whole seconds."""
    horizon = (
        to_ns(start) // NANOS_PER_SECOND if start else None,
        -(-to_ns(end) // NANOS_PER_SECOND) if end else None,
    )
    return schedule_of(store.all(), constellation.nodes(), constellation.stations(), horizon)
