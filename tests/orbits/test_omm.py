"""CelesTrak OMM as CSV and JSON: fixtures made honestly, six-digit catalog numbers, bad records."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sgp4.api import Satrec
from sgp4.exporter import export_omm

from orbitq.services.orbits import STATIONS_BUNDLED_EPOCH, compute_contacts, parse_elements
from orbitq.services.orbits.importing import detect_element_format

from .support import DATA, ISS, bundled, stations

SIX_DIGITS = 612_345


def _fixture(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def _records() -> list[dict[str, object]]:
    records: list[dict[str, object]] = json.loads(_fixture("omm-sample.json"))
    return records


def test_fixtures_are_the_exporters_output() -> None:
    sources = {**bundled("stations"), **bundled("starlink"), **bundled("oneweb")}
    for record in _records():
        norad = int(str(record["NORAD_CAT_ID"]))
        element = sources[ISS if norad == SIX_DIGITS else norad]
        exported = export_omm(Satrec.twoline2rv(element.line1, element.line2), element.name)
        if norad == SIX_DIGITS:  # the documented relabelled copy of the ISS
            exported.update(NORAD_CAT_ID=SIX_DIGITS, OBJECT_NAME="ISS (ZARYA) AS 612345")
        assert record == exported


def test_json_and_csv_give_the_same_element_sets() -> None:
    from_json = parse_elements(_fixture("omm-sample.json"))
    from_csv = parse_elements(_fixture("omm-sample.csv"))
    assert from_json.problems == []
    assert from_csv.problems == []
    assert from_json.elements == from_csv.elements
    assert [e.norad_id for e in from_json.elements] == [
        25544,
        44714,
        54820,
        49131,
        48880,
        44057,
        SIX_DIGITS,
    ]
    assert all(e.line1 is None and e.line2 is None for e in from_json.elements)


def test_format_detection() -> None:
    assert detect_element_format(_fixture("omm-sample.json")) == "omm-json"
    assert detect_element_format(_fixture("omm-sample.csv")) == "omm-csv"
    assert detect_element_format("\ufeff  [") == "omm-json"
    assert detect_element_format("ISS\n1 25544U") == "tle"


def test_omm_propagates_like_the_tle_it_came_from() -> None:
    tle = bundled("stations")[ISS]
    omm = parse_elements(_fixture("omm-sample.json")).elements[0]
    assert omm.name == tle.name
    assert abs(omm.epoch - tle.epoch) <= timedelta(microseconds=1)
    a, b = tle.to_satrec(), omm.to_satrec()
    for days in (0.0, 0.25, 1.0):
        ra = a.sgp4(a.jdsatepoch, a.jdsatepochF + days)[1]
        rb = b.sgp4(a.jdsatepoch, a.jdsatepochF + days)[1]
        assert max(abs(x - y) for x, y in zip(ra, rb, strict=True)) < 1e-3  # km


def test_six_digit_catalog_numbers_compute_like_any_other() -> None:
    elements = parse_elements(_fixture("omm-sample.csv")).elements
    iss, relabelled = elements[0], elements[-1]
    assert relabelled.norad_id == SIX_DIGITS
    start = STATIONS_BUNDLED_EPOCH
    chosen = [stations()["svalbard"], stations()["cebreros"]]
    windows = compute_contacts([iss, relabelled], chosen, start, start + timedelta(hours=12))
    by_node = {
        node: [(w.station, w.aos, w.los) for w in windows if w.node == node]
        for node in ("25544", str(SIX_DIGITS))
    }
    assert by_node["25544"]
    assert by_node["25544"] == by_node[str(SIX_DIGITS)]


def _json_with(**changes: object) -> str:
    record = dict(_records()[0])
    for key, value in changes.items():
        if value is None:
            del record[key]
        else:
            record[key] = value
    return json.dumps([_records()[1], record])


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"MEAN_MOTION": None}, "missing OMM key(s) MEAN_MOTION"),
        ({"ECCENTRICITY": 1.5}, "eccentricity 1.5 is outside [0, 1)"),
        ({"ECCENTRICITY": "x"}, "ECCENTRICITY 'x' is not a number"),
        ({"INCLINATION": 200}, "inclination 200.0 deg is outside [0, 180]"),
        ({"MEAN_MOTION": -1}, "mean motion -1.0 rev/day is outside"),
        ({"MEAN_MOTION": 40}, "inside the Earth"),
        ({"EPOCH": "yesterday"}, "EPOCH 'yesterday' is not an ISO 8601"),
        ({"MEAN_ELEMENT_THEORY": "SGP4-XP"}, "only SGP4 is supported"),
        ({"NORAD_CAT_ID": "1" * 40}, "NORAD_CAT_ID"),
        ({"NORAD_CAT_ID": 0}, "catalog number 0 is outside"),
        ({"NORAD_CAT_ID": 44714}, "already appeared at record 1"),
        ({"BSTAR": True}, "BSTAR True is not a number"),
    ],
)
def test_bad_json_records_are_named(changes: dict[str, object], fragment: str) -> None:
    parsed = parse_elements(_json_with(**changes))
    assert len(parsed.elements) == 1
    (problem,) = parsed.problems
    assert (problem.unit, problem.line) == ("record", 2)
    assert fragment in problem.message
    assert str(problem).startswith("record 2: ")


def test_bad_json_documents() -> None:
    assert str(parse_elements('[{"a": 1}, 7]').problems[1]) == "record 2: is not a JSON object"
    (problem,) = parse_elements('{"NORAD_CAT_ID": 1,\n').problems
    assert problem.line >= 1
    assert "not valid JSON" in problem.message
    (problem,) = parse_elements("[1e99999999999999]", fmt="omm-json").problems
    assert problem.line == 1
    (problem,) = parse_elements('"text"', fmt="omm-json").problems
    assert "must be a list of objects" in problem.message


def test_bad_csv_rows_are_named_by_line() -> None:
    lines = _fixture("omm-sample.csv").splitlines()
    header = lines[0].split(",")
    broken = lines[2].split(",")
    broken[header.index("INCLINATION")] = "181"
    text = "\n".join([lines[0], lines[1], ",".join(broken), lines[3] + ",extra", lines[4]])
    parsed = parse_elements(text)
    assert [str(p) for p in parsed.problems] == [
        "line 3: inclination 181.0 deg is outside [0, 180]",
        f"line 4: has {len(header) + 1} fields but the header has {len(header)}",
    ]
    assert len(parsed.elements) == 2
    (problem,) = parse_elements("OBJECT_NAME,NORAD_CAT_ID,EPOCH\n", fmt="omm-csv").problems
    assert "lacks the OMM column(s) MEAN_MOTION" in problem.message


def test_omm_record_reads_back_to_the_same_elements() -> None:
    import dataclasses

    from orbitq.services.orbits import omm_record

    sources = [
        *list(bundled("stations").values())[:5],
        *list(bundled("starlink").values())[:50],
        *list(bundled("oneweb").values())[:20],
    ]
    records = [omm_record(element) for element in sources]
    back = parse_elements(json.dumps(records), "omm-json")
    assert back.problems == []
    assert back.elements == [dataclasses.replace(e, line1=None, line2=None) for e in sources]
    iss = omm_record(bundled("stations")[ISS])
    assert iss["OBJECT_ID"] == "1998-067A"
    assert str(iss["EPOCH"]).startswith("2024-11-")
