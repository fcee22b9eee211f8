"""Parsing booked contact plans (no database): the same windows from JSON and CSV, every text
either parsed or refused with INVALID_ARGUMENT (never another error), problems named by line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orbitq.services.clock import to_ns
from orbitq.services.constellation.booking import parse_plan
from orbitq.services.errors import InvalidArgumentError

BASE = datetime(2025, 12, 6, tzinfo=UTC)

windows = st.lists(
    st.fixed_dictionaries(
        {
            "node": st.integers(1, 99_999).map(str),
            "station": st.from_regex(r"[a-z][a-z0-9_.-]{0,20}", fullmatch=True),
            "start": st.integers(0, 7 * 86_400),
            "length": st.integers(1, 86_400),
            "downlink_mbps": st.one_of(st.none(), st.integers(1, 10_000)),
            "antenna": st.one_of(st.none(), st.integers(1, 64)),
        }
    ),
    min_size=1,
    max_size=20,
)


def _iso(seconds: int) -> str:
    return (BASE + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


@settings(max_examples=60, deadline=None)
@given(windows)
def test_json_and_csv_give_the_same_windows(records: list[dict[str, object]]) -> None:
    rows = []
    for r in records:
        start = int(str(r["start"]))
        rows.append(
            {
                "node": r["node"],
                "station": r["station"],
                "start": _iso(start),
                "end": _iso(start + int(str(r["length"]))),
                "downlink_mbps": r["downlink_mbps"],
                "antenna": r["antenna"],
            }
        )
    document = json.dumps([{k: v for k, v in row.items() if v is not None} for row in rows])
    csv_text = "node,station,start,end,downlink_mbps,antenna\n" + "".join(
        ",".join("" if row[c] is None else str(row[c]) for c in row) + "\n" for row in rows
    )
    from_json = parse_plan(document)
    from_csv = parse_plan(csv_text)
    strip = [(w.node, w.station, w.start_ns, w.end_ns, w.downlink_mbps, w.antenna)
             for w in from_json.windows]  # fmt: skip
    assert strip == [
        (w.node, w.station, w.start_ns, w.end_ns, w.downlink_mbps, w.antenna)
        for w in from_csv.windows
    ]
    assert [w.start_ns for w in from_json.windows] == [
        to_ns(BASE + timedelta(seconds=int(str(r["start"])))) for r in records
    ]
    assert [w.where.line for w in from_csv.windows] == list(range(2, len(rows) + 2))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_parses_or_is_refused_with_invalid_argument(text: str) -> None:
    try:
        plan = parse_plan(text)
    except InvalidArgumentError:
        return
    assert all(w.start_ns < w.end_ns for w in plan.windows)


def test_problems_are_named_by_line_all_at_once() -> None:
    text = (
        "node,station,start,end,mode\n"
        "1,svalbard,2025-12-06T01:00:00Z,2025-12-06T00:00:00Z,replace\n"
        "2,svalbard,yesterday,2025-12-06T00:00:00Z,restrict\n"
        "3,svalbard,2025-12-06T01:00:00Z,2025-12-06T01:05:00Z,sometimes\n"
    )
    with pytest.raises(InvalidArgumentError) as caught:
        parse_plan(text)
    message = str(caught.value)
    assert "line 2: end must be after start" in message
    assert "line 3: start 'yesterday' is not an RFC 3339 time" in message
    assert "line 4: mode 'sometimes'" in message


def test_one_mode_per_station() -> None:
    text = json.dumps(
        {
            "stations": {"svalbard": "restrict"},
            "windows": [
                {
                    "node": 1,
                    "station": "svalbard",
                    "start": "2025-12-06T01:00:00Z",
                    "end": "2025-12-06T01:05:00Z",
                    "mode": "replace",
                }
            ],
        }
    )
    with pytest.raises(InvalidArgumentError, match="one mode per station"):
        parse_plan(text)
