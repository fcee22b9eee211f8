"""The schedule document has the brief's §9 shape, RFC 3339 UTC times and the contacts used."""

from __future__ import annotations

import json

from orbitq.services.scheduler import Contact, Node, Request, Scheduler, Station, rfc3339
from orbitq.services.scheduler import schedule_document as export
from tests.scheduler.schedule_validator import validate

BASE = 1_717_200_000  # 2024-06-01T00:00:00Z


def test_rfc3339() -> None:
    assert rfc3339(BASE) == "2024-06-01T00:00:00Z"
    assert rfc3339(BASE + 86_399) == "2024-06-01T23:59:59Z"


def test_document_shape_and_contacts_scope() -> None:
    nodes = [Node("n1", 4000, 64000, 100, 10)]
    stations = [Station("s1", 1, {"country": "NO", "operator": "KSAT"})]
    contacts = [
        Contact("c0", "n1", "s1", BASE, BASE + 300),
        Contact("c1", "n1", "s1", BASE + 1000, BASE + 1300),
        Contact("c2", "n1", "s1", BASE + 5000, BASE + 5300),
    ]
    requests = [
        Request("r1", "t1", 1000, 600, 500, 0, 200, BASE, BASE + 3600),
        Request("r2", "t1", 1000, 600, 500, 0, 200, BASE, BASE + 700),
    ]
    scheduler = Scheduler()
    scheduler.set_world(nodes, stations, contacts)
    result = scheduler.run_cycle(requests, now=BASE)
    rejected = {u.request: u.summary for u in result.unschedulable + result.pending}
    doc = export(
        (BASE, BASE + 86_400), nodes, stations, contacts, requests, list(result.placed), rejected
    )
    assert list(doc) == [
        "horizon",
        "nodes",
        "stations",
        "contacts",
        "requests",
        "placements",
        "rejected",
    ]
    assert doc["horizon"] == {"start": "2024-06-01T00:00:00Z", "end": "2024-06-02T00:00:00Z"}
    assert [c["id"] for c in doc["contacts"]] == ["c0", "c1"]
    assert doc["placements"] == [
        {
            "request": "r1",
            "node": "n1",
            "start": "2024-06-01T00:06:40Z",
            "end": "2024-06-01T00:16:40Z",
            "uplink": {
                "contact": "c0",
                "station": "s1",
                "at": "2024-06-01T00:00:00Z",
                "end": "2024-06-01T00:00:01Z",
            },
            "downlink": [
                {
                    "contact": "c1",
                    "station": "s1",
                    "start": "2024-06-01T00:16:40Z",
                    "end": "2024-06-01T00:16:56Z",
                }
            ],
        }
    ]
    assert doc["rejected"] == [
        {"request": "r2", "reason": "no downlink contact before deadline (1 node)"}
    ]
    assert doc["stations"] == [{"id": "s1", "antennas": 1, "country": "NO", "operator": "KSAT"}]
    assert validate(json.loads(json.dumps(doc))) == []
    everything = export(
        (BASE, BASE + 86_400),
        nodes,
        stations,
        contacts,
        requests,
        list(result.placed),
        rejected,
        contacts_scope="all",
    )
    assert [c["id"] for c in everything["contacts"]] == ["c0", "c1", "c2"]
