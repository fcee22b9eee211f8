"""Ground stations: the bundled list, CSV and JSON forms, and each bad field named."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orbitq.services.orbits import (
    GroundStation,
    InvalidStationError,
    bundled_path,
    load_bundled_stations,
    parse_stations,
)
from orbitq.services.orbits.stations import STATION_FILE_RECORDS_MAX

HEADER = "id,name,operator,country,latitude,longitude,altitude_m,min_elevation_deg,antennas"
GOOD = "svalbard,SvalSat,KSAT,NO,78.23,15.41,500,5,4"


def test_bundled_stations() -> None:
    stations = load_bundled_stations()
    assert len(stations) == 28
    svalbard = stations[0]
    assert svalbard == GroundStation(
        id="svalbard",
        name="SvalSat",
        latitude_deg=78.23,
        longitude_deg=15.41,
        altitude_m=500.0,
        min_elevation_deg=5.0,
        antennas=4,
        labels={"operator": "KSAT", "country": "NO"},
    )
    assert dict(svalbard.labels) == {"operator": "KSAT", "country": "NO"}
    assert bundled_path("ground-stations").name == "ground-stations.csv"


def test_labels_are_read_only() -> None:
    station = load_bundled_stations()[0]
    with pytest.raises(TypeError):
        station.labels["country"] = "SE"  # type: ignore[index]


def test_alternative_spellings_labels_and_rates() -> None:
    text = (
        "id,name,latitude_deg,longitude_deg,min_elevation_deg,antennas,labels,downlink_mbps\n"
        'x1,X,10.5,-20.25,7.5,2,"country=DE; operator=DLR;band=x",800\n'
    )
    parsed = parse_stations(text)
    assert parsed.problems == []
    (station,) = parsed.stations
    assert (station.latitude_deg, station.longitude_deg, station.altitude_m) == (10.5, -20.25, 0.0)
    assert dict(station.labels) == {"country": "DE", "operator": "DLR", "band": "x"}
    assert station.downlink_mbps == 800.0


def test_json_form() -> None:
    records = [
        {
            "id": "a.b-c_d",
            "name": "A",
            "latitude": -45,
            "longitude": 170,
            "altitude_m": 12,
            "min_elevation_deg": 0,
            "antennas": 1,
            "labels": {"country": "NZ", "operator": "X"},
        }
    ]
    parsed = parse_stations(json.dumps(records))
    assert parsed.problems == []
    assert parsed.stations[0].labels["country"] == "NZ"


@pytest.mark.parametrize(
    ("row", "fragment"),
    [
        ("a,A,KSAT,NO,90.5,0,0,5,1", "field 'latitude' is 90.5, outside -90..90 degrees"),
        ("a,A,KSAT,NO,-91,0,0,5,1", "field 'latitude' is -91.0"),
        ("a,A,KSAT,NO,0,180.01,0,5,1", "field 'longitude' is 180.01, outside -180..180"),
        ("a,A,KSAT,NO,0,-200,0,5,1", "field 'longitude' is -200.0"),
        ("a,A,KSAT,NO,0,0,0,5,-1", "field 'antennas' is -1; a station needs 1..1000"),
        ("a,A,KSAT,NO,0,0,0,5,0", "field 'antennas' is 0"),
        ("a,A,KSAT,NO,0,0,0,5,two", "field 'antennas' 'two' is not a whole number"),
        ("a,A,KSAT,NO,0,0,0,91,1", "field 'min_elevation_deg' is 91.0, outside 0..90"),
        ("a,A,KSAT,NO,0,0,0,-1,1", "field 'min_elevation_deg' is -1.0"),
        ("a,A,KSAT,NO,0,0,99999,5,1", "field 'altitude_m' is 99999.0"),
        ("Bad Id,A,KSAT,NO,0,0,0,5,1", "field 'id' 'Bad Id' must be 1-63 characters"),
        (f"{'a' * 64},A,KSAT,NO,0,0,0,5,1", "must be 1-63 characters"),
        ("a,,KSAT,NO,0,0,0,5,1", "field 'name' is missing or empty"),
        ("a,A,KSAT,NO,north,0,0,5,1", "field 'latitude' 'north' is not a number"),
        ("a,A,KSAT,NO,nan,0,0,5,1", "field 'latitude' 'nan' is not a finite number"),
        ("a,A,KSAT,Norway,0,0,0,5,1", "field 'country' 'Norway' must be an ISO 3166"),
        ("a,A,KSAT,NO,0,0,0,5", "has 8 fields but the header has 9"),
    ],
)
def test_each_bad_field_is_named_with_its_line(row: str, fragment: str) -> None:
    parsed = parse_stations(f"{HEADER}\n{GOOD}\n{row}\n")
    assert [s.id for s in parsed.stations] == ["svalbard"]
    (problem,) = parsed.problems
    assert problem.line == 3
    assert fragment in problem.message


def test_every_bad_field_of_a_row_is_listed() -> None:
    (problem,) = parse_stations(f"{HEADER}\nX,A,K,NO,95,190,0,95,-3\n").problems
    for field in ("'id'", "'latitude'", "'longitude'", "'min_elevation_deg'", "'antennas'"):
        assert field in problem.message


def test_duplicates_unknown_columns_and_json_records() -> None:
    (problem,) = parse_stations(f"{HEADER}\n{GOOD}\n{GOOD}\n").problems
    assert str(problem) == "line 3: station id 'svalbard' already appeared at line 2"
    (problem,) = parse_stations(f"{HEADER},lattitude\n").problems
    assert str(problem) == "line 1: unknown column(s) lattitude"
    records = [{"id": "a", "name": "A", "latitude": 0, "longitude": 0, "min_elevation_deg": 5}]
    records.append({**records[0], "id": "b", "antennas": 1, "latitude": 100})
    parsed = parse_stations(json.dumps(records))
    assert [str(p) for p in parsed.problems] == [
        "record 1: field 'antennas' is missing or empty",
        "record 2: field 'latitude' is 100.0, outside -90..90 degrees",
    ]
    (problem,) = parse_stations('[{"id": "a", "lat": 1}]').problems
    assert str(problem) == "record 1: unknown field(s) lat"
    (problem,) = parse_stations("[1,").problems
    assert problem.message.startswith("not valid JSON")
    (problem,) = parse_stations('{"id": "a"}').problems
    assert str(problem) == "line 1: the JSON of stations must be a list of objects"
    (problem,) = parse_stations(json.dumps([{}] * (STATION_FILE_RECORDS_MAX + 1))).problems
    assert problem.message == (
        f"a list of {STATION_FILE_RECORDS_MAX + 1} objects is more than the"
        f" {STATION_FILE_RECORDS_MAX} stations allowed"
    )
    assert [str(p) for p in parse_stations('[{"id": "a"}, 7]').problems][-1] == (
        "record 2: is not a JSON object"
    )


def test_constructor_validates_too() -> None:
    with pytest.raises(InvalidStationError, match=r"field 'latitude' is 91\.0") as caught:
        GroundStation("ok", "OK", 91.0, 0.0, 0.0, 5.0, 1)
    assert caught.value.problems == ["field 'latitude' is 91.0, outside -90..90 degrees"]


@given(st.text(max_size=300), st.sampled_from(["auto", "csv", "json"]))
def test_random_text_never_raises(text: str, fmt: str) -> None:
    parsed = parse_stations(text, fmt)
    assert all(problem.line >= 1 for problem in parsed.problems)
