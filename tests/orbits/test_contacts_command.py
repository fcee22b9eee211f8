"""`orbitq contacts compute` through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from orbitq.clients.cli.main import main
from orbitq.services.orbits import bundled_path

from .support import ISS, bundled

STATIONS_CSV = (
    "id,name,operator,country,latitude,longitude,altitude_m,min_elevation_deg,antennas\n"
    "cebreros,Cebreros,ESA,ES,40.45,-4.37,790,10,1\n"
    "singapore,Singapore,KSAT,SG,1.35,103.82,20,10,2\n"
)
START = "2024-11-11T00:00:00Z"


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    iss = bundled("stations")[ISS]
    tle = tmp_path / "iss.tle"
    tle.write_text(f"{iss.name}\n{iss.line1}\n{iss.line2}\n", encoding="ascii")
    ground = tmp_path / "stations.csv"
    ground.write_text(STATIONS_CSV, encoding="ascii")
    return tle, ground


def _run(*args: str) -> int:
    return main(["contacts", "compute", *args])


def test_table(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    tle, ground = files
    assert _run("--tle", str(tle), "--stations", str(ground), "--start", START) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["NODE", "STATION", "AOS", "LOS", "MAX_ELEVATION_DEG"]
    rows = [line.split() for line in out[1:]]
    assert len(rows) >= 4
    assert {row[0] for row in rows} == {"25544"}
    assert {row[1] for row in rows} == {"cebreros", "singapore"}
    assert all(row[2].endswith("Z") and row[3].endswith("Z") for row in rows)
    assert [row[2] for row in rows] == sorted(row[2] for row in rows)


def test_json(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    tle, ground = files
    args = ("--tle", str(tle), "--stations", str(ground), "--start", START, "--hours", "12")
    assert _run(*args, "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert list(document) == ["contacts"]
    contacts = document["contacts"]
    assert contacts
    for contact in contacts:
        assert set(contact) == {"node", "station", "aos", "los", "max_elevation_deg"}
        assert contact["node"] == "25544"
        assert contact["aos"] < contact["los"] <= "2024-11-11T12:00:00Z"
        assert 10.0 <= contact["max_elevation_deg"] <= 90.0


def test_bundled_files(capsys: pytest.CaptureFixture[str]) -> None:
    args = ("--tle", "bundled:stations", "--stations", "bundled:ground-stations")
    assert _run(*args, "--start", START, "--hours", "1", "--json") == 0
    captured = capsys.readouterr()
    assert len(json.loads(captured.out)["contacts"]) > 10
    assert "more than 3 days from --start" in captured.err  # two visiting vehicles' old sets
    assert bundled_path("stations").is_file()


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"--tle": "/no/such/file.tle"}, "cannot read --tle /no/such/file.tle"),
        ({"--tle": "bundled:iridium"}, "'bundled:iridium' is not bundled; choose one of"),
        ({"--start": "yesterday"}, "--start 'yesterday' is not an RFC 3339 time"),
        ({"--start": "2024-11-11T00:00:00"}, "has no time zone; add Z"),
        ({"--hours": "169"}, "--hours 169 exceeds the maximum horizon of 168 hours"),
        ({"--hours": "-1"}, "--hours must be more than 0"),
        ({"--hours": "soon"}, "--hours 'soon' is not a number"),
    ],
)
def test_bad_input_is_one_precise_line(
    files: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    change: dict[str, str],
    fragment: str,
) -> None:
    tle, ground = files
    options = {"--tle": str(tle), "--stations": str(ground), "--start": START, "--hours": "2"}
    options.update(change)
    assert _run(*[item for pair in options.items() for item in pair]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert fragment in captured.err


def test_bad_lines_are_listed_and_skip_bad_uses_the_rest(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tle, ground = files
    good = tle.read_text(encoding="ascii").splitlines()
    bad_checksum = good[1][:68] + str((int(good[1][68]) + 1) % 10)
    broken = tmp_path / "broken.tle"
    broken.write_text("\n".join([*good, "BAD", bad_checksum, good[2], "X", good[1]]) + "\n")
    args = ["--tle", str(broken), "--stations", str(ground), "--start", START, "--hours", "6"]
    assert _run(*args) == 1
    err = capsys.readouterr().err
    assert "2 problem(s); fix them, or pass --skip-bad to use the 1 good record(s)" in err
    assert "line 5: checksum digit" in err
    assert "line 8: TLE line 1 is not followed by its line 2" in err
    assert _run(*args, "--skip-bad") == 0
    captured = capsys.readouterr()
    assert "skipped 2 bad input(s)" in captured.err
    assert "25544" in captured.out


def test_bad_stations_name_the_field(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tle, _ = files
    ground = tmp_path / "bad.csv"
    ground.write_text(STATIONS_CSV + "north,North,X,NO,91,0,0,5,-2\n", encoding="ascii")
    args = ["--tle", str(tle), "--stations", str(ground), "--start", START]
    assert _run(*args) == 1
    err = capsys.readouterr().err
    assert "line 4: field 'latitude' is 91.0, outside -90..90 degrees" in err
    assert "field 'antennas' is -2" in err
