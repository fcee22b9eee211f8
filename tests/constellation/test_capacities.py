"""The capacities CSV of ImportNodes: every bad row named with its line."""

from __future__ import annotations

import pytest

from orbitq.services.constellation import Capacity
from orbitq.services.constellation.nodes import parse_capacities

HEADER = "norad_id,cpu_millicores,storage_mb,downlink_mbps,uplink_mbps"


def test_rows_in_any_column_order() -> None:
    text = "uplink_mbps,norad_id,storage_mb,cpu_millicores,downlink_mbps\r\n5,25544,100,2000,50\r\n"
    assert parse_capacities(text) == ({25544: Capacity(2000, 100, 50, 5)}, [])
    assert parse_capacities("  \n") == ({}, [])


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("norad_id,cpu\n1,2\n", 1, "the header must name"),
        (f"{HEADER}\n1,2,3,4\n", 2, "has 4 fields but the header has 5"),
        (f"{HEADER}\n1,x,3,4,5\n", 2, "cpu_millicores 'x' is not a whole number"),
        (f"{HEADER}\n1,0,3,4,5\n", 2, "cpu_millicores is 0; it must be 1..1,000,000"),
        (f"{HEADER}\n0,1,3,4,5\n", 2, "norad_id 0 is outside"),
        (f"{HEADER}\n\n7,1,3,4,5\n7,1,3,4,5\n", 4, "norad_id 7 already appeared at line 3"),
    ],
)
def test_bad_rows(text: str, line: int, message: str) -> None:
    _, problems = parse_capacities(text)
    assert len(problems) == 1
    assert problems[0].line == line
    assert message in problems[0].message
    assert problems[0].message.startswith("capacities: ")
