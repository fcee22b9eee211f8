"""The schedule document (brief §9) of a running broker, assembled from what the SDK reads.

Owns: `schedule_document(nodes, stations, requests, start, end)` — pure, from ListNodes,
ListStations and ListRequests results — and `fetch_schedule(client, start, end)`, which reads
them all. Placements carry the contacts they use (as the scheduler saw them: whole seconds
inside the real window), so no contact needs to be listed separately.

The document is exactly the one the broker writes in-process
(orbitq.services.scheduling.export): every request whose window [not_before, deadline) overlaps
the horizon, sorted by id; the placements of those placed, running or completed, the contacts
they use sorted by (start, id), those that ended unschedulable, expired or failed as
`rejected` with their reason; every node and station (antennas capped at the scheduler's 64).
The default horizon runs from the earliest not_before to the latest deadline of all requests.
Read with an operator key for the whole constellation (a tenant key sees its own requests).
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from orbitq.clients.models import Node, Placement, ServiceRequest, Station

if TYPE_CHECKING:
    from orbitq.clients._sync_client import BrokerClient

STATION_ANTENNAS_MAX = 64
PLACED_STATES = frozenset({"placed", "running", "completed"})
REJECTED_STATES = frozenset({"unschedulable", "expired", "failed"})
PAGE_SIZE = 1_000


def _seconds(value: datetime) -> int:
    """Whole seconds since the epoch, rounded down (exact: no float)."""
    return calendar.timegm(value.astimezone(UTC).timetuple())


def _time(value: datetime | int) -> str:
    seconds = value if isinstance(value, int) else _seconds(value)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _not_before(request: ServiceRequest) -> int:
    assert request.spec.not_before is not None, "the broker always stores not_before"
    return _seconds(request.spec.not_before)


def schedule_document(
    nodes: Sequence[Node],
    stations: Sequence[Station],
    requests: Sequence[ServiceRequest],
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict[str, Any]:
    if (start is None or end is None) and not requests:
        raise ValueError("there are no requests: give the horizon (start and end)")
    first = _seconds(start) if start is not None else min(_not_before(r) for r in requests)
    last = (
        _seconds(end) + (1 if end.microsecond else 0)
        if end is not None
        else max(_seconds(r.spec.deadline) for r in requests)
    )
    if last <= first:
        raise ValueError("the horizon's end must be after its start")
    chosen = sorted(
        (r for r in requests if _not_before(r) < last and _seconds(r.spec.deadline) > first),
        key=lambda r: r.id,
    )
    placed = [r for r in chosen if r.state in PLACED_STATES and r.placement is not None]
    contacts = {c.id: c for r in placed if r.placement for c in r.placement.contacts}
    return {
        "horizon": {"start": _time(first), "end": _time(last)},
        "nodes": [
            {
                "id": n.id,
                "cpu_millicores": n.cpu_millicores,
                "storage_mb": n.storage_mb,
                "downlink_mbps": n.downlink_mbps,
                "uplink_mbps": n.uplink_mbps,
            }
            for n in nodes
        ],
        "stations": [_station(s) for s in sorted(stations, key=lambda s: s.id)],
        "contacts": [
            {
                "id": c.id,
                "node": c.node,
                "station": c.station,
                "start": _time(c.start),
                "end": _time(c.end),
            }
            for c in sorted(contacts.values(), key=lambda c: (c.start, c.id))
        ],
        "requests": [
            {
                "id": r.id,
                "tenant": r.tenant,
                "cpu_millicores": r.spec.cpu_millicores,
                "run_seconds": r.spec.run_seconds,
                "storage_mb": r.spec.storage_mb,
                "input_mb": r.spec.input_mb,
                "output_mb": r.spec.output_mb,
                "not_before": _time(_not_before(r)),
                "deadline": _time(r.spec.deadline),
                "priority": r.spec.priority,
            }
            for r in chosen
        ],
        "placements": [_placement(r) for r in placed],
        "rejected": [
            {"request": r.id, "reason": r.reason} for r in chosen if r.state in REJECTED_STATES
        ],
    }


def _station(station: Station) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": station.id,
        "antennas": min(station.antennas, STATION_ANTENNAS_MAX),
    }
    for label in ("country", "operator"):
        if label in station.labels:
            out[label] = station.labels[label]
    return out


def _placement(request: ServiceRequest) -> dict[str, Any]:
    assert request.placement is not None
    return {"request": request.id, **placement_json(request.placement)}


def placement_json(placement: Placement) -> dict[str, Any]:
    """A placement as the schedule document (and `orbitq request status --json`) writes it."""
    return {
        "node": placement.node,
        "start": _time(placement.start),
        "end": _time(placement.end),
        "uplink": {
            "contact": placement.uplink_contact,
            "station": placement.uplink_station,
            "at": _time(placement.uplink_at),
            "end": _time(placement.uplink_end),
        },
        "downlink": [
            {
                "contact": s.contact,
                "station": s.station,
                "start": _time(s.start),
                "end": _time(s.end),
            }
            for s in placement.downlink
        ],
    }


def fetch_schedule(
    client: BrokerClient, start: datetime | None = None, end: datetime | None = None
) -> dict[str, Any]:
    """Read every node, station and request from the broker and build the document."""
    nodes: list[Node] = []
    stations: list[Station] = []
    requests: list[ServiceRequest] = []
    token = ""
    while True:
        page = client.list_nodes(page_size=PAGE_SIZE, page_token=token)
        nodes.extend(page.items)
        if not (token := page.next_page_token):
            break
    while True:
        station_page = client.list_stations(page_size=PAGE_SIZE, page_token=token)
        stations.extend(station_page.items)
        if not (token := station_page.next_page_token):
            break
    while True:
        request_page = client.list_requests(page_size=PAGE_SIZE, page_token=token)
        requests.extend(request_page.items)
        if not (token := request_page.next_page_token):
            break
    return schedule_document(nodes, stations, requests, start, end)
