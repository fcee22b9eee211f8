"""The independent validator itself: it accepts a good hand-made document and catches each
kind of violation in a hand-made bad one."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.scheduler.schedule_validator import validate


def T(minute: int, second: int = 0) -> str:
    return f"2024-06-01T00:{minute:02d}:{second:02d}Z"


def good() -> dict[str, Any]:
    return {
        "horizon": {"start": "2024-06-01T00:00:00Z", "end": "2024-06-02T00:00:00Z"},
        "nodes": [
            {"id": "n1", "cpu_millicores": 4000, "storage_mb": 1000, "downlink_mbps": 100},
            {"id": "n2", "cpu_millicores": 4000, "storage_mb": 1000, "downlink_mbps": 100},
        ],
        "stations": [{"id": "s1", "antennas": 1}, {"id": "s2", "antennas": 1}],
        "contacts": [
            {"id": "c0", "node": "n1", "station": "s1", "start": T(0), "end": T(5)},
            {"id": "c1", "node": "n1", "station": "s2", "start": T(20), "end": T(30)},
            {"id": "c2", "node": "n2", "station": "s1", "start": T(5), "end": T(10)},
            {"id": "c3", "node": "n2", "station": "s2", "start": T(30), "end": T(40)},
        ],
        "requests": [
            {
                "id": "r1",
                "tenant": "t1",
                "cpu_millicores": 3000,
                "run_seconds": 600,
                "storage_mb": 600,
                "output_mb": 200,
                "not_before": T(0),
                "deadline": T(50),
                "priority": 0,
            },
            {
                "id": "r2",
                "tenant": "t1",
                "cpu_millicores": 3000,
                "run_seconds": 600,
                "storage_mb": 600,
                "output_mb": 100,
                "not_before": T(0),
                "deadline": T(50),
                "priority": 0,
            },
        ],
        "placements": [
            {
                "request": "r1",
                "node": "n1",
                "start": T(1),
                "end": T(11),
                "uplink": {"contact": "c0", "at": T(0), "end": T(0, 1)},
                "downlink": [{"contact": "c1", "start": T(20), "end": T(20, 16)}],
            },
            {
                "request": "r2",
                "node": "n2",
                "start": T(6),
                "end": T(16),
                "uplink": {"contact": "c2", "at": T(5), "end": T(5, 1)},
                "downlink": [{"contact": "c3", "start": T(30), "end": T(30, 8)}],
            },
        ],
        "rejected": [{"request": "r3", "reason": "no downlink contact before deadline"}],
    }


def placement(doc: dict[str, Any], index: int = 0) -> dict[str, Any]:
    result: dict[str, Any] = doc["placements"][index]
    return result


def _move_r2_to_n1(doc: dict[str, Any]) -> None:
    """Both on n1 at once: 6000 millicores and 1200 MB on a 4000 / 1000 node."""
    doc["contacts"].append(
        {"id": "c4", "node": "n1", "station": "s2", "start": T(40), "end": T(45)}
    )
    p = placement(doc, 1)
    p.update(node="n1", start=T(2), end=T(12))
    p["uplink"] = {"contact": "c0", "at": T(1), "end": T(1, 1)}
    p["downlink"] = [{"contact": "c4", "start": T(40), "end": T(40, 8)}]


def _share_station(doc: dict[str, Any]) -> None:
    """Both downlink through s2 at the same instant; s2 has one antenna."""
    doc["contacts"][3].update(start=T(20), end=T(40))
    placement(doc, 1)["downlink"] = [{"contact": "c3", "start": T(20, 5), "end": T(20, 13)}]


def _radio_twice(doc: dict[str, Any]) -> None:
    """n1 downlinks on two stations at once (each station has a free antenna)."""
    doc["contacts"].append(
        {"id": "c5", "node": "n1", "station": "s1", "start": T(20), "end": T(21)}
    )
    doc["requests"][1]["storage_mb"] = 100
    doc["requests"][1]["cpu_millicores"] = 1000
    p = placement(doc, 1)
    p.update(node="n1", start=T(2), end=T(12))
    p["uplink"] = {"contact": "c0", "at": T(1), "end": T(1, 1)}
    p["downlink"] = [{"contact": "c5", "start": T(20), "end": T(20, 8)}]


MUTATIONS: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
    ("reference", lambda d: placement(d).update(request="r9")),
    ("reference", lambda d: placement(d).update(node="n9")),
    ("reference", lambda d: d["rejected"].append({"request": "r1", "reason": "x"})),
    ("run_length", lambda d: placement(d).update(end=T(12))),
    ("window", lambda d: d["requests"][0].update(not_before=T(2))),
    ("window", lambda d: d["requests"][0].update(deadline=T(20, 10))),
    ("uplink_contact", lambda d: placement(d)["uplink"].update(contact="c2")),
    ("uplink_contact", lambda d: placement(d)["uplink"].update(at=T(6), end=T(6, 1))),
    ("uplink_order", lambda d: placement(d).update(start=T(0), end=T(10))),
    ("downlink_contact", lambda d: placement(d)["downlink"][0].update(contact="c3")),
    (
        "downlink_contact",
        lambda d: placement(d)["downlink"][0].update(start=T(29, 50), end=T(30, 6)),
    ),
    ("downlink_order", lambda d: placement(d).update(start=T(11), end=T(21))),
    ("downlink_seconds", lambda d: placement(d)["downlink"][0].update(end=T(20, 15))),
    ("downlink_seconds", lambda d: d["requests"][0].update(output_mb=201)),
    ("cpu", _move_r2_to_n1),
    ("storage", _move_r2_to_n1),
    ("antennas", _share_station),
    ("radio", _radio_twice),
]


def test_a_good_document_passes() -> None:
    assert validate(good()) == []


@pytest.mark.parametrize(("kind", "mutate"), MUTATIONS)
def test_each_violation_is_caught(kind: str, mutate: Callable[[dict[str, Any]], None]) -> None:
    doc = copy.deepcopy(good())
    mutate(doc)
    kinds = {violation.kind for violation in validate(doc)}
    assert kind in kinds


def test_touching_intervals_do_not_overlap() -> None:
    """Half-open intervals: one request ending as another starts shares nothing."""
    doc = good()
    doc["contacts"][3].update(start=T(20), end=T(40))
    placement(doc, 1)["downlink"] = [{"contact": "c3", "start": T(20, 16), "end": T(20, 24)}]
    assert validate(doc) == []


def test_the_radio_rule_can_be_switched_off() -> None:
    doc = copy.deepcopy(good())
    _radio_twice(doc)
    assert {v.kind for v in validate(doc)} == {"radio"}
    assert validate(doc, radio=False) == []
