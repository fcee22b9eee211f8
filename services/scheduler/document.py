"""The schedule document (brief §9): placements as JSON an independent checker can validate.

Owns: `schedule_document`, which renders a horizon, the world, requests, placements and
rejections in exactly the §9 shape, and `rfc3339`. Times are RFC 3339 UTC with a `Z`.

Contacts exported: by default only those a placement uses (`contacts="used"`): the checker
needs exactly those to confirm that every uplink and downlink segment lies inside a contact
of its node, and station occupancy is computed from the segments, not the contacts. A full
day of a 6,000-satellite constellation is ~500k contacts (~50 MB of JSON), so exporting every
contact (`contacts="all"`, those overlapping the horizon) is opt-in.

Fields beyond the §9 example, which a checker may ignore: nodes carry `uplink_mbps`, requests
`input_mb`, uplinks their `end` and station, segments their station, and stations their
country and operator labels. With them a checker can also verify uplink durations.

Does not own: writing the file (the `sim` command) or deciding anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from orbitq.services.scheduler.model import Contact, Node, Placement, Request, Station

EXPORT_ITEMS_MAX = 2_000_000  # per list


def rfc3339(seconds: int) -> str:
    """`2024-06-01T00:00:00Z` for integer seconds since the Unix epoch."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def schedule_document(
    horizon: tuple[int, int],
    nodes: Sequence[Node],
    stations: Sequence[Station],
    contacts: Iterable[Contact],
    requests: Sequence[Request],
    placements: Sequence[Placement],
    rejected: Mapping[str, str],
    *,
    contacts_scope: Literal["used", "all"] = "used",
) -> dict[str, Any]:
    """The §9 document. `rejected` maps request id to reason (e.g. an `Unplaced.summary`)."""
    start, end = horizon
    assert start < end
    for items in (nodes, stations, requests, placements):
        assert len(items) <= EXPORT_ITEMS_MAX
    used = {p.uplink.contact for p in placements}
    used.update(segment.contact for p in placements for segment in p.downlink)
    if contacts_scope == "used":
        chosen = [c for c in contacts if c.id in used]
    else:
        chosen = [c for c in contacts if c.end > start and c.start < end]
    chosen.sort(key=lambda c: (c.start, c.id))
    missing = used - {c.id for c in chosen}
    assert not missing, f"placements use contacts not given: {sorted(missing)[:5]}"
    return {
        "horizon": {"start": rfc3339(start), "end": rfc3339(end)},
        "nodes": [_node(n) for n in nodes],
        "stations": [_station(s) for s in stations],
        "contacts": [_contact(c) for c in chosen],
        "requests": [_request(r) for r in requests],
        "placements": [_placement(p) for p in sorted(placements, key=lambda p: p.request)],
        "rejected": [{"request": rid, "reason": rejected[rid]} for rid in sorted(rejected)],
    }


def _node(node: Node) -> dict[str, Any]:
    return {
        "id": node.id,
        "cpu_millicores": node.cpu_millicores,
        "storage_mb": node.storage_mb,
        "downlink_mbps": node.downlink_mbps,
        "uplink_mbps": node.uplink_mbps,
    }


def _station(station: Station) -> dict[str, Any]:
    out: dict[str, Any] = {"id": station.id, "antennas": station.antennas}
    for label in ("country", "operator"):
        if label in station.labels:
            out[label] = station.labels[label]
    return out


def _contact(contact: Contact) -> dict[str, Any]:
    return {
        "id": contact.id,
        "node": contact.node,
        "station": contact.station,
        "start": rfc3339(contact.start),
        "end": rfc3339(contact.end),
    }


def _request(request: Request) -> dict[str, Any]:
    return {
        "id": request.id,
        "tenant": request.tenant,
        "cpu_millicores": request.cpu_millicores,
        "run_seconds": request.run_seconds,
        "storage_mb": request.storage_mb,
        "input_mb": request.input_mb,
        "output_mb": request.output_mb,
        "not_before": rfc3339(request.not_before),
        "deadline": rfc3339(request.deadline),
        "priority": request.priority,
    }


def _placement(placement: Placement) -> dict[str, Any]:
    uplink = placement.uplink
    return {
        "request": placement.request,
        "node": placement.node,
        "start": rfc3339(placement.start),
        "end": rfc3339(placement.end),
        "uplink": {
            "contact": uplink.contact,
            "station": uplink.station,
            "at": rfc3339(uplink.at),
            "end": rfc3339(uplink.end),
        },
        "downlink": [
            {
                "contact": s.contact,
                "station": s.station,
                "start": rfc3339(s.start),
                "end": rfc3339(s.end),
            }
            for s in placement.downlink
        ],
    }
